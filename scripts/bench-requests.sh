#!/usr/bin/env bash
# Request mode against the usual tools, alternated on loopback, median of
# RUNS runs each, and the ceiling/tool ratio; then memory per pooled
# connection. Writes results/bench-requests-<UTC time>.csv (case, tool,
# run, requests_per_s).
#
# Cases:
#   http   closed loop (each connection back to back), 100 connections, the
#          same threads (nproc) for both: `wrk -t T -c 100 -d Ds` against
#          nginx serving a 3-byte static file (a config in a temp dir, one
#          worker process) vs `ceiling run --mode request --protocol http
#          --pool 100 --rate 0 --threads T --duration Ds`. wrk's figure is its
#          "Requests/sec"; ceiling's is summary.json requests.responses /
#          duration_s.
#   redis  PING, 50 connections, one request at a time on each:
#          `redis-benchmark -t ping -c 50 -P 1 -n N` (its PING_MBULK line:
#          the RESP array ceiling sends too; one thread) vs ceiling
#          `--protocol redis --pool 50 --rate 0 --threads 1`, against a
#          redis-server started here (no persistence).
#   memory ceiling's RSS with a pool of 10,000 minus with a pool of 100,
#          each at 100 requests/s against `ceiling serve --mode http`, per
#          pooled connection (user space only: the kernel's socket buffers
#          are not in RSS). Memory freed at start-up and reused by the pool
#          makes this a lower bound.
#
# Compare ratios from one run only: absolute rates vary between machines
# and from day to day.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"

usage() {
    echo "usage: $0 [RUNS (default 5)] [SECONDS per run (default 5)]" >&2
}

runs=${1:-5}
seconds=${2:-5}
require_whole_numbers "$runs" "$seconds"
require_tools wrk nginx redis-server redis-benchmark jq
cd "$(dirname "$0")/.."

echo "building (release) ..." >&2
cargo build --release --bin ceiling >&2
ceiling=$(realpath target/release/ceiling)
threads=$(nproc)
work=$(mktemp -d)
pids=()
cleanup() {
    local pid
    # Only what this script started, by PID.
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
    local i
    for i in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "$0: nothing listens on 127.0.0.1:$1" >&2
    exit 1
}

# nginx: one worker process, a 3-byte file, keep-alive without a cap.
nginx_port=$(free_port)
mkdir -p "$work/www"
echo ok > "$work/www/index.html"
cat > "$work/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/body;
  proxy_temp_path $work/proxy;
  fastcgi_temp_path $work/fastcgi;
  uwsgi_temp_path $work/uwsgi;
  scgi_temp_path $work/scgi;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$nginx_port; root $work/www; }
}
EOF
nginx -p "$work" -c "$work/nginx.conf" 2>/dev/null &
pids+=($!)
wait_port "$nginx_port"

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
    >/dev/null &
pids+=($!)
wait_port "$redis_port"

csv="results/bench-requests-$(date -u +%Y%m%dT%H%M%SZ).csv"
mkdir -p results
echo "case,tool,run,requests_per_s" > "$csv"

# ceiling_rate OUT ARGS...: a request run; prints responses per second.
ceiling_rate() {
    local out=$1
    shift
    "$ceiling" run --mode request --rate 0 --duration "${seconds}s" --ui none --out "$out" "$@" \
        >/dev/null 2>&1
    jq -r '.requests.responses / .duration_s' "$out/summary.json"
}

for run in $(seq "$runs"); do
    echo "run $run of $runs ..." >&2
    wrk_rate=$(wrk -t "$threads" -c 100 -d "${seconds}s" "http://127.0.0.1:$nginx_port/index.html" \
        | awk '/^Requests\/sec:/ { print $2 }')
    echo "http,wrk,$run,$wrk_rate" >> "$csv"
    rate=$(ceiling_rate "$work/http-$run" --protocol http --target "127.0.0.1:$nginx_port" \
        --path /index.html --pool 100 --threads "$threads")
    echo "http,ceiling,$run,$rate" >> "$csv"
    bench_rate=$(redis-benchmark -h 127.0.0.1 -p "$redis_port" -t ping -c 50 -P 1 \
        -n $((seconds * 40000)) -q 2>/dev/null \
        | tr '\r' '\n' | awk -F'[: ]+' '/^PING_MBULK/ { print $2 }' | tail -n 1)
    echo "redis,redis-benchmark,$run,$bench_rate" >> "$csv"
    rate=$(ceiling_rate "$work/redis-$run" --protocol redis --target "127.0.0.1:$redis_port" \
        --pool 50 --threads 1)
    echo "redis,ceiling,$run,$rate" >> "$csv"
done

echo
awk -F, "$AWK_MEDIAN"'
    NR > 1 { n[$1, $2]++; v[$1 "/" $2, n[$1, $2]] = $4 }
    END {
        split("http/wrk http/ceiling redis/redis-benchmark redis/ceiling", keys, " ")
        for (i = 1; i <= 4; i++) {
            split(keys[i], kt, "/")
            m[keys[i]] = median(v, keys[i], n[kt[1], kt[2]])
            printf "%-6s %-16s median %10.0f requests/s\n", kt[1], kt[2], m[keys[i]]
        }
        # Pair by pair (the two runs of a pair are seconds apart, so a
        # load on the machine that comes and goes hits both alike), then
        # the median of those ratios.
        for (r = 1; r <= n["http", "ceiling"]; r++) p["http", r] = v["http/ceiling", r] / v["http/wrk", r]
        for (r = 1; r <= n["redis", "ceiling"]; r++) p["redis", r] = v["redis/ceiling", r] / v["redis/redis-benchmark", r]
        printf "http   ceiling/wrk             %.2f (median of medians), %.2f (median of pair ratios)\n",
            m["http/ceiling"] / m["http/wrk"], median(p, "http", n["http", "ceiling"])
        printf "redis  ceiling/redis-benchmark %.2f (median of medians), %.2f (median of pair ratios)\n",
            m["redis/ceiling"] / m["redis/redis-benchmark"], median(p, "redis", n["redis", "ceiling"])
    }' "$csv"

# Memory per pooled connection: RSS at a pool of 10,000 minus at 100.
"$ceiling" serve --mode http --listen 127.0.0.1:0 > "$work/serve.out" &
pids+=($!)
for i in $(seq 100); do
    grep -qs '^listening on' "$work/serve.out" && break
    sleep 0.05
done
serve_addr=$(awk '/^listening on/ { print $3; exit }' "$work/serve.out")
rss_at_pool() {
    local pid rss
    "$ceiling" run --mode request --protocol http --target "$serve_addr" --pool "$1" --rate 100 \
        --duration 4s --ui none --out "$work/mem-$1" >/dev/null 2>&1 &
    pid=$!
    sleep 3
    rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status")
    wait "$pid"
    echo "$rss"
}
small=$(rss_at_pool 100)
large=$(rss_at_pool 10000)
awk -v s="$small" -v l="$large" 'BEGIN {
    printf "memory: RSS %d KiB at a pool of 100, %d KiB at 10,000: %.0f bytes per pooled connection (user space)\n",
        s, l, (l - s) * 1024 / 9900
}'
echo "results: $csv"
