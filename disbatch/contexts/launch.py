"""Engine launcher processes: the only place contexts spawn and kill processes.

Whatever starts an engine — the engine itself on this machine, `ssh HOST`, `srun -w NODE` — is a child process
of the context with a pipe on its stdin. The context writes the run's credentials and the driver's address down the
pipe as the first line (so the secret never appears on a command line or in a remote environment; and the engine can
start up while the driver is still binding) and keeps the pipe open: when the context's
process ends, for any reason, the engine sees end of file and stops its tasks. A pidfd per launcher tells the
context at once when one exits.

Launchers start a window at a time (`LaunchLimits.at_once`, 32 by default): a launch holds its place in the window
until its engine joins the run, its launcher exits, or its join deadline passes (`connect_timeout` and a margin for
the engine's start-up), so two hundred ssh handshakes do not hit this machine at once, and a host that never answers
holds one place for a while without delaying the others. Whoever sees engines join says so (`joined`): the driver
does; a context process, which does not see them, frees a place after `UNSEEN_JOIN_HOLD_SECONDS`. An engine that
has not joined by its deadline is handed out once by `overdue`, for the driver to report.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import select
import signal
import subprocess
import time
from collections import deque
from dataclasses import dataclass

from disbatch.privacy import open_append
from disbatch.protocol.messages import SUPERVISOR_NAME

log = logging.getLogger('disbatch.context')

# Launchers in flight at once, by default: enough to start a hundred hosts in a few seconds, few enough that their
# ssh handshakes (key exchange, authentication: CPU on this machine) and their engines' hellos do not all come at once.
DEFAULT_AT_ONCE = 32
# How long ssh may take to connect to a host (its ConnectTimeout), by default.
DEFAULT_CONNECT_TIMEOUT_SECONDS = 30.0
# After the connection, the engine's start-up on its node (an interpreter, its imports, the hello): an engine that has
# not joined this long after its connect timeout is reported.
JOIN_MARGIN_SECONDS = 15.0
# A context process does not see its engines join (they join the driver): it frees a launch's place after this long.
UNSEEN_JOIN_HOLD_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class LaunchLimits:
    """How a context starts its engines: at most `at_once` launchers in flight (None: all at once, as `srun` steps
    are); ssh gives up connecting after `connect_timeout` seconds, and an engine that has not joined
    `connect_timeout` + JOIN_MARGIN_SECONDS after its launch is reported. `joins_seen` is False in a context
    process, which does not see its engines join (they join the driver)."""

    at_once: int | None = DEFAULT_AT_ONCE
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_SECONDS
    joins_seen: bool = True

    @property
    def join_seconds(self) -> float:
        return self.connect_timeout + JOIN_MARGIN_SECONDS

    @property
    def ssh_connect_timeout(self) -> int:
        """ssh's ConnectTimeout takes whole seconds."""
        return max(1, math.ceil(self.connect_timeout))


DEFAULT_LAUNCH = LaunchLimits()


@dataclass(frozen=True, slots=True)
class EngineExited:
    launch_id: str
    host: str
    exit_code: int
    log_tail: str  # the last line of the launcher's log, for messages


@dataclass(frozen=True, slots=True)
class LateEngine:
    """An engine whose launcher still runs but which has not joined by its deadline."""

    launch_id: str
    host: str
    seconds: float  # since its launch
    log_tail: str  # the last line of the launcher's log, '' if none


@dataclass(frozen=True, slots=True)
class _Waiting:
    launch_id: str
    host: str
    command: list[str]
    log_path: str


@dataclass(slots=True)
class _Launcher:
    launch_id: str
    host: str
    process: subprocess.Popen[bytes]
    pidfd: int
    log_path: str
    started: float  # time.time()


class EngineProcesses:
    """The launcher processes of one context, keyed by their pidfds, and those waiting for a place in the window."""

    def __init__(self, limits: LaunchLimits | None = None) -> None:
        self.limits = limits or LaunchLimits()
        self._hold_seconds = self.limits.join_seconds if self.limits.joins_seen else UNSEEN_JOIN_HOLD_SECONDS
        self._launchers: dict[int, _Launcher] = {}
        self._admission = b''  # the first line of every engine's stdin, once known
        self._waiting: deque[_Waiting] = deque()
        self._in_flight: dict[str, float] = {}  # launch id -> when its place in the window frees at the latest
        self._unjoined: dict[str, float] = {}  # launch id -> its join deadline (time.time()), until joined or exited
        self._new_fds: list[int] = []
        self._started = 0

    def start(self, launch_id: str, host: str, command: list[str], log_path: str) -> None:
        """Start this launcher as soon as the window has a place for it (now, if it has)."""
        self._waiting.append(_Waiting(launch_id, host, command, log_path))
        self._start_waiting()

    def _start_waiting(self) -> None:
        at_once = self.limits.at_once
        while self._waiting and (at_once is None or len(self._in_flight) < at_once):
            waiting = self._waiting.popleft()
            self._spawn(waiting.launch_id, waiting.host, waiting.command, waiting.log_path)
        if self._waiting and at_once is not None:
            log.debug('%d engine(s) wait for a place among the %d launching', len(self._waiting), at_once)

    def _spawn(self, launch_id: str, host: str, command: list[str], log_path: str) -> None:
        self._started += 1
        at_once = '' if self.limits.at_once is None else f' of at most {self.limits.at_once}'
        in_flight = len(self._in_flight) + 1
        log.info(
            'starting the engine of %s (launch %d, %d in flight%s): %s',
            host,
            self._started,
            in_flight,
            at_once,
            ' '.join(command),
        )
        now = time.time()
        self._in_flight[launch_id] = now + self._hold_seconds
        if self.limits.joins_seen:  # else nobody would say it joined, nor ask for the late ones
            self._unjoined[launch_id] = now + self.limits.join_seconds
        with os.fdopen(open_append(log_path), 'ab') as output:
            process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=output, stderr=output, start_new_session=True
            )
        pidfd = os.pidfd_open(process.pid)
        launcher = _Launcher(launch_id, host, process, pidfd, log_path, now)
        self._launchers[pidfd] = launcher
        self._new_fds.append(pidfd)
        if self._admission:
            _write(launcher, self._admission)

    def joined(self, launch_id: str) -> None:
        """The engine `launch_id` joined the run: its place in the window goes to the next launch."""
        self._unjoined.pop(launch_id, None)
        if self._in_flight.pop(launch_id, None) is not None:
            self._start_waiting()

    def deadline(self) -> float | None:
        """When `on_timer` has something to do (a place to free, an engine overdue), time.time() clock."""
        times = list(self._unjoined.values())
        if self._waiting:
            times.extend(self._in_flight.values())
        return min(times, default=None)

    def on_timer(self, now: float) -> None:
        """Free the places of launches past their hold, and start what waits for them."""
        for launch_id, until in list(self._in_flight.items()):
            if until <= now:
                del self._in_flight[launch_id]
        self._start_waiting()

    def overdue(self, now: float) -> list[LateEngine]:
        """Each engine whose launcher still runs but which has not joined by its deadline, handed out once."""
        late = [launch_id for launch_id, deadline in self._unjoined.items() if deadline <= now]
        for launch_id in late:
            del self._unjoined[launch_id]
        running = {launcher.launch_id: launcher for launcher in self._launchers.values() if launcher.launch_id in late}
        return [
            LateEngine(launch_id, launcher.host, now - launcher.started, _last_line(launcher.log_path))
            for launch_id, launcher in running.items()
        ]

    def admit(self, line: str) -> None:
        """Write `line` (credentials and the driver's address) to every engine started, and to those started later."""
        self._admission = line.encode() + b'\n'
        for launcher in self._launchers.values():
            _write(launcher, self._admission)

    def new_fds(self) -> list[int]:
        """The pidfds of the launchers started since the last call, each once."""
        fds, self._new_fds = self._new_fds, []
        return fds

    @property
    def running(self) -> int:
        return len(self._launchers)

    @property
    def waiting(self) -> int:
        """Launches that wait for a place in the window."""
        return len(self._waiting)

    def still_running(self) -> list[tuple[str, str, str]]:
        """(launch id, host, last line of its log) of every launcher that has not exited."""
        return [
            (launcher.launch_id, launcher.host, _last_line(launcher.log_path)) for launcher in self._launchers.values()
        ]

    def end(self, launch_id: str) -> int | None:
        """Stop the launcher `launch_id` whose engine was given up for lost; its pidfd then reports the exit as for
        any other. Returns its pid, None if it is not running.

        A launcher that is an engine's supervisor (a local engine) gets SIGTERM: it stops its engine (SIGKILL if need
        be) and ends the engine's tasks before it exits, which SIGKILL would leave running. Any other (`ssh`, `srun`,
        whose engine's supervisor is on the node) is killed with its whole process group."""
        for launcher in self._launchers.values():
            if launcher.launch_id == launch_id:
                signum = signal.SIGTERM if _is_supervisor(launcher.process.pid) else signal.SIGKILL
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(launcher.process.pid, signum)
                return launcher.process.pid
        return None

    def on_ready(self, fd: int) -> EngineExited | None:
        launcher = self._launchers.pop(fd, None)
        if launcher is None:
            return None
        os.close(fd)
        self._unjoined.pop(launcher.launch_id, None)
        if self._in_flight.pop(launcher.launch_id, None) is not None:
            self._start_waiting()
        exit_code = launcher.process.wait()
        if launcher.process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                launcher.process.stdin.close()
        return EngineExited(launcher.launch_id, launcher.host, exit_code, _last_line(launcher.log_path))

    def terminate(self, grace: float = 0.5) -> None:
        """Stop every launcher still running: close its stdin (the engine stops its tasks and exits), then, after
        `grace` seconds, kill what is left. What waits for a place in the window never starts."""
        self._waiting.clear()
        for launcher in self._launchers.values():
            if launcher.process.stdin is not None:
                with contextlib.suppress(BrokenPipeError):
                    launcher.process.stdin.close()
        exits = select.poll()
        for pidfd in self._launchers:
            exits.register(pidfd, select.POLLIN)
        waiting = set(self._launchers)
        deadline = time.monotonic() + grace
        while waiting and (left := deadline - time.monotonic()) > 0:
            for pidfd, _ in exits.poll(left * 1000):
                exits.unregister(pidfd)
                waiting.discard(pidfd)
        for launcher in self._launchers.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(launcher.process.pid, signal.SIGKILL)


def _write(launcher: _Launcher, line: bytes) -> None:
    assert launcher.process.stdin is not None
    try:
        launcher.process.stdin.write(line)
        launcher.process.stdin.flush()
    except BrokenPipeError:
        pass  # the launcher died at once; its pidfd reports it


def _is_supervisor(pid: int) -> bool:
    """Whether process `pid` is an engine's supervisor (`engine/supervisor.py` names itself so once it has forked)."""
    try:
        with open(f'/proc/{pid}/comm', 'rb') as handle:
            return handle.read().strip() == SUPERVISOR_NAME
    except OSError:
        return False


def _last_line(path: str) -> str:
    try:
        with open(path, 'rb') as handle:
            handle.seek(max(0, os.path.getsize(path) - 4096))
            lines = deque((line.strip() for line in handle if line.strip()), maxlen=1)
    except OSError:
        return ''
    return lines[0].decode('utf-8', 'replace') if lines else ''
