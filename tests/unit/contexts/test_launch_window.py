"""The launch window of `EngineProcesses`: at most `at_once` launchers in flight; a place frees when its engine joins,
its launcher exits, or its hold passes; an engine not joined by its deadline is handed out once. Real (short)
processes stand in for launchers: `sleep`, which never joins."""

from __future__ import annotations

import select
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from disbatch.contexts.launch import JOIN_MARGIN_SECONDS, EngineProcesses, LaunchLimits


@pytest.fixture
def processes() -> Iterator[list[EngineProcesses]]:
    made: list[EngineProcesses] = []
    yield made
    for each in made:
        each.terminate(grace=0.0)


def start(processes: EngineProcesses, tmp_path: Path, count: int, seconds: float = 30) -> None:
    for index in range(count):
        processes.start(f'C/{index}', f'host{index}', ['sleep', str(seconds)], str(tmp_path / f'{index}.log'))


def test_at_most_at_once_start_and_a_join_lets_the_next_in(processes: list[EngineProcesses], tmp_path: Path) -> None:
    window = EngineProcesses(LaunchLimits(at_once=2))
    processes.append(window)
    start(window, tmp_path, 5)
    assert (window.running, window.waiting) == (2, 3)
    assert len(window.new_fds()) == 2 and window.new_fds() == []  # each fd handed out once
    window.joined('C/0')
    assert (window.running, window.waiting) == (3, 2)
    window.joined('C/0')  # twice, or another context's engine: nothing more starts
    window.joined('X/7')
    assert (window.running, window.waiting) == (3, 2)
    assert len(window.new_fds()) == 1


def test_a_launcher_that_exits_frees_its_place(processes: list[EngineProcesses], tmp_path: Path) -> None:
    window = EngineProcesses(LaunchLimits(at_once=1))
    processes.append(window)
    start(window, tmp_path, 2, seconds=0)
    [fd] = window.new_fds()
    select.select([fd], [], [], 5)
    exited = window.on_ready(fd)
    assert exited is not None and exited.host == 'host0'
    assert (window.running, window.waiting) == (1, 0)


def test_a_silent_launch_holds_its_place_until_its_deadline_and_is_handed_out_once(
    processes: list[EngineProcesses], tmp_path: Path
) -> None:
    window = EngineProcesses(LaunchLimits(at_once=1, connect_timeout=5))
    processes.append(window)
    start(window, tmp_path, 2)
    deadline = window.deadline()
    assert deadline is not None and deadline == pytest.approx(time.time() + 5 + JOIN_MARGIN_SECONDS, abs=1)
    window.on_timer(deadline - 1)
    assert window.overdue(deadline - 1) == [] and window.waiting == 1
    window.on_timer(deadline)
    [late] = window.overdue(deadline)
    assert (late.launch_id, late.host, late.log_tail) == ('C/0', 'host0', '')
    assert (window.running, window.waiting) == (2, 0)  # its place went to the next launch; it still runs
    assert [late.launch_id for late in window.overdue(deadline + 100)] == ['C/1']  # C/0 once only


def test_unseen_joins_free_places_after_a_short_hold(processes: list[EngineProcesses], tmp_path: Path) -> None:
    window = EngineProcesses(LaunchLimits(at_once=1, joins_seen=False))
    processes.append(window)
    start(window, tmp_path, 2)
    deadline = window.deadline()
    assert deadline is not None and deadline < time.time() + 5
    window.on_timer(deadline)
    assert (window.running, window.waiting) == (2, 0)
    assert window.deadline() is None  # nothing left to wake for: a context process does not spin on late engines


def test_no_limit_starts_everything(processes: list[EngineProcesses], tmp_path: Path) -> None:
    window = EngineProcesses(LaunchLimits(at_once=None))
    processes.append(window)
    start(window, tmp_path, 40)
    assert (window.running, window.waiting) == (40, 0)
