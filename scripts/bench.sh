#!/usr/bin/env bash
# Runs ceiling and the raw epoll baseline (benches/raw_baseline.rs)
# alternately on loopback against `ceiling serve` started here, prints
# median times and the ceiling/baseline ratio per case, and writes
# results/bench-<UTC time>.csv (case, tool, run, seconds, rate_per_s, wall_s,
# established, failed).
#
# Cases:
#   churn-rst  N connections opened as fast as possible, each closed with RST
#              (one process each, against a one-process `ceiling serve`)
#   churn-fin  the same with FIN close (TIME_WAIT on the client: the port
#              range caps this at ~half the range per second once the range
#              is in use; runs start after a 2 s pause so both tools start
#              with reusable ports)
#   hold       H connections (default 100,000) established, held, then
#              closed with RST (the baseline holds 1 s after its last is up;
#              ceiling holds until its run ends, --hold end --duration
#              H/25,000 + 2 s, so that neither closes any connection while
#              it is still establishing others), against a second `ceiling serve` of
#              P = ceil(H / 16,000) processes on one port. One process cannot
#              hold more than ~19,900 fds, so both tools use many processes,
#              and S = ceil(H / 12,500) source IPs 127.0.0.2.. (each below
#              half of the host's ephemeral range, 32768-60999, where
#              connect()'s port search stays fast). ceiling:
#              `--source 127.0.0.2-.. --processes S` (as many processes
#              as the baseline: on 2 cores more processes get more CPU
#              against the server's); its time is
#              summary.json totals.last_established_s, counted from its run
#              start, before it starts its worker processes. Baseline: S
#              `raw_baseline hold` processes started together, one per
#              source, H/S connections each; its time is the latest
#              last_established_unix_s they print minus the wall-clock time
#              just before the first was started. Both times thus include
#              starting the client processes (ceiling's coordinator's own
#              few-ms start is the one thing not counted).
#
# `seconds` is the tool's own measure (ceiling: summary.json duration_s for
# churn, last_established_s for hold; baseline: its printed time for churn,
# as above for hold) and is what the ratio uses;
# `wall_s` is the whole process (for the baseline's hold: until the last of
# its processes exits), start-up, the hold and results writing included;
# for hold the two tools hold for different times, so its wall ratio is
# not like for like.
# The baseline's hold run also prints its RSS delta per held connection.
# Compare ratios from one run only: absolute rates vary between machines and
# from day to day.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"

usage() {
    echo "usage: $0 [-n RUNS (3)] [-c CHURN_CONNECTIONS (20000)] [-H HOLD_CONNECTIONS (100000)]" >&2
}

runs=3
churn_n=20000
hold_n=100000
while getopts "n:c:H:h" opt; do
    case "$opt" in
        n) runs="$OPTARG" ;;
        c) churn_n="$OPTARG" ;;
        H) hold_n="$OPTARG" ;;
        h) usage; exit 0 ;;
        *) usage; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
if [ "$#" -ne 0 ]; then
    usage
    exit 2
fi
require_whole_numbers "$runs" "$churn_n" "$hold_n"
require_tools cargo jq
# $EPOCHREALTIME and awk's printf: a dot as the decimal separator.
export LC_ALL=C

# The hold case: server processes (16,000 connections each, under the
# 20,000-fd limit with room for the kernel's uneven SO_REUSEPORT spread) and
# source IPs (12,500 connections each).
hold_procs=$(((hold_n + 15999) / 16000))
hold_sources=$(((hold_n + 12499) / 12500))
if [ "$hold_sources" -gt 254 ]; then
    echo "$0: -H $hold_n needs $hold_sources source IPs; 127.0.0.2-127.0.0.255 has 254" \
        "(at most -H 3175000)" >&2
    exit 2
fi
hold_source_range="127.0.0.2-127.0.0.$((1 + hold_sources))"
# ceiling's hold run lasts this long: time to establish at 25k/s, plus 2 s.
hold_run_s=$((hold_n / 25000 + 2))

cd "$(dirname "$0")/.."
repo=$PWD

build_binaries

tmp=$(mktemp -d)
serve_pid=""
hold_serve_pid=""
# Baseline hold processes while they run (emptied once they are reaped, so
# that no PID is killed after it could have been reused).
client_pids=()
cleanup() {
    local pid
    for pid in "${client_pids[@]}" "$serve_pid" "$hold_serve_pid"; do
        [ -n "$pid" ] || continue
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_serve LOG [ARG...]: starts `ceiling serve ARG...`, waits for its
# `listening on` line; sets started_pid and started_target.
start_serve() {
    local log=$1
    shift
    "$ceiling" serve "$@" >"$log" 2>&1 &
    started_pid=$!
    started_target=""
    for _ in $(seq 100); do
        started_target=$(sed -n 's/^listening on //p' "$log" | head -n 1)
        [ -n "$started_target" ] && break
        if ! kill -0 "$started_pid" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    if [ -z "$started_target" ]; then
        echo "$0: ceiling serve $* did not start:" >&2
        cat "$log" >&2
        exit 1
    fi
}

start_serve "$tmp/serve.log" --listen 127.0.0.1:0
serve_pid=$started_pid
target=$started_target
echo "target: ceiling serve on $target (pid $serve_pid); $runs runs per case" >&2

mkdir -p results
csv="results/bench-$(date -u +%Y%m%dT%H%M%SZ).csv"
echo "case,tool,run,seconds,rate_per_s,wall_s,established,failed" >"$csv"

now() { echo "$EPOCHREALTIME"; }
warned=0

# run_ceiling CASE RUN CONNECTIONS CLOSE HOLD_S
# The hold case goes to the multi-process server from many sources.
run_ceiling() {
    local case=$1 run=$2 n=$3 close=$4 hold_s=$5
    local out="$tmp/ceiling-$case-$run" t0 t1 rc=0 to=$target extra=()
    if [ "$case" = hold ]; then
        to=$hold_target
        # Held until the run ends, then closed together, as the baseline
        # does: `--hold 1s` would start closing the first connections
        # while the last are still being established, and the closes
        # would slow the establishing that is being timed.
        # As many worker processes as the baseline has (one per source):
        # on 2 cores the side with more processes gets more of the CPU
        # against the server's, whatever it does with it (--processes auto
        # would choose 6 for 100k, by the fd limit alone).
        extra=(--source "$hold_source_range" --processes "$hold_sources" --hold end
            --duration "${hold_run_s}s")
    else
        extra=(--hold "${hold_s}s")
    fi
    t0=$(now)
    "$ceiling" run --target "$to" "${extra[@]}" --connections "$n" --rate 0 \
        --close "$close" --ui none --out "$out" \
        >"$tmp/ceiling.log" 2>&1 || rc=$?
    t1=$(now)
    if [ ! -f "$out/summary.json" ]; then
        echo "$0: ceiling run failed (exit $rc):" >&2
        cat "$tmp/ceiling.log" >&2
        exit 1
    fi
    local secs est failed
    # Churn: the whole run. Hold: until the last connection was established
    # (the hold and the closing after it are not the establishing).
    if [ "$case" = hold ]; then
        secs=$(jq -r '.totals.last_established_s' "$out/summary.json")
    else
        secs=$(jq -r '.duration_s' "$out/summary.json")
    fi
    est=$(jq -r '.totals.established' "$out/summary.json")
    failed=$(jq -r '.totals | .connect_failed + .closed_by_server + .lost_with_worker' "$out/summary.json")
    if [ "$failed" != 0 ] || [ "$rc" != 0 ]; then
        echo "warning: ceiling $case run $run: exit $rc, $failed failed" >&2
        warned=1
    fi
    record "$case" ceiling "$run" "$(awk -v d="$secs" 'BEGIN { printf "%.4f", d }')" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')" "$est" "$failed"
}

# run_baseline CASE RUN MODE CONNECTIONS CLOSE: one raw_baseline process
# (the churn cases).
run_baseline() {
    local case=$1 run=$2 mode=$3 n=$4 close=$5
    local t0 t1 rc=0
    t0=$(now)
    "$baseline" "$mode" --target "$target" --connections "$n" --close "$close" \
        >"$tmp/baseline.log" 2>&1 || rc=$?
    t1=$(now)
    # "churn N in S s = R/s"
    local est secs failed
    est=$(awk '/^churn [0-9]+ in / { print $2 }' "$tmp/baseline.log")
    secs=$(awk '/^churn [0-9]+ in / { print $4 }' "$tmp/baseline.log")
    if [ "$rc" != 0 ] || [ -z "$secs" ]; then
        echo "$0: raw_baseline failed (exit $rc):" >&2
        cat "$tmp/baseline.log" >&2
        exit 1
    fi
    failed=$((n - est))
    if ! grep -q '^failures: none' "$tmp/baseline.log"; then
        echo "warning: baseline $case run $run: $(grep '^failures:' "$tmp/baseline.log")" >&2
        warned=1
    fi
    record "$case" baseline "$run" "$secs" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')" "$est" "$failed"
}

# run_baseline_hold RUN: one `raw_baseline hold` per source IP, all started
# together, holding 1 s; the time is the latest of their
# last_established_unix_s minus the wall-clock time before the first start.
run_baseline_hold() {
    local run=$1 i n t0 t1 rc
    local per=$((hold_n / hold_sources)) spare=$((hold_n % hold_sources))
    t0=$EPOCHREALTIME
    for ((i = 0; i < hold_sources; i++)); do
        n=$((per + (i < spare ? 1 : 0)))
        "$baseline" hold --target "$hold_target" --source "127.0.0.$((2 + i))" \
            --connections "$n" --close rst --hold-ms 1000 >"$tmp/baseline-hold-$i.log" 2>&1 &
        client_pids+=("$!")
    done
    local bad=()
    for i in "${!client_pids[@]}"; do
        rc=0
        wait "${client_pids[$i]}" || rc=$?
        if [ "$rc" != 0 ] || ! grep -q '^last_established_unix_s [0-9]' "$tmp/baseline-hold-$i.log"; then
            bad+=("$i:$rc")
        fi
    done
    t1=$(now)
    client_pids=()
    if [ "${#bad[@]}" -ne 0 ]; then
        for i in "${bad[@]}"; do
            echo "$0: raw_baseline hold from 127.0.0.$((2 + ${i%%:*})) failed (exit ${i#*:}):" >&2
            cat "$tmp/baseline-hold-${i%%:*}.log" >&2
        done
        exit 1
    fi
    local est=0 last=0 e l
    for ((i = 0; i < hold_sources; i++)); do
        local log="$tmp/baseline-hold-$i.log"
        e=$(awk '/^established [0-9]+ in / { print $2 }' "$log")
        l=$(awk '/^last_established_unix_s / { print $2 }' "$log")
        est=$((est + e))
        last=$(awk -v a="$last" -v b="$l" 'BEGIN { print (b > a ? b : a) }')
        if ! grep -q '^failures: none' "$log"; then
            echo "warning: baseline hold run $run, source 127.0.0.$((2 + i)):" \
                "$(grep '^failures:' "$log")" >&2
            warned=1
        fi
    done
    # "rss delta D KiB over N connections = X B/connection", summed.
    cat "$tmp"/baseline-hold-*.log | awk '/^rss delta [0-9]+ KiB over / { d += $3; n += $6 }
        END { if (n > 0) printf "    baseline rss delta %d KiB over %d connections = %.1f B/connection\n",
            d, n, d * 1024 / n }' >&2
    record hold baseline "$run" "$(awk -v a="$t0" -v b="$last" 'BEGIN { printf "%.4f", b - a }')" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')" "$est" "$((hold_n - est))"
}

# record CASE TOOL RUN SECONDS WALL ESTABLISHED FAILED
record() {
    local rate
    rate=$(awk -v n="$6" -v s="$4" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
    echo "$1,$2,$3,$4,$rate,$5,$6,$7" >>"$csv"
    printf '  %-10s %-8s run %d: %8.3f s  %7d/s  (wall %.3f s)\n' "$1" "$2" "$3" "$4" "$rate" "$5" >&2
}

# settle SECONDS: let the servers finish closing and ports leave TIME_WAIT.
settle() {
    sleep "$1"
    local pid
    for pid in "$serve_pid" "$hold_serve_pid"; do
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            echo "$0: ceiling serve (pid $pid) died:" >&2
            cat "$tmp/serve.log" "$tmp/hold-serve.log" 2>/dev/null >&2
            exit 1
        fi
    done
}

# Alternate: odd runs ceiling first, even runs baseline first.
for run in $(seq "$runs"); do
    settle 0.5
    if [ $((run % 2)) -eq 1 ]; then
        run_ceiling churn-rst "$run" "$churn_n" rst 0; settle 0.5
        run_baseline churn-rst "$run" churn "$churn_n" rst
    else
        run_baseline churn-rst "$run" churn "$churn_n" rst; settle 0.5
        run_ceiling churn-rst "$run" "$churn_n" rst 0
    fi
done
for run in $(seq "$runs"); do
    settle 2
    if [ $((run % 2)) -eq 1 ]; then
        run_ceiling churn-fin "$run" "$churn_n" fin 0; settle 2
        run_baseline churn-fin "$run" churn "$churn_n" fin
    else
        run_baseline churn-fin "$run" churn "$churn_n" fin; settle 2
        run_ceiling churn-fin "$run" "$churn_n" fin 0
    fi
done

start_serve "$tmp/hold-serve.log" --listen 127.0.0.1:0 --processes "$hold_procs"
hold_serve_pid=$started_pid
hold_target=$started_target
echo "hold: $hold_n connections from $hold_source_range against ceiling serve --processes" \
    "$hold_procs on $hold_target (pid $hold_serve_pid)" >&2
for run in $(seq "$runs"); do
    settle 1
    if [ $((run % 2)) -eq 1 ]; then
        run_ceiling hold "$run" "$hold_n" rst 1; settle 1
        run_baseline_hold "$run"
    else
        run_baseline_hold "$run"; settle 1
        run_ceiling hold "$run" "$hold_n" rst 1
    fi
done
kill "$hold_serve_pid" 2>/dev/null || true
wait "$hold_serve_pid" 2>/dev/null || true
hold_serve_pid=""

echo
printf '%-10s %12s %12s %12s %12s %9s %9s\n' case "ceiling s" "baseline s" "ceiling /s" \
    "baseline /s" ratio "wall ratio"
# Medians per (case, tool); ratio = ceiling rate / baseline rate
# (= baseline seconds / ceiling seconds); "wall ratio" uses whole-process time.
awk -F, "$AWK_MEDIAN"'
    NR > 1 {
        k = $1 SUBSEP $2; n[k]++; s[k, n[k]] = $4; r[k, n[k]] = $5; w[k, n[k]] = $6
        if (!($1 in seen)) { seen[$1] = 1; order[++cases] = $1 }
    }
    END {
        for (c = 1; c <= cases; c++) {
            cs = order[c]; kc = cs SUBSEP "ceiling"; kb = cs SUBSEP "baseline"
            sc = median(s, kc, n[kc]); sb = median(s, kb, n[kb])
            rc = median(r, kc, n[kc]); rb = median(r, kb, n[kb])
            wc = median(w, kc, n[kc]); wb = median(w, kb, n[kb])
            printf "%-10s %12.3f %12.3f %12.0f %12.0f %9.2f %9.2f\n", cs, sc, sb, rc, rb,
                (rb > 0 ? rc / rb : 0), (wc > 0 ? wb / wc : 0)
        }
    }' "$csv"
echo
echo "runs: $csv ($repo)"
if [ "$warned" -ne 0 ]; then
    echo "note: some runs had failures (see the warnings above); their rates count established connections only"
fi
