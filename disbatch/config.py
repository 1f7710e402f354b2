"""RunConfig: everything a run needs to know, checked once, from the flags and the DISBATCH_* environment."""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from disbatch.contexts.base import Node, parse_node_list
from disbatch.contexts.flags import check_resource_arguments, launch_limits
from disbatch.contexts.launch import DEFAULT_LAUNCH, LaunchLimits
from disbatch.contract import NAMED_IN_MESSAGES
from disbatch.errors import ContextError, UsageError

_DURATION = re.compile(r'(?:(?P<days>\d+)-)?(?P<clock>\d+(?::\d+){0,2})(?:\.(?P<fraction>\d+))?')
_UNITS = {'s': 1.0, 'm': 60.0, 'h': 3600.0, 'd': 86400.0}


def parse_duration(text: str, flag: str = '--walltime') -> float:
    """Seconds in `text`, in Slurm's `--time` forms: `M` (a bare number is minutes, as in `sbatch -t 5`), `M:S`,
    `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`; or a number with a unit (`20s`, `90m`, `1.5h`, `2d`). UsageError naming
    `flag` when it is none of these, or not more than 0."""
    spoken = text.strip().lower()
    seconds: float | None = None
    if spoken and spoken[-1] in _UNITS:
        try:
            seconds = float(spoken[:-1]) * _UNITS[spoken[-1]]
        except ValueError:
            seconds = None
    elif (match := _DURATION.fullmatch(spoken)) is not None:
        given = [int(part) for part in match['clock'].split(':')]
        # Slurm's units of the fields: after a day count H, H:M, H:M:S; without one M, M:S, H:M:S
        if match['days'] is not None:
            units = [3600.0, 60.0, 1.0][: len(given)]
        else:
            units = {1: [60.0], 2: [60.0, 1.0], 3: [3600.0, 60.0, 1.0]}[len(given)]
        seconds = int(match['days'] or 0) * 86400.0 + sum(
            value * unit for value, unit in zip(given, units, strict=True)
        )
        if match['fraction']:  # of the last field's unit: `1.5` is 90 seconds
            seconds += float(f'0.{match["fraction"]}') * units[-1]
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise UsageError(
            f'{flag} {text!r}: give a duration as Slurm does (minutes, M:S, H:M:S, D-H:M:S) or with a unit (90m, 20s)'
        )
    return seconds


@dataclass(frozen=True, slots=True)
class RunConfig:
    taskfile: str | None  # None: tasks come from the KVS (--taskcommand, --taskserver)
    taskcommand: str | None
    kvs_server: str | None  # HOST:PORT of an outside KVS server (--kvsserver, --taskserver HOST:PORT); None: our own
    address_fd: int | None  # --address-fd (hidden; DisBatcher): the pipe to write the KVS address to once it listens
    owner_pid: int | None  # --owner-pid (hidden; DisBatcher): the parent whose end ends the run, as SIGTERM would
    nodes: tuple[Node, ...]  # empty: the nodes of the Slurm allocation this runs in
    node_origin: str  # '-s', 'DISBATCH_SSH_NODELIST', '-S' or the batch system's name, for messages
    batch_system: str  # 'ssh' (the nodes above), 'slurm', 'sge', 'pbs' or 'lsf': where the engines start
    cpus_per_task: float | None  # -c; None: 1, or SLURM_CPUS_PER_TASK under Slurm
    tasks_per_node: int | None
    gpus_per_task: int  # --gpus-per-task; 0: GPUs are not shared out
    env_resources: tuple[str, ...]  # -E: variables whose comma lists are shared out, one item per slot
    fill: bool
    startup_only: bool  # -S: no context of the driver's own; contexts are added through dbUtil.sh
    context_task_limit: int  # -C for the driver's own context; 0: no limit
    retire_command: str | None  # None: the batch system's default; '' (--no-retire): retire nothing
    prefix: str
    resume_from: tuple[str, ...]
    retry_failed: bool
    force_resume: bool
    status_header: bool
    exit_code_on_failure: bool
    fail_fast: bool
    retries: int
    timeout: float
    kill_leftovers: bool  # --kill-leftovers: end what a task leaves running when it exits (else: when its engine does)
    fork_tasks: bool  # --fork-tasks: a long-lived bash per slot forks a subshell per task
    logfile: str | None
    loglevel: str
    use_address: tuple[str, int] | None
    label: str | None
    web: bool
    progress: bool  # --progress: the progress line and summary even when stderr is not a terminal (the default now)
    quiet: bool  # --quiet: never
    progress_every: float  # --progress-every: seconds between two plain progress lines when stderr is not a terminal
    tasks_name: str | None  # --tasks-name (hidden; DisBatcher's tasksname): names the files of a run with no task file
    mail_to: str | None
    mail_every: int
    mail_server: tuple[str, int]
    results_dir: str | None = None  # --results: keep every task's complete stdout and stderr here
    json_file: str | None = None  # --json: the events file; 'auto' for <stem>_events.jsonl
    walltime: float | None = None  # --walltime, seconds from the start of the run
    drain_margin: float | None = None  # None: walltime.default_margin
    resubmit: int = 0  # --resubmit: follow-up jobs left in the chain
    launch: LaunchLimits = DEFAULT_LAUNCH  # --launch-concurrency, --connect-timeout: how engines are started

    @classmethod
    def from_arguments(cls, arguments: argparse.Namespace, environ: Mapping[str, str] | None = None) -> RunConfig:
        environ = os.environ if environ is None else environ
        if arguments.mailFreq is not None and not arguments.mailTo:
            raise UsageError('--mailFreq needs --mailTo')
        if arguments.mailFreq is not None and arguments.mailFreq < 1:
            raise UsageError(f'--mailFreq {arguments.mailFreq}: send a message every 1 or more completions')
        if arguments.tasksPerNode is not None and arguments.tasksPerNode < 1:
            raise UsageError(f'-t {arguments.tasksPerNode}: tasks per node must be at least 1')
        check_resource_arguments(arguments)
        if arguments.retries < 0:
            raise UsageError(f'--retries {arguments.retries}: give 0 or more')
        if not math.isfinite(arguments.timeout) or arguments.timeout < 0:
            raise UsageError(f'--timeout {arguments.timeout:g}: give a number of seconds (0: no limit)')
        if not math.isfinite(arguments.progress_every) or arguments.progress_every <= 0:
            raise UsageError(f'--progress-every {arguments.progress_every:g}: give a number of seconds over 0')
        if (arguments.retry or arguments.force_resume) and not arguments.resume_from:
            raise UsageError('-R and --force-resume need -r STATUSFILE')
        if arguments.startup_only and arguments.ssh_node:
            raise UsageError(
                f'-S starts no context of its own: add one later with {NAMED_IN_MESSAGES.dbutil} -s HOST:N, not -s'
            )
        if arguments.context_task_limit < 0:
            raise UsageError(f'-C {arguments.context_task_limit}: the task limit must be 0 (none) or more')
        if arguments.results is not None and not arguments.results:
            raise UsageError('--results needs a directory')
        if arguments.drain_margin is not None and (
            not math.isfinite(arguments.drain_margin) or arguments.drain_margin < 0
        ):
            raise UsageError(f'--drain-margin {arguments.drain_margin:g}: give a number of seconds, 0 or more')
        if arguments.resubmit < 0:
            raise UsageError(f'--resubmit {arguments.resubmit}: give 0 or more follow-up jobs')
        wanted = getattr(arguments, 'batch_system', None)
        nodes: list[Node]
        if arguments.startup_only:
            nodes, origin, system = [], '-S', 'ssh'
        else:
            nodes, origin, system = _nodes(arguments.ssh_node, environ, wanted)
        return cls(
            taskfile=arguments.taskfile,
            taskcommand=arguments.taskcommand,
            kvs_server=_outside_kvs(arguments.kvsserver, arguments.taskserver, environ),
            address_fd=arguments.address_fd,
            owner_pid=arguments.owner_pid,
            nodes=tuple(nodes),
            node_origin=origin,
            batch_system=system,
            cpus_per_task=arguments.cpusPerTask,
            tasks_per_node=arguments.tasksPerNode,
            gpus_per_task=arguments.gpus_per_task or 0,
            env_resources=tuple(arguments.env_resource or ()),
            fill=arguments.fill,
            startup_only=arguments.startup_only,
            context_task_limit=arguments.context_task_limit,
            retire_command='' if arguments.no_retire else arguments.retire_cmd,
            prefix=arguments.prefix,
            resume_from=tuple(arguments.resume_from),
            retry_failed=arguments.retry,
            force_resume=arguments.force_resume,
            status_header=arguments.status_header,
            exit_code_on_failure=arguments.exit_code,
            fail_fast=arguments.fail_fast,
            retries=arguments.retries,
            timeout=arguments.timeout,
            kill_leftovers=arguments.kill_leftovers,
            fork_tasks=arguments.fork_tasks,
            logfile=arguments.logfile,
            loglevel=arguments.loglevel,
            use_address=_address(arguments.use_address) if arguments.use_address else None,
            label=arguments.label,
            web=arguments.web,
            progress=arguments.progress,
            quiet=arguments.quiet,
            progress_every=arguments.progress_every,
            tasks_name=arguments.tasks_name,
            mail_to=arguments.mailTo,
            mail_every=arguments.mailFreq or 1,
            mail_server=_mail_server(arguments.mail_server) if arguments.mailTo else ('localhost', 25),
            results_dir=arguments.results,
            json_file=arguments.json,
            walltime=parse_duration(arguments.walltime) if arguments.walltime is not None else None,
            drain_margin=arguments.drain_margin,
            resubmit=arguments.resubmit,
            launch=launch_limits(arguments),
        )


def _nodes(items: list[str], environ: Mapping[str, str], wanted: str | None) -> tuple[list[Node], str, str]:
    """The `-s` nodes, else DISBATCH_SSH_NODELIST's, else the batch system's job this runs in: `--batch-system`,
    or the first detected (Slurm, Grid Engine, PBS, LSF; `contexts/batch.py`). `--batch-system none` detects none."""
    from disbatch.contexts.batch import detect

    if items:
        return parse_node_list(items, '-s'), '-s', 'ssh'
    if environ.get('DISBATCH_SSH_NODELIST'):
        nodes = parse_node_list([environ['DISBATCH_SSH_NODELIST']], 'DISBATCH_SSH_NODELIST')
        return nodes, 'DISBATCH_SSH_NODELIST', 'ssh'
    system = detect(environ) if wanted is None else (None if wanted == 'none' else wanted)
    if system is not None:
        return [], system, system
    raise ContextError(
        'Cannot determine batch execution environment: give -s HOST:CORECOUNT (e.g. -s localhost:4), '
        'set DISBATCH_SSH_NODELIST, or run inside a Slurm, Grid Engine (qsub -pe), PBS or LSF job'
        + (' (--batch-system none)' if wanted == 'none' else '')
    )


def _outside_kvs(kvsserver: str | None, taskserver: str | None, environ: Mapping[str, str]) -> str | None:
    """The outside KVS server's address: `--kvsserver HOST:PORT` (bare: `$KVSSTCP_HOST:$KVSSTCP_PORT`, as the
    reference's client defaults), or `--taskserver HOST:PORT`; the two must not name different servers."""
    if kvsserver == '':
        host, port = environ.get('KVSSTCP_HOST'), environ.get('KVSSTCP_PORT')
        if not host or not port:
            raise UsageError('--kvsserver without HOST:PORT needs $KVSSTCP_HOST and $KVSSTCP_PORT (unset here)')
        kvsserver = f'{host}:{port}'
    if kvsserver and taskserver and kvsserver != taskserver:
        raise UsageError(f'--kvsserver {kvsserver} and --taskserver {taskserver}: give one outside KVS server, not two')
    address = kvsserver or taskserver or None
    if address is not None:
        host, sep, port = address.rpartition(':')
        flag = '--kvsserver' if kvsserver else '--taskserver'
        if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
            raise UsageError(f'{flag} {address!r}: expected HOST:PORT')
    return address


def _mail_server(text: str) -> tuple[str, int]:
    from disbatch.notify.message import parse_server  # only runs that mail pay for the mail modules

    return parse_server(text)


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(':')
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f'--use-address {text!r}: expected HOST:PORT')
    return host, int(port)
