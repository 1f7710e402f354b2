"""The allocations of Grid Engine, PBS and LSF jobs, read from the files and variables those schedulers give a job.

Pure functions (text in, hosts and counts out), so they are tested from the schedulers' documented formats without
the schedulers. Every reader returns (host, slots) pairs in the scheduler's order, a host listed twice summed:

* Grid Engine `$PE_HOSTFILE`: one line per queue instance, `host slots queue processor-range`.
* PBS `$PBS_NODEFILE` and LSF `$LSB_DJOB_HOSTFILE`: one line per slot, the host name alone.
* LSF `$LSB_MCPU_HOSTS`: `host1 n1 host2 n2 …` on one line.
"""

from __future__ import annotations

import math

from disbatch.contexts.nodes import NodePlan
from disbatch.errors import ContextError

HostSlots = list[tuple[str, int]]


def _add(counts: dict[str, int], host: str, slots: int) -> None:
    counts[host] = counts.get(host, 0) + slots


def parse_pe_hostfile(text: str) -> HostSlots:
    """`node1 2 all.q@node1 UNDEFINED` lines → [('node1', 2), …]."""
    counts: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2 or not fields[1].isdigit() or int(fields[1]) < 1:
            raise ContextError(f'PE_HOSTFILE line {number} {line.strip()!r}: expected "HOST SLOTS QUEUE …"')
        _add(counts, fields[0], int(fields[1]))
    if not counts:
        raise ContextError('PE_HOSTFILE lists no host: not a parallel-environment job (qsub -pe PE N)?')
    return list(counts.items())


def parse_slot_lines(text: str, origin: str) -> HostSlots:
    """One host name per slot (`$PBS_NODEFILE`, `$LSB_DJOB_HOSTFILE`) → [(host, lines naming it), …]."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        host = line.strip()
        if host and not host.startswith('#'):
            _add(counts, host, 1)
    if not counts:
        raise ContextError(f'{origin} lists no host')
    return list(counts.items())


def parse_lsb_mcpu_hosts(text: str) -> HostSlots:
    """`hostA 4 hostB 2` → [('hostA', 4), ('hostB', 2)]."""
    fields = text.split()
    if not fields or len(fields) % 2:
        raise ContextError(f'LSB_MCPU_HOSTS {text!r}: expected "HOST COUNT HOST COUNT …"')
    counts: dict[str, int] = {}
    for host, count in zip(fields[::2], fields[1::2], strict=True):
        if not count.isdigit() or int(count) < 1:
            raise ContextError(f'LSB_MCPU_HOSTS {text!r}: {count!r} is not a slot count')
        _add(counts, host, int(count))
    return list(counts.items())


def plan_slots(
    allocation: HostSlots,
    cpus_per_task: float | None,
    tasks_per_node: int | None,
    fill: bool,
    cores_by_host: dict[str, int] | None = None,
) -> list[NodePlan]:
    """Slots per node, as for Slurm: `-t` if given; else, with `--fill`, every core of the node (`cores_by_host`,
    where the scheduler says more cores than slots) // -c; else min(the node's slots, its cores // -c).
    DISBATCH_CORES_PER_TASK is -c when given, else cores // slots."""
    per_task = cpus_per_task if cpus_per_task is not None else 1.0
    plans = []
    for host, count in allocation:
        cores = max(count, (cores_by_host or {}).get(host, count))
        if tasks_per_node is not None:
            slots = tasks_per_node
        elif fill:
            slots = math.floor(cores / per_task)
        else:
            slots = min(count, math.floor(cores / per_task))
        if slots < 1:
            raise ContextError(f'node {host}: {cores} core(s) with -c {per_task:g} leave no slot to run a task')
        plans.append(NodePlan(host, slots, max(1, int(per_task)) if cpus_per_task is not None else cores // slots))
    return plans
