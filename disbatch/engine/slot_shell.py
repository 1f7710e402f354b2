"""Forked tasks (`--fork-tasks`): each slot of an engine is a long-lived bash that forks a subshell per task.

Executing `/bin/bash -c COMMAND` for every task costs an exec and bash's start-up each time; a bash that is already
running forks a subshell in a fraction of that. A slot shell is started once per slot (its own session, SIGPIPE and
SIGXFSZ at their default, the engine's environment for tasks) and runs `LOOP`, with job control on so that each
task's subshell leads a process group of its own (timeouts, the abort and the leftover sweep signal that group).

A request is one short line on the slot shell's fd 3, `OUT ERR SCRIPT`: three of the engine's own descriptors,
opened by the slot shell as `/proc/<engine>/fd/N` — the task's stdout and stderr pipes, and a memfd holding the
task's script (the unset of the loop's own variables, the task's `DISBATCH_*` and device variables, then the
command). Only that line is read byte by byte (bash's `read` on a pipe); the script is a file, which `.` reads
whole. The replies, on fd 4: `S PID` (a fixed width, so the engine reads no further) once the subshell is forked,
then `E STATUS` and the two lines of `times` once it has exited (not merely stopped: bash 5.2's `wait -f` may answer
a stop once, so the slot shell waits until the process is gone, then asks `wait` for the status it kept). The
engine diffs the children's CPU times of consecutive tasks.

What differs from a task that bash executes (listed in the Readme): `$$` is the slot shell's pid (`$PPID` is the
engine's, as in the default mode); a task that dies of a signal reads 128+N (the engine records minus the signal for
the signals it sent itself); peak memory is unknown; CPU has the resolution of `times`. A slot shell that dies (a
task killed it) loses its task: the task's process group is killed and the attempt recorded lost; the slot gets a
new shell.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import time

from disbatch.engine.task_process import BASH, DEFAULT_SIGNALS, TaskProcess, open_outputs
from disbatch.results.record import LOST_RETURN_CODE, NO_PID, Outcome, ResourceUsage

REQUEST_FD, REPLY_FD = 3, 4
# `S PID` has a fixed width, read exactly: the task's end, which may follow at once, stays in the pipe for epoll.
START_REPLY_BYTES = len('S 0123456789\n')
HIGH_FD = 100
# Longer commands are executed as usual (a slot shell would hold each in its memory once more; the gain is nil).
FORK_COMMAND_BYTES = 2048
_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_]*\Z')
_LOOP_VARIABLES = '_dbo _dbe _dbs _dbp'
# %(engine)s: the engine's pid. 5, 6 and 7 are opened in the slot shell, so the engine may close its ends at `S`.
LOOP = r"""set -m
while read -r -u 3 _dbo _dbe _dbs; do
  if exec 5>/proc/%(engine)s/fd/$_dbo 6>/proc/%(engine)s/fd/$_dbe 7</proc/%(engine)s/fd/$_dbs; then
    ( exec 3<&- 4>&- 1>&5 2>&6 5>&- 6>&-; set +m; . /dev/fd/7 ) &
    _dbp=$!
    exec 5>&- 6>&- 7<&-
    printf 'S %%10d\n' $_dbp >&4
    wait -f $_dbp
    while kill -0 $_dbp; do wait -f $_dbp; done
    wait $_dbp
    echo "E $?" >&4
    times >&4
  else
    exec 5>&- 6>&- 7<&-
    printf 'S %%10d\n' 0 >&4
  fi
done
"""


class SlotShellGone(Exception):
    """The slot shell exited (or answered nonsense): the slot gets another, or the task is executed as usual."""


def can_fork(command: str, phase: str, task_variables: dict[str, str]) -> bool:
    """Whether a task may be forked by a slot shell: not a per-engine task, a short command, plain names."""
    return (
        not phase
        and len(command.encode('utf-8', 'surrogateescape')) <= FORK_COMMAND_BYTES
        and '\0' not in command
        and all(_NAME.match(name) and '\0' not in value for name, value in task_variables.items())
    )


def _high(fd: int) -> int:
    import fcntl

    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, HIGH_FD)
    os.close(fd)
    return moved


class SlotShell:
    """One slot's long-lived bash. `fork` a task through it; `close` it when the engine leaves."""

    def __init__(self, environment: dict[str, str], null_stdin: bool) -> None:
        request_read, self.request = os.pipe()
        self.reply, reply_write = os.pipe()
        request_read, reply_write = _high(request_read), _high(reply_write)
        os.set_inheritable(self.request, False)
        try:
            self.pid = os.posix_spawn(
                BASH,
                [BASH, '-c', LOOP % {'engine': os.getpid()}, BASH],
                environment,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, request_read, REQUEST_FD),
                    (os.POSIX_SPAWN_DUP2, reply_write, REPLY_FD),
                    *([(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)] if null_stdin else []),
                    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
                ],
                setsid=True,
                setsigdef=DEFAULT_SIGNALS,
            )
        except BaseException:
            os.close(self.request)
            os.close(self.reply)
            raise
        finally:
            os.close(request_read)
            os.close(reply_write)
        self._buffer = b''
        self._children_cpu = (0.0, 0.0)  # the children's user and system seconds `times` said last

    def line(self) -> bytes:
        """The next reply line (blocking: the slot shell writes each reply at once); SlotShellGone at its end."""
        while b'\n' not in self._buffer:
            try:
                chunk = os.read(self.reply, 4096)
            except OSError as error:
                raise SlotShellGone(f'slot shell {self.pid}: {error}') from error
            if not chunk:
                raise SlotShellGone(f'the slot shell (pid {self.pid}) has exited')
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b'\n')
        return line

    def fork(self, out_fd: int, err_fd: int, script_fd: int) -> int:
        """Fork a task with stdout/stderr on these fds of the engine, running the script in memfd `script_fd`; its
        pid (OSError when the slot shell could not open them)."""
        try:
            os.write(self.request, b'%d %d %d\n' % (out_fd, err_fd, script_fd))
        except OSError as error:
            raise SlotShellGone(f'the slot shell (pid {self.pid}) has exited') from error
        reply = self._start_reply().split()
        if len(reply) != 2 or reply[0] != b'S' or not reply[1].isdigit():
            raise SlotShellGone(f'the slot shell (pid {self.pid}) answered {reply!r}')
        pid = int(reply[1])
        if pid == 0:
            raise OSError(0, "the slot shell could not open the task's pipes")
        return pid

    def _start_reply(self) -> bytes:
        reply = b''
        while len(reply) < START_REPLY_BYTES:
            try:
                chunk = os.read(self.reply, START_REPLY_BYTES - len(reply))
            except OSError as error:
                raise SlotShellGone(f'slot shell {self.pid}: {error}') from error
            if not chunk:
                raise SlotShellGone(f'the slot shell (pid {self.pid}) has exited')
            reply += chunk
        return reply

    def ended(self) -> tuple[int, float, float]:
        """The status of the task that has ended and its user and system CPU seconds (`times`' resolution)."""
        status = self.line().split()
        self.line()  # the shell's own times
        children = self.line().split()
        if len(status) != 2 or status[0] != b'E' or len(children) != 2:
            raise SlotShellGone(f'the slot shell (pid {self.pid}) answered {status!r}')
        user, system = (_seconds(text.decode()) for text in children)
        before, self._children_cpu = self._children_cpu, (user, system)
        return int(status[1]), max(0.0, user - before[0]), max(0.0, system - before[1])

    def close(self, kill: bool = False) -> None:
        """End the slot shell (its requests' end; SIGKILL with `kill`) and reap it."""
        with contextlib.suppress(OSError):
            os.close(self.request)
        if kill:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        with contextlib.suppress(OSError):
            os.close(self.reply)


def _seconds(text: str) -> float:
    """`times`' `1m2.345s` in seconds."""
    minutes, _, rest = text.rstrip('s').partition('m')
    return int(minutes) * 60 + float(rest)


def task_script(command: str, task_variables: dict[str, str]) -> bytes:
    """What the subshell sources: closes the script's fd, unsets the loop's variables, exports the task's own."""
    exports = ''.join(f'export {name}={shlex.quote(value)}\n' for name, value in task_variables.items())
    text = f'exec 7<&-\nunset -v {_LOOP_VARIABLES}\n{exports}{command}\n'
    return text.encode('utf-8', 'surrogateescape')


class ForkedTask(TaskProcess):
    """A task forked by a slot shell. Its `pidfd` is the slot shell's reply pipe: readable when the task has ended
    (or the slot shell has). `reap` reads the status; `lost` says the slot shell died with it."""

    def __init__(self, shell: SlotShell, pid: int, stdout_fd: int, stderr_fd: int, start: float) -> None:
        super().__init__(pid, shell.reply, stdout_fd, stderr_fd, start)
        self.shell = shell
        self.lost = False
        self._sent: set[int] = set()

    @classmethod
    def fork(
        cls,
        shell: SlotShell,
        command: str,
        task_variables: dict[str, str],
        output_paths: tuple[str, str] | None,
    ) -> ForkedTask:
        """Fork `command` in `shell`; OSError when its output files or pipes cannot be made, SlotShellGone when the
        slot shell has exited (nothing was started)."""
        outputs = open_outputs(output_paths)
        script = os.memfd_create('disbatch-task', os.MFD_CLOEXEC)
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        try:
            os.write(script, task_script(command, task_variables))
            start = time.time()
            pid = shell.fork(out_write, err_write, script)
        except BaseException:
            for fd in (out_read, err_read):
                os.close(fd)
            for sink in outputs or ():
                sink.close()
            raise
        finally:
            for fd in (script, out_write, err_write):
                os.close(fd)
        os.set_blocking(out_read, False)
        os.set_blocking(err_read, False)
        task = cls(shell, pid, out_read, err_read, start)
        task.outputs = outputs
        return task

    def signal_group(self, signum: int) -> None:
        self._sent.add(signum)
        super().signal_group(signum)

    def reap(self) -> Outcome:
        try:
            status, user, system = self.shell.ended()
        except SlotShellGone:
            self.lost = True  # it took the task's status with it: end the task's group, record the attempt lost
            super().signal_group(signal.SIGKILL)
            status, user, system = LOST_RETURN_CODE, 0.0, 0.0
        finish = time.time()
        for fd in self.open_fds:
            self.read(fd)
            self.close(fd)
        for sink in self.outputs or ():
            sink.close()
        if status > 128 and status - 128 in self._sent:
            status = -(status - 128)  # a signal the engine sent itself (a timeout, the abort): recorded as today
        lost = [sink for sink in self.outputs or () if sink.lost is not None]
        err_snippet = self.stderr.snippet()
        if self.lost:
            err_snippet = repr('its slot shell (--fork-tasks) died: the task was lost')
        elif lost:
            status = status or lost[0].errno
            err_snippet = repr('; '.join(sink.lost or '' for sink in lost))
        return Outcome(
            NO_PID if self.lost else self.pid,
            status,
            self.start,
            finish,
            finish - self.start,
            self.stdout.total,
            self.stdout.snippet(),
            self.stderr.total,
            err_snippet,
            None if self.lost else ResourceUsage(None, user, system),
        )
