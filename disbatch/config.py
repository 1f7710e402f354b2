"""RunConfig: everything a run needs to know, checked once, from the flags and the DISBATCH_* environment."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

from disbatch.contexts.base import Node, parse_node_list
from disbatch.contexts.flags import check_resource_arguments
from disbatch.errors import ContextError, UsageError

# Flags of the reference that arrive with later work; until then they are refused with a clear message, never
# accepted and ignored.
_NOT_YET = {
    'kvsserver': '--kvsserver',
}


@dataclass(frozen=True, slots=True)
class RunConfig:
    taskfile: str | None  # None: tasks come from the KVS (--taskcommand, --taskserver)
    taskcommand: str | None
    address_file: str | None  # where to write the KVS address once it listens (DisBatcher)
    nodes: tuple[Node, ...]  # empty: the nodes of the Slurm allocation this runs in
    node_origin: str  # '-s', 'DISBATCH_SSH_NODELIST' or 'Slurm', for messages
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
    logfile: str | None
    loglevel: str
    use_address: tuple[str, int] | None
    label: str | None
    web: bool
    progress: bool  # --progress: the progress line and summary even when stderr is not a terminal
    quiet: bool  # --quiet: never
    mail_to: str | None
    mail_every: int
    mail_server: tuple[str, int]

    @property
    def slurm(self) -> bool:
        return not self.nodes and not self.startup_only

    @classmethod
    def from_arguments(cls, arguments: argparse.Namespace, environ: Mapping[str, str] | None = None) -> RunConfig:
        environ = os.environ if environ is None else environ
        for attribute, flag in _NOT_YET.items():
            if getattr(arguments, attribute) not in (None, False, []):
                raise UsageError(f'{flag} is not supported by this version of disbatch yet')
        if arguments.mailFreq is not None and not arguments.mailTo:
            raise UsageError('--mailFreq needs --mailTo')
        if arguments.mailFreq is not None and arguments.mailFreq < 1:
            raise UsageError(f'--mailFreq {arguments.mailFreq}: send a message every 1 or more completions')
        if arguments.cpusPerTask is not None and arguments.cpusPerTask <= 0:
            raise UsageError(f'-c {arguments.cpusPerTask:g}: cores per task must be more than 0')
        if arguments.tasksPerNode is not None and arguments.tasksPerNode < 1:
            raise UsageError(f'-t {arguments.tasksPerNode}: tasks per node must be at least 1')
        check_resource_arguments(arguments)
        if arguments.retries < 0:
            raise UsageError(f'--retries {arguments.retries}: give 0 or more')
        if not math.isfinite(arguments.timeout) or arguments.timeout < 0:
            raise UsageError(f'--timeout {arguments.timeout:g}: give a number of seconds (0: no limit)')
        if (arguments.retry or arguments.force_resume) and not arguments.resume_from:
            raise UsageError('-R and --force-resume need -r STATUSFILE')
        if arguments.taskserver:
            raise UsageError(
                f'--taskserver {arguments.taskserver}: an outside KVS server is not supported; give --taskserver '
                "alone, and point the task source at the run's own KVS (its address is in <stem>_kvsinfo.txt)"
            )
        if arguments.startup_only and arguments.ssh_node:
            raise UsageError('-S starts no context of its own: add one later with <stem>_dbUtil.sh -s HOST:N, not -s')
        if arguments.context_task_limit < 0:
            raise UsageError(f'-C {arguments.context_task_limit}: the task limit must be 0 (none) or more')
        nodes, origin = ([], '-S') if arguments.startup_only else _nodes(arguments.ssh_node, environ)
        return cls(
            taskfile=arguments.taskfile,
            taskcommand=arguments.taskcommand,
            address_file=arguments.address_file,
            nodes=tuple(nodes),
            node_origin=origin,
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
            logfile=arguments.logfile,
            loglevel=arguments.loglevel,
            use_address=_address(arguments.use_address) if arguments.use_address else None,
            label=arguments.label,
            web=arguments.web,
            progress=arguments.progress,
            quiet=arguments.quiet,
            mail_to=arguments.mailTo,
            mail_every=arguments.mailFreq or 1,
            mail_server=_mail_server(arguments.mail_server) if arguments.mailTo else ('localhost', 25),
        )


def _nodes(items: list[str], environ: Mapping[str, str]) -> tuple[list[Node], str]:
    """The `-s` nodes, else DISBATCH_SSH_NODELIST's, else none: the Slurm allocation (the reference's order)."""
    if items:
        return parse_node_list(items, '-s'), '-s'
    if environ.get('DISBATCH_SSH_NODELIST'):
        return parse_node_list([environ['DISBATCH_SSH_NODELIST']], 'DISBATCH_SSH_NODELIST'), 'DISBATCH_SSH_NODELIST'
    if environ.get('SLURM_JOB_ID') or environ.get('SLURM_JOBID'):
        return [], 'Slurm'
    raise ContextError(
        'Cannot determine batch execution environment: give -s HOST:CORECOUNT (e.g. -s localhost:4), '
        'set DISBATCH_SSH_NODELIST, or run inside a Slurm allocation'
    )


def _mail_server(text: str) -> tuple[str, int]:
    from disbatch.notify.message import parse_server  # only runs that mail pay for the mail modules

    return parse_server(text)


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(':')
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f'--use-address {text!r}: expected HOST:PORT')
    return host, int(port)
