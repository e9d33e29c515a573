#!/usr/bin/env bash
# install-deps.sh installs what the tests, benchmarks and the local system need and
# a fresh Debian machine lacks: ZooKeeper (Debian's package, with Java), kcat,
# zabbix_sender (zabbix-agent), Chromium (the browser tests), protoc
# (protobuf-compiler: make proto and the pubsub interoperability test), wrk
# (kproxy's load benchmark), and systemd-analyze and logrotate (the check of
# what `make install` writes). It runs
# apt-get update once, and only when something is missing; Go modules are
# downloaded with `go mod download`.
set -euo pipefail

want=(zookeeper kcat zabbix-agent chromium protobuf-compiler wrk systemd logrotate)

as_root() {
	if [[ $(id -u) -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		echo "install-deps.sh: need root to run: $*" >&2
		exit 1
	fi
}

missing=()
for pkg in "${want[@]}"; do
	case $pkg in
	zookeeper) [[ -f /usr/share/java/zookeeper.jar ]] && command -v java >/dev/null || missing+=(zookeeper) ;;
	zabbix-agent) command -v zabbix_sender >/dev/null || missing+=(zabbix-agent) ;;
	systemd) command -v systemd-analyze >/dev/null && command -v systemd-sysusers >/dev/null || missing+=(systemd) ;;
	logrotate) command -v logrotate >/dev/null || [[ -x /usr/sbin/logrotate ]] || missing+=(logrotate) ;;
	protobuf-compiler) command -v protoc >/dev/null || missing+=(protobuf-compiler) ;;
	*) command -v "$pkg" >/dev/null || missing+=("$pkg") ;;
	esac
done

if ((${#missing[@]} > 0)); then
	echo "install-deps.sh: installing ${missing[*]}" >&2
	as_root apt-get update -q >/dev/null
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi

cd "$(dirname "$0")/.."
go mod download
