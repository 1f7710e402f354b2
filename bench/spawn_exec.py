"""Spawners that exec a new shell for every task: the floors (xargs -P with sh and bash), GNU parallel, and what
the engine does (os.posix_spawn of `/bin/bash -c COMMAND` in a session of its own, pipes for stdout and stderr,
a pidfd in an epoll loop, wait4), with variants of it.
"""

from __future__ import annotations

import os
import select
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass(frozen=True)
class ToolSpawner(Spawner):
    """A tool that reads the batch from a file, one command a line, and runs it as one process (xargs,
    GNU parallel). It tells no per-task status, only its own exit code (0: every task exited 0)."""

    argv: tuple[str, ...] = ()  # {slots} and {tasks} are filled in
    shell: str = BASH  # for GNU parallel: PARALLEL_SHELL

    def run(self, batch: Batch) -> Collected:
        task_file = batch.scratch / f'{self.key}.tasks'
        task_file.write_text(''.join(f'{command}\n' for command in batch.commands), encoding='utf-8')
        argv = [part.format(slots=batch.slots, tasks=task_file) for part in self.argv]
        environment = {**base_environment(), 'PARALLEL_SHELL': self.shell}
        stdout_path = batch.scratch / f'{self.key}.out'
        with open(os.devnull, 'rb') as stdin, open(stdout_path if batch.capture else os.devnull, 'wb') as stdout:
            process = subprocess.Popen(
                argv, stdin=stdin, stdout=stdout, stderr=subprocess.DEVNULL, env=environment, start_new_session=True
            )
        try:
            exit_code = process.wait(timeout=max(0.0, batch.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            kill_groups([process.pid])
            raise RunFailed('time limit reached') from None
        return Collected(
            statuses=[None] * len(batch.commands),
            shared_stdout=stdout_path.read_bytes() if batch.capture else None,
            exit_code=exit_code,
        )


Starter = Callable[[list[str], dict[str, str], int, int], int]  # (argv, env, stdout fd, stderr fd) -> pid


@dataclass
class _Running:
    index: int
    pid: int
    pidfd: int
    outputs: dict[int, bytearray | None]  # open pipe fds (stdout, stderr) -> where what they bring is kept
    stdout: bytearray  # captured stdout (verification runs)


@dataclass(frozen=True)
class ExecSpawner(Spawner):
    """One `/bin/bash [FLAGS] -c COMMAND` per task, started by `starter`, watched as the engine watches its
    tasks: stdout and stderr on pipes of their own, a pidfd, all in one epoll loop; reaped with wait4."""

    starter: Starter | None = None
    bash_flags: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()  # variables left out of the tasks' environment

    def run(self, batch: Batch) -> Collected:
        assert self.starter is not None
        base = {name: value for name, value in base_environment().items() if name not in self.drop}
        statuses: list[int | None] = [None] * len(batch.commands)
        captured: list[bytes] = [b''] * len(batch.commands)
        running: dict[int, _Running] = {}  # by every fd of the task
        free = list(range(batch.slots))
        slot_of: dict[int, int] = {}
        following = iter(enumerate(batch.commands))
        done = 0
        epoll = select.epoll()
        try:
            while done < len(batch.commands):
                while free and (item := next(following, None)) is not None:
                    index, command = item
                    slot = free.pop()
                    task = self._start(index, command, task_environment(base, index, slot), batch.capture)
                    slot_of[index] = slot
                    for fd in (task.pidfd, *task.outputs):
                        running[fd] = task
                        epoll.register(fd, select.EPOLLIN)
                for fd, _ in poll(epoll, batch.deadline):
                    if fd not in running:  # closed earlier in this round (at its task's reap)
                        continue
                    task = running[fd]
                    if fd in task.outputs:
                        if drain(fd, task.outputs[fd]):
                            self._close(fd, task, running, epoll)
                        continue
                    _, status, _usage = os.wait4(task.pid, 0)  # the engine keeps the rusage: so do we
                    statuses[task.index] = os.waitstatus_to_exitcode(status)
                    for output in list(task.outputs):
                        drain(output, task.outputs[output])
                        self._close(output, task, running, epoll)
                    captured[task.index] = bytes(task.stdout)
                    epoll.unregister(task.pidfd)
                    os.close(task.pidfd)
                    del running[task.pidfd]
                    free.append(slot_of.pop(task.index))
                    done += 1
        except BaseException:
            kill_groups({task.pid for task in running.values()})
            close_all(running)
            raise
        finally:
            epoll.close()
        return Collected(statuses=statuses, stdout=captured if batch.capture else None)

    def _start(self, index: int, command: str, environment: dict[str, str], capture: bool) -> _Running:
        assert self.starter is not None
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        try:
            pid = self.starter([BASH, *self.bash_flags, '-c', command], environment, out_write, err_write)
        finally:
            os.close(out_write)
            os.close(err_write)
        for fd in (out_read, err_read):
            os.set_blocking(fd, False)
        # only stdout is compared in the verification; stderr is drained all the same
        stdout = bytearray()
        return _Running(index, pid, os.pidfd_open(pid), {out_read: stdout if capture else None, err_read: None}, stdout)

    @staticmethod
    def _close(fd: int, task: _Running, running: dict[int, _Running], epoll: select.epoll) -> None:
        epoll.unregister(fd)
        os.close(fd)
        del task.outputs[fd]
        del running[fd]


def posix_spawn_starter(*, session: bool = True, default_signals: bool = True) -> Starter:
    """os.posix_spawn (glibc: clone(CLONE_VM | CLONE_VFORK)) in a new session (as the engine) or process group.
    `default_signals`: SIGPIPE and SIGXFSZ back to their defaults in the child (setsigdef, as the engine does since
    it was found here that they stayed ignored: Python ignores both, and an ignored signal stays so across exec)."""
    restored = RESTORED_SIGNALS if default_signals else ()

    def start(argv: list[str], environment: dict[str, str], stdout: int, stderr: int) -> int:
        actions = [(os.POSIX_SPAWN_DUP2, stdout, 1), (os.POSIX_SPAWN_DUP2, stderr, 2)]
        if session:
            return os.posix_spawn(argv[0], argv, environment, file_actions=actions, setsid=True, setsigdef=restored)
        return os.posix_spawn(argv[0], argv, environment, file_actions=actions, setpgroup=0, setsigdef=restored)

    return start


def popen_starter(argv: list[str], environment: dict[str, str], stdout: int, stderr: int) -> int:
    """subprocess.Popen with close_fds=False (its vfork path: no fd-closing loop in the child), a new session."""
    child: subprocess.Popen[bytes] = subprocess.Popen(
        argv, env=environment, stdout=stdout, stderr=stderr, close_fds=False, start_new_session=True
    )
    child.returncode = 0  # we reap it ourselves (wait4); this stops Popen from trying to, later
    return child.pid
