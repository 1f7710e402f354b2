"""The scheduler near the end of its allocation: tasks are held, the run drains, and stops at the end's lead.

Events in, exact actions out, as in test_scheduler_basic.py. The allocation ends at 100 with a margin of 10: no task
expected to end after 90 starts, and what still runs at 100 - STOP_LEAD_SECONDS is stopped.
"""

from __future__ import annotations

from unittest.mock import ANY

from disbatch.driver.core.events import (
    AbortEngine,
    AllocationEndChanged,
    ClockTick,
    DrainEngine,
    EngineGone,
    EngineJoined,
    Finish,
    ItemRead,
    Report,
    SendTask,
    StreamEnded,
    WriteRecord,
)
from disbatch.driver.core.scheduler import Scheduler, SchedulerConfig
from disbatch.driver.core.walltime import EXIT_WALLTIME, STOP_LEAD_SECONDS, Allocation
from disbatch.results.record import Outcome, StatusRecord
from disbatch.taskfile.items import NO_REPEAT, Task

from .scheduling import reported

END = 100.0
MARGIN = 10.0


def make_scheduler(end: float | None = END) -> Scheduler:
    allocation = Allocation(end=end, margin=MARGIN, origin='--walltime') if end is not None else None
    return Scheduler(SchedulerConfig(driver_host='head', driver_pid=1, allocation=allocation))


def task(task_id: int) -> Task:
    return Task(task_id, task_id + 1, NO_REPEAT, f'sleep {task_id}')


def done(of: Task, start: float, elapsed: float) -> StatusRecord:
    return StatusRecord.of_task(of, 'node0', Outcome(7, 0, start, start + elapsed, elapsed))


def feed(scheduler: Scheduler, tasks: list[Task], now: float) -> list[object]:
    """Pull items while the scheduler wants them, as the loop does."""
    actions: list[object] = []
    while scheduler.wants_item():
        actions += scheduler.handle(ItemRead(tasks.pop(0), now) if tasks else StreamEnded(now))
    return actions


def test_without_an_allocation_ticks_change_nothing() -> None:
    scheduler = make_scheduler(end=None)
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    assert feed(scheduler, [task(0)], now=0.0) == [SendTask(0, task(0))]
    assert scheduler.handle(ClockTick(10_000.0)) == []
    assert scheduler.drain is None


def test_tasks_start_while_they_fit_then_the_run_drains_and_ends_with_the_walltime_code() -> None:
    scheduler = make_scheduler()
    tasks = [task(number) for number in range(10)]
    scheduler.handle(ClockTick(0.0))
    scheduler.handle(EngineJoined(0, 'node0', slots=2))
    assert feed(scheduler, tasks, now=0.0) == [SendTask(0, task(0)), SendTask(0, task(1))]  # nothing known yet
    scheduler.handle(ClockTick(35.0))
    first = done(task(0), 0.0, 35.0)
    assert scheduler.handle(reported(0, first)) == [WriteRecord(first)]
    assert feed(scheduler, tasks, now=35.0) == [SendTask(0, task(2))]  # 35 + 35 <= 90
    scheduler.handle(ClockTick(36.0))
    second = done(task(1), 0.0, 36.0)
    scheduler.handle(reported(0, second))
    assert feed(scheduler, tasks, now=36.0) == [SendTask(0, task(3))]
    scheduler.handle(ClockTick(70.0))
    third = done(task(2), 35.0, 35.0)
    assert scheduler.handle(reported(0, third)) == [WriteRecord(third)]
    assert feed(scheduler, tasks, now=70.0) == []  # task 4 is read, and held: 70 + 36 > 90
    assert scheduler.drain is not None and scheduler.drain.holding
    assert not scheduler.wants_item()  # nothing more is read: it is left for the next run
    scheduler.handle(ClockTick(72.0))
    fourth = done(task(3), 36.0, 36.0)
    actions = scheduler.handle(reported(0, fourth))
    assert actions == [WriteRecord(fourth), Report(ANY), DrainEngine(0)]
    assert 'the run stops here' in actions[1].message  # type: ignore[union-attr]
    assert scheduler.handle(EngineGone(0, lost=False, now=73.0)) == [Finish(EXIT_WALLTIME)]
    assert scheduler.counts.finished == 4


def test_a_task_of_unknown_duration_starts_until_the_margin_then_none_does() -> None:
    scheduler = make_scheduler()
    scheduler.handle(ClockTick(89.0))
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    assert feed(scheduler, [task(0), task(1)], now=89.0) == [SendTask(0, task(0))]
    scheduler.handle(ClockTick(90.0))
    record = done(task(0), 89.0, 0.5)
    assert scheduler.handle(reported(0, record)) == [WriteRecord(record)]
    assert feed(scheduler, [task(1)], now=90.0) == [Report(ANY), DrainEngine(0)]


def test_a_run_that_starts_inside_the_margin_runs_nothing() -> None:
    scheduler = make_scheduler()
    scheduler.handle(ClockTick(95.0))
    scheduler.handle(EngineJoined(0, 'node0', slots=4))
    assert feed(scheduler, [task(0)], now=95.0) == [Report(ANY), DrainEngine(0)]
    assert scheduler.handle(EngineGone(0, lost=False, now=95.5)) == [Finish(EXIT_WALLTIME)]


def test_what_still_runs_at_the_stop_time_is_stopped() -> None:
    scheduler = make_scheduler()
    scheduler.handle(ClockTick(0.0))
    scheduler.handle(EngineJoined(0, 'node0', slots=2))
    feed(scheduler, [task(0), task(1), task(2)], now=0.0)  # of unknown duration: both start
    assert scheduler.handle(ClockTick(END - STOP_LEAD_SECONDS - 0.1)) == []
    actions = scheduler.handle(ClockTick(END - STOP_LEAD_SECONDS))
    assert actions == [Report(ANY), AbortEngine(0, ANY)]
    assert 'stopping 2 running task(s)' in actions[0].message  # type: ignore[union-attr]
    assert scheduler.handle(ClockTick(END)) == []  # stopping already
    # The engine the run aborted is not reported lost: what it still ran is recorded interrupted.
    actions = scheduler.handle(EngineGone(0, lost=True, now=END))
    assert actions == [WriteRecord(ANY, final=True), WriteRecord(ANY, final=True), Finish(EXIT_WALLTIME)]
    assert all(action.record.interrupted for action in actions[:2])  # type: ignore[union-attr]


def test_a_run_that_finishes_in_time_ends_as_usual() -> None:
    scheduler = make_scheduler()
    scheduler.handle(ClockTick(0.0))
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    feed(scheduler, [task(0)], now=0.0)
    record = done(task(0), 0.0, 1.0)
    scheduler.handle(ClockTick(1.0))
    assert scheduler.handle(reported(0, record)) == [WriteRecord(record)]
    assert feed(scheduler, [], now=1.0) == [DrainEngine(0)]
    assert scheduler.handle(EngineGone(0, lost=False, now=1.5)) == [Finish(0)]


def test_a_time_limit_made_longer_lets_held_tasks_start_again() -> None:
    scheduler = make_scheduler()
    scheduler.handle(ClockTick(0.0))
    scheduler.handle(EngineJoined(0, 'node0', slots=2))
    tasks = [task(number) for number in range(4)]
    feed(scheduler, tasks, now=0.0)
    scheduler.handle(ClockTick(60.0))
    scheduler.handle(reported(0, done(task(0), 0.0, 60.0)))
    assert feed(scheduler, tasks, now=60.0) == []  # 60 + 60 > 90: held, task 1 still runs
    actions = scheduler.handle(AllocationEndChanged(END + 100.0))
    assert actions == [Report(ANY), SendTask(0, task(2))]
    assert 'now ends at' in actions[0].message  # type: ignore[union-attr]
    assert scheduler.drain is not None and not scheduler.drain.holding


def test_the_stop_time_of_a_run_with_nothing_left_changes_nothing() -> None:
    scheduler = make_scheduler()
    scheduler.handle(ClockTick(0.0))
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    feed(scheduler, [task(0)], now=0.0)
    scheduler.handle(reported(0, done(task(0), 0.0, 1.0)))
    assert scheduler.handle(StreamEnded(1.0)) == [DrainEngine(0)]
    assert scheduler.handle(ClockTick(END)) == []  # every task is done; the engine is still leaving
    assert scheduler.handle(EngineGone(0, lost=False, now=END)) == [Finish(0)]
