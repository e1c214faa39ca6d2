#!/usr/bin/env bash
# The fleet's cost and speed (issue 15), measured on this machine:
#
#   1. merge: the coordinator's CPU while 16 agents on loopback report ten
#      times a second (each holding its share of AGENTS_CONNECTIONS), as a
#      share of one core, sampled over the hold (goal: under 5%);
#   2. climb: a fleet of 4 network-namespace hosts holding CONNECTIONS in
#      total against one target namespace, against one `ceiling run
#      --processes auto` holding the same count from one namespace host:
#      each one's time until the last connection was established
#      (summary.json's totals.last_established_s) and their ratio (goal:
#      fleet / single within 1.2).
#
#   sudo scripts/bench-fleet.sh [CONNECTIONS (default 200000)] [AGENTS_CONNECTIONS (default 16000)]
#
# Root: part 2 builds namespaces (a bridge in a namespace of its own, veth
# pairs, its own addresses 10.77.0.0/24), all removed at the end; the host's
# own settings are never touched. Everything is bounded: every run has a
# --duration.
set -euo pipefail

usage() {
    echo "usage: sudo $0 [CONNECTIONS] [AGENTS_CONNECTIONS]" >&2
}

cd "$(dirname "$0")/.."
# shellcheck source=scripts/common.sh
source scripts/common.sh

connections="${1:-200000}"
agent_connections="${2:-16000}"
require_whole_numbers "$connections" "$agent_connections"
require_tools cargo jq ip unshare
if [ "$(id -u)" -ne 0 ]; then
    echo "$0: needs root to create network namespaces (run it with sudo)" >&2
    exit 2
fi

echo "building (release) ..." >&2
cargo build --release --bin ceiling >&2
ceiling="$PWD/target/release/ceiling"
work=$(mktemp -d)
token="bench-fleet-$$"
hz=$(getconf CLK_TCK)

# cpu_ticks PID: utime + stime of a process, in clock ticks.
cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

echo "== 1. merge: coordinator CPU with 16 loopback agents reporting 10/s"
"$ceiling" serve --listen 127.0.0.1:0 > "$work/serve.log" 2>&1 &
serve=$!
for _ in $(seq 100); do grep -q 'listening on' "$work/serve.log" && break; sleep 0.05; done
target=$(awk '/listening on/ { print $3; exit }' "$work/serve.log")
port=$((20000 + $$ % 20000))
"$ceiling" run --ui none --out "$work/merge" --target "$target" \
    -c "$agent_connections" --rate 0 --hold end --duration 25s \
    --fleet 16 --fleet-listen "127.0.0.1:$port" --fleet-token "$token" \
    > "$work/merge.out" 2> "$work/merge.err" &
coordinator=$!
agents=()
for k in $(seq 0 15); do
    CEILING_FLEET_TOKEN="$token" "$ceiling" agent --join "127.0.0.1:$port" --index "$k" \
        --hosts 16 > "$work/agent$k.out" 2>&1 &
    agents+=($!)
done
# The hold: every share is open within a few seconds; sample 15 s of it.
sleep 7
before=$(cpu_ticks "$coordinator")
start=$(date +%s.%N)
sleep 15
after=$(cpu_ticks "$coordinator")
end=$(date +%s.%N)
wait "$coordinator"
wait "${agents[@]}" || true
kill "$serve"; wait "$serve" || true
merge_pct=$(awk -v a="$after" -v b="$before" -v hz="$hz" -v s="$start" -v e="$end" \
    'BEGIN { printf "%.2f", 100 * (a - b) / hz / (e - s) }')
echo "coordinator CPU while 16 agents held $(jq .totals.established "$work/merge/summary.json") connections: ${merge_pct}% of one core (goal < 5%)"

echo "== 2. climb: 4 namespace hosts vs one run --processes auto, $connections connections"
prefix="bf$$"
names="${prefix}t ${prefix}h0 ${prefix}h1 ${prefix}h2 ${prefix}h3"
cleanup() {
    for ns in $names; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
}
trap cleanup EXIT
# Ten target ports: ~282k (source, target) port pairs for one host, more
# than the single run needs; the fleet's hosts each use the same ten.
climb=$(cat <<EOF
set -eu
ip link set lo up
ip link add br0 type bridge
ip addr add 10.77.0.1/24 dev br0
ip link set br0 up
mk() {
  ip netns add \$1
  ip link add v\$1 type veth peer name eth0 netns \$1
  ip link set v\$1 master br0 up
  ip netns exec \$1 ip addr add \$2/24 dev eth0
  ip netns exec \$1 ip link set eth0 up
  ip netns exec \$1 ip link set lo up
}
mk ${prefix}t 10.77.0.2
for k in 0 1 2 3; do mk ${prefix}h\$k 10.77.0.\$((10 + k)); done
serve() {
  ip netns exec ${prefix}t "$ceiling" serve --listen 10.77.0.2:7070-7079 --processes 16 > "$work/\$1.serve" 2>&1 &
  SERVE=\$!
  for i in \$(seq 200); do [ \$(grep -c 'listening on' "$work/\$1.serve") -ge 10 ] && break; sleep 0.05; done
}
serve single
ip netns exec ${prefix}h0 "$ceiling" run --ui none --out "$work/single" --target 10.77.0.2:7070-7079 \
  -c $connections --rate 0 --hold end --duration 60s --processes auto > "$work/single.out" 2>&1
kill \$SERVE; wait \$SERVE || true
sleep 2
serve fleet
"$ceiling" run --ui none --out "$work/fleet" --target 10.77.0.2:7070-7079 \
  -c $connections --rate 0 --hold end --duration 60s \
  --fleet 4 --fleet-listen 10.77.0.1:7979 --fleet-token $token > "$work/fleet.out" 2>&1 &
C=\$!
AGENTS=
for k in 0 1 2 3; do
  ip netns exec ${prefix}h\$k env CEILING_FLEET_TOKEN=$token "$ceiling" agent \
    --join 10.77.0.1:7979 --index \$k --hosts 4 > "$work/fleet-agent\$k.out" 2>&1 &
  AGENTS="\$AGENTS \$!"
done
wait \$C
wait \$AGENTS || true
kill \$SERVE; wait \$SERVE || true
EOF
)
unshare -n bash -c "$climb" || true
single=$(jq .totals.last_established_s "$work/single/summary.json")
fleet=$(jq .totals.last_established_s "$work/fleet/summary.json")
echo "single run --processes auto: established $(jq .totals.established "$work/single/summary.json") in ${single} s"
echo "fleet of 4 namespace hosts:  established $(jq .totals.established "$work/fleet/summary.json") in ${fleet} s (start skew $(jq .fleet.start_skew_ms "$work/fleet/summary.json") ms)"
echo "ratio fleet / single: $(awk -v f="$fleet" -v s="$single" 'BEGIN { printf "%.2f", f / s }') (goal <= 1.2)"
echo "results: $work"
