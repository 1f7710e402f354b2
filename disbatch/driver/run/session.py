"""A run in progress: the KVS, the task source, the status file, the observers and the driver loop.

`run.py` has already checked the flags, named the files, bound the engine endpoint and launched the engines; the
session builds everything else around the scheduler and runs the loop to the end.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

from disbatch.config import RunConfig
from disbatch.contexts.nodes import NodeContext
from disbatch.contexts.slurm import slurm_end, slurm_job, submit_follow_up
from disbatch.contract import RunFiles
from disbatch.driver.core.events import ContextJoined
from disbatch.driver.core.scheduler import Scheduler, SchedulerConfig
from disbatch.driver.core.walltime import EXIT_WALLTIME, Allocation, clock
from disbatch.driver.observers.journal import Journal
from disbatch.driver.observers.progress import ProgressLine, wanted
from disbatch.driver.observers.publisher import RunObserver
from disbatch.driver.run import files as run_files
from disbatch.driver.run.address import ANY, LOOPBACK
from disbatch.driver.run.allocation import find_allocation, follow_up_script
from disbatch.driver.run.loop import DriverLoop
from disbatch.driver.run.settings import DriverSettings
from disbatch.driver.stream.feeder import Feeder
from disbatch.driver.stream.kvs_source import KVSTaskSource, ResultPoster
from disbatch.driver.stream.source import FileSource
from disbatch.errors import ContextError, ListenError, OutputPathError, OutsideKVSError, RunFileError
from disbatch.kvsstcp.client import TOKEN_VARIABLES
from disbatch.kvsstcp.outside import KVSStore, OutsideKVS
from disbatch.kvsstcp.server import KVSServer
from disbatch.privacy import write_file
from disbatch.protocol.transport import Credentials, DriverEndpoint
from disbatch.results.failures import rerun_command
from disbatch.results.resume import ResumeIndex
from disbatch.results.status_file import StatusFileWriter

log = logging.getLogger('disbatch.driver')


class Session:
    def __init__(
        self,
        config: RunConfig,
        files: RunFiles,
        tasks_name: str,
        contexts: list[NodeContext],
        endpoint: DriverEndpoint,
        address: str,
        credentials: Credentials,
        total: int | None,
        warn: Callable[[str], None],
    ) -> None:
        self.config = config
        self.files = files
        self.tasks_name = tasks_name
        self.contexts = contexts
        self.endpoint = endpoint
        self.address = address
        self.credentials = credentials
        self.total = total
        self.warn = warn
        self.bind_host = endpoint.address.rpartition(':')[0]
        outside_token = next((os.environ[name] for name in TOKEN_VARIABLES if os.environ.get(name)), '')
        self.kvs_token = outside_token if config.kvs_server else secrets.token_urlsafe(24)

    def serve(self, file_source: FileSource | None, source_name: str, resume: ResumeIndex | None, kvs_port: int) -> int:
        config = self.config
        with self._kvs_server(kvs_port) as kvs:
            if isinstance(kvs, OutsideKVS):
                kvs_address = f'{kvs.address[0]}:{kvs.address[1]}'
            else:
                kvs_address = f'{self.address.rpartition(":")[0]}:{kvs.address[1]}'
            source = file_source or self._kvs_source(kvs, kvs_address)
            feeder = Feeder(source, source_name, resume, config.retry_failed, config.force_resume, self.warn)
            try:
                feeder.take_per_engine_tasks()
                return self._serve(feeder, kvs, kvs_address, resume)
            finally:
                if isinstance(source, KVSTaskSource):
                    source.close()

    def _kvs_server(self, port: int) -> KVSServer | OutsideKVS:
        """The run's own KVS server, or the outside one it was given (which it never shuts down)."""
        if self.config.kvs_server:
            try:
                return OutsideKVS(self.config.kvs_server, self.kvs_token.encode() or None)
            except OSError as error:
                raise OutsideKVSError(
                    f'the outside KVS server {self.config.kvs_server}: {error.strerror or error} '
                    '(is it running, and is its token in $KVSSTCP_TOKEN or $DISBATCH_KVSSTCP_TOKEN?)'
                ) from None
        try:
            return KVSServer(self.bind_host, port, token=self.kvs_token.encode())
        except OSError as error:
            origin = '--use-address ' if self.config.use_address else 'the KVS server: '
            reason = os.strerror(error.errno) if error.errno else str(error)
            raise ListenError(f'{origin}{self.bind_host}:{port}: cannot listen there: {reason}') from None

    def _kvs_source(self, kvs: KVSStore, kvs_address: str) -> KVSTaskSource:
        """Tasks from the KVS task-source protocol: a --taskcommand producer, or any client (--taskserver)."""
        config, kvs_token = self.config, self.kvs_token
        if config.address_fd is not None:
            _tell_owner(config.address_fd, f'{kvs_address} {kvs_token}\n')
        lost = (lambda: kvs.lost) if isinstance(kvs, OutsideKVS) else (lambda: None)
        if config.taskcommand is None:
            source = KVSTaskSource(kvs, lost=lost)
            if config.address_fd is None:
                print(
                    f'disbatch: waiting for a task source on the KVS at {kvs_address} (token: see the dbUtil script)',
                    file=sys.stderr,
                )
            return source
        host, _, port = kvs_address.rpartition(':')
        producer = subprocess.Popen(
            ['/bin/bash', '-c', config.taskcommand],
            stdin=subprocess.DEVNULL,
            env=dict(os.environ, KVSSTCP_HOST=host, KVSSTCP_PORT=port, KVSSTCP_TOKEN=kvs_token),
            start_new_session=True,
        )
        log.info('task command (pid %d): %s', producer.pid, config.taskcommand)
        return KVSTaskSource(kvs, producer, lost)

    def _serve(self, feeder: Feeder, kvs: KVSStore, kvs_address: str, resume: ResumeIndex | None) -> int:
        config, files, credentials, kvs_token = self.config, self.files, self.credentials, self.kvs_token
        # The records of earlier runs first, so this file alone accounts for every task done before, from now on.
        carried = None if resume is None else resume.carried(config.retry_failed)
        with StatusFileWriter.open(files.status, config.status_header, carried=carried) as status:
            if resume is not None:
                log.info('%d records carried over from %s', status.carried, ', '.join(config.resume_from))
            if feeder.empty:
                run_files.write_dbutil(files, kvs_address, kvs_token, '', credentials)
                print('No tasks to run.', file=sys.stderr)
                return 0
            hostname = socket.gethostname()
            allocation = self._allocation()
            scheduler = Scheduler(
                SchedulerConfig(
                    driver_host=hostname,
                    driver_pid=os.getpid(),
                    fail_fast=config.fail_fast,
                    exit_code_on_failure=config.exit_code_on_failure,
                    wait_for_contexts=config.startup_only,
                    add_context_hint=f'{files.dbutil} -s HOST:N, or sbatch {files.dbutil}',
                    retries=config.retries,
                    allocation=allocation,
                    per_engine_tasks=(*feeder.start_tasks, *feeder.stop_tasks),
                )
            )
            for context in self.contexts:
                scheduler.handle(ContextJoined(context.label, config.context_task_limit))
            settings = DriverSettings(
                bind_host=self.bind_host,
                cwd=os.getcwd(),
                credentials=credentials,
                task_environment={
                    'DISBATCH_JOBID': files.job_id,
                    'DISBATCH_NAMETASKS': self.tasks_name,
                    'DISBATCH_KVSSTCP_HOST': kvs_address,
                    'DISBATCH_KVSSTCP_TOKEN': kvs_token,
                },
                engine_log=files.engine_log('{context}', '{host}'),
                cpus_per_task=config.cpus_per_task or 0.0,
                tasks_per_node=config.tasks_per_node or 0,
                gpus_per_task=config.gpus_per_task,
                env_resources=config.env_resources,
                task_timeout=config.timeout,
                kill_leftovers=config.kill_leftovers,
                fork_tasks=config.fork_tasks,
                expected_total=self.total,
                results_dir=run_files.results_directory(config.results_dir),
                allocation_end=slurm_end if allocation is not None and allocation.origin != '--walltime' else None,
                owner_pid=config.owner_pid,
            )
            progress = ProgressLine(
                sys.stderr,
                files.status,
                wanted(sys.stderr, config.progress, config.quiet),
                expected_total=self.total,
                plain_every=config.progress_every,
                exit_code_flag=config.exit_code_on_failure,
                rerun=self._rerun_command if config.taskfile is not None else None,
            )
            progress.start(self._start_line())
            observers: list[RunObserver] = [progress]
            if isinstance(feeder.source, KVSTaskSource):
                observers.append(ResultPoster(kvs, feeder.source))
            if config.web:
                observers.append(_web_page(self.bind_host, files))
            if config.mail_to:
                from disbatch.notify.mail import MailNotifier  # smtplib, ssl, email: only for runs that mail

                host, port = config.mail_server
                observers.append(
                    MailNotifier(config.mail_to, config.mail_every, files.job_id, files.status, host, port)
                )
            journal = self._journal(settings.results_dir)
            loop = DriverLoop(
                settings,
                scheduler,
                feeder,
                list(self.contexts),
                self.endpoint,
                status,
                kvs,
                observers,
                _report,
                journal,
                lambda exit_code: self._at_the_end(scheduler, exit_code),
            )
            run_files.write_dbutil(files, kvs_address, kvs_token, self.address, credentials)
            if config.startup_only:
                print(
                    f'disbatch: waiting for engines: add them with {files.dbutil} -s HOST:N, or sbatch {files.dbutil}',
                    file=sys.stderr,
                )
            with _kvs_info(files.kvsinfo, kvs_address), contextlib.redirect_stderr(progress.guarded_stream()):
                exit_code = loop.run()
            counts = scheduler.counts
            if journal is not None:
                journal.close(exit_code, counts)
                if journal.failure is not None and exit_code == 0:
                    exit_code = 1  # the events file the run promised is incomplete (told when it happened)
            log.info(
                'run over: %d finished, %d failed, %d interrupted, %d skipped, %d barriers, %d lost; exit code %d',
                *(counts.finished, counts.failed, counts.interrupted, counts.skipped, counts.barriers, counts.lost),
                exit_code,
            )
            if config.exit_code_on_failure and counts.failed and exit_code == 1:
                _report('Some tasks failed with non-zero exit codes -- please check the logs')
            return exit_code

    def _journal(self, results_dir: str) -> Journal | None:
        """`--json`: the events file, opened with its first line written (None without the flag)."""
        path = self.config.json_file
        if path is None:
            return None
        named = path != 'auto'
        path = os.path.abspath(self.files.events if path == 'auto' else path)
        try:
            journal = Journal.open(path, results_dir, named=named)
        except RunFileError as error:
            raise OutputPathError(f'--json {error}') from None
        from disbatch import __version__

        journal.start(
            run=self.files.job_id,
            disbatch_version=__version__,
            tasks=self.tasks_name,
            status_file=self.files.status,
            expected_total=self.total,
            host=socket.gethostname(),
            pid=os.getpid(),
            cwd=os.getcwd(),
            argv=tuple(sys.argv),
            results_dir=results_dir or None,
        )
        if journal.failure is not None:  # not even its first line: the run does not start
            raise OutputPathError(f'{journal.failure}; nothing was started')
        return journal

    def _allocation(self) -> Allocation | None:
        allocation = find_allocation(self.config.walltime, self.config.drain_margin, os.environ, time.time())
        if allocation is not None:
            log.info(
                'the allocation ends at %s (%s); drain margin %.0f s',
                clock(allocation.end),
                allocation.origin,
                allocation.margin,
            )
        return allocation

    def _at_the_end(self, scheduler: Scheduler, exit_code: int) -> tuple[int, str | None]:
        """A run stopped for the end of its allocation: say what is left, and submit the follow-up job (--resubmit).
        The exit code, and the follow-up job once submitted."""
        if exit_code != EXIT_WALLTIME or scheduler.drain is None:
            return exit_code, None
        counts = scheduler.counts
        done = counts.finished + counts.skipped  # interrupted tasks are counted apart: they are left
        left = f'{self.total - done} task(s)' if self.total is not None else 'the remaining tasks'
        job = slurm_job(os.environ)
        if self.config.resubmit > 0 and job is not None:
            script = follow_up_script(
                sys.argv[1:],
                self.config.taskfile,
                self.config.resume_from,
                os.getcwd(),
                self.files.status,
                self.config.resubmit - 1,
            )
            try:
                follow_up = submit_follow_up(os.environ, job, self.files.resubmit, script)
            except ContextError as error:
                _report(str(error))
            else:
                _report(
                    f'{left} left: follow-up job {follow_up} ({self.files.resubmit}) resumes '
                    f'the run after job {job} (--resubmit: {self.config.resubmit - 1} more after it)'
                )
                return 0, follow_up
        elif self.config.resubmit > 0:
            _report('--resubmit: not in a Slurm job, so no follow-up job is submitted')
        _report(
            f'{left} left for the end of the allocation (exit code {EXIT_WALLTIME}): resume with '
            f'{self._rerun_command(False)}'
        )
        return exit_code, None

    def _rerun_command(self, retry_failed: bool) -> str:
        """This run's command line resuming from its own status file, which alone accounts for every task done
        by this run or an earlier one (`ResumeIndex.carried`); with -R when `retry_failed`."""
        config = self.config
        return rerun_command(sys.argv[1:], config.taskfile, self.files.status, retry_failed, config.resume_from)

    def _start_line(self) -> str:
        """What a batch log says first: the run, its tasks, where its engines are to start, its status file."""
        tasks = 'tasks from a task stream' if self.total is None else f'{self.total} tasks from {self.tasks_name}'
        plans = [f'{plan.host}:{plan.slots}' for context in self.contexts for plan in context.plans]
        labels = ', '.join(context.label for context in self.contexts)
        engines = f'engines on {", ".join(plans)} ({labels})' if plans else 'no engines yet (add them with dbUtil.sh)'
        return f'disbatch: run {self.files.job_id} started: {tasks}, {engines}; status file {self.files.status}'


def _web_page(bind_host: str, files: RunFiles) -> RunObserver:
    """The live status page (--web), on the run's own interface; its URL (which holds its access token) is shown
    to the user and written to `<stem>_url`, never to the log."""
    from disbatch.web import WebStatus

    web = WebStatus(LOOPBACK if bind_host == ANY else bind_host, files.url)
    try:
        url = web.start()
    except OSError as error:
        raise ContextError(f'--web: cannot serve the status page: {error.strerror or error}') from None
    address = url.rsplit('/', 2)[0]
    print(
        f'disbatch: live status page on {address}; open the URL in {files.url} (it holds the access token)',
        file=sys.stderr,
    )
    return web


def _tell_owner(descriptor: int, line: str) -> None:
    """Write the KVS address and token down the pipe the DisBatcher that started this run reads, and close it (the
    token never touches a file). A DisBatcher that has gone is no error: the run then stops for its owner's end."""
    try:
        with os.fdopen(descriptor, 'w') as pipe:
            pipe.write(line)
    except OSError as error:
        log.warning('could not tell the DisBatcher where the KVS is: %s', error.strerror or error)


@contextlib.contextmanager
def _kvs_info(path: str, address: str) -> Iterator[None]:
    """`<stem>_kvsinfo.txt` holds the KVS address while the run is alive, and only then."""
    write_file(path, address + '\n')
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _report(message: str) -> None:
    log.warning('%s', message)
    print(f'disbatch: {message}', file=sys.stderr, flush=True)
