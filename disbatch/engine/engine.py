"""An engine's I/O shell: runs N slots of tasks on one node for the driver, and reports every result.

The decisions are the core's (`core.py`: stages, queue, slots, timeouts, kill escalation, result batches); this
module turns file descriptors into its events and carries its actions out. It is one event loop (epoll) over the
driver socket, each task's stdout/stderr pipes and pidfd, a signal wake-up pipe, and its stdin (a pipe from whatever
launched it: its end means the driver is gone). A child's exit wakes the loop at once and its slot takes the next
queued task in the same turn, so nothing on the task path polls.

A turn: wait until a descriptor is ready or the core's next deadline; feed what happened (`TaskExited`, `Received`,
`Signalled`, `DriverGone`); then `Tick` (timers, starts) and `TurnEnded` (the results that are due).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass

import zmq

from disbatch.engine.core import KILL_GRACE_SECONDS, EngineCore, EngineStage, task_environment
from disbatch.engine.core_events import (
    Action,
    DriverGone,
    Job,
    Joined,
    KillLeftovers,
    Leaving,
    Log,
    Received,
    SendGoodbye,
    SendHeartbeat,
    SendResults,
    SignalGroup,
    Signalled,
    SignalLeftovers,
    Spawn,
    SpawnFailed,
    TaskExited,
    Tick,
    TurnEnded,
)
from disbatch.engine.launcher import Launcher, LauncherGone, launcher_program
from disbatch.engine.leftovers import Leftovers
from disbatch.engine.scratch import ScratchDirectory
from disbatch.engine.shares import Resource
from disbatch.engine.slot_shell import ForkedTask, SlotShell, SlotShellGone, can_fork
from disbatch.engine.task_process import TaskProcess, spawn_failure
from disbatch.protocol import codec
from disbatch.protocol.messages import (
    PROTOCOL_VERSION,
    Abort,
    Goodbye,
    Heartbeat,
    Hello,
    Leftover,
    TaskDone,
    Welcome,
    this_software,
)
from disbatch.protocol.transport import Credentials, PeerLink
from disbatch.results.outputs import output_paths, per_engine_output_paths

log = logging.getLogger('disbatch.engine')

# Not passed on to tasks: the run's secret, and the variables that make every `bash -c` of an engine started over
# ssh behave like an interactive ssh session and read ~/.bashrc (Debian's bash does, for SSH_CLIENT/SSH2_CLIENT):
# a task is not an ssh session, and that read can cost 100 ms per task.
NOT_FOR_TASKS = frozenset({'DISBATCH_RUN_SECRET', 'SSH_CLIENT', 'SSH2_CLIENT'})
WELCOME_TIMEOUT_SECONDS = 30.0


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


class EngineLoop:
    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self.core = EngineCore(settings.slots, settings.resources, time.monotonic())
        self.rank = -1
        self._zmq = zmq.Context()
        self._link = PeerLink(self._zmq, settings.driver_address, settings.credentials)
        self._epoll = select.epoll()
        self._environment: dict[str, str] = {}
        self._tasks: dict[int, tuple[TaskProcess, Job]] = {}  # slot -> task
        self._pipes: dict[int, int] = {}  # a task's stdout or stderr pipe -> its slot
        self._pidfds: dict[int, int] = {}  # a task's pidfd -> its slot
        self._results_dir = ''  # --results: where each task's complete stdout and stderr go ('' for nowhere)
        self._unsent: tuple[TaskDone | Leftover, ...] = ()  # results of a send that raised: tried again on the way out
        self._scratch = ScratchDirectory()  # made only for a command too long for the argument limit
        self._stdin_watched = False  # --watch-stdin and stdin is a pipe (run() finds out)
        self._leftovers = Leftovers(KILL_GRACE_SECONDS)  # what tasks leave running: ended before the engine leaves
        self._launcher_program: str | None = None  # the compiled task launcher (None: tasks are made here)
        self._launcher: Launcher | None = None
        self._fork_tasks = False  # --fork-tasks: a long-lived bash per slot forks each task (slot_shell.py)
        self._slot_shells: dict[int, SlotShell] = {}  # slot -> its shell, started with its first task

    # ------------------------------------------------------------ life cycle

    def run(self) -> int:
        """Join the run, do the work, leave. Returns the process exit code."""
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_write, False)
        previous = signal.set_wakeup_fd(wake_write)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, lambda *_: None)
        self._stdin_watched = self.settings.watch_stdin and _is_pipe(0)
        if self.settings.watch_stdin and not self._stdin_watched:
            log.warning('stdin is not a pipe: the end of the driver will not be noticed through it')
        try:
            self._launcher_program = launcher_program()  # built before joining when it is not yet: the driver waits
            joined = self._join()
            if joined is None:
                return 1
            # ZeroMQ's fd only says "look again": the socket itself is checked every turn (see _turn).
            self._epoll.register(self._link.fd, select.EPOLLIN)
            self._epoll.register(wake_read, select.EPOLLIN)
            if self._stdin_watched:
                self._epoll.register(0, select.EPOLLIN)
            self._carry_out(self.core.handle(joined))
            while self.core.stage is not EngineStage.DONE:
                self._turn(wake_read)
            self._close_slot_shells()  # their sessions' members are then their tasks' leftovers
            self._leftovers.end_all()  # before Goodbye: the driver may end this process soon after it
            self._carry_out(self.core.handle(Leaving(clean=True)))
            return 0
        finally:
            driver_gone = self.core.driver_gone
            self._kill_everything()
            self._close_slot_shells()
            self._leftovers.end_all(grace=0.0 if driver_gone else KILL_GRACE_SECONDS)
            signal.set_wakeup_fd(previous)
            os.close(wake_read)
            os.close(wake_write)
            left = self.core.handle(Leaving(clean=False))  # results held back when something went wrong: try
            unsent = self._unsent + (left[0].batch if left and isinstance(left[0], SendResults) else ())
            if unsent and not driver_gone:
                with contextlib.suppress(zmq.ZMQError):
                    self._link.send(*unsent)
            if self._launcher is not None:
                self._launcher.close()
            self._epoll.close()
            self._link.close(linger_ms=0 if driver_gone else 2000)
            self._zmq.term()
            self._scratch.remove()

    def _join(self) -> Joined | None:
        s = self.settings
        self._link.send(
            Hello(
                s.credentials.secret,
                PROTOCOL_VERSION,
                this_software(),
                s.hostname,
                os.getpid(),
                s.slots,
                s.cores_per_task,
                s.context,
                s.launch_id,
            )
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
            return None
        welcome, *more = self._link.receive()
        if isinstance(welcome, codec.CodecError):
            log.error('the driver answered with a malformed message: %s', welcome)
            return None
        if isinstance(welcome, Abort):
            log.error('the driver refused this engine: %s', welcome.reason)
            return None
        if not isinstance(welcome, Welcome):
            log.error('the driver answered %s instead of welcome', type(welcome).__name__)
            return None
        self.rank = welcome.engine_rank
        os.chdir(welcome.cwd)
        self._environment = {key: value for key, value in os.environ.items() if key not in NOT_FOR_TASKS}
        self._environment.update(welcome.environment)
        self._environment['DISBATCH_ENGINE_RANK'] = str(self.rank)
        self._environment['DISBATCH_CORES_PER_TASK'] = str(s.cores_per_task)
        self._leftovers.kill_at_task_end = welcome.kill_leftovers
        self._results_dir = welcome.results_dir
        self._fork_tasks = welcome.fork_tasks
        self._launcher = Launcher.start(self._launcher_program)  # here: its tasks run in the run's directory
        log.info('joined as engine %d with %d slots', self.rank, s.slots)
        return Joined(welcome, more, time.monotonic())  # the first tasks may come in the same batch

    def _turn(self, wake_read: int) -> None:
        timeout = 0.0 if self._link.readable() else self._timeout_ms() / 1000
        for fd, _ in self._epoll.poll(timeout):
            if (slot := self._pipes.get(fd)) is not None:
                self._on_pipe(fd, slot)
            elif (slot := self._pidfds.get(fd)) is not None:
                self._on_exit(fd, slot)
            elif fd == wake_read:
                self._on_signal(wake_read)
            elif fd == 0 and self._stdin_watched:
                self._on_stdin()
        if self._link.readable():
            self._receive_all()
        now = time.monotonic()
        if (leftovers := self._leftovers.deadline()) is not None and now >= leftovers:
            self._leftovers.on_timer(now)
        self._carry_out(self.core.handle(Tick(now)))
        self._carry_out(self.core.handle(TurnEnded(now)))

    def _timeout_ms(self) -> int:
        deadline = self.core.next_deadline()
        if (leftovers := self._leftovers.deadline()) is not None:
            deadline = min(deadline, leftovers)
        return max(0, int((deadline - time.monotonic()) * 1000) + 1)

    # ------------------------------------------------------------ events

    def _receive_all(self) -> None:
        now = time.monotonic()
        while self._link.readable():
            self._carry_out(self.core.handle(Received(self._link.receive(), now)))

    def _on_pipe(self, fd: int, slot: int) -> None:
        process = self._tasks[slot][0]
        if process.read(fd):  # its end: the task closed it (or exited)
            del self._pipes[fd]
            self._epoll.unregister(fd)
            process.close(fd)

    def _on_exit(self, fd: int, slot: int) -> None:
        process, job = self._tasks[slot]
        for pipe in process.open_fds:
            del self._pipes[pipe]
            self._epoll.unregister(pipe)
        del self._pidfds[fd]
        self._epoll.unregister(fd)
        outcome = process.reap()
        if isinstance(process, ForkedTask) and process.lost:
            log.warning(
                'the slot shell of slot %d died running task %d: the attempt is recorded lost', slot, job.task_id
            )
            self._close_slot_shell(slot, kill=True)
        now = time.monotonic()
        forked = isinstance(process, ForkedTask)
        left = self._leftovers.task_ended(process.pid, job.task_id, job.phase, now, group=forked)
        del self._tasks[slot]
        self._carry_out(self.core.handle(TaskExited(slot, outcome, tuple(left), now)))

    def _on_signal(self, wake_read: int) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(wake_read, 64)
        self._carry_out(self.core.handle(Signalled(time.monotonic())))

    def _on_stdin(self) -> None:
        try:
            data = os.read(0, 4096)
        except BlockingIOError:
            return
        if not data:
            self._epoll.unregister(0)
            self._carry_out(self.core.handle(DriverGone()))

    # ------------------------------------------------------------ actions

    def _carry_out(self, actions: list[Action]) -> None:
        """Do what the core asks, in order. A spawn that fails is told to the core at once; what it answers (the
        next starts) joins the end of this list."""
        for action in actions:
            if isinstance(action, Spawn):
                self._spawn(action, actions)
            elif isinstance(action, SendResults):
                self._send(action.batch)
            elif isinstance(action, SignalGroup):
                if (task := self._tasks.get(action.slot)) is not None:
                    task[0].signal_group(action.signum)
            elif isinstance(action, SendHeartbeat):
                self._link.send(Heartbeat())
            elif isinstance(action, SignalLeftovers):
                self._leftovers.signal_all(action.signum)
            elif isinstance(action, KillLeftovers):
                self._leftovers.kill_all()
            elif isinstance(action, SendGoodbye):
                self._send(action.batch, Goodbye(action.reason))
            elif isinstance(action, Log):
                log.log(action.level, '%s', action.text)

    def _spawn(self, action: Spawn, actions: list[Action]) -> None:
        slot, job = action.slot, action.job
        environment = dict(self._environment)
        environment.update(task_environment(job, slot))
        environment.update(action.shares)
        try:
            outputs = self._output_paths(job)
            process: TaskProcess | None = self._fork(slot, job, action.shares, outputs) if self._fork_tasks else None
            if process is None:
                process = self._start(job, environment, outputs)
        except (OSError, ValueError) as error:  # ValueError: a NUL byte in the command or its environment
            log.error('cannot start task %d: %s', job.task_id, error)
            failed = SpawnFailed(slot, spawn_failure(error, time.time()), time.monotonic())
            actions.extend(self.core.handle(failed))
            return
        self._tasks[slot] = (process, job)
        if not isinstance(process, ForkedTask):  # a forked task's session is its slot shell's (tracked in _fork)
            self._leftovers.track(process.pid, job.task_id)
        for fd in process.open_fds:
            self._pipes[fd] = slot
            self._epoll.register(fd, select.EPOLLIN)
        self._pidfds[process.pidfd] = slot
        self._epoll.register(process.pidfd, select.EPOLLIN)

    def _fork(
        self, slot: int, job: Job, shares: Mapping[str, str], outputs: tuple[str, str] | None
    ) -> ForkedTask | None:
        """--fork-tasks: fork the job in the slot's shell (started now when the slot has none). A shell that has
        exited (it started nothing) is replaced once; None when the job is not one to fork or the replacement failed
        too (the job is then executed as usual)."""
        variables = {**task_environment(job, slot), **shares}
        if not can_fork(job.command, job.phase, variables):
            return None
        for _ in range(2):
            shell = self._slot_shells.get(slot)
            try:
                if shell is None:
                    shell = self._slot_shells[slot] = SlotShell(self._environment, self.settings.watch_stdin)
                process = ForkedTask.fork(shell, job.command, variables, outputs)
            except SlotShellGone as gone:
                log.warning('%s; starting another', gone)
                self._close_slot_shell(slot)
                continue
            self._leftovers.track(shell.pid, job.task_id)  # its session: what the slot's tasks leave behind
            return process
        return None

    def _close_slot_shell(self, slot: int, kill: bool = False) -> None:
        if (shell := self._slot_shells.pop(slot, None)) is not None:
            shell.close(kill)

    def _close_slot_shells(self) -> None:
        for slot in list(self._slot_shells):
            self._close_slot_shell(slot)

    def _start(self, job: Job, environment: dict[str, str], outputs: tuple[str, str] | None) -> TaskProcess:
        """Start the job's process through the launcher. A launcher that has exited (it started nothing) is replaced
        once; when its replacement exits too, tasks are started here from then on."""
        for attempt in range(2):
            try:
                return TaskProcess.spawn(
                    job.command, environment, self._scratch, self.settings.watch_stdin, outputs, self._launcher
                )
            except LauncherGone as gone:
                if self._launcher is not None:
                    self._launcher.close()
                if attempt == 0:
                    log.warning('%s; starting another', gone)
                    self._launcher = Launcher.start(self._launcher_program)
                else:
                    log.warning('%s again: tasks are started by the engine from now on', gone)
                    self._launcher = None
        return TaskProcess.spawn(job.command, environment, self._scratch, self.settings.watch_stdin, outputs)

    def _send(self, batch: tuple[TaskDone | Leftover, ...], goodbye: Goodbye | None = None) -> None:
        self._unsent = batch
        if goodbye is None:
            self._link.send(*batch)
        else:
            self._link.send(*batch, goodbye)
        self._unsent = ()

    def _output_paths(self, job: Job) -> tuple[str, str] | None:
        """Where `--results` keeps the job's complete stdout and stderr (None without it)."""
        if not self._results_dir:
            return None
        if job.phase:
            return per_engine_output_paths(self._results_dir, job.line_number, self.rank)
        return output_paths(self._results_dir, job.task_id, job.attempt)

    def _kill_everything(self) -> None:
        """Last line of defence on any exit path: no task of this engine outlives it."""
        for process, _ in self._tasks.values():
            process.signal_group(signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                process.reap()
        self._tasks.clear()


def _is_pipe(fd: int) -> bool:
    """A pipe or socket: its end can be waited for (a regular file or /dev/null is always 'readable')."""
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def short_hostname() -> str:
    return socket.gethostname().split('.')[0]
