#!/usr/bin/env bash
# A one-machine Slurm cluster for tests: this host is the controller and its
# only node (partition "debug"), so `srun` and `sbatch` run here, e.g. the
# script `ceiling fleet slurm` renders.
#
#   sudo scripts/slurm-localhost.sh start   # configure, start, wait until srun works
#   sudo scripts/slurm-localhost.sh stop    # stop what start started, remove what it wrote
#
# Installs nothing (Debian: apt-get install slurm-wlm munge). start writes
# /etc/slurm/slurm.conf (refusing to replace one it did not write) and keeps
# its state, logs and PID files in /run/ceiling-slurm; it starts munged
# only when none runs, and a munge key only when there is none. stop kills
# the daemons it started, by the PIDs it wrote down, and removes those files.
set -euo pipefail

conf=/etc/slurm/slurm.conf
state=/run/ceiling-slurm
# The mark on the first line of the slurm.conf this script writes.
mark="# written by ceiling's scripts/slurm-localhost.sh"
# How long start waits for `srun -N1 -n2 hostname` to work, in seconds.
ready_within=90

usage() {
    echo "usage: $0 start|stop" >&2
}

die() {
    echo "$0: $*" >&2
    exit 1
}

# pid_alive FILE NAME: the PID in FILE is a running process called NAME
# (not another one that got the PID since).
pid_alive() {
    [ -s "$1" ] && [ "$(cat "/proc/$(cat "$1")/comm" 2>/dev/null)" = "$2" ]
}

# stop_pid FILE NAME: TERM the process whose PID FILE holds, wait up to
# 10 s for it to end, then KILL it.
stop_pid() {
    local file=$1 name=$2 pid i
    pid_alive "$file" "$name" || return 0
    pid=$(cat "$file")
    kill "$pid" 2>/dev/null || true
    for i in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || { echo "stopped $name (pid $pid)"; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    echo "killed $name (pid $pid): it did not stop within 10 s"
}

start() {
    local tool host cpus mem_mib i
    for tool in munged slurmctld slurmd srun sinfo scontrol; do
        command -v "$tool" >/dev/null || PATH="$PATH:/usr/sbin" command -v "$tool" >/dev/null \
            || die "needs $tool: apt-get install slurm-wlm munge"
    done
    if [ -e "$state" ]; then
        if pid_alive "$state/slurmctld.pid" slurmctld || pid_alive "$state/slurmd.pid" slurmd; then
            die "already started (see $state; run '$0 stop' first)"
        fi
        # Left by a start whose daemons are gone (a killed CI run).
        echo "removing what an earlier start left in $state" >&2
        stop
    fi
    if [ -e "$conf" ] && [ "$(head -n 1 "$conf")" != "$mark" ]; then
        die "$conf exists and is not this script's: a Slurm is configured here already"
    fi
    host=$(hostname)
    # The node as it is: slurmd refuses a node that claims more.
    cpus=$(nproc)
    mem_mib=$(awk '/^MemTotal:/ { print int($2 / 1024 * 0.8) }' /proc/meminfo)
    mkdir -p "$state/ctld" "$state/d" /etc/slurm
    # munged: reused when one runs, else started here with a key.
    if ! pgrep -x munged >/dev/null; then
        if [ ! -e /etc/munge/munge.key ]; then
            mungekey --create --keyfile /etc/munge/munge.key
            chown munge:munge /etc/munge/munge.key
            touch "$state/munge-key-ours"
        fi
        mkdir -p /run/munge
        chown munge:munge /run/munge
        su -s /bin/sh munge -c /usr/sbin/munged
        # munged writes its PID file once it is up.
        for i in $(seq 50); do
            [ -s /run/munge/munged.pid ] && break
            sleep 0.1
        done
        cp /run/munge/munged.pid "$state/munged.pid" || die "munged did not start"
    fi
    cat > "$conf" <<EOF
$mark
ClusterName=ceiling
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/d
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$mem_mib State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
EOF
    slurmctld -c || die "slurmctld did not start: see $state/slurmctld.log"
    slurmd || die "slurmd did not start: see $state/slurmd.log"
    # The node registers as unknown first; jobs wait until it is idle.
    for i in $(seq "$ready_within"); do
        if timeout 10 srun -N1 -n2 hostname >/dev/null 2>&1; then
            echo "slurm is up: node $host ($cpus CPUs), partition debug; config $conf"
            return 0
        fi
        sleep 1
    done
    sinfo -N -l >&2 || true
    tail -n 20 "$state/slurmctld.log" "$state/slurmd.log" >&2 || true
    die "srun -N1 -n2 hostname did not work within ${ready_within}s (the daemons still run: '$0 stop' stops them)"
}

stop() {
    stop_pid "$state/slurmd.pid" slurmd
    stop_pid "$state/slurmctld.pid" slurmctld
    stop_pid "$state/munged.pid" munged
    if [ -e "$state/munge-key-ours" ]; then
        rm -f /etc/munge/munge.key
    fi
    if [ -e "$conf" ] && [ "$(head -n 1 "$conf")" = "$mark" ]; then
        rm -f "$conf"
    fi
    rm -rf "$state"
}

if [ "$(id -u)" -ne 0 ]; then
    echo "$0: needs root: it starts munged, slurmctld and slurmd (run it with sudo)" >&2
    exit 2
fi
case "${1:-}" in
start) start ;;
stop) stop ;;
*)
    usage
    exit 2
    ;;
esac
