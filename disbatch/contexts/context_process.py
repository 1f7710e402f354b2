"""A context process: adds engines to a live run. `<stem>_dbUtil.sh [context flags]` runs it.

    ./Tasks_disBatch_…_dbUtil.sh -s node2:4,node3:4     # SSH hosts (or this machine: -s localhost:2)
    sbatch -n 8 Tasks_disBatch_…_dbUtil.sh               # the nodes of a Slurm allocation
    qsub -pe disbatch 4 Tasks_disBatch_…_dbUtil.sh       # … of a Grid Engine job (PBS, LSF: qsub, bsub)

It announces itself to the driver (which gives it a unique label and the run's -c/-t for flags left unset),
starts one engine per node, retires nodes as their engines finish, and exits when its last engine has.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import time

import zmq

from disbatch.contexts.base import is_loopback, is_this_machine, parse_node_list
from disbatch.contexts.batch import batch_context, detect, job_id, read_allocation
from disbatch.contexts.flags import (
    add_context_arguments,
    check_resource_arguments,
    deprecation_warnings,
    launch_limits,
)
from disbatch.contexts.nodes import EngineResources, NodeContext
from disbatch.contexts.slurm import allocation_hosts
from disbatch.contexts.ssh import ssh_context
from disbatch.contract import NAMED_IN_MESSAGES, RunFiles
from disbatch.contract.launch_line import LaunchLine
from disbatch.errors import ContextError, DisbatchError, UsageError
from disbatch.privacy import LogFile
from disbatch.protocol import codec
from disbatch.protocol.messages import (
    PROTOCOL_VERSION,
    Abort,
    ContextGoodbye,
    ContextHello,
    ContextWelcome,
    this_software,
)
from disbatch.protocol.transport import Credentials, PeerLink

log = logging.getLogger('disbatch.context')

WELCOME_TIMEOUT_SECONDS = 10.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=os.path.basename(os.environ.get('DISBATCH_DBUTIL', 'dbUtil.sh')),
        description='Add engines to the live disbatch run this script belongs to: on SSH hosts (-s), or on the '
        'nodes of the batch job it runs in (sbatch -n N / qsub -pe PE N / bsub -n N THIS_SCRIPT). '
        'Also: --mon (the monitor), --engine (internal).',
    )
    add_context_arguments(parser, default_hint="the run's")
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    for warning in deprecation_warnings(arguments):
        print(f'disbatch: warning: {warning}', file=sys.stderr)
    stem = os.environ.get('DISBATCH_RUN_STEM', '')
    credentials = Credentials(os.environ.pop('DISBATCH_RUN_SECRET', ''), os.environ.pop('DISBATCH_RUN_KEY', ''))
    driver = os.environ.get('DISBATCH_DRIVER_ADDRESS', '')
    if not (stem and credentials.secret and credentials.server_key and driver):
        print(f'disbatch: run this through the {NAMED_IN_MESSAGES.dbutil} script of a run', file=sys.stderr)
        return 2
    if not os.path.exists(RunFiles(stem).kvsinfo):
        print(f'disbatch: the run {os.path.basename(stem)} is over: nothing to add engines to', file=sys.stderr)
        return 1
    try:
        check_resource_arguments(arguments)
        launch_limits(arguments)
        _check_reachable(driver, _kind(arguments), arguments)
        return _run(arguments, stem, credentials, driver)
    except DisbatchError as error:
        print(f'disbatch: {error}', file=sys.stderr)
        return 2 if isinstance(error, UsageError) else 1


def _run(arguments: argparse.Namespace, stem: str, credentials: Credentials, driver: str) -> int:
    kind = _kind(arguments)
    context_zmq = zmq.Context()
    link = PeerLink(context_zmq, driver, credentials)
    try:
        link.send(
            ContextHello(
                credentials.secret,
                PROTOCOL_VERSION,
                this_software(),
                arguments.label or '',
                (kind or 'ssh').upper(),
                job_id(kind or '', os.environ),
                arguments.context_task_limit,
            )
        )
        if not link.socket.poll(int(WELCOME_TIMEOUT_SECONDS * 1000)):
            print(
                f'disbatch: the driver of {os.path.basename(stem)} does not answer: the run is over?', file=sys.stderr
            )
            return 1
        welcome = link.receive()[0]
        if isinstance(welcome, codec.CodecError):
            print(f'disbatch: unreadable answer from the driver: {welcome}', file=sys.stderr)
            return 1
        if isinstance(welcome, Abort):
            print(f'disbatch: the driver refused this context: {welcome.reason}', file=sys.stderr)
            return 1
        if not isinstance(welcome, ContextWelcome):
            print(f'disbatch: unexpected answer from the driver: {welcome.TAG}', file=sys.stderr)
            return 1
        _log_to(RunFiles(stem).context_log(welcome.label))
        context = _build(arguments, welcome, stem, kind)
        context.launch(os.path.basename(stem), RunFiles(stem).engine_log_pattern)
        context.admit(LaunchLine(credentials.secret, credentials.server_key, driver))
        print(
            f'disbatch: context {welcome.label}: engines on {", ".join(f"{p.host}:{p.slots}" for p in context.plans)}',
            file=sys.stderr,
        )
        _wait(context)
        link.send(ContextGoodbye(welcome.label))
        return 0
    finally:
        link.close(linger_ms=1000)
        context_zmq.term()


def _check_reachable(driver: str, kind: str | None, arguments: argparse.Namespace) -> None:
    """A run started with engines on its own machine only listens on the loopback address: engines on other hosts
    (or this script, on another host) cannot reach it. Say so at once, and how to start a run they can join."""
    if not is_loopback(driver):
        return
    driver_host = os.environ.get('DISBATCH_DRIVER_HOST', '')
    if driver_host and not is_this_machine(driver_host):
        where = f'this script runs on {socket.gethostname()}, not on {driver_host} where the run is'
    else:
        elsewhere = [host for host in _hosts(kind, arguments) if not is_this_machine(host)]
        if not elsewhere:
            return
        named = ', '.join(elsewhere[:3]) + (f' and {len(elsewhere) - 3} more' if len(elsewhere) > 3 else '')
        where = f'engines on {named} cannot reach it'
    raise ContextError(
        f'the run listens on {driver} only (it was started with engines on its own machine only): {where}. '
        'Start a run that engines on other hosts can join with --use-address 0.0.0.0:0 (every interface, any port; '
        'or HOST:0 with an address of this machine they reach), or with its hosts in -s, or with -S and every '
        f'engine added through {NAMED_IN_MESSAGES.dbutil}'
    )


def _hosts(kind: str | None, arguments: argparse.Namespace) -> list[str]:
    """The hosts this context would start engines on, before anything is asked of the driver."""
    if kind is None:
        items = arguments.ssh_node or [os.environ.get('DISBATCH_SSH_NODELIST', '')]
        return [node.host for node in parse_node_list([item for item in items if item], '-s')]
    if kind == 'slurm':
        return allocation_hosts(os.environ)
    return [host for host, _ in read_allocation(kind, os.environ)]


def _kind(arguments: argparse.Namespace) -> str | None:
    """The batch system whose job this context takes its nodes from; None: the -s / DISBATCH_SSH_NODELIST hosts."""
    if arguments.ssh_node or os.environ.get('DISBATCH_SSH_NODELIST'):
        return None
    if arguments.batch_system is not None:
        return None if arguments.batch_system == 'none' else str(arguments.batch_system)
    return detect(os.environ)


def _build(arguments: argparse.Namespace, welcome: ContextWelcome, stem: str, kind: str | None) -> NodeContext:
    cpus = arguments.cpusPerTask if arguments.cpusPerTask is not None else (welcome.cpus_per_task or None)
    tasks = arguments.tasksPerNode if arguments.tasksPerNode is not None else (welcome.tasks_per_node or None)
    retire = '' if arguments.no_retire else arguments.retire_cmd
    resources = _resources(arguments, welcome)
    log_path = RunFiles(stem).context_log(welcome.label)
    limits = launch_limits(arguments, joins_seen=False)  # its engines join the driver, unseen here
    if kind is not None:
        context, warnings = batch_context(
            kind, os.environ, welcome.label, cpus, tasks, arguments.fill, retire, log_path, resources, limits
        )
        for warning in warnings:
            print(f'disbatch: warning: {warning}', file=sys.stderr)
        return context
    items = arguments.ssh_node or [os.environ.get('DISBATCH_SSH_NODELIST', '')]
    nodes = parse_node_list([item for item in items if item], '-s')
    return ssh_context(welcome.label, nodes, cpus or 1.0, tasks, retire or None, log_path, resources, limits)


def _resources(arguments: argparse.Namespace, welcome: ContextWelcome) -> EngineResources:
    """--gpus-per-task and -E as given to this context, else as given to the driver (the reference's rule for -E)."""
    gpus = arguments.gpus_per_task if arguments.gpus_per_task is not None else welcome.gpus_per_task
    if arguments.env_resource is not None:
        variables = tuple(arguments.env_resource)
    else:
        variables = tuple(name for name in welcome.env_resources.split(',') if name)
    return EngineResources(gpus, variables)


def _wait(context: NodeContext) -> None:
    """Until every engine of the context has exited: watch their launchers, run retirements on time."""
    poller = zmq.Poller()
    while not context.finished:
        for fd in context.new_fds():  # engines start a window at a time: some start while this waits
            poller.register(fd, zmq.POLLIN)
        deadline = context.deadline()
        timeout = None if deadline is None else max(0, int((deadline - time.time()) * 1000) + 1)
        for fd, _ in poller.poll(timeout):
            if isinstance(fd, int):
                poller.unregister(fd)
                exited = context.on_ready(fd, time.time())
                if exited is not None and exited.exit_code != 0:
                    print(
                        f'disbatch: the engine on {exited.host} exited with {exited.exit_code}: {exited.log_tail}',
                        file=sys.stderr,
                    )
        context.on_timer(time.time())
    context.terminate()


def _log_to(path: str) -> None:
    handler = LogFile(path)
    handler.setFormatter(logging.Formatter('%(asctime)s %(levelname)-8s %(name)-15s: %(message)s'))
    logger = logging.getLogger('disbatch')
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
