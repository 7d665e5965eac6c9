#!/usr/bin/env bash
# make bench: measures webtaskd against bare node on this machine and writes
# docs/PERFORMANCE.md. Needs root (sandboxes), node, and bin/webtaskd (make
# build). Everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
[ "$(id -u)" = 0 ] || { echo "bench: needs root (it starts sandboxes)" >&2; exit 1; }
NODE=$(command -v node || command -v nodejs)
GO=${GO:-go}

# The machine's load when the run began: these are same-run ratios, but a
# busy machine still moves them.
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# Sizes (environment overrides): alternating rounds and calls per round.
ROUNDS=${BENCH_ROUNDS:-5}
CALLS=${BENCH_CALLS:-2000}
FIRST=${BENCH_FIRST:-20}
WARM_CONTAINERS=${BENCH_WARM_CONTAINERS:-200}
SHARED_CONTAINERS=${BENCH_SHARED_CONTAINERS:-800}
BURST=${BENCH_BURST:-30}

CGO_ENABLED=1 $GO build -tags seccomp -o bin/webtaskd ./cmd/webtaskd
$GO build -o bin/loadgen ./scripts/loadgen
WORK=$(mktemp -d /tmp/webtaskd-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK" /run/webtaskd-bench-pool /run/webtaskd-bench-nopool /run/webtaskd-bench-mem /run/webtaskd-bench-burst /run/webtaskd-bench-shared
  # --share-pages turns the host's KSM on: put it back as it was.
  [ -z "$KSM_RUN" ] || { echo "$KSM_SCAN" >/sys/kernel/mm/ksm/pages_to_scan; echo "$KSM_RUN" >/sys/kernel/mm/ksm/run; } 2>/dev/null || true
}
KSM_RUN=$(cat /sys/kernel/mm/ksm/run 2>/dev/null || true)
KSM_SCAN=$(cat /sys/kernel/mm/ksm/pages_to_scan 2>/dev/null || true)
trap cleanup EXIT

# start_daemon NAME PORT [flags...]
start_daemon() {
  local name=$1 port=$2; shift 2
  bin/webtaskd serve --listen "127.0.0.1:$port" --data-dir "$WORK/$name" \
    --state-dir "/run/webtaskd-bench-$name" --cgroup-parent "/webtaskd-bench-$name" \
    --log-level warn "$@" 2>"$WORK/$name.log" &
  PIDS+=($!)
  for _ in $(seq 1 300); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "bench: daemon $name did not start:" >&2; cat "$WORK/$name.log" >&2; exit 1
}

bin/loadgen bare-server >"$WORK/bare.js"
# Three tiny modules for the dependency row, packed with npm (no network):
# the daemon installs them from its tarball directory.
mkdir -p "$WORK/tarballs"
for p in a b c; do
  mkdir -p "$WORK/pkgs/wtd-bench-$p"
  printf '{"name":"wtd-bench-%s","version":"1.0.0","main":"index.js"}\n' "$p" >"$WORK/pkgs/wtd-bench-$p/package.json"
  echo "module.exports = (s) => s + '$p';" >"$WORK/pkgs/wtd-bench-$p/index.js"
  (cd "$WORK/tarballs" && npm pack --silent "$WORK/pkgs/wtd-bench-$p" >/dev/null)
done
echo "bench: starting daemons and a bare node server" >&2
start_daemon pool 18721 --pool-size 2 --modules-tarball-dir "$WORK/tarballs"
start_daemon nopool 18722 --pool-size 0
# Bare node runs with a sandbox's environment, not ours (see spawnNode in
# scripts/loadgen/main.go).
env -i PATH=/usr/bin:/bin HOME=/tmp "$NODE" "$WORK/bare.js" 18731 & PIDS+=($!)
for _ in $(seq 1 100); do curl -fs http://127.0.0.1:18731/ >/dev/null 2>&1 && break; sleep 0.05; done

TOKEN=$(cat "$WORK/pool/master.token")
curl -fs -X PUT http://127.0.0.1:18721/api/webtask/bench/hello -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' -d '{"code":"module.exports = (ctx, cb) => cb(null, { hello: '"'"'world'"'"' });"}' >/dev/null

STREAM_CODE=$(bin/loadgen stream-code | sed 's/\\/\\\\/g; s/"/\\"/g')
curl -fs -X PUT http://127.0.0.1:18721/api/webtask/bench/stream -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' -d "{\"code\":\"$STREAM_CODE\"}" >/dev/null

DEPS='{"wtd-bench-a":"1.0.0","wtd-bench-b":"1.0.0","wtd-bench-c":"1.0.0"}'
curl -fs -X POST http://127.0.0.1:18721/api/env/node/modules -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' \
  -d '{"modules":[{"name":"wtd-bench-a","version":"1.0.0"},{"name":"wtd-bench-b","version":"1.0.0"},{"name":"wtd-bench-c","version":"1.0.0"}]}' >/dev/null
for p in a b c; do
  for _ in $(seq 1 600); do
    curl -fs "http://127.0.0.1:18721/api/env/node/modules/wtd-bench-$p" | grep -q '"available"' && break
    sleep 0.1
  done
done
curl -fs -X PUT http://127.0.0.1:18721/api/webtask/bench/deps -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' \
  -d '{"code":"const a = require(\"wtd-bench-a\"), b = require(\"wtd-bench-b\"), c = require(\"wtd-bench-c\"); module.exports = (ctx, cb) => cb(null, { hello: a(b(c(\"world\"))) });",
       "meta":{"wt-node-dependencies":"'"${DEPS//\"/\\\"}"'"}}' >/dev/null
curl -fs http://127.0.0.1:18721/api/run/bench/deps | grep -q worldcba || { echo "bench: the dependency webtask does not run" >&2; exit 1; }

echo "bench: (a) warm latency and throughput, $ROUNDS alternating rounds" >&2
bin/loadgen warm -a http://127.0.0.1:18721/api/run/bench/hello -b http://127.0.0.1:18731/ \
  -deps http://127.0.0.1:18721/api/run/bench/deps \
  -rounds "$ROUNDS" -n "$CALLS" -c 32 -d 2s >"$WORK/warm.json"
echo "bench: (a') time to first byte of a streamed response, $ROUNDS alternating rounds" >&2
bin/loadgen ttfb -a http://127.0.0.1:18721/api/run/bench/stream -b http://127.0.0.1:18731/stream \
  -rounds "$ROUNDS" -n "$((CALLS / 4))" >"$WORK/ttfb.json"
echo "bench: (b) first response of never-seen containers, $FIRST alternating rounds" >&2
bin/loadgen first -pool http://127.0.0.1:18721 -pool-data "$WORK/pool" \
  -nopool http://127.0.0.1:18722 -nopool-data "$WORK/nopool" \
  -node "$NODE" -script "$WORK/bare.js" -port 18732 -n "$FIRST" >"$WORK/first.json"

for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
PIDS=()

echo "bench: (b') a burst of $BURST never-seen containers, one every 50 ms, default flags" >&2
start_daemon burst 18724
bin/loadgen burst -url http://127.0.0.1:18724 -data "$WORK/burst" -k "$BURST" -gap 50ms -rest 4 >"$WORK/burst.json"
for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
PIDS=()

echo "bench: (c) $WARM_CONTAINERS idle warm sandboxes under a 4 GiB budget" >&2
start_daemon mem 18723 --pool-size 0 --memory-budget 4GiB --freeze-after 1s --max-sandboxes 0
bin/loadgen memory -url http://127.0.0.1:18723 -data "$WORK/mem" -k "$WARM_CONTAINERS" >"$WORK/memory.json"
for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
PIDS=()

SHARED=()
if [ -n "$KSM_RUN" ]; then
  echo "bench: (c') $SHARED_CONTAINERS idle warm sandboxes under a 4 GiB budget, --share-pages" >&2
  start_daemon shared 18725 --pool-size 0 --memory-budget 4GiB --freeze-after 1s --max-sandboxes 0 --share-pages
  bin/loadgen memory -url http://127.0.0.1:18725 -data "$WORK/shared" -k "$SHARED_CONTAINERS" -stable 120s >"$WORK/shared.json"
  # What the kernel's merging costs while they idle: ksmd's CPU over 10 s.
  KSMD=$(pgrep -x ksmd)
  T0=$(awk '{print $14+$15}' "/proc/$KSMD/stat"); sleep 10; T1=$(awk '{print $14+$15}' "/proc/$KSMD/stat")
  KSMD_CPU=$(awk -v a="$T0" -v b="$T1" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.1f", (b-a)*100/hz/10}')
  SHARED=(-memory-shared "$WORK/shared.json" -ksmd-cpu "$KSMD_CPU")
else
  echo "bench: (c') skipped: this kernel has no KSM (/sys/kernel/mm/ksm), --share-pages is refused here" >&2
fi

TABLE=$(bin/loadgen report -warm "$WORK/warm.json" -first "$WORK/first.json" -memory "$WORK/memory.json" -ttfb "$WORK/ttfb.json" -burst "$WORK/burst.json" "${SHARED[@]}")
MACHINE="$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(nproc) CPUs, $(free -g | awk '/^Mem:/{print $2}') GiB RAM, Linux $(uname -r), node $("$NODE" --version), $($GO version | awk '{print $3}'), cgroup $(stat -fc %T /sys/fs/cgroup), load average at start $LOAD_START"
echo
echo "Machine: $MACHINE"
echo
echo "$TABLE"

OUT=docs/PERFORMANCE.md
{
  sed '/^<!-- bench:begin -->$/,$d' "$OUT" 2>/dev/null || true
  echo "<!-- bench:begin -->"
  echo "## Latest \`make bench\` ($(date -u +%Y-%m-%dT%H:%MZ))"
  echo
  echo "Machine: $MACHINE"
  echo
  echo "$TABLE"
  echo
  echo "Raw results:"
  echo
  echo '```json'
  cat "$WORK/warm.json" "$WORK/ttfb.json" "$WORK/first.json" "$WORK/burst.json" "$WORK/memory.json" $([ -n "$KSM_RUN" ] && echo "$WORK/shared.json")
  echo '```'
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "bench: results written to $OUT" >&2
