#!/bin/bash
# start-sge.sh -- a real Grid Engine (Debian's gridengine 8.1.9) next to Slurm on the same fake nodes.
# Idempotent: configures once, then starts only what is not running (also after kill-host.sh).
#   sge_qmaster on this machine, one sge_execd per node (netns mode: inside the node's namespaces),
#   queue all.q (CI_CPUS slots per node) and the parallel environment `disbatch`
#   ($round_robin, control_slaves TRUE, job_is_first_task FALSE: tight `qrsh -inherit` integration).
# Clients need SGE_ROOT=/var/lib/gridengine SGE_CELL=default (written to $CI_DIR/sge.env).
set -euo pipefail
CI_SCRIPT=sge
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $(id -u) == 0 ]] || die "must run as root"
T0=$(date +%s%N)
need_cmds sge_qmaster sge_execd qconf qsub
bash "$CI_LIB_DIR/start-hosts.sh"
hosts_use sge
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
COMMON=$SGE_ROOT/$SGE_CELL/common
SPOOL=/var/spool/gridengine
[[ -s $COMMON/act_qmaster ]] || die "$COMMON/act_qmaster missing: gridengine-master was not configured (install-packages.sh)"
printf 'export SGE_ROOT=%s\nexport SGE_CELL=%s\n' "$SGE_ROOT" "$SGE_CELL" >"$CI_DIR/sge.env"
# This machine's name resolves to 127.0.0.1 (-> "localhost"); Grid Engine insists that a client's
# address resolves back to the name it gives, so localhost is an alias of the head's name.
echo "$CI_HEAD localhost" >"$COMMON/host_aliases"
echo "$CI_HEAD" >"$COMMON/act_qmaster"

qmaster_pidf=$SPOOL/qmaster/qmaster.pid
execd_pidf() { echo "$SPOOL/execd/$1/execd.pid"; }
started=()
if ! pid_alive "$qmaster_pidf" sge_qmaster; then
    rm -f "$qmaster_pidf"
    install -d -o sgeadmin -g sgeadmin /run/gridengine
    /usr/sbin/sge_qmaster
    started+=(sge_qmaster)
fi
wait_for 30 "qmaster answers" qconf -sh || die "sge_qmaster does not answer; see $SPOOL/qmaster/messages"

# ---------------------------------------------------------------- configuration (once)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
if ! qconf -sp disbatch >/dev/null 2>&1; then
    qconf -sconf global | sed -e '/^#global:/d' -e 's/^min_uid .*/min_uid 0/' -e 's/^min_gid .*/min_gid 0/' \
        -e 's/^load_report_time .*/load_report_time 00:00:05/' -e 's/^max_unheard .*/max_unheard 00:00:30/' \
        >"$T/global"
    qconf -Mconf "$T/global" >/dev/null
    qconf -ssconf | sed -e 's/^schedule_interval .*/schedule_interval 0:0:1/' \
        -e 's/^flush_submit_sec .*/flush_submit_sec 1/' -e 's/^flush_finish_sec .*/flush_finish_sec 1/' >"$T/sconf"
    qconf -Msconf "$T/sconf" >/dev/null
    hosts=$(ci_nodes | tr '\n' ' ')
    qconf -as "$CI_HEAD" >/dev/null 2>&1 || true
    tmpdirs=/tmp
    for n in $(ci_nodes); do
        qconf -ah "$n" >/dev/null 2>&1 || true
        qconf -as "$n" >/dev/null 2>&1 || true
        printf 'hostname %s\nload_scaling NONE\ncomplex_values NONE\nuser_lists NONE\nxuser_lists NONE\nprojects NONE\nxprojects NONE\nusage_scaling NONE\nreport_variables NONE\n' "$n" >"$T/$n"
        qconf -se "$n" >/dev/null 2>&1 || qconf -Ae "$T/$n" >/dev/null
        # one file system for all nodes: each needs its own job scratch directory
        tmpdirs+=",[$n=$SPOOL/tmp/$n]"
    done
    printf 'group_name @allhosts\nhostlist %s\n' "$hosts" >"$T/allhosts"
    qconf -shgrp @allhosts >/dev/null 2>&1 || qconf -Ahgrp "$T/allhosts" >/dev/null
    printf '%s\n' 'pe_name disbatch' 'slots 9999' 'user_lists NONE' 'xuser_lists NONE' 'start_proc_args NONE' \
        'stop_proc_args NONE' 'allocation_rule $round_robin' 'control_slaves TRUE' 'job_is_first_task FALSE' \
        'urgency_slots min' 'accounting_summary FALSE' 'qsort_args NONE' >"$T/disbatch"
    qconf -Ap "$T/disbatch" >/dev/null
    qconf -sq 2>/dev/null | sed -e 's/^qname .*/qname all.q/' -e 's/^hostlist .*/hostlist @allhosts/' \
        -e 's/^pe_list .*/pe_list disbatch/' -e "s/^slots .*/slots $CI_CPUS/" -e 's#^shell .*#shell /bin/bash#' \
        -e 's/^load_thresholds .*/load_thresholds NONE/' -e "s#^tmpdir .*#tmpdir $tmpdirs#" >"$T/all.q"
    if qconf -sq all.q >/dev/null 2>&1; then qconf -Mq "$T/all.q" >/dev/null; else qconf -Aq "$T/all.q" >/dev/null; fi
fi

# ---------------------------------------------------------------- execution daemons
for n in $(ci_nodes); do
    install -d -o sgeadmin -g sgeadmin "$SPOOL/execd/$n" "$SPOOL/tmp/$n"
    chmod 1777 "$SPOOL/tmp/$n"
    pidf=$(execd_pidf "$n")
    pid_alive "$pidf" sge_execd && continue
    rm -f "$pidf"
    on_node "$n" env SGE_ROOT="$SGE_ROOT" SGE_CELL="$SGE_CELL" /usr/sbin/sge_execd
    started+=("sge_execd:$n")
done
hosts_up() { # every node reports a load (not "-")
    local n
    for n in $(ci_nodes); do
        qhost -h "$n" 2>/dev/null | awk -v n="$n" '$1 == n && $7 != "-" {ok=1} END {exit !ok}' || return 1
    done
}
wait_for 60 "execds report" hosts_up || { qhost >&2; die "execds not up; see $SPOOL/execd/*/messages"; }
# a queue instance left in error/unknown state after a crash is cleared
qmod -c 'all.q@*' >/dev/null 2>&1 || true
ms=$((($(date +%s%N) - T0) / 1000000))
echo "sge up: qmaster=$CI_HEAD execds=$(ci_nodelist) pe=disbatch queue=all.q (${CI_N}x${CI_CPUS} slots) started=[${started[*]}] in ${ms} ms"
