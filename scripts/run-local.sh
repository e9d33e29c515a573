#!/usr/bin/env bash
# run-local.sh brings the local system up on loopback — the dev Kafka broker (data
# kept in .run/kafka), a real ZooKeeper, kproxy, a demo HTTP backend, kmonitor and
# ktransfer with both offset stores side by side: two processes sharing module
# "demo" through ZooKeeper (offset_store zookeeper, the original layout) and two
# sharing module "demo-kafka" through a Kafka consumer group (offset_store kafka,
# no ZooKeeper), both modules on the topic "demo", so each pushes every record.
# kmonitor reads the cluster with offset_source both: one Kafka cluster whose
# modules keep their offsets in either store. It sends a few records through
# kproxy, reads them back with kcat, shows both modules pushing them to the
# backend, which partitions each ktransfer process owns in each mode and
# kmonitor's lag returning to 0.
# `run-local.sh stop` stops everything it started, by the PIDs it recorded.
# Ports: KAFKA_PORT (9092), ZK_PORT (2181), KPROXY_PORT (5030), BACKEND_PORT (8080),
# ktransfer operations 5041 to 5044, KMONITOR_PORT (55325).
set -euo pipefail

cd "$(dirname "$0")/.."
readonly RUN=.run
readonly KAFKA_PORT=${KAFKA_PORT:-9092}
readonly ZK_PORT=${ZK_PORT:-2181}
readonly KPROXY_PORT=${KPROXY_PORT:-5030}
readonly BACKEND_PORT=${BACKEND_PORT:-8080}
readonly KMONITOR_PORT=${KMONITOR_PORT:-55325}
readonly TOPIC=demo
# ktransfer processes 1 and 2 run module demo with offset_store zookeeper, 3 and
# 4 module demo-kafka with offset_store kafka; process N's operations endpoints
# listen on 504N.
readonly TRANSFERS="1 2 3 4"

die() {
	echo "run-local.sh: $*" >&2
	exit 1
}

# alive tells whether the PID in pidfile $1 is a running process.
alive() {
	[[ -f $1 ]] && kill -0 "$(<"$1")" 2>/dev/null
}

# wait_for runs "$@" until it succeeds, for at most 30 s.
wait_for() {
	local i
	for ((i = 0; i < 300; i++)); do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# start_daemon NAME CMD...: runs CMD in the background with its output in
# .run/NAME.out and its PID in .run/NAME.pid, unless it already runs.
start_daemon() {
	local name=$1
	shift
	if alive "$RUN/$name.pid"; then
		echo "$name already running (pid $(<"$RUN/$name.pid"))"
		return
	fi
	nohup "$@" >"$RUN/$name.out" 2>&1 &
	echo $! >"$RUN/$name.pid"
}

stop_daemon() {
	local name=$1 pid i
	alive "$RUN/$name.pid" || {
		rm -f "$RUN/$name.pid"
		return 0
	}
	pid=$(<"$RUN/$name.pid")
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 150; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.2
	done
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$RUN/$name.pid"
	echo "stopped $name (pid $pid)"
}

# describe_transfer N names ktransfer process N's module and offset store.
describe_transfer() {
	if (($1 <= 2)); then
		echo "module demo, offset_store zookeeper"
	else
		echo "module demo-kafka, offset_store kafka"
	fi
}

# owned N prints the partitions ktransfer process N owns, one a line, from its
# /status (the fleet's "owned" list, the same in both stores).
owned() {
	curl -fsS "http://127.0.0.1:504$1/status" | tr -d ' \n' | grep -o '"owned":\[[0-9,]*\]' | grep -o '[0-9]\+' || true
}

# spread N M succeeds once ktransfer processes N and M (the two of a module)
# both own partitions and together all 8 of the topic, each once.
spread() {
	local a b
	a=$(owned "$1")
	b=$(owned "$2")
	[[ -n $a && -n $b ]] && (($(printf '%s\n%s\n' "$a" "$b" | sort -u | wc -l) == 8 && $(printf '%s\n%s\n' "$a" "$b" | wc -l) == 8))
}

# monitor_owned succeeds once kmonitor's /lag shows an owner for each of the 16
# module partitions.
monitor_owned() {
	local lag
	lag=$(curl -fsS "http://127.0.0.1:$KMONITOR_PORT/lag") || return 1
	[[ $lag != *'"owner":""'* && $(grep -o '"owner":"[^"]' <<<"$lag" | wc -l) == 16 ]]
}

start() {
	mkdir -p "$RUN/log"
	[[ -x bin/kproxy && -x bin/ktransfer && -x bin/devbroker && -x bin/demobackend && -x bin/kmonitor ]] || die "build first: make build"

	scripts/zookeeper.sh start -p "$ZK_PORT" -d "$RUN/zookeeper"

	start_daemon devbroker bin/devbroker -listen "127.0.0.1:$KAFKA_PORT" -data-dir "$RUN/kafka" -topics "$TOPIC" -partitions 8
	wait_for grep -q "devbroker listening" "$RUN/devbroker.out" || die "dev broker did not start: $(cat "$RUN/devbroker.out")"
	echo "devbroker listening on 127.0.0.1:$KAFKA_PORT (pid $(<"$RUN/devbroker.pid"), data in $RUN/kafka)"

	cat >"$RUN/kproxy.yaml" <<YAML
# Written by scripts/run-local.sh; see conf/kproxy.yaml for every key.
log_dir: $RUN/log
log_level: 4
port: $KPROXY_PORT
listen_address: 127.0.0.1
broker_hosts:
 - 127.0.0.1:$KAFKA_PORT
YAML
	start_daemon kproxy bin/kproxy -f "$RUN/kproxy.yaml"
	wait_for curl -fsS "http://127.0.0.1:$KPROXY_PORT/readyz" || die "kproxy not ready: $(tail -n 20 "$RUN/log/kproxy.log" "$RUN/kproxy.out" 2>/dev/null)"
	echo "kproxy listening on 127.0.0.1:$KPROXY_PORT (pid $(<"$RUN/kproxy.pid"), log $RUN/log/kproxy.log)"

	start_daemon demobackend bin/demobackend -listen "127.0.0.1:$BACKEND_PORT"
	wait_for grep -q "demobackend listening" "$RUN/demobackend.out" || die "demo backend did not start: $(cat "$RUN/demobackend.out")"
	echo "demobackend listening on 127.0.0.1:$BACKEND_PORT (pid $(<"$RUN/demobackend.pid"), requests in $RUN/demobackend.out)"

	mkdir -p "$RUN/modules"
	local module store
	for module in demo demo-kafka; do
		cat >"$RUN/modules/$module.yaml" <<YAML
# Written by scripts/run-local.sh; see conf/modules/example.yaml for every key.
topic: $TOPIC
protocol:
 name: http
 uri: /$module/{#TOPIC}?partition={#PARTITION}&transid={#TRANSID}&key={#KEY}&method={#METHOD}
worker_num: 8
window_size: 100
fail_retry_interval_ms: 200
backend_servers:
 - 127.0.0.1:$BACKEND_PORT
commit_interval_ms: 500
YAML
	done
	local n
	for n in $TRANSFERS; do
		if ((n <= 2)); then
			module=demo
			store="zk_chroot: /demo
zk_timeout_ms: 6000
zk_hosts:
 - 127.0.0.1:$ZK_PORT"
		else
			# No zk_hosts: this module needs no ZooKeeper. The group session
			# matches the ZooKeeper module's zk_timeout_ms, so both fail over
			# alike.
			module=demo-kafka
			store="offset_store: kafka
group_session_timeout_ms: 6000"
		fi
		cat >"$RUN/ktransfer$n.yaml" <<YAML
# Written by scripts/run-local.sh; see conf/ktransfer.yaml for every key.
log_dir: $RUN/log/ktransfer$n
log_level: 4
$store
module_conf_dir: $RUN/modules
module_enabled:
 - $module
broker_hosts:
 - 127.0.0.1:$KAFKA_PORT
ops_listen: 127.0.0.1:504$n
instance_id: local-$n
YAML
		start_daemon "ktransfer$n" bin/ktransfer -f "$RUN/ktransfer$n.yaml"
	done
	for n in $TRANSFERS; do
		wait_for curl -fsS "http://127.0.0.1:504$n/readyz" || die "ktransfer$n not ready: $(tail -n 20 "$RUN/log/ktransfer$n/ktransfer.log" "$RUN/ktransfer$n.out" 2>/dev/null)"
		echo "ktransfer$n running, $(describe_transfer "$n") (pid $(<"$RUN/ktransfer$n.pid"), operations http://127.0.0.1:504$n/status, log $RUN/log/ktransfer$n/ktransfer.log)"
	done

	cat >"$RUN/kmonitor.yaml" <<YAML
# Written by scripts/run-local.sh; see conf/kmonitor.yaml for every key.
base:
 log_dir: $RUN/log
 log_level: 4
 clusters:
  - local
 poll_interval_ms: 1000
http_server:
 port: $KMONITOR_PORT
 listen_address: 127.0.0.1
local:
 # One Kafka cluster whose modules keep their offsets in either store: demo's
 # in ZooKeeper under the chroot, demo-kafka's in its Kafka group.
 offset_source: both
 chroot: /demo
 zk_hosts:
  - 127.0.0.1:$ZK_PORT
 broker_hosts:
  - 127.0.0.1:$KAFKA_PORT
YAML
	start_daemon kmonitor bin/kmonitor -f "$RUN/kmonitor.yaml"
	wait_for curl -fsS "http://127.0.0.1:$KMONITOR_PORT/healthz" || die "kmonitor did not start: $(tail -n 20 "$RUN/log/kmonitor.log" "$RUN/kmonitor.out" 2>/dev/null)"
	echo "kmonitor listening on 127.0.0.1:$KMONITOR_PORT (pid $(<"$RUN/kmonitor.pid"), log $RUN/log/kmonitor.log)"

	echo
	echo "== committing three msgpack records through kproxy"
	local i
	for i in 1 2 3; do
		# {"method":"demo","key":"user-$i","data":"hello $i"} in msgpack.
		printf '\x83\xa6method\xa4demo\xa3key\xa6user-%s\xa4data\xa7hello %s' "$i" "$i" |
			curl -sS -X POST --data-binary @- -H 'Content-Type: application/x-msgpack' \
				"http://127.0.0.1:$KPROXY_PORT/commit?topic=$TOPIC&key=user-$i&acks=-1"
	done
	echo
	echo "== reading the topic back with kcat"
	kcat -b "127.0.0.1:$KAFKA_PORT" -C -t "$TOPIC" -o -3 -e -q -f 'partition %p offset %o key %k value %S bytes\n'
	echo
	echo "== ktransfer pushing them to the demo backend: each module gets every record"
	wait_for grep -q "/demo/$TOPIC?.*key=user-3" "$RUN/demobackend.out" || echo "(module demo has not pushed them all yet: see $RUN/demobackend.out)"
	wait_for grep -q "/demo-kafka/$TOPIC?.*key=user-3" "$RUN/demobackend.out" || echo "(module demo-kafka has not pushed them all yet: see $RUN/demobackend.out)"
	grep -E "method=demo" "$RUN/demobackend.out" | tail -n 6
	echo
	echo "== partitions per ktransfer process, in each mode"
	wait_for spread 1 2 || echo "(module demo: its two processes do not share the 8 partitions yet)"
	wait_for spread 3 4 || echo "(module demo-kafka: its two processes do not share the 8 partitions yet)"
	for n in $TRANSFERS; do
		printf 'ktransfer%s, %s, owns: %s\n' "$n" "$(describe_transfer "$n")" "$(owned "$n" | tr '\n' ' ')"
	done
	echo
	echo "== kmonitor: lag per module partition (records not yet pushed), once it is 0"
	local delay=""
	for ((n = 0; n < 100; n++)); do
		delay=$(curl -fsS "http://127.0.0.1:$KMONITOR_PORT/delay") || true
		if [[ $delay == *'"demo":{'* && $delay == *'"demo-kafka":{'* && $delay != *':'[1-9]* ]]; then
			break
		fi
		sleep 0.2
	done
	echo "$delay"
	curl -fsS "http://127.0.0.1:$KMONITOR_PORT/delay?format=zabbix" | grep -E '^- local\.demo(-kafka)?\.[01]\.delay '
	echo
	echo "== kmonitor's /lag: each module as its own store shows it (owner: the ZooKeeper owner node's instance, or the group member as INSTANCE@HOST)"
	# kmonitor reads Kafka's groups once a poll (a second here): a member that
	# just joined shows from the next one.
	wait_for monitor_owned || echo "(some partition has no owner in kmonitor yet)"
	curl -fsS "http://127.0.0.1:$KMONITOR_PORT/lag" | grep -o '{[^{}]*}' |
		sed -E 's/.*"module":"([^"]*)".*"partition":([0-9]+),"committed":([0-9]+|null).*"lag":([0-9]+).*"owner":"([^"]*)".*"status":"([A-Z_]+)".*/\1|\2|\3|\4|\5|\6/' |
		awk -F'|' 'BEGIN { printf "%-11s %9s %9s %4s  %-24s %s\n", "module", "partition", "committed", "lag", "owner", "status" }
			{ printf "%-11s %9s %9s %4s  %-24s %s\n", $1, $2, $3, $4, ($5 == "" ? "-" : $5), $6 }'
	cat <<TXT

The local system runs in the background:
  kafka (dev broker)  127.0.0.1:$KAFKA_PORT
  zookeeper           127.0.0.1:$ZK_PORT
  kproxy              http://127.0.0.1:$KPROXY_PORT/commit   (/healthz /readyz /metrics)
  ktransfer 1 and 2   module demo, offsets in ZooKeeper:  http://127.0.0.1:5041/status, http://127.0.0.1:5042/status   (/metrics)
  ktransfer 3 and 4   module demo-kafka, a Kafka group:   http://127.0.0.1:5043/status, http://127.0.0.1:5044/status   (/metrics)
  demo backend        http://127.0.0.1:$BACKEND_PORT   (requests logged in $RUN/demobackend.out)
  kmonitor            http://127.0.0.1:$KMONITOR_PORT/   (dashboard; /delay /lag /metrics)
Try:  printf '\x81\xa6method\xa2hi' | curl -sS --data-binary @- 'http://127.0.0.1:$KPROXY_PORT/commit?topic=$TOPIC&key=k1'
Failover: kill -9 \$(cat $RUN/ktransfer2.pid) or \$(cat $RUN/ktransfer4.pid): after the 6 s session timeout the other process of the module
      owns all 8 partitions (curl -s http://127.0.0.1:5041/status or :5043/status); make run starts it again.
Stop: make stop
TXT
}

stop() {
	local n
	stop_daemon kmonitor
	for n in $TRANSFERS; do
		stop_daemon "ktransfer$n"
	done
	stop_daemon kproxy
	stop_daemon demobackend
	stop_daemon devbroker
	scripts/zookeeper.sh stop -p "$ZK_PORT" -d "$RUN/zookeeper" || true
}

case ${1:-start} in
start) start ;;
stop) stop ;;
*)
	echo "usage: $0 start|stop" >&2
	exit 2
	;;
esac
