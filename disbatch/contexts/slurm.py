"""The Slurm context: inside `sbatch`/`salloc`, one long-lived engine per node of the allocation, started with
`srun` (one step per node for the whole run, never one per task); idle nodes are given back with
`scontrol update JobId=… NodeList=…`.

The reading of the allocation from the environment is pure (`plan_allocation`), so it is tested without Slurm.
Also the job this run is in: its end (`SLURM_JOB_END_TIME`, else `squeue`) and the follow-up job's submission
(`sbatch`, for --resubmit); the driver decides when, this module speaks to Slurm.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from disbatch.contexts.launch import DEFAULT_CONNECT_TIMEOUT_SECONDS, LaunchLimits
from disbatch.contexts.nodes import NO_RESOURCES, EngineResources, NodeContext, NodePlan
from disbatch.contexts.retire import Retirement
from disbatch.errors import ContextError, OutputLostError, RunFileError
from disbatch.privacy import SCRIPT_MODE, write_file

log = logging.getLogger('disbatch.driver')

# The nodes kept: the driver's and those still working, each once (the driver's node is among ACTIVE while its engine
# runs, and a list naming a node twice is not the job's node list).
DEFAULT_RETIRE = (
    'scontrol update JobId="$SLURM_JOBID" NodeList="$(printf %s "${DRIVER_NODE:+$DRIVER_NODE,}$ACTIVE"'
    " | tr , '\\n' | awk '!seen[$0]++' | paste -sd ,)\""
)
_RANGE = re.compile(r'^(\d+)(?:-(\d+))?$')


def expand_hostlist(text: str) -> list[str]:
    """`node[1-3,5],gpu07` → ['node1', 'node2', 'node3', 'node5', 'gpu07'] (zero padding kept)."""
    hosts: list[str] = []
    for item in _split_outside_brackets(text):
        hosts.extend(_expand_item(item))
    return hosts


def _split_outside_brackets(text: str) -> list[str]:
    items, depth, current = [], 0, ''
    for char in text:
        if char == ',' and depth == 0:
            items.append(current)
            current = ''
            continue
        depth += {'[': 1, ']': -1}.get(char, 0)
        if depth < 0 or depth > 1:
            raise ContextError(f'cannot read the Slurm node list {text!r}')
        current += char
    if depth:
        raise ContextError(f'cannot read the Slurm node list {text!r}')
    items.append(current)
    return [item for item in items if item]


def _expand_item(item: str) -> list[str]:
    match = re.match(r'^([^\[]*)\[([^\]]*)\](.*)$', item)
    if not match:
        return [item]
    prefix, ranges, rest = match.groups()
    hosts = []
    for part in ranges.split(','):
        bounds = _RANGE.match(part)
        if not bounds:
            raise ContextError(f'cannot read the Slurm node list item {item!r}')
        first, last = bounds.group(1), bounds.group(2) or bounds.group(1)
        width = len(first) if first.startswith('0') else 0
        for number in range(int(first), int(last) + 1):
            for tail in _expand_item(rest) if rest else ['']:
                hosts.append(f'{prefix}{number:0{width}d}{tail}')
    return hosts


def expand_counts(text: str) -> list[int]:
    """`4(x2),2` → [4, 4, 2] (the form of SLURM_JOB_CPUS_PER_NODE and SLURM_TASKS_PER_NODE)."""
    counts: list[int] = []
    for item in text.split(','):
        match = re.match(r'^(\d+)(?:\(x(\d+)\))?$', item.strip())
        if not match:
            raise ContextError(f'cannot read the Slurm count list {text!r}')
        counts.extend([int(match.group(1))] * int(match.group(2) or 1))
    return counts


@dataclass(frozen=True, slots=True)
class SlurmPlan:
    job_id: str
    plans: list[NodePlan]
    warnings: list[str]


def plan_allocation(
    environ: Mapping[str, str],
    hosts: list[str],
    cpus_per_task: float | None,
    tasks_per_node: int | None,
    fill: bool,
) -> SlurmPlan:
    """Slots per node the way the reference computes them (reference §1, "Slots per node", Slurm)."""
    job_id = slurm_job_id(environ)
    warnings: list[str] = []
    env_cpus = environ.get('SLURM_CPUS_PER_TASK')
    if cpus_per_task is not None and env_cpus and float(env_cpus) != cpus_per_task:
        warnings.append(f'-c {cpus_per_task:g} differs from SLURM_CPUS_PER_TASK={env_cpus}; using -c')
    per_task = cpus_per_task if cpus_per_task is not None else float(env_cpus or 1)
    env_tasks = environ.get('SLURM_NTASKS_PER_NODE')
    if tasks_per_node is not None and env_tasks and int(env_tasks) != tasks_per_node:
        warnings.append(f'-t {tasks_per_node} differs from SLURM_NTASKS_PER_NODE={env_tasks}; using -t')
    job_cpus = expand_counts(environ.get('SLURM_JOB_CPUS_PER_NODE', ''))
    tasks = expand_counts(environ.get('SLURM_TASKS_PER_NODE', ''))
    if len(job_cpus) != len(hosts) or len(tasks) != len(hosts):
        raise ContextError(f'the Slurm environment describes {len(job_cpus)} node(s) but lists {len(hosts)}')
    gpus = bool(environ.get('CUDA_VISIBLE_DEVICES') or environ.get('GPU_DEVICE_ORDINAL'))
    plans = []
    for host, cpus, node_tasks in zip(hosts, job_cpus, tasks, strict=True):
        if tasks_per_node is not None:
            slots = tasks_per_node
        elif env_tasks:
            slots = int(env_tasks)
        elif fill and not gpus:
            slots = int(cpus // per_task)
        else:
            slots = min(node_tasks, int(cpus // per_task))
        if slots < 1:
            raise ContextError(f'node {host}: {cpus} CPU(s) with -c {per_task:g} leave no slot to run a task')
        cores = int(per_task) if cpus_per_task is not None or env_cpus else cpus // slots
        plans.append(NodePlan(host, slots, cores))
    return SlurmPlan(job_id, plans, warnings)


def step_gpu_options(environ: Mapping[str, str]) -> list[str]:
    """The srun options that ask, for an engine's step, for every GPU the job holds on its node.

    The engine shares those GPUs among its tasks, so its step asks for them in the form the job did:
    `--gpus-per-node` as given (SLURM_GPUS_PER_NODE, type included), else `--gres=gpu:N` with the count Slurm
    reports for the job's first node (SLURM_GPUS_ON_NODE, or the length of SLURM_JOB_GPUS), which is every node's
    count when the job asked per node (`--gres=gpu:N`). A job that asked for GPUs in total (`--gpus=N`, which may
    put a different count on each node) gets no option: Slurm's default gives a step all of the job's GPUs on its
    node."""
    per_node = environ.get('SLURM_GPUS_PER_NODE', '').strip()
    if per_node:
        return [f'--gpus-per-node={per_node}']
    if environ.get('SLURM_GPUS', '').strip():
        return []
    on_node = environ.get('SLURM_GPUS_ON_NODE', '').strip()
    listed = [gpu for gpu in environ.get('SLURM_JOB_GPUS', '').split(',') if gpu.strip()]
    count = int(on_node) if on_node.isdigit() else len(listed)
    return [f'--gres=gpu:{count}'] if count > 0 else []


def srun_launcher_for(
    cpus_by_host: dict[str, int], gpu_options: list[str] | None = None
) -> Callable[[NodePlan, list[str]], list[str]]:
    def launcher(plan: NodePlan, engine: list[str]) -> list[str]:
        return [
            'srun',
            '--nodes=1',
            '--ntasks=1',
            f'--cpus-per-task={cpus_by_host[plan.host]}',
            f'--nodelist={plan.host}',
            '--exact',
            '--overlap',
            '--kill-on-bad-exit=0',
            '--input=0',
            *(gpu_options or []),
            *engine,
        ]

    return launcher


def step_ender_for(job_id: str) -> Callable[[str], list[str]]:
    """The command that cancels the step(s) of job `job_id` on a host (`squeue -s` lists "JOBID.STEP NODELIST"; the
    .batch and .extern steps are left alone): the `srun` of an engine that was lost (a crashed node) never ends on
    its own, and its step would keep the job in CG."""

    def ender(host: str) -> list[str]:
        pick = f'$2 == "{host}" && $1 ~ /^[0-9]+[.][0-9]+$/ {{print $1}}'  # host: a Slurm node name, no quotes
        script = (
            f'steps=$(squeue -h -s -j {shlex.quote(job_id)} -o "%i %N" | awk {shlex.quote(pick)}); '
            f'if [ -n "$steps" ]; then echo "cancelling step $steps on {host}"; scancel $steps; fi'
        )
        return ['/bin/bash', '-c', script]

    return ender


def allocation_hosts(environ: Mapping[str, str]) -> list[str]:
    nodelist = environ.get('SLURM_JOB_NODELIST') or environ.get('SLURM_NODELIST') or ''
    if not nodelist:
        raise ContextError('SLURM_JOB_ID is set but SLURM_JOB_NODELIST is not: not inside an allocation?')
    return expand_hostlist(nodelist)


def slurm_job_id(environ: Mapping[str, str]) -> str:
    return environ.get('SLURM_JOB_ID') or environ.get('SLURM_JOBID') or ''


def slurm_context(
    environ: Mapping[str, str],
    label: str,
    cpus_per_task: float | None,
    tasks_per_node: int | None,
    fill: bool,
    retire_command: str | None,
    log_path: str,
    resources: EngineResources = NO_RESOURCES,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
) -> tuple[NodeContext, list[str]]:
    """The context of the allocation this process runs in, and warnings for the user. Its `srun` steps start all at
    once (the controller paces them; no ssh handshake runs here); an engine not joined after `connect_timeout` and a
    margin is reported."""
    hosts = allocation_hosts(environ)
    allocation = plan_allocation(environ, hosts, cpus_per_task, tasks_per_node, fill)
    cpus = dict(zip(hosts, expand_counts(environ.get('SLURM_JOB_CPUS_PER_NODE', '')), strict=True))
    driver_node = environ.get('SLURMD_NODENAME') or _short_hostname()
    retirement = Retirement(retire_command, list(hosts), log_path, driver_node=driver_node)
    launcher = srun_launcher_for(cpus, step_gpu_options(environ))
    limits = LaunchLimits(at_once=None, connect_timeout=connect_timeout)
    context = NodeContext(
        label, allocation.plans, launcher, retirement, step_ender_for(allocation.job_id), resources, limits
    )
    return context, allocation.warnings


def _short_hostname() -> str:
    return socket.gethostname().split('.')[0]


# ---------------------------------------------------------------- the job this run is in: its end, its follow-up

SQUEUE_SECONDS = 10.0
# Options of the follow-up job, from the variables Slurm sets in this one.
_SAME_AS_THIS_JOB = (
    ('SLURM_JOB_NUM_NODES', '--nodes'),
    ('SLURM_NTASKS', '--ntasks'),
    ('SLURM_NTASKS_PER_NODE', '--ntasks-per-node'),
    ('SLURM_CPUS_PER_TASK', '--cpus-per-task'),
    ('SLURM_MEM_PER_NODE', '--mem'),
    ('SLURM_MEM_PER_CPU', '--mem-per-cpu'),
    ('SLURM_JOB_PARTITION', '--partition'),
    ('SLURM_JOB_ACCOUNT', '--account'),
    ('SLURM_JOB_QOS', '--qos'),
    ('SLURM_JOB_NAME', '--job-name'),
)


def slurm_job(environ: Mapping[str, str]) -> str | None:
    return environ.get('SLURM_JOB_ID') or environ.get('SLURM_JOBID') or None


def job_end(environ: Mapping[str, str]) -> tuple[float, str] | None:
    """The end of the Slurm job this runs in and where it was read: `SLURM_JOB_END_TIME` (Slurm 23.02 and later),
    else squeue; None outside a job, or when neither says."""
    job = slurm_job(environ)
    if job is None:
        return None
    given = environ.get('SLURM_JOB_END_TIME', '')
    if given.isdigit() and int(given) > 0:
        return float(given), 'SLURM_JOB_END_TIME'
    text = _squeue(job, '%e')
    end = parse_slurm_time(text) if text else None
    return (end, 'squeue') if end is not None else None


def slurm_end() -> float | None:
    """The end of the Slurm job this runs in, as squeue says now (a time limit may be changed while it runs)."""
    job = slurm_job(os.environ)
    text = _squeue(job, '%e') if job is not None else None
    return parse_slurm_time(text) if text else None


def parse_slurm_time(text: str) -> float | None:
    """Seconds since the epoch of Slurm's `2026-12-02T17:30:00` (local time); None for `N/A`, `Unknown`, ..."""
    try:
        return time.mktime(time.strptime(text.strip(), '%Y-%m-%dT%H:%M:%S'))
    except ValueError:
        return None


def _squeue(job: str, field: str) -> str | None:
    try:
        done = subprocess.run(
            ['squeue', '-h', '-j', job, '-o', field], capture_output=True, text=True, timeout=SQUEUE_SECONDS
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        log.warning('squeue -j %s: %s', job, error)
        return None
    if done.returncode != 0:
        log.warning('squeue -j %s: %s', job, done.stderr.strip())
        return None
    return done.stdout.strip() or None


def sbatch_command(environ: Mapping[str, str], job: str, script: str) -> list[str]:
    command = ['sbatch', '--parsable', f'--dependency=afterany:{job}']
    for variable, option in _SAME_AS_THIS_JOB:
        if environ.get(variable):
            command.append(f'{option}={environ[variable]}')
    limit = _squeue(job, '%l')
    if limit and limit not in ('UNLIMITED', 'NOT_SET', 'INVALID'):
        command.append(f'--time={limit}')
    return [*command, script]


def submit_follow_up(environ: Mapping[str, str], job: str, script_path: str, script: str) -> str:
    """Write the script and submit it after this job; the new job's id. ContextError when the script cannot be
    written (`privacy.create_file`) or sbatch fails."""
    try:
        write_file(script_path, script, SCRIPT_MODE)
    except (RunFileError, OutputLostError) as error:  # planted, or a full disk
        raise ContextError(f'--resubmit: {error}') from None
    command = sbatch_command(environ, job, script_path)
    # The follow-up gets this environment (sbatch's default), less this job's own Slurm variables.
    clean = {key: value for key, value in environ.items() if not key.startswith('SLURM_') or key == 'SLURM_CONF'}
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=clean, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ContextError(f'--resubmit: {shlex.join(command)}: {error}') from None
    if done.returncode != 0:
        raise ContextError(f'--resubmit: {shlex.join(command)}: {done.stderr.strip() or done.returncode}')
    log.info('follow-up job: %s', shlex.join(command))
    return done.stdout.strip().split(';')[0]
