"""The scheduler's barriers: nothing after one is read until all before it finished; keys; BARRIER CHECK."""

from __future__ import annotations

from unittest.mock import ANY

import pytest

from disbatch.driver.core.events import (
    DrainEngine,
    EngineGone,
    EngineJoined,
    Finish,
    PutBarrierKey,
    Report,
    SendTask,
    WriteRecord,
)
from disbatch.driver.core.scheduler import Counts

from .scheduling import (
    TASKS,
    Stream,
    barrier,
    barrier_record,
    feed_stream,
    finished,
    make_scheduler,
    reported,
    reports,
)

# ---------------------------------------------------------------- barriers


def test_nothing_after_a_barrier_is_read_until_everything_before_it_has_finished() -> None:
    scheduler = make_scheduler()
    wall = barrier(2)
    stream = Stream([TASKS[0], TASKS[1], wall, TASKS[3]])
    scheduler.handle(EngineJoined(0, 'node0', slots=3))
    assert feed_stream(scheduler, stream, now=5.0) == [SendTask(0, TASKS[0]), SendTask(0, TASKS[1])]
    assert list(stream.unread) == [TASKS[3]]  # the barrier was read (a slot was free), and nothing after it
    first = finished(TASKS[0], start=6.0, elapsed=9.0)  # finishes last, at 15.0
    second = finished(TASKS[1], start=6.0, elapsed=2.0)
    assert scheduler.handle(reported(0, second)) == [WriteRecord(second)]
    assert feed_stream(scheduler, stream, now=8.0) == []
    # The barrier is recorded with the last record before it: start = when reached, finish = the last finish.
    assert scheduler.handle(reported(0, first)) == [
        WriteRecord(first),
        WriteRecord(barrier_record(wall, 5.0, 15.0)),
    ]
    assert feed_stream(scheduler, stream, now=15.0) == [SendTask(0, TASKS[3])]  # busy: drained once idle
    last = finished(TASKS[3], start=15.0)
    assert scheduler.handle(reported(0, last)) == [WriteRecord(last), DrainEngine(0)]
    assert scheduler.counts == Counts(finished=3, barriers=1)


def test_a_barrier_reached_with_nothing_running_is_recorded_at_once() -> None:
    scheduler = make_scheduler()
    wall = barrier(0)
    stream = Stream([wall, TASKS[1]])
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    assert feed_stream(scheduler, stream, now=3.0) == [
        WriteRecord(barrier_record(wall, 3.0, 3.0)),
        SendTask(0, TASKS[1]),
    ]


def test_a_keyed_barrier_puts_its_task_id_under_its_key() -> None:
    scheduler = make_scheduler()
    wall = barrier(1, key='phase1done')
    stream = Stream([TASKS[0], wall])
    scheduler.handle(EngineJoined(0, 'node0', slots=2))
    assert feed_stream(scheduler, stream, now=5.0) == [SendTask(0, TASKS[0])]
    record = finished(TASKS[0], start=5.0, elapsed=2.0)
    assert scheduler.handle(reported(0, record)) == [
        WriteRecord(record),
        WriteRecord(barrier_record(wall, 5.0, 7.0)),
        PutBarrierKey('phase1done', 1),
    ]


def test_a_barrier_check_with_no_failure_lets_the_run_go_on() -> None:
    scheduler = make_scheduler()
    check = barrier(1, check=True)
    stream = Stream([TASKS[0], check, TASKS[2]])
    scheduler.handle(EngineJoined(0, 'node0', slots=2))
    feed_stream(scheduler, stream, now=5.0)
    record = finished(TASKS[0], start=5.0, elapsed=1.0)
    assert scheduler.handle(reported(0, record)) == [
        WriteRecord(record),
        WriteRecord(barrier_record(check, 5.0, 6.0)),
    ]
    assert feed_stream(scheduler, stream, now=6.0) == [SendTask(0, TASKS[2])]
    last = finished(TASKS[2], start=6.0)
    assert scheduler.handle(reported(0, last)) == [WriteRecord(last), DrainEngine(0)]
    assert scheduler.counts == Counts(finished=2, barriers=1)


def test_a_barrier_check_ignores_failures_before_the_previous_barrier() -> None:
    scheduler = make_scheduler()
    wall, check = barrier(1), barrier(3, check=True)
    stream = Stream([TASKS[0], wall, TASKS[2], check, TASKS[4]])
    scheduler.handle(EngineJoined(0, 'node0', slots=2))
    assert feed_stream(scheduler, stream, now=1.0) == [SendTask(0, TASKS[0])]
    failure = finished(TASKS[0], return_code=1, start=1.0, elapsed=10.0)
    assert scheduler.handle(reported(0, failure)) == [
        WriteRecord(failure),
        WriteRecord(barrier_record(wall, 1.0, 11.0)),
    ]
    assert feed_stream(scheduler, stream, now=11.0) == [SendTask(0, TASKS[2])]
    success = finished(TASKS[2], start=11.0)
    assert scheduler.handle(reported(0, success)) == [
        WriteRecord(success),
        WriteRecord(barrier_record(check, 11.0, 12.0)),
    ]
    assert feed_stream(scheduler, stream, now=12.0) == [SendTask(0, TASKS[4])]
    last = finished(TASKS[4], start=12.0)
    assert scheduler.handle(reported(0, last)) == [WriteRecord(last), DrainEngine(0)]
    assert scheduler.counts == Counts(finished=3, failed=1, barriers=2)


@pytest.mark.parametrize(('exit_code_on_failure', 'exit_code'), [(False, 0), (True, 1)])
def test_a_barrier_check_after_a_failure_ends_the_run(exit_code_on_failure: bool, exit_code: int) -> None:
    scheduler = make_scheduler(exit_code_on_failure=exit_code_on_failure)
    check = barrier(2, check=True)
    stream = Stream([TASKS[0], TASKS[1], check, TASKS[3], TASKS[4]])
    scheduler.handle(EngineJoined(0, 'node0', slots=2))
    scheduler.handle(EngineJoined(1, 'node1', slots=1))
    assert feed_stream(scheduler, stream, now=5.0) == [SendTask(0, TASKS[0]), SendTask(0, TASKS[1])]
    failure = finished(TASKS[0], return_code=3, start=5.0, elapsed=1.0)
    success = finished(TASKS[1], start=5.0, elapsed=2.0)
    assert scheduler.handle(reported(0, failure)) == [WriteRecord(failure)]
    actions = scheduler.handle(reported(0, success))
    assert actions == [
        WriteRecord(success),
        WriteRecord(barrier_record(check, 5.0, 7.0)),
        Report(ANY),
        DrainEngine(0),
        DrainEngine(1),
    ]
    assert 'BARRIER CHECK at line 3' in reports(actions)[0]
    assert feed_stream(scheduler, stream, now=7.0) == []
    assert list(stream.unread) == [TASKS[3], TASKS[4]]  # the rest is never read, let alone run
    assert scheduler.handle(EngineGone(0, lost=False, now=8.0)) == []
    assert scheduler.handle(EngineGone(1, lost=False, now=8.0)) == [Finish(exit_code)]
    assert scheduler.counts == Counts(finished=2, failed=1, barriers=1)
