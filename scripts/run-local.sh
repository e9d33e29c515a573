#!/usr/bin/env bash
# run-local.sh brings the local system up on loopback — the dev Kafka broker (data
# kept in .run/kafka), a real ZooKeeper, kproxy, two ktransfer processes sharing a
# demo module, a demo HTTP backend and kmonitor — sends a few records through
# kproxy, reads them back with kcat, shows ktransfer pushing them to the backend and
# kmonitor's lag returning to 0.
# `run-local.sh stop` stops everything it started, by the PIDs it recorded.
# Ports: KAFKA_PORT (9092), ZK_PORT (2181), KPROXY_PORT (5030), BACKEND_PORT (8080),
# ktransfer operations 5041 and 5042, KMONITOR_PORT (55325).
set -euo pipefail

cd "$(dirname "$0")/.."
readonly RUN=.run
readonly KAFKA_PORT=${KAFKA_PORT:-9092}
readonly ZK_PORT=${ZK_PORT:-2181}
readonly KPROXY_PORT=${KPROXY_PORT:-5030}
readonly BACKEND_PORT=${BACKEND_PORT:-8080}
readonly KMONITOR_PORT=${KMONITOR_PORT:-55325}
readonly TOPIC=demo

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
	cat >"$RUN/modules/demo.yaml" <<YAML
# Written by scripts/run-local.sh; see conf/modules/example.yaml for every key.
topic: $TOPIC
protocol:
 name: http
 uri: /demo/{#TOPIC}?partition={#PARTITION}&transid={#TRANSID}&key={#KEY}&method={#METHOD}
worker_num: 8
window_size: 100
fail_retry_interval_ms: 200
backend_servers:
 - 127.0.0.1:$BACKEND_PORT
commit_interval_ms: 500
YAML
	local n
	for n in 1 2; do
		cat >"$RUN/ktransfer$n.yaml" <<YAML
# Written by scripts/run-local.sh; see conf/ktransfer.yaml for every key.
log_dir: $RUN/log/ktransfer$n
log_level: 4
zk_chroot: /demo
zk_timeout_ms: 6000
zk_hosts:
 - 127.0.0.1:$ZK_PORT
module_conf_dir: $RUN/modules
module_enabled:
 - demo
broker_hosts:
 - 127.0.0.1:$KAFKA_PORT
ops_listen: 127.0.0.1:504$n
instance_id: local-$n
YAML
		start_daemon "ktransfer$n" bin/ktransfer -f "$RUN/ktransfer$n.yaml"
	done
	for n in 1 2; do
		wait_for curl -fsS "http://127.0.0.1:504$n/readyz" || die "ktransfer$n not ready: $(tail -n 20 "$RUN/log/ktransfer$n/ktransfer.log" "$RUN/ktransfer$n.out" 2>/dev/null)"
		echo "ktransfer$n running (pid $(<"$RUN/ktransfer$n.pid"), operations http://127.0.0.1:504$n/status, log $RUN/log/ktransfer$n/ktransfer.log)"
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
	echo "== ktransfer pushing them to the demo backend"
	wait_for grep -q "key=user-3" "$RUN/demobackend.out" || echo "(not all pushed yet: see $RUN/demobackend.out)"
	grep -E "method=demo" "$RUN/demobackend.out" | tail -n 3
	echo
	echo "== partitions per ktransfer process"
	for n in 1 2; do
		printf 'ktransfer%s owns: ' "$n"
		curl -fsS "http://127.0.0.1:504$n/status" | tr -d ' \n' | grep -o '"partition":[0-9]*' | cut -d: -f2 | tr '\n' ' '
		echo
	done
	echo
	echo "== kmonitor: lag per module partition (records not yet pushed), once it is 0"
	local delay=""
	for ((n = 0; n < 100; n++)); do
		delay=$(curl -fsS "http://127.0.0.1:$KMONITOR_PORT/delay") || true
		if [[ $delay == *'"demo":{'* && $delay != *':'[1-9]* ]]; then
			break
		fi
		sleep 0.2
	done
	echo "$delay"
	curl -fsS "http://127.0.0.1:$KMONITOR_PORT/delay?format=zabbix" | head -n 3
	cat <<TXT

The local system runs in the background:
  kafka (dev broker)  127.0.0.1:$KAFKA_PORT
  zookeeper           127.0.0.1:$ZK_PORT
  kproxy              http://127.0.0.1:$KPROXY_PORT/commit   (/healthz /readyz /metrics)
  ktransfer 1 and 2   http://127.0.0.1:5041/status, http://127.0.0.1:5042/status   (/metrics)
  demo backend        http://127.0.0.1:$BACKEND_PORT   (requests logged in $RUN/demobackend.out)
  kmonitor            http://127.0.0.1:$KMONITOR_PORT/   (dashboard; /delay /lag /metrics)
Try:  printf '\x81\xa6method\xa2hi' | curl -sS --data-binary @- 'http://127.0.0.1:$KPROXY_PORT/commit?topic=$TOPIC&key=k1'
Stop: make stop
TXT
}

stop() {
	stop_daemon kmonitor
	stop_daemon ktransfer1
	stop_daemon ktransfer2
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
