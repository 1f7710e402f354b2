"""Sessions of tasks, and what is left of them once a task's main process has exited.

Every task is the leader of a session of its own (`setsid`), so whatever it starts — `sleep 60 &`, a helper
server, a pipeline stage that outlives the pipe — stays in that session unless it calls `setsid` itself. When the
task's main process has exited, the members still in its session are its leftovers: this module finds them (the
session id is field 6 of `/proc/PID/stat`) and ends them (TERM, then KILL after a grace period).

A session id cannot be reused while any process is still in that session (the kernel keeps the number allocated
while it names a session or process group), so a session whose leader is gone and that still has members is
surely ours. A session whose leader is alive again is someone else's: its number was freed and reused.

Reading `/proc` costs a scan of every process on the node, so the common case — a task that left nothing — is
found with one `killpg(SID, 0)`; only a live process group is followed by a scan.

The engine's supervisor (`supervisor.py`) uses the same scan another way: every live process below it
(`descendants`), whatever session each is in, once the engine is gone.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from collections.abc import Collection, Iterable, Iterator
from typing import NamedTuple

PROC = '/proc'


class ProcessStat(NamedTuple):
    """What is read of one process in `/proc/PID/stat`."""

    pid: int
    state: str  # 'R', 'S', 'D', 'T', 'Z' (a zombie: exited, not reaped), ...
    parent: int
    session: int
    group: int  # its process group (field 5)


def parse_stat(text: str) -> ProcessStat | None:
    """The process described by the text of `/proc/PID/stat`, or None when it cannot be read.

    The command name (field 2) is in parentheses and may itself hold spaces and ')' : the fields after it start after
    the last ')'. Then come state (3), parent (4), process group (5), session (6).
    """
    head, closing, tail = text.rpartition(')')
    pid_text, opening, _ = head.partition(' (')
    fields = tail.split()
    if not closing or not opening or len(fields) < 4 or not pid_text.isdigit():
        return None
    try:
        return ProcessStat(int(pid_text), fields[0], int(fields[1]), int(fields[3]), int(fields[2]))
    except ValueError:
        return None


def live_processes(proc: str = PROC) -> Iterator[ProcessStat]:
    """Every process on the node but the zombies (exited, waiting to be reaped: they run nothing)."""
    try:
        names = os.listdir(proc)
    except OSError:
        return
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f'{proc}/{name}/stat') as handle:
                parsed = parse_stat(handle.read())
        except OSError:
            continue  # it exited while we looked
        if parsed is not None and parsed.state != 'Z':
            yield parsed


def session_members(sessions: Collection[int], proc: str = PROC) -> dict[int, list[int]]:
    """Session id → pids of the live (not zombie) processes in it, for each of `sessions` that has any."""
    members: dict[int, list[int]] = {}
    for process in live_processes(proc):
        if process.session in sessions:
            members.setdefault(process.session, []).append(process.pid)
    for session in members:
        members[session].sort()
    return members


def descendants(root: int, proc: str = PROC) -> list[int]:
    """The live processes below `root` (its children, theirs, ...), sorted; a zombie's live children included."""
    children: dict[int, list[int]] = {}
    for process in live_processes(proc):
        children.setdefault(process.parent, []).append(process.pid)
    found: list[int] = []
    below = list(children.get(root, ()))
    while below:
        pid = below.pop()
        found.append(pid)
        below.extend(children.get(pid, ()))
    return sorted(found)


def leftovers(sessions: Collection[int], proc: str = PROC) -> dict[int, list[int]]:
    """Like `session_members`, but only sessions whose leader has exited: what tasks left behind."""
    return {session: pids for session, pids in session_members(sessions, proc).items() if session not in pids}


def group_members(pgid: int, proc: str = PROC) -> list[int]:
    """The live processes of process group `pgid`, sorted (a task forked by a slot shell leads a group, not a
    session: what it leaves in that group once it has exited is its leftovers)."""
    return sorted(process.pid for process in live_processes(proc) if process.group == pgid)


def group_alive(pgid: int) -> bool:
    """Whether process group `pgid` still has a member: one system call, no scan."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # a member runs as someone else (a setuid program): it is there
    return True


def terminate(pids: Iterable[int], grace: float) -> list[int]:
    """SIGTERM (and SIGCONT, for a stopped one) every pid, wait up to `grace` seconds for them to exit, SIGKILL the
    rest and wait up to `grace` again for their end; returns the pids killed.

    Each process is held by a pidfd from the start, so a pid freed and reused meanwhile is never signalled.
    """
    handles = _pidfds(pids)
    try:
        for fd in handles.values():
            _send(fd, signal.SIGTERM)
            _send(fd, signal.SIGCONT)
        waiting = _wait_exits(list(handles.values()), grace)
        killed = [pid for pid, fd in handles.items() if fd in waiting]
        for pid in killed:
            _send(handles[pid], signal.SIGKILL)
        _wait_exits([handles[pid] for pid in killed], grace)
        return killed
    finally:
        for fd in handles.values():
            os.close(fd)


def send(pids: Iterable[int], signum: int) -> None:
    """Send `signum` to every pid now, with no wait (SIGKILL: the driver is gone, no time for grace)."""
    for fd in _pidfds(pids).values():
        _send(fd, signum)
        os.close(fd)


def _pidfds(pids: Iterable[int]) -> dict[int, int]:
    handles: dict[int, int] = {}
    for pid in pids:
        with contextlib.suppress(OSError):  # gone already
            handles[pid] = os.pidfd_open(pid)
    return handles


def _send(pidfd: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        signal.pidfd_send_signal(pidfd, signum)


def _wait_exits(pidfds: list[int], grace: float) -> set[int]:
    """Wait until every pidfd is readable (its process exited) or `grace` has passed; the pidfds still waiting."""
    waiting = set(pidfds)
    exits = select.poll()
    for fd in pidfds:
        exits.register(fd, select.POLLIN)
    deadline = time.monotonic() + grace
    while waiting and (left := deadline - time.monotonic()) > 0:
        for fd, _ in exits.poll(left * 1000):
            exits.unregister(fd)
            waiting.discard(fd)
    return waiting
