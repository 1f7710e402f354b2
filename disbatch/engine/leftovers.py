"""What an engine does about the processes its tasks leave running: note them, and end them.

A task's leftovers (see `sessions`) are logged, and told to the driver, when the task's main process exits. They
are ended — TERM, then KILL after a grace period — when the engine leaves, however it leaves (drained, aborted,
driver lost), so a run never leaves a process behind. With `--kill-leftovers` they are also ended at once when the
task that left them exits; PERENGINE START tasks are exempt (a helper they start is meant to live as long as the
engine).
"""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass, field

from disbatch.engine import sessions

log = logging.getLogger('disbatch.engine')

# Once this many sessions are tracked, one /proc scan forgets those with no process left (they can leave nothing
# any more): an engine's memory stays bounded over a million short tasks.
PRUNE_AT = 4096


@dataclass(slots=True)
class Leftovers:
    grace: float  # seconds between TERM and KILL
    kill_at_task_end: bool = False
    # session id (the task's pid) -> task id, for every task this engine ran: looked at when the engine leaves
    _sessions: dict[int, int] = field(default_factory=dict)
    # (when to KILL, session or process group, whether it is a group) after a TERM
    _doomed: list[tuple[float, int, bool]] = field(default_factory=list)
    _prune_at: int = PRUNE_AT

    def track(self, session: int, task_id: int) -> None:
        """Task `task_id` was started in session `session` (its pid): what it leaves is ended when the engine leaves."""
        self._sessions[session] = task_id
        if len(self._sessions) >= self._prune_at:
            alive = sessions.session_members(self._sessions)
            self._sessions = {tracked: task for tracked, task in self._sessions.items() if tracked in alive}
            self._prune_at = max(PRUNE_AT, 2 * len(self._sessions))

    def task_ended(self, session: int, task_id: int, phase: str, now: float, group: bool = False) -> list[int]:
        """The main process of task `task_id` (session `session`; with `group`, process group: a task forked by a
        slot shell) was reaped: its leftovers' pids, maybe none."""
        if not sessions.group_alive(session):
            return []  # the usual case: nothing left in its process group (other groups are found at the end)
        pids = sessions.group_members(session) if group else sessions.leftovers([session]).get(session, [])
        if pids:
            log.warning(
                'task %d%s left %d process(es) running: pid %s',
                task_id,
                f' ({phase})' if phase else '',
                len(pids),
                ' '.join(map(str, pids)),
            )
            if self.kill_at_task_end and phase != 'START':
                sessions.send(pids, signal.SIGTERM)
                self._doomed.append((now + self.grace, session, group))
        return pids

    def deadline(self) -> float | None:
        """When leftovers sent SIGTERM at their task's end are to get SIGKILL (time.monotonic())."""
        return self._doomed[0][0] if self._doomed else None

    def on_timer(self, now: float) -> None:
        due = [(session, group) for when, session, group in self._doomed if when <= now]
        self._doomed = [doomed for doomed in self._doomed if doomed[0] > now]
        for pids in sessions.leftovers([session for session, group in due if not group]).values():
            sessions.send(pids, signal.SIGKILL)
        for session, group in due:
            if group:
                sessions.send(sessions.group_members(session), signal.SIGKILL)

    def signal_all(self, signum: int) -> None:
        """Send `signum` to every leftover of every task (an abort: with the running tasks' groups)."""
        for pids in sessions.leftovers(self._sessions).values():
            sessions.send(pids, signum)

    def end_all(self, grace: float | None = None) -> None:
        """The engine is leaving: TERM every leftover, KILL what is left after the grace period; log each."""
        found = sessions.leftovers(self._sessions)
        for session, pids in found.items():
            log.info('ending what task %d left running: pid %s', self._sessions[session], ' '.join(map(str, pids)))
        every = [pid for pids in found.values() for pid in pids]
        killed = sessions.terminate(every, self.grace if grace is None else grace)
        if killed:
            log.warning('killed (SIGKILL) leftover pid %s: SIGTERM did not end them', ' '.join(map(str, killed)))
        self._doomed.clear()

    def kill_all(self) -> None:
        """The driver is gone: SIGKILL every leftover at once."""
        every = [pid for pids in sessions.leftovers(self._sessions).values() for pid in pids]
        sessions.send(every, signal.SIGKILL)
        self._doomed.clear()
