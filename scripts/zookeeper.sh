#!/usr/bin/env bash
# zookeeper.sh runs a standalone ZooKeeper server from Debian's package for
# local development, listening on 127.0.0.1 only.
#
#   scripts/zookeeper.sh start|stop|status [-p PORT] [-d DATADIR]
#
# PORT defaults to 2181, DATADIR to ./.run/zookeeper. DATADIR holds zoo.cfg,
# the server's data (data/), its output (zookeeper.log) and its pid file
# (zookeeper.pid). start installs the zookeeper package when it is missing,
# starts the server in the background and waits until it answers; stop sends
# SIGTERM, then SIGKILL after 10 s; status exits 0 when the server is running
# and answering, 1 otherwise.
set -euo pipefail

readonly JAR=/usr/share/java/zookeeper.jar
readonly SLF4J_SIMPLE=/usr/share/java/slf4j-simple.jar
readonly START_TIMEOUT=30 # seconds until the server must answer
readonly STOP_GRACE=10    # seconds between SIGTERM and SIGKILL

usage() {
	echo "usage: $0 start|stop|status [-p PORT] [-d DATADIR]" >&2
	exit 2
}

die() {
	echo "zookeeper.sh: $*" >&2
	exit 1
}

# as_root runs a command as root, through sudo when needed.
as_root() {
	if [[ $(id -u) -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		die "need root to run: $*"
	fi
}

# ensure_installed installs Debian's zookeeper package unless it is there.
ensure_installed() {
	if [[ -f $JAR ]] && command -v java >/dev/null; then
		return
	fi
	echo "zookeeper.sh: installing the zookeeper package" >&2
	as_root apt-get update -q
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q zookeeper
	[[ -f $JAR ]] || die "$JAR still missing after installing zookeeper"
	command -v java >/dev/null || die "java still missing after installing zookeeper"
}

# four_letter_word sends a four-letter command to the server and prints the
# answer; it fails when nothing listens.
four_letter_word() {
	(
		exec 3<>"/dev/tcp/127.0.0.1/$PORT"
		printf '%s' "$1" >&3
		timeout 2 cat <&3
	) 2>/dev/null
}

answers() {
	[[ $(four_letter_word ruok || true) == imok ]]
}

# running_pid prints the pid from the pid file when that process is this
# data directory's ZooKeeper server; it fails otherwise.
running_pid() {
	local pid cmdline
	[[ -f $PIDFILE ]] || return 1
	pid=$(<"$PIDFILE")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	# Guard against a reused pid: the process must be our server.
	cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ $cmdline == *QuorumPeerMain*"$CFG"* ]] || return 1
	echo "$pid"
}

write_config() {
	mkdir -p "$DIR/data"
	cat >"$CFG" <<EOF
# written by scripts/zookeeper.sh; rewritten on every start
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$DIR/data
clientPort=$PORT
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,mntr,stat
autopurge.purgeInterval=1
EOF
}

cmd_start() {
	local pid classpath i
	if pid=$(running_pid); then
		echo "zookeeper already running on 127.0.0.1:$PORT (pid $pid)"
		return
	fi
	if answers; then
		die "something else already answers on 127.0.0.1:$PORT"
	fi
	ensure_installed
	write_config
	classpath=$JAR
	if [[ -f $SLF4J_SIMPLE ]]; then
		classpath+=":$SLF4J_SIMPLE"
	fi
	echo "=== zookeeper.sh: starting at $(date -Is)" >>"$LOG"
	nohup java -Xmx512m -XX:-UsePerfData -Djava.net.preferIPv4Stack=true \
		-Dorg.slf4j.simpleLogger.showDateTime=true \
		-cp "$classpath" org.apache.zookeeper.server.quorum.QuorumPeerMain "$CFG" \
		>>"$LOG" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$PIDFILE"

	for ((i = 0; i < START_TIMEOUT * 10; i++)); do
		if answers; then
			echo "zookeeper listening on 127.0.0.1:$PORT (pid $pid)"
			return
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			rm -f "$PIDFILE"
			tail -n 20 "$LOG" >&2
			die "server exited during start; log: $LOG"
		fi
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$PIDFILE"
	tail -n 20 "$LOG" >&2
	die "server did not answer within ${START_TIMEOUT}s; log: $LOG"
}

cmd_stop() {
	local pid i
	if ! pid=$(running_pid); then
		rm -f "$PIDFILE"
		echo "zookeeper not running (data dir $DIR)"
		return
	fi
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < STOP_GRACE * 10; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			rm -f "$PIDFILE"
			echo "zookeeper stopped (pid $pid)"
			return
		fi
		sleep 0.1
	done
	echo "zookeeper.sh: pid $pid still running after ${STOP_GRACE}s, sending SIGKILL" >&2
	kill -KILL "$pid" 2>/dev/null || true
	while kill -0 "$pid" 2>/dev/null; do
		sleep 0.1
	done
	rm -f "$PIDFILE"
	echo "zookeeper killed (pid $pid)"
}

cmd_status() {
	local pid
	if pid=$(running_pid) && answers; then
		echo "zookeeper running on 127.0.0.1:$PORT (pid $pid)"
		return 0
	fi
	echo "zookeeper not running on 127.0.0.1:$PORT (data dir $DIR)"
	return 1
}

main() {
	local command="" opt
	PORT=2181
	DIR=./.run/zookeeper
	# The command may come before or after the options.
	while (($# > 0)); do
		case $1 in
		start | stop | status)
			[[ -z $command ]] || usage
			command=$1
			shift
			;;
		-*)
			OPTIND=1
			while getopts ":p:d:" opt; do
				case $opt in
				p) PORT=$OPTARG ;;
				d) DIR=$OPTARG ;;
				*) usage ;;
				esac
			done
			shift $((OPTIND - 1))
			;;
		*) usage ;;
		esac
	done
	[[ -n $command ]] || usage
	if ! [[ $PORT =~ ^[0-9]{1,5}$ ]] || ((10#$PORT < 1 || 10#$PORT > 65535)); then
		die "-p $PORT: must be a port number from 1 to 65535"
	fi
	PORT=$((10#$PORT))
	[[ -n $DIR ]] || die "-d: must not be empty"

	if [[ $command == start ]]; then
		mkdir -p "$DIR"
	fi
	if [[ -d $DIR ]]; then
		DIR=$(cd "$DIR" && pwd)
	fi
	CFG=$DIR/zoo.cfg
	LOG=$DIR/zookeeper.log
	PIDFILE=$DIR/zookeeper.pid

	"cmd_$command"
}

main "$@"
