"""The engine's record of its tasks' sessions stays bounded: sessions with no process left are forgotten."""

from __future__ import annotations

from collections.abc import Collection

import pytest

from disbatch.engine import leftovers, sessions


def test_sessions_with_no_process_left_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    still_there = {7: [7], 9: [12]}  # task 7 still runs; task 9's main process left pid 12 behind

    def members(tracked: Collection[int], proc: str = sessions.PROC) -> dict[int, list[int]]:
        return {session: pids for session, pids in still_there.items() if session in tracked}

    monkeypatch.setattr(sessions, 'session_members', members)
    record = leftovers.Leftovers(grace=1.0)
    for session in range(leftovers.PRUNE_AT):
        record.track(session, task_id=session)
    assert record._sessions == {7: 7, 9: 9}
    record.track(5000, task_id=5000)  # the next scan waits for the record to grow again
    assert len(record._sessions) == 3
