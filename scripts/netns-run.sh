#!/usr/bin/env bash
# Runs a command inside a throwaway network namespace with loopback up and,
# optionally, a narrowed ephemeral port range — the host's own settings are
# never touched, and the namespace disappears when the command ends.
#
#   sudo scripts/netns-run.sh [LO-HI] -- COMMAND [ARG...]
#
# `ceiling` inside the command is the release build of this checkout (built
# if missing). `ceiling lab` does this itself for scenarios; this script
# is for running other commands (or a separate server) in a namespace.
set -euo pipefail

range=""
if [ "${1:-}" != "--" ] && [ -n "${1:-}" ]; then
    range="$1"
    shift
fi
if [ "${1:-}" != "--" ] || [ "$#" -lt 2 ]; then
    echo "usage: $0 [LO-HI] -- COMMAND [ARG...]" >&2
    exit 2
fi
shift
if [ "$(id -u)" -ne 0 ]; then
    echo "$0: needs root to create a network namespace (run it with sudo)" >&2
    exit 2
fi
if [ -n "$range" ] && ! [[ "$range" =~ ^[0-9]+-[0-9]+$ ]]; then
    echo "$0: '$range' is not a port range: use LO-HI, e.g. 50000-50010" >&2
    exit 2
fi

root="$(cd "$(dirname "$0")/.." && pwd)"
if [ ! -x "$root/target/release/ceiling" ]; then
    (cd "$root" && cargo build --release --quiet)
fi
export PATH="$root/target/release:$PATH"

exec unshare -n -- bash -c '
    set -e
    ip link set lo up
    if [ -n "$1" ]; then
        echo "${1%-*} ${1#*-}" > /proc/sys/net/ipv4/ip_local_port_range
        echo "netns: ip_local_port_range $(cat /proc/sys/net/ipv4/ip_local_port_range)" >&2
    fi
    shift
    exec "$@"
' netns-run "$range" "$@"
