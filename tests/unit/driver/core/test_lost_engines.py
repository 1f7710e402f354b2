"""Lost engines: their tasks are recorded lost (PID -1, return code -100) and re-issued, up to the attempt budget;
an engine taken for lost while its tasks may still run (`EngineLost`) keeps them, and gets no new one, until it is
gone."""

from __future__ import annotations

from collections import deque
from unittest.mock import ANY

import pytest

from disbatch.driver.core.events import (
    AbortEngine,
    DrainEngine,
    EngineGone,
    EngineJoined,
    EngineLost,
    Finish,
    LogWarning,
    NoMoreEngines,
    Report,
    SendTask,
    WriteRecord,
)
from disbatch.driver.core.scheduler import Counts, RunState

from .scheduling import (
    TASKS,
    Stream,
    feed_stream,
    finished,
    lost,
    make_scheduler,
    reported,
    reports,
)

# ---------------------------------------------------------------- lost engines


def test_tasks_of_a_lost_engine_are_recorded_lost_and_reissued_to_another_engine() -> None:
    scheduler = make_scheduler()
    stream = Stream(TASKS[:4])
    scheduler.handle(EngineJoined(0, 'node0', slots=2))
    assert feed_stream(scheduler, stream, now=1.0) == [SendTask(0, TASKS[0]), SendTask(0, TASKS[1])]
    actions = scheduler.handle(EngineGone(0, lost=True, now=7.0))
    assert actions == [
        Report(ANY),
        WriteRecord(lost(TASKS[0], 'node0', 7.0), final=False),  # re-issued: not the task's result
        WriteRecord(lost(TASKS[1], 'node0', 7.0), final=False),
    ]
    assert 'engine 0 on node0 was lost with 2 task(s) running or queued' in reports(actions)[0]
    assert not scheduler.wants_item()  # no engine: nothing more is read
    # Re-issued as their second attempt (DISBATCH_ATTEMPT=2); a task never run before is a first attempt.
    assert scheduler.handle(EngineJoined(1, 'node1', slots=3)) == [
        SendTask(1, TASKS[0], attempt=2),
        SendTask(1, TASKS[1], attempt=2),
    ]
    assert feed_stream(scheduler, stream, now=8.0) == [SendTask(1, TASKS[2], attempt=1)]
    assert scheduler.counts == Counts(lost=2)


def test_lost_tasks_are_reissued_in_their_original_order() -> None:
    scheduler = make_scheduler()
    scheduler.handle(EngineJoined(0, 'node0', slots=2))
    feed_stream(scheduler, Stream(TASKS[:4]), now=1.0)
    scheduler.handle(EngineGone(0, lost=True, now=7.0))
    assert scheduler.handle(EngineJoined(1, 'node1', slots=2)) == [
        SendTask(1, TASKS[0], attempt=2),
        SendTask(1, TASKS[1], attempt=2),
    ]


@pytest.mark.parametrize(('exit_code_on_failure', 'exit_code'), [(False, 0), (True, 1)])
def test_a_task_lost_max_attempts_times_is_given_up_as_failed(exit_code_on_failure: bool, exit_code: int) -> None:
    scheduler = make_scheduler(max_attempts=2, exit_code_on_failure=exit_code_on_failure)
    stream = Stream(TASKS[:1])
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    assert feed_stream(scheduler, stream, now=1.0) == [SendTask(0, TASKS[0])]
    assert scheduler.handle(EngineGone(0, lost=True, now=2.0)) == [
        Report(ANY),
        WriteRecord(lost(TASKS[0], 'node0', 2.0), final=False),
    ]
    assert scheduler.handle(EngineJoined(1, 'node1', slots=1)) == [SendTask(1, TASKS[0], attempt=2)]
    # The second attempt is the last: recorded lost and not re-issued, so this record is the task's result.
    assert scheduler.handle(EngineGone(1, lost=True, now=3.0)) == [
        Report(ANY),
        WriteRecord(lost(TASKS[0], 'node1', 3.0), final=True),
    ]
    assert scheduler.pending == deque()
    scheduler.handle(EngineJoined(2, 'node2', slots=1))
    assert feed_stream(scheduler, stream, now=4.0) == [DrainEngine(2)]
    assert scheduler.handle(EngineGone(2, lost=False, now=4.0)) == [Finish(exit_code)]
    assert scheduler.counts == Counts(finished=1, failed=1, lost=2)


def test_a_task_given_up_stops_a_fail_fast_run() -> None:
    scheduler = make_scheduler(max_attempts=1, fail_fast=True)
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    scheduler.handle(EngineJoined(1, 'node1', slots=1))
    feed_stream(scheduler, Stream(TASKS[:4]), now=1.0)
    actions = scheduler.handle(EngineGone(0, lost=True, now=2.0))
    assert actions == [
        Report(ANY),
        WriteRecord(lost(TASKS[0], 'node0', 2.0), final=True),
        Report(ANY),
        AbortEngine(1, ANY),
    ]
    assert 'task 0 (line 1) was lost 1 time(s)' in reports(actions)[1]
    assert '--fail-fast' in reports(actions)[1]
    assert scheduler.handle(EngineGone(1, lost=True, now=3.0))[-1] == Finish(1)


def test_a_task_lost_at_the_tail_of_the_run_is_reissued_to_a_busy_engine() -> None:
    scheduler = make_scheduler()
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    scheduler.handle(EngineJoined(1, 'node1', slots=3))
    # The stream ends while both engines are busy. A busy engine could still take a lost task, so it is only
    # drained once it is idle (the reference stops each slot behind its running task).
    assert feed_stream(scheduler, Stream(TASKS[:2]), now=1.0) == [SendTask(0, TASKS[0]), SendTask(1, TASKS[1])]
    assert scheduler.state is RunState.DRAINING
    actions = scheduler.handle(EngineGone(0, lost=True, now=3.0))
    assert actions == [
        Report(ANY),
        WriteRecord(lost(TASKS[0], 'node0', 3.0), final=False),
        SendTask(1, TASKS[0], attempt=2),
    ]
    assert scheduler.counts == Counts(lost=1)
    # Engine 1 is drained when the last of its tasks has finished, and the run is over when it has gone.
    records = [finished(TASKS[1], host='node1'), finished(TASKS[0], host='node1', start=11.0, attempt=2)]
    assert scheduler.handle(reported(1, records[0])) == [WriteRecord(records[0])]
    assert scheduler.handle(reported(1, records[1])) == [WriteRecord(records[1]), DrainEngine(1)]
    assert scheduler.handle(EngineGone(1, lost=False, now=12.0)) == [Finish(0)]
    assert scheduler.counts == Counts(finished=2, lost=1)


def test_a_task_lost_at_the_tail_when_the_spare_is_gone_too_waits_for_a_new_engine() -> None:
    scheduler = make_scheduler()
    for rank in range(3):
        scheduler.handle(EngineJoined(rank, f'node{rank}', slots=1))
    assert feed_stream(scheduler, Stream(TASKS[:1]), now=1.0) == [SendTask(0, TASKS[0]), DrainEngine(2)]
    assert scheduler.handle(EngineGone(2, lost=False, now=2.0)) == []
    assert scheduler.handle(EngineGone(1, lost=True, now=2.0)) == []  # the spare vanished, idle
    # Nothing can take the lost task now: engine 2 was drained and the spare is gone.
    assert scheduler.handle(EngineGone(0, lost=True, now=3.0)) == [
        Report(ANY),
        WriteRecord(lost(TASKS[0], 'node0', 3.0), final=False),
    ]
    assert scheduler.handle(EngineJoined(3, 'node3', slots=1)) == [SendTask(3, TASKS[0], attempt=2)]
    record = finished(TASKS[0], host='node3', start=5.0, attempt=2)
    assert scheduler.handle(reported(3, record)) == [WriteRecord(record), DrainEngine(3)]
    assert scheduler.handle(EngineGone(3, lost=False, now=6.0)) == [Finish(0)]
    assert scheduler.counts == Counts(finished=1, lost=1)


def test_a_task_lost_at_the_tail_with_every_engine_gone_waits_for_a_context_with_dash_s() -> None:
    scheduler = make_scheduler(wait_for_contexts=True)
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    scheduler.handle(EngineJoined(1, 'node1', slots=1))
    assert feed_stream(scheduler, Stream(TASKS[:1]), now=1.0) == [SendTask(0, TASKS[0])]
    assert scheduler.handle(EngineGone(1, lost=True, now=2.0)) == []  # the spare vanished, idle
    assert scheduler.handle(EngineGone(0, lost=True, now=3.0)) == [
        Report(ANY),
        WriteRecord(lost(TASKS[0], 'node0', 3.0), final=False),
    ]
    # -S: task 0 is still to run, so the run waits for a context to be added (and says so once).
    actions = scheduler.handle(NoMoreEngines(now=4.0))
    assert actions == [Report(ANY)]
    assert 'waiting for a context' in reports(actions)[0]
    assert scheduler.handle(NoMoreEngines(now=5.0)) == []
    assert scheduler.handle(EngineJoined(2, 'node2', slots=1)) == [SendTask(2, TASKS[0], attempt=2)]
    record = finished(TASKS[0], host='node2', start=5.0, attempt=2)
    assert scheduler.handle(reported(2, record)) == [WriteRecord(record), DrainEngine(2)]
    assert scheduler.handle(EngineGone(2, lost=False, now=6.0)) == [Finish(0)]
    assert scheduler.counts == Counts(finished=1, lost=1)


def test_a_task_lost_at_the_tail_with_no_engine_left_to_run_it_ends_the_run_with_1() -> None:
    scheduler = make_scheduler()
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    scheduler.handle(EngineJoined(1, 'node1', slots=1))
    feed_stream(scheduler, Stream(TASKS[:1]), now=1.0)
    assert scheduler.handle(EngineGone(1, lost=True, now=2.0)) == []  # the spare vanished, idle
    assert scheduler.handle(EngineGone(0, lost=True, now=3.0)) == [
        Report(ANY),
        WriteRecord(lost(TASKS[0], 'node0', 3.0), final=False),
    ]
    actions = scheduler.handle(NoMoreEngines(now=5.0))
    assert actions == [Report(ANY), Finish(1)]
    assert 'no engine is left' in reports(actions)[0]


def test_a_lost_engine_with_nothing_running_is_just_forgotten() -> None:
    scheduler = make_scheduler()
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    scheduler.handle(EngineJoined(1, 'node1', slots=1))
    feed_stream(scheduler, Stream(TASKS[:1]), now=1.0)
    assert scheduler.handle(EngineGone(1, lost=True, now=2.0)) == []
    assert scheduler.handle(EngineGone(1, lost=True, now=2.0)) == []  # twice: still nothing
    assert scheduler.counts == Counts()


def test_a_report_of_a_task_the_engine_does_not_hold_is_only_logged() -> None:
    """The scheduler builds a record from the task it gave the engine: a report of a task given up with a lost
    engine (the loop drops what a forgotten engine still sends anyway) or never sent to it cannot be recorded."""
    scheduler = make_scheduler()
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    feed_stream(scheduler, Stream(TASKS[:3]), now=1.0)
    scheduler.handle(EngineGone(0, lost=True, now=2.0))
    assert scheduler.handle(EngineJoined(1, 'node1', slots=1)) == [SendTask(1, TASKS[0], attempt=2)]
    late = finished(TASKS[0])
    assert scheduler.handle(reported(0, late)) == [LogWarning('engine 0, gone, reported task 0')]
    # Engine 1 holds task 0 but was never sent task 1.
    stray = finished(TASKS[1], host='node1')
    assert scheduler.handle(reported(1, stray)) == [LogWarning('engine 1 reported task 1, which it was not running')]
    assert scheduler.running == 1
    assert scheduler.counts == Counts(lost=1)
    # What engine 1 does hold is recorded as its second attempt.
    record = finished(TASKS[0], host='node1', attempt=2)
    assert scheduler.handle(reported(1, record))[0] == WriteRecord(record, final=True)


def test_no_more_engines_with_work_left_reports_and_finishes_with_1() -> None:
    scheduler = make_scheduler()
    stream = Stream(TASKS[:2])
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    feed_stream(scheduler, stream, now=1.0)
    scheduler.handle(EngineGone(0, lost=True, now=2.0))
    actions = scheduler.handle(NoMoreEngines(now=3.0))
    assert actions == [Report(ANY), Finish(1)]
    assert 'no engine is left' in reports(actions)[0]


def test_no_engine_ever_joining_finishes_with_1() -> None:
    scheduler = make_scheduler()
    assert scheduler.handle(NoMoreEngines(now=3.0)) == [Report(ANY), Finish(1)]


# ---------------------------------------------------------------- lost, its tasks maybe still running


def test_an_engine_lost_while_its_tasks_may_run_keeps_them_until_it_is_gone() -> None:
    scheduler = make_scheduler()
    stream = Stream(TASKS[:4])
    scheduler.handle(EngineJoined(0, 'node0', slots=2))
    scheduler.handle(EngineJoined(1, 'node1', slots=1))
    assert feed_stream(scheduler, stream, now=1.0) == [
        SendTask(0, TASKS[0]),
        SendTask(0, TASKS[1]),
        SendTask(1, TASKS[2]),
    ]
    assert scheduler.handle(EngineLost(0)) == []  # nothing re-issued: a copy may still run
    assert scheduler.holds_tasks(0) and scheduler.running == 3
    done = finished(TASKS[2], host='node1')
    # engine 1's slot frees: it takes the next task of the stream, not one of the lost engine's
    assert scheduler.handle(reported(1, done)) == [WriteRecord(done)]
    assert feed_stream(scheduler, stream, now=3.0) == [SendTask(1, TASKS[3])]
    assert scheduler.handle(EngineJoined(2, 'node2', slots=2)) == []  # nothing to hand it yet
    # gone: recorded lost at the time it was lost, and run again
    actions = scheduler.handle(EngineGone(0, lost=True, now=2.0))
    assert actions == [
        Report(ANY),
        WriteRecord(lost(TASKS[0], 'node0', 2.0), final=False),
        WriteRecord(lost(TASKS[1], 'node0', 2.0), final=False),
        SendTask(2, TASKS[0], attempt=2),
        SendTask(2, TASKS[1], attempt=2),
    ]
    assert not scheduler.holds_tasks(0)


def test_a_lost_engine_that_reports_its_tasks_holds_none() -> None:
    scheduler = make_scheduler()
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    scheduler.handle(EngineJoined(1, 'node1', slots=1))
    assert feed_stream(scheduler, Stream(TASKS[:2]), now=1.0) == [SendTask(0, TASKS[0]), SendTask(1, TASKS[1])]
    scheduler.handle(EngineLost(0))
    record = finished(TASKS[0], host='node0')
    assert scheduler.handle(reported(0, record)) == [WriteRecord(record)]  # its result counts
    assert not scheduler.holds_tasks(0)
    assert scheduler.handle(EngineGone(0, lost=True, now=3.0)) == []


def test_the_only_engine_lost_ends_the_run_as_any_lost_engine_does() -> None:
    scheduler = make_scheduler()
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    feed_stream(scheduler, Stream(TASKS[:2]), now=1.0)
    scheduler.handle(EngineLost(0))
    assert scheduler.handle(NoMoreEngines(now=2.0)) == []  # it still holds its task
    scheduler.handle(EngineGone(0, lost=True, now=2.0))
    actions = scheduler.handle(NoMoreEngines(now=14.0))
    assert actions == [Report(ANY), Finish(1)]  # not "waiting for a context": it did not leave on purpose
    assert 'no engine is left' in reports(actions)[0]
