"""What every spawner of `python -m bench.spawners` shares: the batch it runs, what it gives back, its time limit.

A spawner runs a batch of shell commands at most `slots` at a time, under bash (or sh, for the floor), and says
what it learnt about each task: its exit status (when the spawner can tell one task's from another's) and its
standard output (when asked to capture it, for the verification runs).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

BASH = '/bin/bash'
# what Python ignores at start-up and subprocess.Popen (restore_signals=True) sets back to default in a child
RESTORED_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)
READ_CHUNK = 65536


class RunFailed(Exception):
    """A spawner could not run its batch to the end (a shell died, the time limit passed, a tool failed)."""


@dataclass(frozen=True)
class Batch:
    commands: tuple[str, ...]
    slots: int
    deadline: float  # time.monotonic() after which the run is abandoned (RunFailed)
    scratch: Path  # a directory of this run's own
    capture: bool = False  # keep what the tasks write on stdout (verification); else it is drained or discarded


@dataclass
class Collected:
    """What a run learnt. A status is the exit code, minus the signal number that killed the task (spawners that
    wait for it themselves), or 128 + that number (spawners that hear it from a shell); None: not known per task."""

    statuses: list[int | None]
    stdout: list[bytes] | None = None  # per task, captured: spawners that give each task a pipe of its own
    shared_stdout: bytes | None = None  # captured, all tasks together: spawners whose tasks share one stdout
    exit_code: int | None = None  # tools that run the batch as one process (xargs, parallel)


@dataclass(frozen=True)
class Spawner(ABC):
    """One way to run a batch. `own_group`: each task leads a process group of its own, so a kill of that group
    reaches the task's processes and nothing else (the slot shell, the engine)."""

    key: str
    description: str
    own_group: bool = False
    per_task_status: bool = True
    task_variables: bool = False  # sets the engine's per-task DISBATCH_* variables
    signal_status: int = -1  # how a task killed by signal N is reported: -N (-1 here) or 128 + N (128 here)
    notes: tuple[str, ...] = field(default=())

    @abstractmethod
    def run(self, batch: Batch) -> Collected: ...


def task_environment(base: Mapping[str, str], index: int, slot: int) -> dict[str, str]:
    """The variables an engine adds to each task's environment (the same names and shapes as the engine's)."""
    return {
        **base,
        'DISBATCH_CYLINDER_RANK': str(slot),
        'DISBATCH_REPEAT_INDEX': '-1',
        'DISBATCH_REPEAT_INDEX_ZP': f'{-1:06d}',
        'DISBATCH_STREAM_INDEX': str(index + 1),
        'DISBATCH_STREAM_INDEX_ZP': f'{index + 1:06d}',
        'DISBATCH_TASKID': str(index),
        'DISBATCH_TASKID_ZP': f'{index:06d}',
        'DISBATCH_ATTEMPT': '0',
    }


def poll(epoll: select.epoll, deadline: float) -> list[tuple[int, int]]:
    """Ready fds, waiting at most until `deadline`; RunFailed once it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise RunFailed('time limit reached')
    return epoll.poll(min(left, 1.0))


def drain(fd: int, into: bytearray | None) -> bool:
    """Read what the non-blocking `fd` holds now (kept in `into`, unless None); True at its end."""
    while True:
        try:
            chunk = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return False
        if not chunk:
            return True
        if into is not None:
            into += chunk


def kill_groups(groups: Iterable[int]) -> None:
    """SIGKILL these process groups (what is left of a failed run) and reap what we can of them."""
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
    for group in groups:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(group, 0)


def close_all(fds: Iterable[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
