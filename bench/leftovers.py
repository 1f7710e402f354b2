"""Processes a measured run leaves behind when it exits, and the CPU time they used.

A tool may start helpers in sessions of their own (our engines are) and exit before they do, or kill them on its way
out without reaping them. Such processes are orphaned: their CPU time is missing from the tool's `wait4` rusage and
they escape a kill of the tool's process group. With `become_subreaper()` (Linux `PR_SET_CHILD_SUBREAPER`) orphans
of our descendants are re-parented to this process instead of init, so `collect` can find them (children of ours in
/proc once the measured process is reaped), wait a grace period for them, kill what is still alive, reap all of them
and add up their rusage.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
GRACE_SECONDS = 5.0
POLL_SECONDS = 0.01


def become_subreaper() -> bool:
    """Make this process the reaper of its descendants' orphans (Linux); False where that is not possible."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


@dataclass(frozen=True)
class Leftovers:
    outlived: int = 0  # orphans still running when the measured process had exited
    signals: tuple[int, ...] = ()  # the signals that ended orphans we did not kill (e.g. the tool killed them on exit)
    killed: int = 0  # orphans still running after the grace period: killed by us
    cpu: float = 0.0  # user + system seconds of all orphans (and whatever they reaped)

    @property
    def found(self) -> bool:
        return bool(self.outlived or self.signals or self.killed)

    def describe(self) -> str:
        parts = []
        if self.outlived:
            parts.append(f'{self.outlived} outlived it')
        if self.killed:
            parts.append(f'{self.killed} still running after {GRACE_SECONDS:g} s (killed)')
        for number in sorted(set(self.signals)):
            count = self.signals.count(number)
            parts.append(f'{count} ended by {signal.Signals(number).name} (not from us)')
        return ', '.join(parts)


def collect(grace: float = GRACE_SECONDS) -> Leftovers:
    """Reap every orphan adopted by this process (after the measured process itself was reaped)."""
    first = _children()
    outlived = sum(1 for state in first.values() if state != 'Z')
    deadline = time.monotonic() + grace
    signals: list[int] = []
    killed: set[int] = set()
    cpu = 0.0
    children = first
    while children:
        for pid, state in children.items():
            if state == 'Z':
                _, status, usage = os.wait4(pid, 0)
                cpu += usage.ru_utime + usage.ru_stime
                if os.WIFSIGNALED(status) and pid not in killed:
                    signals.append(os.WTERMSIG(status))
        running = [pid for pid, state in children.items() if state != 'Z']
        if running and time.monotonic() > deadline:
            for pid in running:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed.update(running)
            deadline = float('inf')
        if running:
            time.sleep(POLL_SECONDS)
        children = _children()
    return Leftovers(outlived, tuple(signals), len(killed), cpu)


def _children() -> dict[int, str]:
    """pid -> state letter of every child process of this process, from /proc."""
    me = os.getpid()
    found = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            text = Path(f'/proc/{entry}/stat').read_text(encoding='ascii', errors='replace')
        except OSError:
            continue
        fields = text[text.rindex(')') + 2 :].split()  # fields[0] is the state, fields[1] the parent pid
        if int(fields[1]) == me:
            found[int(entry)] = fields[0]
    return found
