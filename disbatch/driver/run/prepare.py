"""One run, from the flags to the engines: checks, files, log, contexts, the engine endpoint; `session` does the rest.

Everything that can be checked is checked before anything starts: the task file's directives, the `-r` files,
the `-p` directory, the node list. Each failure is a DisbatchError with a one-line message. The engines are launched
right after these checks, before the driver even imports ZeroMQ, binds its endpoint or imports its heavier half
(the session): they start up while it does, then read on their stdin where to connect. So a short run does not wait
for two Python start-ups one after the other. (Should the bind fail, the engines see their stdin end and exit, and
the run reports why.)
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from disbatch.config import RunConfig
from disbatch.contexts.base import duplicate_hosts
from disbatch.contexts.batch import batch_context, job_id
from disbatch.contexts.nodes import EngineResources, NodeContext
from disbatch.contexts.ssh import ssh_context
from disbatch.contract import RunFiles
from disbatch.contract.launch_line import LaunchLine
from disbatch.driver.run import files as run_files
from disbatch.driver.run.address import ANY, advertised, listen_address
from disbatch.driver.stream.scan import open_task_file, validate
from disbatch.driver.stream.source import FileSource
from disbatch.errors import ListenError, OutputLostError, OutputPathError, RunFileError, StatusFileError
from disbatch.privacy import LogFile, check_run_files

if TYPE_CHECKING:
    from disbatch.protocol.transport import Credentials, DriverEndpoint
    from disbatch.results.resume import ResumeIndex

log = logging.getLogger('disbatch.driver')

LOG_FORMAT = '%(asctime)s %(levelname)-8s %(name)-15s: %(message)s'


def run(config: RunConfig) -> int:
    if config.taskfile is None:
        return _prepare(config, (config.tasks_name or 'STREAM').replace('/', '_'), None)
    handle, name = open_task_file(config.taskfile)
    with handle if config.taskfile != '-' else contextlib.nullcontext(handle):
        total = validate(config.taskfile)
        tasks_name = 'stdin' if config.taskfile == '-' else os.path.basename(config.taskfile)
        return _prepare(config, tasks_name, FileSource(handle), name, total)


def _prepare(
    config: RunConfig,
    tasks_name: str,
    file_source: FileSource | None,
    source_name: str = 'STREAM',
    total: int | None = None,
) -> int:
    """Check what can be checked, name the run's files, open its log, start its engines, then serve the run."""
    resume = _load_resume(config.resume_from) if config.resume_from else None
    files = run_files.choose_stem(config.prefix, tasks_name)
    check_run_files(files)  # before anything is written: a planted file at a run file's name stops the run here
    flag = f'--logfile {config.logfile}' if config.logfile else f'-p {config.prefix}'
    log_path = config.logfile or files.driver_log
    with _logging(log_path, config.loglevel, flag, named=config.logfile is not None) as handler:
        log.info('run %s: %s', files.job_id, ' '.join(sys.argv))
        if handler.failure is not None:
            raise OutputLostError(f'{flag}: {handler.failure}; nothing was started')
        handler.tell_failure = True
        exit_code = _start(config, files, tasks_name, file_source, source_name, total, resume)
        return 1 if handler.failure is not None and exit_code == 0 else exit_code


def _start(
    config: RunConfig,
    files: RunFiles,
    tasks_name: str,
    file_source: FileSource | None,
    source_name: str,
    total: int | None,
    resume: ResumeIndex | None,
) -> int:
    """Start the engines and the endpoint, then serve the run."""
    for host in duplicate_hosts([f'{node.host}:{node.cores}' for node in config.nodes]):
        _warn(f'{config.node_origin}: host {host} is listed more than once; its core counts are added up')
    contexts: list[NodeContext] = []
    try:
        # The engines start now, so their start-up overlaps the rest of ours (binding, the session's imports);
        # they wait for the first line of their stdin, which says where to connect. A file with no task needs none.
        launched: list[NodeContext] = []
        with _run_file_errors(config.prefix, files):
            contexts += [] if config.startup_only else [_context(config, files)]
            launched = contexts if total != 0 else []
            for context in launched:
                context.launch(files.job_id, files.engine_log('{context}', '{host}'))
        # Imported only now (ZeroMQ is the slowest import of the driver's first half): the engines start sooner.
        from disbatch.protocol.transport import Credentials

        if config.use_address:
            bind_host, kvs_port = config.use_address
        elif config.startup_only:
            bind_host, kvs_port = ANY, 0  # engines may come from any host later; the run secret keeps strangers out
        else:
            bind_host, kvs_port = listen_address([plan.host for plan in contexts[0].plans], _warn), 0
        credentials = Credentials.create()
        with _endpoint(bind_host, credentials, config.use_address is not None) as endpoint:
            address = f'{advertised(bind_host)}:{endpoint.address.rpartition(":")[2]}'
            for context in launched:
                context.admit(LaunchLine(credentials.secret, credentials.server_key, address))
            from disbatch.driver.run.session import Session

            session = Session(config, files, tasks_name, contexts, endpoint, address, credentials, total, _warn)
            return session.serve(file_source, source_name, resume, kvs_port)
    finally:
        for context in contexts:
            context.terminate()


@contextlib.contextmanager
def _run_file_errors(prefix: str, files: RunFiles) -> Iterator[None]:
    """An OSError on one of the run's own files (a context or engine log: `-p /proc/` with `--logfile` elsewhere)
    as one line naming `-p`."""
    try:
        yield
    except RunFileError as error:  # its message begins with the file's path (disbatch/privacy.py)
        if not str(error).startswith(files.stem):
            raise
        raise RunFileError(f'-p {prefix}: {error}') from None
    except OSError as error:
        if not str(error.filename or '').startswith(files.stem):
            raise
        raise OutputPathError(f'-p {prefix}: cannot write {error.filename}: {error.strerror or error}') from None


def _endpoint(host: str, credentials: Credentials, asked: bool) -> DriverEndpoint:
    """The engine endpoint on `host` (any free port); ListenError names --use-address when the user chose it."""
    import zmq

    from disbatch.protocol.transport import DriverEndpoint

    try:
        return DriverEndpoint(host, credentials)
    except zmq.ZMQError as error:
        raise ListenError(f'{"--use-address " if asked else ""}{host}: cannot listen there: {error}') from None


def _load_resume(paths: tuple[str, ...]) -> ResumeIndex:
    """The `-r` files' index; a file that is not a status file is named with the flag (`-r PATH:LINE: why`)."""
    from disbatch.results.resume import ResumeIndex

    try:
        return ResumeIndex.load(paths)
    except StatusFileError as error:
        raise StatusFileError(f'-r {error.path}', error.line_number, error.message) from None


def _context(config: RunConfig, files: RunFiles) -> NodeContext:
    """The context the driver starts itself: the `-s` nodes, or the batch system's job it runs in."""
    resources = EngineResources(config.gpus_per_task, config.env_resources)
    if config.batch_system != 'ssh':
        label = config.label or f'J{job_id(config.batch_system, os.environ)}'
        context, warnings = batch_context(
            config.batch_system,
            os.environ,
            label,
            config.cpus_per_task,
            config.tasks_per_node,
            config.fill,
            config.retire_command,
            files.context_log(label),
            resources,
            config.launch,
        )
        for warning in warnings:
            _warn(warning)
    else:
        retire = None if config.retire_command == '' else config.retire_command
        label = config.label or 'SSH0'
        context = ssh_context(
            label,
            list(config.nodes),
            config.cpus_per_task or 1.0,
            config.tasks_per_node,
            retire,
            files.context_log(label),
            resources,
            config.launch,
        )
    log.info('context %s: %s', context.label, ', '.join(f'{p.host}:{p.slots}' for p in context.plans))
    return context


@contextlib.contextmanager
def _logging(path: str, level: str, flag: str, *, named: bool) -> Iterator[LogFile]:
    """The run's log (`--logfile`, named by the user, or the driver log); OutputPathError or RunFileError naming
    `flag` (the `--logfile` or `-p` that put it there) when it cannot be made (a missing directory, /proc/, a planted
    file). Its first line is told apart, so a log that cannot be written at all stops the run before it starts."""
    try:
        handler = LogFile(path, named=named)
    except RunFileError as error:
        raise RunFileError(f'{flag}: {error}') from None
    except OSError as error:
        raise OutputPathError(f'{flag}: cannot write the log file {path}: {error.strerror or error}') from None
    handler.tell_failure = False
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger = logging.getLogger('disbatch')
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        handler.close()


def _warn(message: str) -> None:
    log.warning('%s', message)
    print(f'disbatch: warning: {message}', file=sys.stderr, flush=True)
