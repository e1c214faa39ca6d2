#!/usr/bin/env bash
# Establishes and holds N connections (default 1,000,000) twice per run, in
# one run of this script, and compares the two:
#
#   raw      the raw pair (benches/raw_baseline.rs), inside a fresh network
#            namespace (`unshare -n`: loopback up, ip_local_port_range
#            "10000 65535" and somaxconn 4096 written there only, never the
#            host's; made from an outer namespace of its own whose
#            tcp_child_ehash_entries gives it a TCP hash table of 2,097,152
#            buckets, as million.toml's tcp_ehash_entries does for ceiling): M = ceil(N / 16,900) `raw_baseline serve` processes on
#            127.0.0.1:7070 (SO_REUSEPORT) and S = ceil(N / 12,500)
#            `raw_baseline hold` processes, one per source IP 127.0.0.2..,
#            N/S connections each, held 5 s, closed with RST. Its time: the
#            latest last_established_unix_s they print minus the wall-clock
#            time just before the first client was started (the servers are
#            already listening then).
#   ceiling  `ceiling lab scenarios/million.toml --connections N --source
#            127.0.0.2-127.0.0.(1+S) --duration D --close rst --ui none`
#            (the lab makes its own namespace with the same range and starts
#            its server processes before the run); its time: summary.json
#            totals.last_established_s, from its run start, before it starts
#            its worker processes.
#
# Both times thus count starting the client processes and not the servers.
# While each climbs, the CPU time (utime + stime) of every process on the
# machine is read from /proc when the first ~1,000 connections are up and
# again when the file table has grown by 99% of 2 x N (nearly all up): the
# client side (raw `hold` processes; ceiling's coordinator and workers),
# the server side (raw `serve`; ceiling serve's processes), and the rest
# of the machine, so a gap in time can be told from a gap in work.
# Both close with RST (no TIME_WAIT left behind for the next run). Runs
# alternate (odd runs raw first, even runs ceiling first); between
# measurements the script waits until MemAvailable is back to 97% of what
# it was at the start, or 20 s. It prints each run, the medians and the
# ratio (ceiling rate / raw rate), and writes
# results/bench-million-<UTC time>.csv (tool, run, seconds, rate_per_s,
# wall_s, established, failed, and the CPU seconds of the climb:
# cpu_window_s, client_cpu_s, server_cpu_s, other_cpu_s; empty if the file
# table never grew that far).
#
# Needs root (network namespaces) and host room: MemAvailable of at least
# N x 10 KiB x 1.2 and 2.2 x N free entries in fs.file-max; it checks both
# first and exits 2 if either is short. Every process it starts is killed
# by PID when it exits.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "$0")/common.sh"
# $EPOCHREALTIME and awk's printf: a dot as the decimal separator.
export LC_ALL=C

usage() {
    echo "usage: sudo $0 [-N CONNECTIONS (1000000)] [-n RUNS (1)]" \
        "[-d CEILING_DURATION_S (max(20, 10 + N / 12500))]" >&2
}

runs=1
n=1000000
duration=""
while getopts "N:n:d:h" opt; do
    case "$opt" in
        N) n="$OPTARG" ;;
        n) runs="$OPTARG" ;;
        d) duration="$OPTARG" ;;
        h) usage; exit 0 ;;
        *) usage; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
if [ "$#" -ne 0 ]; then
    usage
    exit 2
fi
require_whole_numbers "$runs" "$n" ${duration:+"$duration"}
if [ "$(id -u)" -ne 0 ]; then
    echo "$0: needs root: the raw pair runs in a network namespace of its own (unshare -n)" \
        "and ceiling lab makes one too; run it with sudo" >&2
    exit 2
fi
require_tools cargo jq unshare ip sysctl

if [ ! -e /proc/sys/net/ipv4/tcp_child_ehash_entries ]; then
    echo "$0: needs Linux 6.1 or later (net.ipv4.tcp_child_ehash_entries):" \
        "scenarios/million.toml gives its namespace a TCP hash table of its own" >&2
    exit 2
fi
# As scenarios/million.toml's tcp_ehash_entries ("2m", rounded up).
ehash_entries=2097152

servers=$(((n + 16899) / 16900))
sources=$(((n + 12499) / 12500))
if [ "$sources" -gt 254 ]; then
    echo "$0: -N $n needs $sources source IPs; 127.0.0.2-127.0.0.255 has 254 (at most -N 3175000)" >&2
    exit 2
fi
source_range="127.0.0.2-127.0.0.$((1 + sources))"
if [ -z "$duration" ]; then
    # Long enough to establish and then hold: scenarios/million.toml holds
    # a million until 80 s, when ~50-60 s establish them on a 2-core box.
    duration=$((10 + sources))
    [ "$duration" -ge 20 ] || duration=20
fi

# Host room, for one side at a time (they never run together).
mem_kib() { awk '/^MemAvailable:/ { print $2 }' /proc/meminfo; }
mem_avail=$(mem_kib)
mem_need=$((n * 12)) # 10 KiB x 1.2 per connection (both ends, kernel side)
read -r files_used _ files_max </proc/sys/fs/file-nr
files_free=$((files_max - files_used))
files_need=$((n * 22 / 10))
short=()
if [ "$mem_avail" -lt "$mem_need" ]; then
    have="MemAvailable is $((mem_avail / 1024)) MiB"
    short+=("memory: $have, $n connections need $((mem_need / 1024)) MiB (10 KiB each, x 1.2)")
fi
if [ "$files_free" -lt "$files_need" ]; then
    have="fs.file-max has $files_free free ($files_used of $files_max used)"
    short+=("files: $have, $n connections need $files_need (2.2 each)")
fi
if [ "${#short[@]}" -ne 0 ]; then
    echo "$0: not enough room on this host for $n connections:" >&2
    printf '  %s\n' "${short[@]}" >&2
    echo "  use a smaller -N" >&2
    exit 2
fi

cd "$(dirname "$0")/.."
repo=$PWD

build_binaries

tmp=$(mktemp -d)
raw_pid=""
lab_pid=""
cpu_pid=""
# stop_cpu: ends the climb's CPU sampler if it is still waiting.
stop_cpu() {
    if [ -n "$cpu_pid" ]; then
        kill "$cpu_pid" 2>/dev/null || true
        wait "$cpu_pid" 2>/dev/null || true
        cpu_pid=""
    fi
}
cleanup() {
    local pid f
    # The raw pair's processes (their PIDs are written as they start):
    # killed only while that PID is still a raw_baseline, never a reused one.
    for f in "$tmp"/raw-*/pids; do
        [ -f "$f" ] || continue
        while read -r pid; do
            if [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$baseline" ]; then
                kill "$pid" 2>/dev/null || true
            fi
        done <"$f"
    done
    stop_cpu
    for pid in "$raw_pid" "$lab_pid"; do
        [ -n "$pid" ] || continue
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The raw pair, run as `unshare -n -- bash raw-pair.sh BASELINE N SERVERS
# SOURCES DIR`: everything in it lives and dies in that namespace.
cat >"$tmp/raw-pair.sh" <<'EOF'
set -euo pipefail
export LC_ALL=C
baseline=$1 n=$2 servers=$3 sources=$4 dir=$5
ip link set lo up
# This namespace's own settings (a fresh namespace starts from defaults).
sysctl -q -w net.ipv4.ip_local_port_range="10000 65535"
sysctl -q -w net.core.somaxconn=4096
pids=()
stop() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT TERM
for ((i = 1; i <= servers; i++)); do
    # --max-s: gone after 120 s whatever happens (the clients give up at 60).
    "$baseline" serve --listen 127.0.0.1:7070 --max-s 120 >"$dir/serve-$i.log" 2>&1 &
    pids+=("$!")
    echo "$!" >>"$dir/pids"
done
ready=0
for _ in $(seq 100); do
    ready=$(cat "$dir"/serve-*.log | grep -c '^listening on ' || true)
    [ "$ready" -eq "$servers" ] && break
    sleep 0.1
done
if [ "$ready" -ne "$servers" ]; then
    echo "raw pair: $ready of $servers servers listening after 10 s:" >&2
    grep -hv '^listening on ' "$dir"/serve-*.log | head -n 5 >&2
    exit 1
fi
per=$((n / sources)) spare=$((n % sources))
clients=()
t0=$EPOCHREALTIME
for ((i = 0; i < sources; i++)); do
    "$baseline" hold --target 127.0.0.1:7070 --source "127.0.0.$((2 + i))" \
        --connections $((per + (i < spare ? 1 : 0))) --close rst --hold-ms 5000 \
        >"$dir/hold-$i.log" 2>&1 &
    clients+=("$!")
    pids+=("$!")
    echo "$!" >>"$dir/pids"
done
echo "$t0" >"$dir/t0"
rc=0
for i in "${!clients[@]}"; do
    wait "${clients[$i]}" || {
        echo "raw pair: hold client from 127.0.0.$((2 + i)) exited $?" >&2
        rc=1
    }
done
exit "$rc"
EOF

mkdir -p results
csv="results/bench-million-$(date -u +%Y%m%dT%H%M%SZ).csv"
echo "tool,run,seconds,rate_per_s,wall_s,established,failed,cpu_window_s,client_cpu_s,server_cpu_s,other_cpu_s" >"$csv"
warned=0

# record TOOL RUN SECONDS WALL ESTABLISHED FAILED CPU_FILE
record() {
    local rate window="" client="" server="" other=""
    rate=$(awk -v n="$5" -v s="$3" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
    if [ -s "$7" ]; then
        read -r window client server other <"$7"
    fi
    echo "$1,$2,$3,$rate,$4,$5,$6,$window,$client,$server,$other" >>"$csv"
    printf '  %-8s run %d: %8.3f s  %8d/s  %8d established  %d failed  (wall %.1f s)\n' \
        "$1" "$2" "$3" "$rate" "$5" "$6" "$4" >&2
    if [ -n "$window" ]; then
        printf '  %-8s        CPU in the climb: client %.1f s, server %.1f s, rest of the machine %.1f s (over %.1f s)\n' \
            "" "$client" "$server" "$other" "$window" >&2
    else
        printf '  %-8s        CPU in the climb: not measured: %s\n' "" \
            "$(cat "$7.skip" 2>/dev/null || echo "the sampler ended early")" >&2
    fi
}

# settle: until MemAvailable is back to 97% of the starting figure, or 20 s
# (freed socket slabs are not always given back at once).
settle() {
    for _ in $(seq 40); do
        [ "$(mem_kib)" -ge $((mem_avail * 97 / 100)) ] && return 0
        sleep 0.5
    done
    echo "  (MemAvailable $(($(mem_kib) / 1024)) MiB after 20 s, was $((mem_avail / 1024)) MiB)" >&2
}

# cpu_snapshot: "PID TICKS SIDE" per process: utime + stime in clock ticks;
# SIDE is client or server for the raw pair's and ceiling's processes (from
# their arguments), other for the rest of the machine. Builtins only: no
# process started per line.
cpu_snapshot() {
    local stat line side
    local -a f args
    for stat in /proc/[0-9]*/stat; do
        read -r line 2>/dev/null <"$stat" || continue
        read -r -a f <<<"${line##*) }"
        mapfile -d '' -t args 2>/dev/null <"${stat%stat}cmdline" || continue
        case "${args[0]:-}:${args[1]:-}" in
            "$baseline:serve" | "$ceiling:serve") side=server ;;
            "$baseline:hold" | "$ceiling:lab" | "$ceiling:worker") side=client ;;
            *) side=other ;;
        esac
        # Fields 14 and 15 of the stat line; f[0] is field 3.
        echo "${stat//[^0-9]/} $((f[11] + f[12])) $side"
    done
}

# files_reach COUNT PID SKIP: waits until the file table holds COUNT
# files; fails, saying so in SKIP, if PID ends first.
files_reach() {
    local used
    while read -r used _ _ </proc/sys/fs/file-nr; [ "$used" -lt "$1" ]; do
        if ! kill -0 "$2" 2>/dev/null; then
            echo "the file table reached $used, short of $1" >"$3"
            return 1
        fi
        sleep 0.01
    done
}

# climb_cpu OUT PID: waits for the climb to start (the file table ~2,000
# above where it was), takes a snapshot, waits for it to end (99% of 2 x N
# above: a server may be a little behind the clients in accepting, and a
# socket counts as a file only once accepted), takes another, and writes
# "window client server other" in seconds to OUT. If PID ends first, it
# writes why it gave up to OUT.skip instead.
climb_cpu() {
    local out=$1 pid=$2 base t0 t1
    read -r base _ _ </proc/sys/fs/file-nr
    files_reach $((base + 2000)) "$pid" "$out.skip" || return 0
    t0=$EPOCHREALTIME
    cpu_snapshot >"$out.0"
    files_reach $((base + 2 * n * 99 / 100)) "$pid" "$out.skip" || return 0
    t1=$EPOCHREALTIME
    cpu_snapshot >"$out.1"
    awk -v w="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" \
        -v hz="$(getconf CLK_TCK)" '
        NR == FNR { before[$1] = $2; next }
        { cpu[$3] += $2 - before[$1] }
        END { printf "%.1f %.2f %.2f %.2f\n", w, cpu["client"] / hz, cpu["server"] / hz, cpu["other"] / hz }
    ' "$out.0" "$out.1" >"$out"
}

run_raw() {
    local run=$1 dir="$tmp/raw-$run" rc=0 t0 t1
    mkdir -p "$dir"
    t0=$EPOCHREALTIME
    # Two namespaces deep, as ceiling lab makes its own: the outer one's
    # tcp_child_ehash_entries sizes the inner one's TCP hash table.
    unshare -n -- bash -c 'sysctl -q -w net.ipv4.tcp_child_ehash_entries="$1" && shift &&
        exec unshare -n -- bash "$@"' ehash "$ehash_entries" \
        "$tmp/raw-pair.sh" "$baseline" "$n" "$servers" "$sources" "$dir" \
        >"$dir/pair.log" 2>&1 &
    raw_pid=$!
    climb_cpu "$dir/cpu" "$raw_pid" &
    cpu_pid=$!
    wait "$raw_pid" || rc=$?
    raw_pid=""
    stop_cpu
    t1=$EPOCHREALTIME
    if [ "$rc" != 0 ] || [ ! -f "$dir/t0" ]; then
        echo "$0: the raw pair failed (exit $rc):" >&2
        cat "$dir/pair.log" >&2
        for f in "$dir"/hold-*.log; do
            if [ -f "$f" ] && ! grep -q '^last_established_unix_s [0-9]' "$f"; then
                cat "$f" >&2
            fi
        done
        exit 1
    fi
    local start est=0 last=0 e l i log
    start=$(cat "$dir/t0")
    for ((i = 0; i < sources; i++)); do
        log="$dir/hold-$i.log"
        e=$(awk '/^established [0-9]+ in / { print $2 }' "$log")
        l=$(awk '/^last_established_unix_s [0-9]/ { print $2 }' "$log")
        est=$((est + ${e:-0}))
        if [ -n "$l" ]; then
            last=$(awk -v a="$last" -v b="$l" 'BEGIN { print (b > a ? b : a) }')
        fi
        if ! grep -q '^failures: none' "$log"; then
            echo "warning: raw run $run, source 127.0.0.$((2 + i)):" \
                "$(grep '^failures:' "$log")" >&2
            warned=1
        fi
    done
    if grep -qh 'EMFILE\|ENFILE\|ENOBUFS\|ENOMEM' "$dir"/serve-*.log; then
        echo "warning: raw run $run: a server ran out of fds or memory:" \
            "$(grep -h 'accept4' "$dir"/serve-*.log | head -n 1)" >&2
        warned=1
    fi
    record raw "$run" "$(awk -v a="$start" -v b="$last" 'BEGIN { printf "%.4f", b - a }')" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')" "$est" "$((n - est))" \
        "$dir/cpu"
}

run_ceiling() {
    local run=$1 out="$tmp/ceiling-$run" rc=0 t0 t1
    t0=$EPOCHREALTIME
    "$ceiling" lab "$repo/scenarios/million.toml" --connections "$n" --source "$source_range" \
        --duration "${duration}s" --close rst --ui none --out "$out" \
        >"$tmp/ceiling-$run.log" 2>&1 &
    lab_pid=$!
    climb_cpu "$out.cpu" "$lab_pid" &
    cpu_pid=$!
    wait "$lab_pid" || rc=$?
    lab_pid=""
    stop_cpu
    t1=$EPOCHREALTIME
    if [ ! -f "$out/summary.json" ]; then
        echo "$0: ceiling lab failed (exit $rc):" >&2
        cat "$tmp/ceiling-$run.log" >&2
        exit 1
    fi
    local secs est failed
    secs=$(jq -r '.totals.last_established_s' "$out/summary.json")
    est=$(jq -r '.totals.established' "$out/summary.json")
    failed=$(jq -r '.totals | .connect_failed + .closed_by_server + .lost_with_worker' "$out/summary.json")
    if [ "$failed" != 0 ] || [ "$rc" != 0 ] || [ "$est" != "$n" ]; then
        echo "warning: ceiling run $run: exit $rc, $est established, $failed failed" >&2
        warned=1
    fi
    record ceiling "$run" "$(awk -v d="$secs" 'BEGIN { printf "%.4f", d }')" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')" "$est" "$failed" "$out.cpu"
}

echo "$n connections: raw pair $servers servers + $sources clients ($source_range)," \
    "ceiling lab --duration ${duration}s; $runs run(s)" >&2
first=1
for run in $(seq "$runs"); do
    if [ $((run % 2)) -eq 1 ]; then
        order=(raw ceiling)
    else
        order=(ceiling raw)
    fi
    for tool in "${order[@]}"; do
        [ "$first" -eq 1 ] || settle
        first=0
        "run_$tool" "$run"
    done
done

echo
printf '%-10s %12s %12s %12s %12s %9s\n' connections "ceiling s" "raw s" "ceiling /s" "raw /s" ratio
# Medians per tool; ratio = ceiling rate / raw rate.
awk -F, -v n="$n" "$AWK_MEDIAN"'
    NR > 1 { c[$1]++; s[$1, c[$1]] = $3; r[$1, c[$1]] = $4 }
    END {
        sc = median(s, "ceiling", c["ceiling"]); sr = median(s, "raw", c["raw"])
        rc = median(r, "ceiling", c["ceiling"]); rr = median(r, "raw", c["raw"])
        printf "%-10d %12.3f %12.3f %12.0f %12.0f %9.2f\n", n, sc, sr, rc, rr, (rr > 0 ? rc / rr : 0)
    }' "$csv"
echo
echo "runs: $csv ($repo)"
if [ "$warned" -ne 0 ]; then
    echo "note: some runs had failures (see the warnings above); their rates count established connections only"
fi
