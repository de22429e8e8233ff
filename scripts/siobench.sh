#!/usr/bin/env bash
# siobench.sh: floorhub's floor chat against the reference Socket.IO server
# (npm socket.io 4.8 on Node, cmd/siobench/node), alternately on this
# machine, ROUNDS rounds, each server fresh in every round; then the ratios
# floorhub / Node of CPU per delivery, p99 and RSS per connection
# (BENCHMARKS.md, "Floor chat vs socket.io"). Not part of scripts/test.sh.
#
#   scripts/siobench.sh            N=1000 RATE=10 DURATION=20s ROUNDS=3
#   N=200 DURATION=5s ROUNDS=1 scripts/siobench.sh
#
# PROFILE=1 builds the agent with -tags profile and leaves a CPU profile of
# each floorhub phase in $OUT/floorhub-<round>.pprof. PERF=1 records each
# server, kernel included, with perf (`perf record -g` on its process while
# the tool connects, warms up and measures) into $OUT/<server>-<round>.perf;
# read them with `perf report --children -i FILE`.
set -eu
cd "$(dirname "$0")/.."
N=${N:-1000} RATE=${RATE:-10} DURATION=${DURATION:-20s} WARMUP=${WARMUP:-5s} ROUNDS=${ROUNDS:-3}
NODE_PORT=${NODE_PORT:-3101} HUB_PORT=${HUB_PORT:-3102}
OUT=${OUT:-$(mktemp -d /tmp/siobench.XXXXXX)}
mkdir -p "$OUT"

tags=""
[ "${PROFILE:-}" = 1 ] && tags="-tags profile"
go build $tags -o "$OUT/agent" ./cmd/agent
go build -o "$OUT/siobench" ./cmd/siobench
[ -d cmd/siobench/node/node_modules/socket.io ] || (cd cmd/siobench/node && npm ci --no-audit --no-fund)

# wait_port waits until something listens on 127.0.0.1:$1.
wait_port() {
	i=0
	until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 100 ] || { echo "siobench.sh: nothing listens on port $1" >&2; exit 1; }
		sleep 0.1
	done
}
bench() { "$OUT/siobench" -n "$N" -rate "$RATE" -duration "$DURATION" -warmup "$WARMUP" "$@"; }
# perf_start and perf_stop record process $1 into $OUT/$2.perf when PERF=1.
perf_pid=""
perf_start() {
	[ "${PERF:-}" = 1 ] || return 0
	perf record -q -F 1999 -g -p "$1" -o "$OUT/$2.perf" 2>>"$OUT/perf.log" &
	perf_pid=$!
}
perf_stop() {
	[ -n "$perf_pid" ] || return 0
	kill -INT "$perf_pid"
	wait "$perf_pid" || true
	perf_pid=""
}

echo "siobench.sh: $N clients, $RATE msg/s, $DURATION phases, $ROUNDS rounds; results in $OUT"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u '+%Y-%m-%d %H:%M UTC')"
: >"$OUT/results"
r=1
while [ $r -le "$ROUNDS" ]; do
	echo "round $r, load average $(cut -d' ' -f1-3 /proc/loadavg)"

	node cmd/siobench/node/server.mjs "$NODE_PORT" >"$OUT/node-$r.log" 2>&1 &
	pid=$!
	wait_port "$NODE_PORT"
	perf_start $pid "node-$r"
	bench -name "node-$r" -url "http://127.0.0.1:$NODE_PORT" -pid $pid 2>>"$OUT/node-$r.log" | tee -a "$OUT/results"
	perf_stop
	kill $pid
	wait $pid 2>/dev/null || true

	data="$OUT/data-$r"
	mkdir -p "$data"
	cat >"$OUT/bench-$r.yaml" <<YAML
data_dir: $data
listen: 127.0.0.1:$HUB_PORT
log:
  level: warn
devices: []
chat:
  max_connections_per_user: $N
  events_per_second: 1000
YAML
	t1=$("$OUT/agent" token -user alice -uid 1 -config "$OUT/bench-$r.yaml" -create-secret 2>/dev/null)
	t2=$("$OUT/agent" token -user bob -uid 2 -config "$OUT/bench-$r.yaml" 2>/dev/null)
	FLOORHUB_CPUPROFILE="$OUT/floorhub-$r.pprof" "$OUT/agent" -config "$OUT/bench-$r.yaml" >"$OUT/floorhub-$r.log" 2>&1 &
	pid=$!
	wait_port "$HUB_PORT"
	perf_start $pid "floorhub-$r"
	bench -name "floorhub-$r" -url "http://127.0.0.1:$HUB_PORT" -pid $pid -sender-token "$t1" -receiver-token "$t2" 2>>"$OUT/floorhub-$r.log" | tee -a "$OUT/results"
	perf_stop
	kill $pid
	wait $pid 2>/dev/null || true
	r=$((r + 1))
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# Ratios floorhub / node, per round.
awk '
/^RESULT/ {
	for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	split(v["name"], nr, "-"); s = nr[1]; r = nr[2]
	cpu[s, r] = v["cpu_us"]; p99[s, r] = v["p99_ms"]; rss[s, r] = v["rss_kb"]; rate[s, r] = v["rate"]
	if (r > rounds) rounds = r
}
END {
	printf "%-5s %12s %12s %6s %10s %10s %6s %12s %12s %6s\n", "round", "node µs/del", "floorhub", "ratio", "node p99", "floorhub", "ratio", "node KB/conn", "floorhub", "ratio"
	for (r = 1; r <= rounds; r++)
		printf "%-5d %12.2f %12.2f %6.2f %10.2f %10.2f %6.2f %12.1f %12.1f %6.2f\n", r,
			cpu["node", r], cpu["floorhub", r], cpu["floorhub", r] / cpu["node", r],
			p99["node", r], p99["floorhub", r], p99["floorhub", r] / p99["node", r],
			rss["node", r], rss["floorhub", r], rss["floorhub", r] / rss["node", r]
}' "$OUT/results"
