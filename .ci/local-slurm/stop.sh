#!/usr/bin/env bash
# Vendored from the workplace tool library (shared/tools/local-slurm), so that a clean clone can start it.
# stop.sh - stop the daemons that start.sh started.
# Only PIDs recorded in $STATE_DIR/<name>.pid are signalled, and only if that
# PID is still a live process with the expected name (/proc/PID/comm), so a
# recycled PID or a daemon started by someone else is never touched.
# Jobs still running on the cluster are cancelled first (scancel), so no
# slurmstepd/job processes outlive slurmd. Packages, config and the accounting
# DB are kept, so the next start is fast.
set -uo pipefail

STATE_DIR=${LOCAL_SLURM_STATE_DIR:-/run/local-slurm}
log() { echo "[local-slurm stop] $*"; }

[ -d "$STATE_DIR" ] || { log "no state dir $STATE_DIR: nothing to stop"; exit 0; }

ours() {  # ours NAME -> prints PID if our pid file points at a live NAME process
    local f="$STATE_DIR/$1.pid" pid
    [ -s "$f" ] || return 1
    pid=$(cat "$f")
    [[ "$pid" =~ ^[0-9]+$ ]] && [ -d "/proc/$pid" ] \
        && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] && echo "$pid"
}

# Cancel remaining jobs while our slurmctld is still up.
if ours slurmctld > /dev/null && ours slurmd > /dev/null; then
    jobs=$(squeue -h -o %A 2>/dev/null | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then
        log "cancelling jobs: $jobs"
        scancel $jobs 2>/dev/null
        for _ in $(seq 50); do
            [ -z "$(squeue -h -t PD,R,CG,S -o %A 2>/dev/null)" ] && break
            sleep 0.2
        done
    fi
fi

rc=0
for name in slurmd slurmctld slurmdbd mariadbd munged; do
    f="$STATE_DIR/$name.pid"
    [ -e "$f" ] || continue
    if pid=$(ours "$name"); then
        kill -TERM "$pid"
        for _ in $(seq 150); do [ -d "/proc/$pid" ] || break; sleep 0.2; done   # up to 30 s
        if [ -d "/proc/$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
            log "$name (pid $pid) ignored SIGTERM for 30s: SIGKILL"
            kill -KILL "$pid"; sleep 0.5
        fi
        if [ -d "/proc/$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
            log "$name (pid $pid) still alive"; rc=1; continue
        fi
        log "stopped $name (pid $pid)"
    else
        log "$name: pid file is stale (no live $name process with that pid): removed, nothing signalled"
    fi
    rm -f "$f"
done
exit $rc
