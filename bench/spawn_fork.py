"""Spawners that exec bash once per slot, not once per task: a long-lived bash reads commands from a pipe and runs
each in a forked subshell, `( eval "$command" )`, and reports back on another pipe. Three variants, from the bare
idea to what an engine would need:

* `fork`: a foreground subshell; the exit status back. The task shares the slot shell's process group (a kill of
  the group kills the slot shell too), its stdout and stderr, and the per-task variables are not set.
* `fork-pgrp`: `set -m` (job control) puts each task, started as a background job and waited for, in a process
  group of its own; the shell reports the task's PID (= its group) at the start, the status at the end.
* `fork-engine`: `fork-pgrp` plus what the engine gives a task: the per-task DISBATCH_* variables (sent with the
  command, exported in the subshell) and stdout and stderr on pipes of their own, which the parent creates per task
  and the slot shell opens through `/proc/PARENT/fd/N` before it forks the subshell.

The slot shell is `/bin/bash -c SCRIPT /bin/bash` (so `$0` is what it is under `bash -c`), in a session of its
own; commands arrive NUL-terminated on fd 3, reports leave as lines on fd 4; the subshell gets neither.
"""

from __future__ import annotations

import fcntl
import os
import select
import shlex
from dataclasses import dataclass, field

from bench.spawn_base import (
    BASH,
    RESTORED_SIGNALS,
    Batch,
    Collected,
    RunFailed,
    Spawner,
    close_all,
    drain,
    kill_groups,
    poll,
    task_environment,
)
from bench.tools import base_environment

PLAIN_SCRIPT = r"""while IFS= read -r -u 3 -d '' __cmd; do
( eval "$__cmd" ) 3<&- 4>&-
printf '%d\n' "$?" >&4
done"""

# stderr of the slot shell itself is /dev/null (job control prints "[1]+ Done ..." there); the tasks' is fd 5
GROUP_SCRIPT = r"""set -m
while IFS= read -r -u 3 -d '' __cmd; do
( eval "$__cmd" ) 2>&5 3<&- 4>&- 5>&- &
printf 'S %d\n' "$!" >&4
wait "$!"
printf 'E %d\n' "$?" >&4
done"""

ENGINE_SCRIPT = r"""set -m
while read -r -u 3 -d '' __out __err && IFS= read -r -u 3 -d '' __env && IFS= read -r -u 3 -d '' __cmd; do
if { ( eval "$__env"; eval "$__cmd" ) 3<&- 4>&- & } >"/proc/$PPID/fd/$__out" 2>"/proc/$PPID/fd/$__err"; then
printf 'S %d\n' "$!" >&4
wait "$!"
printf 'E %d\n' "$?" >&4
else
printf 'F\n' >&4
fi
done"""

SCRIPTS = {'plain': PLAIN_SCRIPT, 'group': GROUP_SCRIPT, 'engine': ENGINE_SCRIPT}


@dataclass
class _Slot:
    number: int
    pid: int
    commands: int  # our end of its command pipe
    reports: int  # our end of its report pipe
    pending: bytearray = field(default_factory=bytearray)  # a report line not complete yet
    index: int | None = None  # the task it runs
    task_pid: int | None = None
    writers: list[int] = field(default_factory=list)  # fork-engine: our write ends of the task's pipes, until S
    outputs: dict[int, bytearray | None] = field(default_factory=dict)  # fork-engine: the task's pipes (read ends)
    stdout: bytearray = field(default_factory=bytearray)


@dataclass(frozen=True)
class SlotShellSpawner(Spawner):
    protocol: str = 'plain'  # plain | group | engine: see the module docstring

    def run(self, batch: Batch) -> Collected:
        statuses: list[int | None] = [None] * len(batch.commands)
        captured: list[bytes] = [b''] * len(batch.commands)
        base = base_environment()
        following = iter(enumerate(batch.commands))
        shared_path = batch.scratch / f'{self.key}.out'
        shared = os.open(
            shared_path if batch.capture else os.devnull, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND
        )
        slots: list[_Slot] = []
        by_fd: dict[int, _Slot] = {}
        epoll = select.epoll()
        done = 0
        try:
            for number in range(min(batch.slots, len(batch.commands))):
                slot = self._start_shell(number, base, shared)
                slots.append(slot)
                by_fd[slot.reports] = slot
                epoll.register(slot.reports, select.EPOLLIN)
                self._hand(slot, next(following), base, by_fd, epoll, batch.capture)
            while done < len(batch.commands):
                for fd, _ in poll(epoll, batch.deadline):
                    if fd not in by_fd:  # a task's pipe, closed earlier in this round (at its end)
                        continue
                    slot = by_fd[fd]
                    if fd != slot.reports:  # a task's output pipe (fork-engine)
                        if drain(fd, slot.outputs[fd]):
                            _close_output(slot, fd, by_fd, epoll)
                        continue
                    for status in self._reports(slot, by_fd, epoll):
                        assert slot.index is not None
                        statuses[slot.index] = status
                        captured[slot.index] = bytes(slot.stdout)
                        done += 1
                        slot.index = slot.task_pid = None
                        item = next(following, None)
                        if item is not None:
                            self._hand(slot, item, base, by_fd, epoll, batch.capture)
            for slot in slots:
                os.close(slot.commands)  # its read gets EOF: the loop ends, the shell exits
                slot.commands = -1
                os.waitpid(slot.pid, 0)
        except BaseException:
            kill_groups([slot.pid for slot in slots] + [slot.task_pid for slot in slots if slot.task_pid])
            close_all([slot.commands for slot in slots if slot.commands >= 0])
            raise
        finally:
            close_all([*by_fd, shared])
            epoll.close()
        return Collected(
            statuses=statuses,
            stdout=captured if batch.capture and self.protocol == 'engine' else None,
            shared_stdout=shared_path.read_bytes() if batch.capture and self.protocol != 'engine' else None,
        )

    def _start_shell(self, number: int, base: dict[str, str], shared: int) -> _Slot:
        command_read, command_write = os.pipe()
        report_read, report_write = os.pipe()
        devnull = os.open(os.devnull, os.O_WRONLY)
        # copies of the sources numbered above every target, so that no dup2 overwrites a later one's source
        sources = [_above(fd) for fd in (command_read, report_write, shared, devnull)]
        close_all([command_read, report_write, devnull])
        commands, reports, stdout, stderr = sources
        actions = [
            (os.POSIX_SPAWN_DUP2, commands, 3),
            (os.POSIX_SPAWN_DUP2, reports, 4),
            (os.POSIX_SPAWN_DUP2, stderr if self.protocol == 'engine' else stdout, 1),
            (os.POSIX_SPAWN_DUP2, stderr, 2),
            (os.POSIX_SPAWN_DUP2, stderr, 5),
        ]
        try:
            pid = os.posix_spawn(
                BASH,
                [BASH, '-c', SCRIPTS[self.protocol], BASH],
                base,
                file_actions=actions,
                setsid=True,
                setsigdef=RESTORED_SIGNALS,  # else bash could not give its tasks SIGPIPE back
            )
        finally:
            close_all(sources)
        os.set_blocking(report_read, False)
        return _Slot(number, pid, command_write, report_read)

    def _hand(
        self,
        slot: _Slot,
        item: tuple[int, str],
        base: dict[str, str],
        by_fd: dict[int, _Slot],
        epoll: select.epoll,
        capture: bool,
    ) -> None:
        """Send task `item` to `slot`'s shell."""
        index, command = item
        slot.index = index
        slot.stdout = bytearray()
        encoded = command.encode('utf-8', 'surrogateescape') + b'\0'
        if self.protocol == 'engine':
            environment = task_environment({}, index, slot.number)
            exports = 'export ' + ' '.join(f'{name}={shlex.quote(value)}' for name, value in environment.items())
            out_read, out_write = os.pipe()
            err_read, err_write = os.pipe()
            slot.writers = [out_write, err_write]
            for fd, keep in ((out_read, capture), (err_read, False)):
                os.set_blocking(fd, False)
                slot.outputs[fd] = slot.stdout if keep else None
                by_fd[fd] = slot
                epoll.register(fd, select.EPOLLIN)
            encoded = f'{out_write} {err_write}\0{exports}\0'.encode() + encoded
        view = memoryview(encoded)
        while view:
            view = view[os.write(slot.commands, view) :]

    def _reports(self, slot: _Slot, by_fd: dict[int, _Slot], epoll: select.epoll) -> list[int]:
        """The statuses of the tasks `slot` reports done in what its report pipe holds now."""
        if drain(slot.reports, slot.pending):
            raise RunFailed(f'the shell of slot {slot.number} exited')
        *lines, rest = bytes(slot.pending).split(b'\n')
        slot.pending = bytearray(rest)
        statuses = []
        for line in lines:
            kind, _, value = line.partition(b' ')
            if self.protocol == 'plain':
                statuses.append(int(kind))
            elif kind == b'S':
                slot.task_pid = int(value)
                close_all(slot.writers)  # the slot shell has opened them (before it forked)
                slot.writers = []
            elif kind == b'E':
                for fd in list(slot.outputs):
                    drain(fd, slot.outputs[fd])
                    _close_output(slot, fd, by_fd, epoll)
                statuses.append(int(value))
            else:
                raise RunFailed(f'slot {slot.number}: the shell could not start a task: {line!r}')
        return statuses


def _above(fd: int) -> int:
    """A close-on-exec copy of `fd` numbered above the slot shell's fds 0-5 (`fd` itself is left open)."""
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 6)


def _close_output(slot: _Slot, fd: int, by_fd: dict[int, _Slot], epoll: select.epoll) -> None:
    epoll.unregister(fd)
    os.close(fd)
    del slot.outputs[fd]
    del by_fd[fd]
