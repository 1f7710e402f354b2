#!/bin/bash
# stop-sge.sh -- stop what start-sge.sh started: deletes all jobs, stops every sge_execd and
# sge_qmaster (via their pid files), tears the fake hosts down if nothing else uses them. Idempotent.
set -uo pipefail
CI_SCRIPT=sge
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
SPOOL=/var/spool/gridengine
if pid_alive "$SPOOL/qmaster/qmaster.pid" sge_qmaster; then
    timeout 10 qdel -f -u '*' >/dev/null 2>&1 || true
fi
for n in $(ci_nodes); do
    stop_pidfile "$SPOOL/execd/$n/execd.pid" sge_execd 10
done
stop_pidfile "$SPOOL/qmaster/qmaster.pid" sge_qmaster 15
# shepherds of jobs whose execd is gone (only ours can exist on this machine)
for p in /proc/[0-9]*; do
    [[ $(readlink "$p/exe" 2>/dev/null) == /usr/lib/gridengine/sge_shepherd* ]] || continue
    kill -KILL "${p#/proc/}" 2>/dev/null || true
done
[[ ${CI_KEEP_HOSTS:-0} == 1 ]] || hosts_unuse sge
log "sge stopped"
