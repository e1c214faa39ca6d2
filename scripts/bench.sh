#!/usr/bin/env bash
# Runs ceiling and the raw epoll baseline (benches/raw_baseline.rs)
# alternately on loopback against one `ceiling serve` started here, prints
# median times and the ceiling/baseline ratio per case, and writes
# results/bench-<UTC time>.csv (case, tool, run, seconds, rate_per_s, wall_s,
# established, failed).
#
# Cases:
#   churn-rst  N connections opened as fast as possible, each closed with RST
#   churn-fin  the same with FIN close (TIME_WAIT on the client: the port
#              range caps this at ~half the range per second once the range
#              is in use; runs start after a 2 s pause so both tools start
#              with reusable ports)
#   hold       M connections established and held (ceiling: --hold 1s
#              --close rst; its time is summary.json totals.last_established_s,
#              when the last one was up; the baseline's is its printed
#              establish time, and it holds 1 s too so that whole-process
#              times compare)
#
# `seconds` is the tool's own measure (ceiling: summary.json duration_s for
# churn, last_established_s for hold; baseline: its printed time) and is
# what the ratio uses;
# `wall_s` is the whole process, start-up and results writing included.
# The baseline's hold run also prints its RSS delta per held connection.
# Compare ratios from one run only: absolute rates vary between machines and
# from day to day.
set -euo pipefail

usage() {
    echo "usage: $0 [-n RUNS (3)] [-c CHURN_CONNECTIONS (20000)] [-H HOLD_CONNECTIONS (10000)]" >&2
}

runs=3
churn_n=20000
hold_n=10000
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
for v in "$runs" "$churn_n" "$hold_n"; do
    if ! [[ "$v" =~ ^[1-9][0-9]*$ ]]; then
        echo "$0: '$v' is not a positive whole number" >&2
        usage
        exit 2
    fi
done
for tool in cargo jq; do
    if ! command -v "$tool" >/dev/null; then
        echo "$0: needs $tool" >&2
        exit 2
    fi
done

cd "$(dirname "$0")/.."
repo=$PWD

echo "building (release) ..." >&2
ceiling=$(cargo build --release --bin ceiling --message-format=json \
    | jq -r 'select(.reason == "compiler-artifact" and .target.name == "ceiling"
                    and (.target.kind | index("bin"))) | .executable' | tail -n 1)
baseline=$(cargo bench --bench raw_baseline --no-run --message-format=json \
    | jq -r 'select(.reason == "compiler-artifact" and .target.name == "raw_baseline")
             | .executable' | tail -n 1)
if [ ! -x "$ceiling" ] || [ ! -x "$baseline" ]; then
    echo "$0: could not find the built binaries (ceiling: '$ceiling', baseline: '$baseline')" >&2
    exit 1
fi

tmp=$(mktemp -d)
serve_pid=""
cleanup() {
    if [ -n "$serve_pid" ]; then
        kill "$serve_pid" 2>/dev/null || true
        wait "$serve_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$ceiling" serve --listen 127.0.0.1:0 >"$tmp/serve.log" 2>&1 &
serve_pid=$!
target=""
for _ in $(seq 100); do
    target=$(sed -n 's/^listening on //p' "$tmp/serve.log" | head -n 1)
    [ -n "$target" ] && break
    if ! kill -0 "$serve_pid" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
if [ -z "$target" ]; then
    echo "$0: ceiling serve did not start:" >&2
    cat "$tmp/serve.log" >&2
    exit 1
fi
echo "target: ceiling serve on $target (pid $serve_pid); $runs runs per case" >&2

mkdir -p results
csv="results/bench-$(date -u +%Y%m%dT%H%M%SZ).csv"
echo "case,tool,run,seconds,rate_per_s,wall_s,established,failed" >"$csv"

now() { date +%s.%N; }
warned=0

# run_ceiling CASE RUN CONNECTIONS CLOSE HOLD_S
run_ceiling() {
    local case=$1 run=$2 n=$3 close=$4 hold_s=$5
    local out="$tmp/ceiling-$case-$run" t0 t1 rc=0
    t0=$(now)
    "$ceiling" run --target "$target" --connections "$n" --rate 0 --hold "${hold_s}s" \
        --close "$close" --ui none --out "$out" >"$tmp/ceiling.log" 2>&1 || rc=$?
    t1=$(now)
    if [ ! -f "$out/summary.json" ]; then
        echo "$0: ceiling run failed (exit $rc):" >&2
        cat "$tmp/ceiling.log" >&2
        exit 1
    fi
    local dur est failed
    # Churn: the whole run. Hold: until the last connection was established
    # (the hold and the closing after it are not the establishing).
    if [ "$case" = hold ]; then
        dur=$(jq -r ".totals.last_established_s + $hold_s" "$out/summary.json")
    else
        dur=$(jq -r '.duration_s' "$out/summary.json")
    fi
    est=$(jq -r '.totals.established' "$out/summary.json")
    failed=$(jq -r '.totals.failed' "$out/summary.json")
    if [ "$failed" != 0 ] || [ "$rc" != 0 ]; then
        echo "warning: ceiling $case run $run: exit $rc, $failed failed" >&2
        warned=1
    fi
    record "$case" ceiling "$run" \
        "$(awk -v d="$dur" -v h="$hold_s" 'BEGIN { printf "%.4f", d - h }')" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')" "$est" "$failed"
}

# run_baseline CASE RUN MODE CONNECTIONS CLOSE [HOLD_S]
run_baseline() {
    local case=$1 run=$2 mode=$3 n=$4 close=$5 hold_ms=$((${6:-0} * 1000))
    local t0 t1 rc=0
    t0=$(now)
    "$baseline" "$mode" --target "$target" --connections "$n" --close "$close" \
        --hold-ms "$hold_ms" >"$tmp/baseline.log" 2>&1 || rc=$?
    t1=$(now)
    if [ "$mode" = hold ]; then
        sed -n 's/^rss delta /    baseline rss delta /p' "$tmp/baseline.log" >&2
    fi
    # "churn N in S s = R/s" or "established N in S s = R/s"
    local est secs failed
    est=$(awk '/^(churn|established) [0-9]+ in / { print $2 }' "$tmp/baseline.log")
    secs=$(awk '/^(churn|established) [0-9]+ in / { print $4 }' "$tmp/baseline.log")
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

# record CASE TOOL RUN SECONDS WALL ESTABLISHED FAILED
record() {
    local rate
    rate=$(awk -v n="$6" -v s="$4" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
    echo "$1,$2,$3,$4,$rate,$5,$6,$7" >>"$csv"
    printf '  %-10s %-8s run %d: %8.3f s  %7d/s  (wall %.3f s)\n' "$1" "$2" "$3" "$4" "$rate" "$5" >&2
}

# settle SECONDS: let the server finish closing and ports leave TIME_WAIT.
settle() {
    sleep "$1"
    if ! kill -0 "$serve_pid" 2>/dev/null; then
        echo "$0: ceiling serve died:" >&2
        cat "$tmp/serve.log" >&2
        exit 1
    fi
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
for run in $(seq "$runs"); do
    settle 1
    if [ $((run % 2)) -eq 1 ]; then
        run_ceiling hold "$run" "$hold_n" rst 1; settle 1
        run_baseline hold "$run" hold "$hold_n" rst 1
    else
        run_baseline hold "$run" hold "$hold_n" rst 1; settle 1
        run_ceiling hold "$run" "$hold_n" rst 1
    fi
done

echo
printf '%-10s %12s %12s %12s %12s %9s %9s\n' case "ceiling s" "baseline s" "ceiling /s" \
    "baseline /s" ratio "wall ratio"
# Medians per (case, tool); ratio = ceiling rate / baseline rate
# (= baseline seconds / ceiling seconds); "wall ratio" uses whole-process time.
awk -F, 'NR > 1 {
        k = $1 SUBSEP $2; n[k]++; s[k, n[k]] = $4; r[k, n[k]] = $5; w[k, n[k]] = $6
        if (!($1 in seen)) { seen[$1] = 1; order[++cases] = $1 }
    }
    function median(arr, k, cnt,    i, j, t, v) {
        for (i = 1; i <= cnt; i++) v[i] = arr[k, i] + 0
        for (i = 2; i <= cnt; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) {
            t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
        }
        return cnt % 2 ? v[(cnt + 1) / 2] : (v[cnt / 2] + v[cnt / 2 + 1]) / 2
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
