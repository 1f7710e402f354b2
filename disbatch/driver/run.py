"""One run, set up and torn down: files, log, KVS, feeder, contexts, then the driver loop.

Everything that can be checked is checked before anything starts: the task file's directives, the `-r` files,
the `-p` directory, the node list. Each failure is a DisbatchError with a one-line message.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator

from disbatch.config import RunConfig
from disbatch.contexts.base import duplicate_hosts
from disbatch.contexts.nodes import NodeContext
from disbatch.contexts.slurm import DEFAULT_RETIRE, slurm_context, slurm_job_id
from disbatch.contexts.ssh import ssh_context
from disbatch.driver import files as run_files
from disbatch.driver.address import ANY, LOOPBACK, advertised, listen_address
from disbatch.driver.feeder import Feeder, open_task_file, validate
from disbatch.driver.loop import DriverLoop, DriverSettings, print_error
from disbatch.driver.observe import RunObserver
from disbatch.driver.progress import ProgressLine, wanted
from disbatch.driver.scheduler import ContextJoined, Scheduler, SchedulerConfig
from disbatch.driver.source import FileSource, KVSTaskSource, ResultPoster
from disbatch.errors import ContextError
from disbatch.kvsstcp.server import KVSServer
from disbatch.protocol.transport import Credentials
from disbatch.results.resume import ResumeIndex
from disbatch.results.status_file import StatusFileWriter

log = logging.getLogger('disbatch.driver')

LOG_FORMAT = '%(asctime)s %(levelname)-8s %(name)-15s: %(message)s'


def run(config: RunConfig) -> int:
    if config.taskfile is None:
        return _prepare(config, 'STREAM', None)
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
    """Check what can be checked, then name the run's files and open its log."""
    resume = ResumeIndex.load(config.resume_from) if config.resume_from else None
    files = run_files.choose_stem(config.prefix, tasks_name)
    with _logging(config.logfile or files.driver_log, config.loglevel):
        log.info('run %s: %s', files.job_id, ' '.join(sys.argv))
        for host in duplicate_hosts([f'{node.host}:{node.cores}' for node in config.nodes]):
            _warn(f'{config.node_origin}: host {host} is listed more than once; its core counts are added up')
        contexts = [] if config.startup_only else [_context(config, files)]
        if config.use_address:
            bind_host, kvs_port = config.use_address
        elif config.startup_only:
            bind_host, kvs_port = ANY, 0  # engines may come from any host later; the run secret keeps strangers out
        else:
            bind_host, kvs_port = listen_address([plan.host for plan in contexts[0].plans], _warn), 0
        kvs_token = secrets.token_urlsafe(24)
        with KVSServer(bind_host, kvs_port, token=kvs_token.encode()) as kvs:
            kvs_address = f'{advertised(bind_host)}:{kvs.address[1]}'
            source = file_source or _kvs_source(config, kvs, kvs_address, kvs_token)
            feeder = Feeder(source, source_name, resume, config.retry_failed, config.force_resume, _warn)
            try:
                feeder.take_per_engine_tasks()
                return _serve(config, files, feeder, tasks_name, contexts, kvs, kvs_token, bind_host, total)
            finally:
                if isinstance(source, KVSTaskSource):
                    source.close()


def _kvs_source(config: RunConfig, kvs: KVSServer, kvs_address: str, kvs_token: str) -> KVSTaskSource:
    """Tasks from the KVS task-source protocol: a --taskcommand producer, or any client (--taskserver)."""
    if config.address_file:
        _write_private(config.address_file, f'{kvs_address}\n{kvs_token}\n')
    if config.taskcommand is None:
        source = KVSTaskSource(kvs)
        if not config.address_file:
            print(f'disbatch: waiting for a task source on the KVS at {kvs_address} (token: see the dbUtil script)',
                  file=sys.stderr)  # fmt: skip
        return source
    host, _, port = kvs_address.rpartition(':')
    producer = subprocess.Popen(
        ['/bin/bash', '-c', config.taskcommand], stdin=subprocess.DEVNULL,
        env=dict(os.environ, KVSSTCP_HOST=host, KVSSTCP_PORT=port, KVSSTCP_TOKEN=kvs_token), start_new_session=True,
    )  # fmt: skip
    log.info('task command (pid %d): %s', producer.pid, config.taskcommand)
    return KVSTaskSource(kvs, producer)


def _serve(
    config: RunConfig,
    files: run_files.RunFiles,
    feeder: Feeder,
    tasks_name: str,
    contexts: list[NodeContext],
    kvs: KVSServer,
    kvs_token: str,
    bind_host: str,
    total: int | None,
) -> int:
    credentials = Credentials.create()
    kvs_address = f'{advertised(bind_host)}:{kvs.address[1]}'
    with StatusFileWriter.open(files.status, config.status_header) as status:
        if feeder.empty:
            run_files.write_dbutil(files, kvs_address, kvs_token, '', credentials)
            print('No tasks to run.', file=sys.stderr)
            return 0
        hostname = socket.gethostname()
        scheduler = Scheduler(
            SchedulerConfig(
                driver_host=hostname,
                driver_pid=os.getpid(),
                fail_fast=config.fail_fast,
                exit_code_on_failure=config.exit_code_on_failure,
                wait_for_contexts=config.startup_only,
                retries=config.retries,
            )
        )
        for context in contexts:
            scheduler.handle(ContextJoined(context.label, config.context_task_limit))
        settings = DriverSettings(
            bind_host=bind_host,
            cwd=os.getcwd(),
            credentials=credentials,
            task_environment={
                'DISBATCH_JOBID': files.job_id,
                'DISBATCH_NAMETASKS': tasks_name,
                'DISBATCH_KVSSTCP_HOST': kvs_address,
                'DISBATCH_KVSSTCP_TOKEN': kvs_token,
            },
            engine_log=files.engine_log('{context}', '{host}'),
            cpus_per_task=config.cpus_per_task or 0.0,
            tasks_per_node=config.tasks_per_node or 0,
            task_timeout=config.timeout,
        )
        progress = ProgressLine(
            sys.stderr, files.status, wanted(sys.stderr, config.progress, config.quiet), expected_total=total
        )
        observers: list[RunObserver] = [progress]
        if isinstance(feeder.source, KVSTaskSource):
            observers.append(ResultPoster(kvs, feeder.source))
        if config.web:
            observers.append(_web_page(bind_host, files))
        if config.mail_to:
            from disbatch.notify.mail import MailNotifier  # smtplib, ssl, email: only for runs that mail

            host, port = config.mail_server
            observers.append(MailNotifier(config.mail_to, config.mail_every, files.job_id, files.status, host, port))
        loop = DriverLoop(settings, scheduler, feeder, list(contexts), status, kvs, observers, report=_report)
        run_files.write_dbutil(files, kvs_address, kvs_token, loop.address, credentials)
        if config.startup_only:
            print(f'disbatch: waiting for engines: add them with {files.dbutil} -s HOST:N, or sbatch {files.dbutil}',
                  file=sys.stderr)  # fmt: skip
        with _kvs_info(files.kvsinfo, kvs_address), contextlib.redirect_stderr(progress.guarded_stream()):
            exit_code = loop.run()
        counts = scheduler.counts
        log.info('run over: %d finished, %d failed, %d skipped, %d barriers, %d lost; exit code %d',
                 counts.finished, counts.failed, counts.skipped, counts.barriers, counts.lost, exit_code)  # fmt: skip
        if config.exit_code_on_failure and counts.failed and exit_code == 1:
            print_error('Some tasks failed with non-zero exit codes -- please check the logs')
        return exit_code


def _web_page(bind_host: str, files: run_files.RunFiles) -> RunObserver:
    """The live status page (--web), on the run's own interface; its URL (which holds its access token) is shown
    to the user and written to `<stem>_url`, never to the log."""
    from disbatch.web import WebStatus

    web = WebStatus(LOOPBACK if bind_host == ANY else bind_host, files.url)
    try:
        url = web.start()
    except OSError as error:
        raise ContextError(f'--web: cannot serve the status page: {error.strerror or error}') from None
    address = url.rsplit('/', 2)[0]
    print(f'disbatch: live status page on {address}; open the URL in {files.url} (it holds the access token)',
          file=sys.stderr)  # fmt: skip
    return web


def _write_private(path: str, text: str) -> None:
    """Write a file only the user can read, all at once (readers never see half of it)."""
    partial = f'{path}.partial'
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, 'w') as handle:
        handle.write(text)
    os.replace(partial, path)


def _context(config: RunConfig, files: run_files.RunFiles) -> NodeContext:
    """The context the driver starts itself: the `-s` nodes, or the Slurm allocation it runs in."""
    retire = None if config.retire_command == '' else config.retire_command
    if config.slurm:
        label = config.label or f'J{slurm_job_id(os.environ)}'
        context, warnings = slurm_context(
            os.environ, label, config.cpus_per_task, config.tasks_per_node, config.fill,
            DEFAULT_RETIRE if retire is None else retire, files.context_log(label),
        )  # fmt: skip
        for warning in warnings:
            _warn(warning)
    else:
        label = config.label or 'SSH0'
        context = ssh_context(
            label, list(config.nodes), config.cpus_per_task or 1.0, config.tasks_per_node, retire,
            files.context_log(label),
        )  # fmt: skip
    log.info('context %s: %s', context.label, ', '.join(f'{p.host}:{p.slots}' for p in context.plans))
    return context


@contextlib.contextmanager
def _kvs_info(path: str, address: str) -> Iterator[None]:
    """`<stem>_kvsinfo.txt` holds the KVS address while the run is alive, and only then."""
    with open(path, 'w') as handle:
        handle.write(address + '\n')
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


@contextlib.contextmanager
def _logging(path: str, level: str) -> Iterator[None]:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger = logging.getLogger('disbatch')
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


def _warn(message: str) -> None:
    log.warning('%s', message)
    print_error(f'warning: {message}')


def _report(message: str) -> None:
    log.warning('%s', message)
    print_error(message)
