#!/usr/bin/env bash
# Size and time of report.html for long runs (a benchmark, not a test):
#
#   1h     a run of 3,600 seconds (timeseries.csv of 3,600 rows)
#   1d     a run of 86,400 seconds (downsampled to 4,000 points a series)
#   1m     a run of 1,000,000 connections (its latency.csv and summary
#          from a real run, scaled; the page grows with rows, not
#          connections)
#
# Each is made from one real short run of `ceiling run` (built-in target,
# loopback): its summary.json, latency.csv and .hgrm files are kept, its
# timeseries.csv is extended to the length with plausible rows (a climb,
# a plateau, a few failures). Then `ceiling report DIR` writes the page
# (median wall time of 5) and, when chromium is installed, headless
# Chromium loads it and the time until the page says every chart drew is
# read from the page (performance.now() at data-drawn, via --dump-dom).
#
# Usage: scripts/bench-report.sh [path/to/ceiling]   (default: a release build)
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-target/release/ceiling}
if [ ! -x "$bin" ]; then
    cargo build --release --quiet
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$bin" run --ui none -c 2000 -r 2000 --hold 1s --out "$work/base" >/dev/null 2>&1

# make_run NAME ROWS CONNECTIONS: a results directory with ROWS seconds.
make_run() {
    local dir="$work/$1" rows=$2 conns=$3
    mkdir -p "$dir"
    cp "$work/base"/{summary.json,latency.csv,connect.hgrm,sources.csv,failures.csv} "$dir/"
    sed -i "s/\"established\": [0-9]*/\"established\": $conns/; s/\"attempted\": [0-9]*/\"attempted\": $conns/" "$dir/summary.json"
    head -1 "$work/base/timeseries.csv" > "$dir/timeseries.csv"
    awk -F, -v OFS=, -v rows="$rows" -v conns="$conns" '
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        NR == 2 { for (i = 1; i <= NF; i++) tmpl[i] = $i; n = NF }
        END {
            srand(1)
            climb = rows / 10
            for (t = 1; t <= rows; t++) {
                for (i = 1; i <= n; i++) f[i] = 0
                est = (t < climb) ? int(conns * t / climb) : conns
                f[col["elapsed_s"]] = t
                f[col["utc"]] = "2026-12-06 00:00:00.000"
                f[col["attempted"]] = est
                f[col["established"]] = est
                f[col["active"]] = est - int(rand() * 10)
                f[col["failed"]] = int(t / 100)
                f[col["failed_connect_timeout"]] = (t % 100 == 0) ? 1 : 0
                rate = (t < climb) ? conns / climb : 0
                f[col["target_rate_per_s"]] = rate
                f[col["attempt_rate_per_s"]] = rate + rand()
                f[col["establish_rate_per_s"]] = rate + rand()
                f[col["connect_p50_us"]] = 40 + int(rand() * 20)
                f[col["connect_p90_us"]] = 400 + int(rand() * 200)
                f[col["connect_p99_us"]] = 4000 + int(rand() * 4000)
                f[col["connect_max_us"]] = 9000 + int(rand() * 90000)
                line = f[1]
                for (i = 2; i <= n; i++) line = line OFS f[i]
                print line
            }
        }' "$work/base/timeseries.csv" >> "$dir/timeseries.csv"
}

make_run 1h 3600 100000
make_run 1d 86400 100000
make_run 1m 600 1000000

chromium=$(command -v chromium || command -v chromium-browser || true)
printf '%-4s %10s %12s %16s %18s\n' run rows "page KB" "write ms (med)" "drawn in Chromium"
for name in 1h 1d 1m; do
    dir="$work/$name"
    times=()
    for _ in 1 2 3 4 5; do
        start=$(date +%s%N)
        "$bin" report "$dir" >/dev/null
        end=$(date +%s%N)
        times+=($(( (end - start) / 1000000 )))
    done
    median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p)
    size=$(( $(stat -c %s "$dir/report.html") / 1024 ))
    drawn="-"
    if [ -n "$chromium" ]; then
        # The page's own clock at the moment every chart had drawn.
        page="$work/$name-timed.html"
        sed 's|body.setAttribute("data-drawn", String(drawn));|body.setAttribute("data-drawn", String(drawn)); body.setAttribute("data-ms", String(Math.round(performance.now())));|' \
            "$dir/report.html" > "$page"
        dom=$(timeout 120 "$chromium" --headless --no-sandbox --disable-gpu \
            --disable-background-networking --no-first-run \
            --user-data-dir="$work/profile" --dump-dom "file://$page" 2>/dev/null || true)
        ms=$(printf '%s' "$dom" | grep -o 'data-ms="[0-9]*"' | head -1 | tr -dc 0-9)
        drawn="${ms:-?} ms"
    fi
    rows=$(( $(wc -l < "$dir/timeseries.csv") - 1 ))
    printf '%-4s %10s %12s %16s %18s\n' "$name" "$rows" "$size" "$median" "$drawn"
done
