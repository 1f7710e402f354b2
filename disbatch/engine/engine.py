"""An engine: runs N slots of tasks on one node for the driver, and reports every result.

The engine is one event loop (epoll) over file descriptors: the driver socket, each task's stdout/stderr pipes and
pidfd, a signal wake-up pipe, and its stdin (a pipe from whatever launched it: its end means the driver is gone).
Heartbeats go both ways; a driver silent for SILENCE_SECONDS is taken for dead, and the engine stops its tasks.
A child's exit wakes the loop at once and its slot takes the next queued task in the same turn, so nothing on the
task path polls.

Results go back in batches, one ZeroMQ message per batch: at the end of the turn that produced them, or, while the
driver has queued enough short tasks here, once about half of that queue has been worked off (see `_flush`).

    STARTING ──(PERENGINE START tasks done)──▶ RUNNING ──(Drain, slots idle)──▶ STOPPING ──(STOP tasks done)──▶ DONE
        └──────────────(Abort, signal, driver gone)──────────▶ ABORTING ──(every task reaped)──────────────────▶ DONE
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import select
import shutil
import signal
import socket
import stat
import tempfile
import time
from collections import deque
from dataclasses import dataclass, replace

import zmq

from disbatch.engine.leftovers import Leftovers
from disbatch.engine.process import TaskProcess, spawn_failure
from disbatch.engine.shares import Resource, SlotShares
from disbatch.protocol import codec
from disbatch.protocol.messages import (
    HEARTBEAT_SECONDS,
    SILENCE_SECONDS,
    Abort,
    Drain,
    Goodbye,
    Heartbeat,
    Hello,
    Leftover,
    Message,
    Run,
    TaskDone,
    Welcome,
)
from disbatch.protocol.transport import Credentials, PeerLink
from disbatch.results.outputs import output_paths, per_engine_output_paths
from disbatch.results.record import Outcome

log = logging.getLogger('disbatch.engine')

PER_ENGINE_SLOT = -1
# Not passed on to tasks: the run's secret, and the variables that make every `bash -c` of an engine started over
# ssh behave like an interactive ssh session and read ~/.bashrc (Debian's bash does, for SSH_CLIENT/SSH2_CLIENT):
# a task is not an ssh session, and that read can cost 100 ms per task.
NOT_FOR_TASKS = frozenset({'DISBATCH_RUN_SECRET', 'SSH_CLIENT', 'SSH2_CLIENT'})
WELCOME_TIMEOUT_SECONDS = 30.0
KILL_GRACE_SECONDS = 1.0
# A result held back because the slots still have queued work (see `_flush`) goes out after this long at the most.
REPORT_DELAY_SECONDS = 0.05


class _TimedOut(enum.Enum):
    TIMED_OUT = 'timed out'


TIMED_OUT = _TimedOut.TIMED_OUT  # a slot's task was stopped for running too long (its group got SIGKILL)


class State(enum.Enum):
    STARTING = 'starting'
    RUNNING = 'running'
    STOPPING = 'stopping'
    ABORTING = 'aborting'
    DONE = 'done'


@dataclass(frozen=True, slots=True)
class Job:
    """What a slot runs: a task, or a per-engine task (phase START/STOP, repeat index -1)."""

    task_id: int
    line_number: int
    repeat_index: int
    command: str
    phase: str = ''
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class EngineSettings:
    driver_address: str
    credentials: Credentials
    slots: int
    cores_per_task: int
    context: str
    hostname: str
    launch_id: str = ''
    watch_stdin: bool = False  # stdin is a pipe from the driver's side (ssh, srun): its end means the driver is gone
    resources: tuple[Resource, ...] = ()  # GPUs, -E lists: each running task gets its own share (`slots` fits them)


class Engine:
    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self.state = State.STARTING
        self.rank = -1
        self._zmq = zmq.Context()
        self._link = PeerLink(self._zmq, settings.driver_address, settings.credentials)
        self._epoll = select.epoll()
        self._environment: dict[str, str] = {}
        self._queue: deque[Job] = deque()
        self._per_engine: deque[Job] = deque()
        self._stop_jobs: list[Job] = []
        self._free_slots = list(range(settings.slots - 1, -1, -1))
        self._shares = SlotShares(settings.resources)
        self._running: dict[int, tuple[TaskProcess, Job]] = {}  # slot -> task
        self._fd_slots: dict[int, int] = {}  # pipe or pidfd -> slot
        self._pidfds: set[int] = set()
        self._abort_deadline: float | None = None
        self._task_timeout = 0.0
        self._results_dir = ''  # --results: where each task's complete stdout and stderr go ('' for nowhere)
        self._timeouts: dict[int, float | _TimedOut] = {}  # slot -> when its task is to be stopped (--timeout)
        self._terminated: set[int] = set()  # slots whose task was sent SIGTERM for running too long
        self._interrupted: set[int] = set()  # slots whose task was stopped because the run is stopping (_abort)
        self._next_heartbeat = time.monotonic() + HEARTBEAT_SECONDS
        self._last_heard = time.monotonic()
        self._draining = False
        self._outbox: list[TaskDone | Leftover] = []  # results (and leftovers' news) not yet sent
        self._outbox_deadline = 0.0
        self._goodbye = 'finished'
        self._scratch = ''
        self._driver_gone = False
        self._stdin_watched = False  # --watch-stdin and stdin is a pipe (run() finds out)
        self._leftovers = Leftovers(KILL_GRACE_SECONDS)  # what tasks leave running: ended before the engine leaves

    # ------------------------------------------------------------ life cycle

    def run(self) -> int:
        """Join the run, do the work, leave. Returns the process exit code."""
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_write, False)
        previous = signal.set_wakeup_fd(wake_write)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, lambda *_: None)
        self._scratch = tempfile.mkdtemp(prefix='disbatch-engine-')
        self._stdin_watched = self.settings.watch_stdin and _is_pipe(0)
        if self.settings.watch_stdin and not self._stdin_watched:
            log.warning('stdin is not a pipe: the end of the driver will not be noticed through it')
        try:
            if not self._join():
                return 1
            # ZeroMQ's fd only says "look again": the socket itself is checked every turn (see _turn).
            self._epoll.register(self._link.fd, select.EPOLLIN)
            self._epoll.register(wake_read, select.EPOLLIN)
            if self._stdin_watched:
                self._epoll.register(0, select.EPOLLIN)
            self._step()
            while self.state is not State.DONE:
                self._turn(wake_read)
            self._leftovers.end_all()  # before Goodbye: the driver may end this process soon after it
            if not self._driver_gone:
                self._link.send(*self._outbox, Goodbye(self._goodbye))
                self._outbox.clear()
            return 0
        finally:
            self._kill_everything()
            self._leftovers.end_all(grace=0.0 if self._driver_gone else KILL_GRACE_SECONDS)
            signal.set_wakeup_fd(previous)
            os.close(wake_read)
            os.close(wake_write)
            if self._outbox and not self._driver_gone:  # results held back when something went wrong: try
                with contextlib.suppress(zmq.ZMQError):
                    self._link.send(*self._outbox)
            self._epoll.close()
            self._link.close(linger_ms=0 if self._driver_gone else 2000)
            self._zmq.term()
            shutil.rmtree(self._scratch, ignore_errors=True)

    def _join(self) -> bool:
        s = self.settings
        self._link.send(
            Hello(s.credentials.secret, s.hostname, os.getpid(), s.slots, s.cores_per_task, s.context, s.launch_id)
        )
        waiting = zmq.Poller()
        waiting.register(self._link.socket, zmq.POLLIN)
        if self._stdin_watched:
            waiting.register(0, zmq.POLLIN)  # its end: the launcher, so the driver, is gone
        ready = dict(waiting.poll(int(WELCOME_TIMEOUT_SECONDS * 1000)))
        if self._link.socket not in ready:
            if 0 in ready:
                log.error('the driver went away before it welcomed this engine')
            else:
                log.error('the driver at %s did not answer within %.0f s', s.driver_address, WELCOME_TIMEOUT_SECONDS)
            return False
        welcome, *more = self._link.receive()
        if isinstance(welcome, codec.CodecError):
            log.error('the driver answered with a malformed message: %s', welcome)
            return False
        if not isinstance(welcome, Welcome):
            log.error('the driver answered %s instead of welcome', type(welcome).__name__)
            return False
        self.rank = welcome.engine_rank
        os.chdir(welcome.cwd)
        self._environment = {key: value for key, value in os.environ.items() if key not in NOT_FOR_TASKS}
        self._environment.update(welcome.environment)
        self._environment['DISBATCH_ENGINE_RANK'] = str(self.rank)
        self._environment['DISBATCH_CORES_PER_TASK'] = str(s.cores_per_task)
        self._per_engine.extend(Job(i, line, -1, cmd, 'START') for i, line, cmd in welcome.start_tasks)
        self._stop_jobs = [Job(i, line, -1, cmd, 'STOP') for i, line, cmd in welcome.stop_tasks]
        self._task_timeout = welcome.timeout
        self._leftovers.kill_at_task_end = welcome.kill_leftovers
        self._results_dir = welcome.results_dir
        log.info('joined as engine %d with %d slots', self.rank, s.slots)
        for message in more:  # the first tasks may come in the same batch
            self._on_message(message)
        return True

    def _turn(self, wake_read: int) -> None:
        timeout = 0.0 if self._link.readable() else self._timeout_ms() / 1000
        for fd, _ in self._epoll.poll(timeout):
            if fd == wake_read:
                self._on_signal(wake_read)
            elif fd == 0 and self._stdin_watched:
                self._on_stdin()
            elif fd in self._fd_slots:
                self._on_task_fd(fd)
        if self._link.readable():
            self._receive_all()
        now = time.monotonic()
        self._run_timers(now)
        self._step()
        self._flush(now)

    def _timeout_ms(self) -> int:
        deadlines = [self._next_heartbeat, self._last_heard + SILENCE_SECONDS]
        if self._outbox:
            deadlines.append(self._outbox_deadline)
        if self._abort_deadline is not None:
            deadlines.append(self._abort_deadline)
        if (leftovers := self._leftovers.deadline()) is not None:
            deadlines.append(leftovers)
        deadlines.extend(deadline for deadline in self._timeouts.values() if isinstance(deadline, float))
        return max(0, int((min(deadlines) - time.monotonic()) * 1000) + 1)

    def _run_timers(self, now: float) -> None:
        if now >= self._next_heartbeat:
            self._link.send(Heartbeat())
            self._next_heartbeat = now + HEARTBEAT_SECONDS
        if now - self._last_heard > SILENCE_SECONDS and self.state is not State.DONE:
            log.error('nothing heard from the driver for %.0f s', now - self._last_heard)
            self._on_driver_gone()
        if self._abort_deadline is not None and now >= self._abort_deadline:
            for process, _ in self._running.values():
                process.signal_group(signal.SIGKILL)
            self._leftovers.signal_all(signal.SIGKILL)
            self._abort_deadline = now + 5.0
        if (leftovers := self._leftovers.deadline()) is not None and now >= leftovers:
            self._leftovers.on_timer(now)
        self._stop_overdue_tasks(now)

    def _stop_overdue_tasks(self, now: float) -> None:
        """--timeout: SIGTERM to the task's process group when its time is up, SIGKILL after KILL_GRACE_SECONDS."""
        for slot, deadline in list(self._timeouts.items()):
            if deadline is TIMED_OUT or now < deadline:
                continue
            process, job = self._running[slot]
            if slot in self._terminated:
                process.signal_group(signal.SIGKILL)
                self._timeouts[slot] = TIMED_OUT
            else:
                log.info('task %d ran past %.0f s: stopping it', job.task_id, self._task_timeout)
                process.signal_group(signal.SIGTERM)
                self._terminated.add(slot)
                self._timeouts[slot] = now + KILL_GRACE_SECONDS

    # ------------------------------------------------------------ events

    def _receive_all(self) -> None:
        self._last_heard = time.monotonic()
        while self._link.readable():
            for message in self._link.receive():
                self._on_message(message)

    def _on_message(self, message: Message | codec.CodecError) -> None:
        if isinstance(message, Run):
            if self.state in (State.STARTING, State.RUNNING):
                self._queue.append(
                    Job(
                        message.task_id, message.line_number, message.repeat_index, message.command,
                        attempt=message.attempt,
                    )
                )  # fmt: skip
        elif isinstance(message, Drain):
            self._draining = True
        elif isinstance(message, Abort):
            self._abort(f'driver: {message.reason}')
        elif isinstance(message, codec.CodecError):
            log.warning('dropped a malformed message from the driver: %s', message)
        elif not isinstance(message, Heartbeat):
            log.warning('unexpected %s from the driver', type(message).__name__)

    def _on_task_fd(self, fd: int) -> None:
        slot = self._fd_slots[fd]
        process, job = self._running[slot]
        if fd not in self._pidfds:
            if process.read(fd):  # its end: the task closed it (or exited)
                self._forget(fd)
                process.close(fd)
            return
        for pipe in process.open_fds:
            self._forget(pipe)
        self._forget(fd)
        self._timeouts.pop(slot, None)
        timed_out = slot in self._terminated
        self._terminated.discard(slot)
        outcome = process.reap()
        if timed_out and outcome.return_code == 0:
            # It caught SIGTERM and exited 0, but it did not finish in time: record the signal that stopped it.
            outcome = replace(outcome, return_code=-signal.SIGTERM)
        # Stopped by the abort: interrupted, unless it exited 0 (it finished, or says it did) or had timed out.
        interrupted = slot in self._interrupted and not timed_out and outcome.return_code != 0
        self._interrupted.discard(slot)
        self._report(job, outcome, timed_out, interrupted)
        left = self._leftovers.task_ended(process.pid, job.task_id, job.phase, time.monotonic())
        if left:
            self._outbox.append(Leftover(job.task_id, job.phase, left))
        del self._running[slot]
        if slot != PER_ENGINE_SLOT:
            self._shares.give_back(slot)
            self._free_slots.append(slot)

    def _on_signal(self, wake_read: int) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(wake_read, 64)
        self._abort('engine received a signal')

    def _on_stdin(self) -> None:
        try:
            data = os.read(0, 4096)
        except BlockingIOError:
            return
        if not data:
            self._epoll.unregister(0)
            self._on_driver_gone()

    def _on_driver_gone(self) -> None:
        log.error('the driver has exited; stopping every task')
        for process, _ in self._running.values():
            process.signal_group(signal.SIGKILL)
        self._leftovers.kill_all()
        self.state = State.DONE
        self._driver_gone = True

    def _abort(self, reason: str) -> None:
        if self.state in (State.ABORTING, State.DONE):
            return
        log.info('aborting: %s', reason)
        self.state = State.ABORTING
        self._goodbye = reason
        self._queue.clear()
        self._per_engine.clear()
        self._interrupted.update(self._running)
        for process, _ in self._running.values():
            process.signal_group(signal.SIGTERM)
        self._leftovers.signal_all(signal.SIGTERM)
        self._abort_deadline = time.monotonic() + KILL_GRACE_SECONDS

    # ------------------------------------------------------------ progress

    def _step(self) -> None:
        """Start whatever can start now, and move through the engine's states."""
        if self.state is State.STARTING:
            self._start_per_engine()
            if not self._per_engine and PER_ENGINE_SLOT not in self._running:
                self.state = State.RUNNING
        if self.state is State.RUNNING:
            while self._queue and self._free_slots:
                self._start(self._free_slots.pop(), self._queue.popleft())
            if self._draining and not self._queue and not self._running:
                self.state = State.STOPPING
                self._per_engine.extend(self._stop_jobs)
        if self.state is State.STOPPING:
            self._start_per_engine()
            if not self._per_engine and not self._running:
                self.state = State.DONE
        if self.state is State.ABORTING and not self._running:
            self.state = State.DONE

    def _start_per_engine(self) -> None:
        if self._per_engine and PER_ENGINE_SLOT not in self._running:
            self._start(PER_ENGINE_SLOT, self._per_engine.popleft())

    def _start(self, slot: int, job: Job) -> None:
        environment = dict(self._environment)
        environment.update(task_environment(job, slot))
        # A task gets its own share of the GPUs and -E lists; a per-engine task runs alone and sees all of them.
        environment.update(self._shares.everything() if slot == PER_ENGINE_SLOT else self._shares.take(slot))
        try:
            outputs = self._output_paths(job)
            process = TaskProcess.spawn(job.command, environment, self._scratch, self.settings.watch_stdin, outputs)
        except (OSError, ValueError) as error:  # ValueError: a NUL byte in the command or its environment
            log.error('cannot start task %d: %s', job.task_id, error)
            self._report(job, spawn_failure(error, time.time()))
            if slot != PER_ENGINE_SLOT:
                self._shares.give_back(slot)
                self._free_slots.append(slot)
            return
        self._running[slot] = (process, job)
        self._leftovers.track(process.pid, job.task_id)
        if self._task_timeout:
            self._timeouts[slot] = time.monotonic() + self._task_timeout
        for fd in (*process.open_fds, process.pidfd):
            self._fd_slots[fd] = slot
            self._epoll.register(fd, select.EPOLLIN)
        self._pidfds.add(process.pidfd)

    def _output_paths(self, job: Job) -> tuple[str, str] | None:
        """Where `--results` keeps the job's complete stdout and stderr (None without it)."""
        if not self._results_dir:
            return None
        if job.phase:
            return per_engine_output_paths(self._results_dir, job.line_number, self.rank)
        return output_paths(self._results_dir, job.task_id, job.attempt)

    def _forget(self, fd: int) -> None:
        del self._fd_slots[fd]
        self._pidfds.discard(fd)
        self._epoll.unregister(fd)

    def _flush(self, now: float) -> None:
        """Send the results gathered so far, in one batch.

        At once, unless the driver has queued short tasks here and more of that queue is left than results are
        waiting: then the slots have work for a while yet, and the driver hears of the first half of the queue in
        one message instead of a message a task (it answers with the next tasks in one message too).
        """
        if not self._outbox:
            return
        holding = self.state is State.RUNNING and not self._draining and len(self._outbox) < len(self._queue)
        if holding and now < self._outbox_deadline:
            return
        self._link.send(*self._outbox)
        self._outbox.clear()

    def _report(self, job: Job, outcome: Outcome, timed_out: bool = False, interrupted: bool = False) -> None:
        if not self._outbox:
            self._outbox_deadline = time.monotonic() + REPORT_DELAY_SECONDS
        self._outbox.append(
            TaskDone(job.task_id, job.phase, outcome, timed_out, interrupted, job.attempt if not job.phase else 0)
        )

    def _kill_everything(self) -> None:
        """Last line of defence on any exit path: no task of this engine outlives it."""
        for process, _ in self._running.values():
            process.signal_group(signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                process.reap()
        self._running.clear()


def _is_pipe(fd: int) -> bool:
    """A pipe or socket: its end can be waited for (a regular file or /dev/null is always 'readable')."""
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def task_environment(job: Job, slot: int) -> dict[str, str]:
    """The per-task DISBATCH_* variables (reference §3); `_ZP` forms are printf `%06d`."""
    return {
        'DISBATCH_CYLINDER_RANK': str(slot),
        'DISBATCH_REPEAT_INDEX': str(job.repeat_index),
        'DISBATCH_REPEAT_INDEX_ZP': f'{job.repeat_index:06d}',
        'DISBATCH_STREAM_INDEX': str(job.line_number),
        'DISBATCH_STREAM_INDEX_ZP': f'{job.line_number:06d}',
        'DISBATCH_TASKID': str(job.task_id),
        'DISBATCH_TASKID_ZP': f'{job.task_id:06d}',
        'DISBATCH_ATTEMPT': str(job.attempt),
    }


def short_hostname() -> str:
    return socket.gethostname().split('.')[0]
