"""Which batch system a run is inside, and the contexts of Grid Engine, PBS and LSF jobs (Slurm's is `slurm.py`).

Detection order (the first that matches wins; `--batch-system` names one and skips the guessing):

    -s / DISBATCH_SSH_NODELIST  →  Slurm (SLURM_JOB_ID)  →  Grid Engine (PE_HOSTFILE)
    →  PBS (PBS_NODEFILE)  →  LSF (LSB_MCPU_HOSTS or LSB_DJOB_HOSTFILE)

Each context starts one long-lived engine per node with the scheduler's own launcher where it can carry the engine's
stdin (the run's credentials come that way): `qrsh -inherit HOST` under Grid Engine (tight integration: the
scheduler accounts for the engines and kills them with the job), `blaunch HOST` under LSF when it exists, ssh
otherwise. PBS's `pbsdsh` gives its tasks no stdin, so PBS engines start over ssh. Neither Grid Engine nor LSF can
shrink a job: at the tail, idle engines just leave. PBS Pro releases them with `pbs_release_nodes` when it exists.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Mapping

from disbatch.contexts import host_files
from disbatch.contexts.base import is_this_machine
from disbatch.contexts.launch import LaunchLimits
from disbatch.contexts.nodes import NO_RESOURCES, EngineResources, Launcher, NodeContext, NodePlan
from disbatch.contexts.retire import Retirement
from disbatch.contexts.slurm import DEFAULT_RETIRE as SLURM_RETIRE
from disbatch.contexts.slurm import slurm_context, slurm_job_id
from disbatch.contexts.ssh import ssh_options
from disbatch.errors import ContextError

PBS_RETIRE = 'pbs_release_nodes -j "$PBS_JOBID" $NODES'


def detect(environ: Mapping[str, str]) -> str | None:
    """The batch system whose job this process runs in, by the variables it sets; None outside any."""
    if slurm_job_id(environ):
        return 'slurm'
    if environ.get('PE_HOSTFILE'):
        return 'sge'
    if environ.get('PBS_NODEFILE'):
        return 'pbs'
    if environ.get('LSB_MCPU_HOSTS') or environ.get('LSB_DJOB_HOSTFILE'):
        return 'lsf'
    return None


def job_id(kind: str, environ: Mapping[str, str]) -> str:
    names = {'slurm': ('SLURM_JOB_ID', 'SLURM_JOBID'), 'sge': ('JOB_ID',), 'pbs': ('PBS_JOBID',), 'lsf': ('LSB_JOBID',)}
    return next((environ[name] for name in names.get(kind, ()) if environ.get(name)), '')


def read_allocation(kind: str, environ: Mapping[str, str]) -> host_files.HostSlots:
    """The (host, slots) of the job's allocation, from the files and variables its scheduler set."""
    if kind == 'sge':
        return host_files.parse_pe_hostfile(_read(environ, 'PE_HOSTFILE', 'a Grid Engine job without -pe PE N?'))
    if kind == 'pbs':
        return host_files.parse_slot_lines(_read(environ, 'PBS_NODEFILE', 'not inside a PBS job?'), 'PBS_NODEFILE')
    if kind == 'lsf':
        if environ.get('LSB_MCPU_HOSTS'):
            return host_files.parse_lsb_mcpu_hosts(environ['LSB_MCPU_HOSTS'])
        text = _read(environ, 'LSB_DJOB_HOSTFILE', 'not inside an LSF job?')
        return host_files.parse_slot_lines(text, 'LSB_DJOB_HOSTFILE')
    raise ContextError(f'no allocation reader for batch system {kind!r}')


def _read(environ: Mapping[str, str], variable: str, hint: str) -> str:
    path = environ.get(variable, '')
    if not path:
        raise ContextError(f'{variable} is not set: {hint}')
    try:
        with open(path, encoding='utf-8', errors='replace') as handle:
            return handle.read()
    except OSError as error:
        raise ContextError(f'{variable}={path}: cannot read it: {error.strerror}') from None


def qrsh_launcher(plan: NodePlan, engine: list[str]) -> list[str]:
    """`qrsh -inherit` joins its arguments into one shell command on the node: give it one, quoted."""
    return ['qrsh', '-inherit', plan.host, shlex.join(engine)]


def blaunch_launcher(plan: NodePlan, engine: list[str]) -> list[str]:
    return ['blaunch', plan.host, shlex.join(engine)]


def ssh_or_local_for(limits: LaunchLimits) -> Launcher:
    def launcher(plan: NodePlan, engine: list[str]) -> list[str]:
        if is_this_machine(plan.host) or is_this_machine(plan.host.split('.')[0]):
            return engine
        return ['ssh', *ssh_options(limits), '--', plan.host, shlex.join(engine)]

    return launcher


def _pbs_cores(environ: Mapping[str, str], hosts: host_files.HostSlots) -> dict[str, int]:
    """PBS Pro's NCPUS (Torque's PBS_NUM_PPN): the cores of each chunk, for --fill when it exceeds the slots."""
    text = environ.get('NCPUS') or environ.get('PBS_NUM_PPN') or ''
    return {host: int(text) for host, _ in hosts} if text.isdigit() else {}


def batch_context(
    kind: str,
    environ: Mapping[str, str],
    label: str,
    cpus_per_task: float | None,
    tasks_per_node: int | None,
    fill: bool,
    retire_command: str | None,
    log_path: str,
    resources: EngineResources = NO_RESOURCES,
    limits: LaunchLimits | None = None,
) -> tuple[NodeContext, list[str]]:
    """The context of the job this process runs in. `retire_command` None: the scheduler's default; '': none.
    Engines start `limits.at_once` at a time, except under Slurm: its `srun` steps start together, the controller
    pacing them."""
    limits = limits or LaunchLimits()
    if kind == 'slurm':
        retire = SLURM_RETIRE if retire_command is None else (retire_command or None)
        return slurm_context(
            environ, label, cpus_per_task, tasks_per_node, fill, retire, log_path, resources, limits.connect_timeout
        )
    hosts = read_allocation(kind, environ)
    cores = _pbs_cores(environ, hosts) if kind == 'pbs' else None
    plans = host_files.plan_slots(hosts, cpus_per_task, tasks_per_node, fill, cores)
    launcher: Launcher = ssh_or_local_for(limits)
    default_retire = None
    if kind == 'sge':
        launcher = qrsh_launcher
    elif kind == 'lsf' and shutil.which('blaunch', path=environ.get('PATH', os.defpath)):
        launcher = blaunch_launcher
    elif kind == 'pbs' and shutil.which('pbs_release_nodes', path=environ.get('PATH', os.defpath)):
        default_retire = PBS_RETIRE
    retire = default_retire if retire_command is None else (retire_command or None)
    retirement = Retirement(retire, [plan.host for plan in plans], log_path)
    return NodeContext(label, plans, launcher, retirement, resources=resources, limits=limits), []
