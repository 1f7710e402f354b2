"""Engine launcher processes: the only place contexts spawn and kill processes.

Whatever starts an engine — the engine itself on this machine, `ssh HOST`, `srun -w NODE` — is a child process
of the context with a pipe on its stdin. The context writes the run's credentials and the driver's address down the
pipe as the first line (so the secret never appears on a command line or in a remote environment; and the engine can
start up while the driver is still binding) and keeps the pipe open: when the context's
process ends, for any reason, the engine sees end of file and stops its tasks. A pidfd per launcher tells the
context at once when one exits.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from collections import deque
from dataclasses import dataclass

from disbatch.privacy import create_private
from disbatch.protocol.messages import SUPERVISOR_NAME


@dataclass(frozen=True, slots=True)
class EngineExited:
    launch_id: str
    host: str
    exit_code: int
    log_tail: str  # the last line of the launcher's log, for messages


@dataclass(slots=True)
class _Launcher:
    launch_id: str
    host: str
    process: subprocess.Popen[bytes]
    pidfd: int
    log_path: str


class EngineProcesses:
    """The launcher processes of one context, keyed by their pidfds."""

    def __init__(self) -> None:
        self._launchers: dict[int, _Launcher] = {}
        self._admission = b''  # the first line of every engine's stdin, once known

    def start(self, launch_id: str, host: str, command: list[str], log_path: str) -> None:
        create_private(log_path)
        with open(log_path, 'ab') as log:
            process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=log, stderr=log, start_new_session=True)
        pidfd = os.pidfd_open(process.pid)
        launcher = _Launcher(launch_id, host, process, pidfd, log_path)
        self._launchers[pidfd] = launcher
        if self._admission:
            _write(launcher, self._admission)

    def admit(self, line: str) -> None:
        """Write `line` (credentials and the driver's address) to every engine started, and to those started later."""
        self._admission = line.encode() + b'\n'
        for launcher in self._launchers.values():
            _write(launcher, self._admission)

    @property
    def fds(self) -> list[int]:
        return list(self._launchers)

    @property
    def running(self) -> int:
        return len(self._launchers)

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
        exit_code = launcher.process.wait()
        if launcher.process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                launcher.process.stdin.close()
        return EngineExited(launcher.launch_id, launcher.host, exit_code, _last_line(launcher.log_path))

    def terminate(self, grace: float = 0.5) -> None:
        """Stop every launcher still running: close its stdin (the engine stops its tasks and exits), then, after
        `grace` seconds, kill what is left."""
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
