#!/usr/bin/env bash
# make cluster: a webtaskd cluster on this machine, for trying it (not for
# production): a throwaway PostgreSQL (initdb/pg_ctl as the postgres user,
# fsync off), three members of bin/webtaskd (ports 8731-8733, data in
# $CLUSTER_DIR/<node>, cgroup parents /webtaskd-cluster-<node>, one shared
# key-encryption key) and HAProxy on 127.0.0.1:8730 with
# scripts/cluster/haproxy.cfg. Ctrl-C stops everything; the directory
# stays (run again: the same cluster comes back). docs/CLUSTER.md.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=${CLUSTER_DIR:-$root/var/cluster}
lb=${CLUSTER_LB:-127.0.0.1:8730}
bin=$root/bin/webtaskd
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ "$(id -u)" = 0 ] || { echo "make cluster: run as root (sandboxes)" >&2; exit 1; }
[ -x "$bin" ] || { echo "make cluster: build first (make build)" >&2; exit 1; }
[ -n "$pgbin" ] || { echo "make cluster: PostgreSQL not installed (make deps)" >&2; exit 1; }
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || { echo "make cluster: haproxy not installed (make deps)" >&2; exit 1; }

mkdir -p "$dir"
chmod 0755 "$dir"
pgroot=$dir/pg # the postgres user's: data, log, socket
pgdata=$pgroot/data
pgport=${CLUSTER_PG_PORT:-8739}
as_pg() { runuser -u postgres -- "$@"; }
if [ ! -d "$pgdata" ]; then
	install -d -o postgres -g postgres -m 0700 "$pgroot"
	as_pg "$pgbin/initdb" -D "$pgdata" -A trust -U postgres --no-sync -E UTF8 --locale C >/dev/null
fi
as_pg "$pgbin/pg_ctl" -D "$pgdata" -l "$pgroot/log" -w \
	-o "-c port=$pgport -c listen_addresses=127.0.0.1 -c unix_socket_directories=$pgroot -c fsync=off" start >/dev/null
pids=()
cleanup() {
	trap - EXIT INT TERM
	echo "stopping the cluster" >&2
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait "${pids[@]}" 2>/dev/null || true
	as_pg "$pgbin/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null || true
}
trap cleanup EXIT INT TERM
as_pg "$pgbin/psql" -h 127.0.0.1 -p "$pgport" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'webtaskd'" | grep -q 1 ||
	as_pg "$pgbin/psql" -h 127.0.0.1 -p "$pgport" -U postgres -qc "CREATE DATABASE webtaskd"

kek=$dir/kek
[ -s "$kek" ] || (umask 077 && head -c 32 /dev/urandom >"$kek")
dsn="postgres://postgres@127.0.0.1:$pgport/webtaskd?sslmode=disable"

port=8731
declare -A addr
for node in a b c; do
	addr[$node]=127.0.0.1:$port
	WEBTASKD_STORE=$dsn WEBTASKD_KEY_ENCRYPTION_KEY_FILE=$kek \
		"$bin" serve --listen "${addr[$node]}" --node-id "$node" --data-dir "$dir/$node" \
		--state-dir "/run/webtaskd-cluster-$node" --cgroup-parent "/webtaskd-cluster-$node" \
		--advertise-url "http://${addr[$node]}" --cluster-url "http://$lb" --public-url "http://$lb" \
		2> >(sed "s/^/[$node] /" >&2) &
	pids+=($!)
	port=$((port + 1))
	if [ "$node" = a ]; then # the first member mints the key sets and the master token
		for _ in $(seq 100); do
			curl -fsS "http://${addr[a]}/readyz" >/dev/null 2>&1 && break
			sleep 0.2
		done
	fi
done
WT_LB_BIND=$lb WT_NODE_A=${addr[a]} WT_NODE_B=${addr[b]} WT_NODE_C=${addr[c]} \
	haproxy -db -f "$here/haproxy.cfg" &
pids+=($!)
echo "cluster: http://$lb (members ${addr[a]} ${addr[b]} ${addr[c]}); master token: $dir/a/master.token; Ctrl-C stops" >&2
wait -n "${pids[@]}"
