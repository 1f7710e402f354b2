"""Retries (--retries) and timeouts (--timeout): a failed or timed-out run is run again at once, counted once."""

from __future__ import annotations

from collections import deque
from unittest.mock import ANY

import pytest

from disbatch.driver.core.events import (
    AbortEngine,
    Action,
    DrainEngine,
    EngineGone,
    EngineJoined,
    Finish,
    Report,
    SendTask,
    StopRequested,
    WriteRecord,
)
from disbatch.driver.core.scheduler import Counts, RunState
from disbatch.results.record import RecordKind

from .scheduling import (
    TASKS,
    Stream,
    barrier,
    barrier_record,
    feed_stream,
    finished,
    lost,
    make_scheduler,
    reported,
    reports,
)

# ---------------------------------------------------------------- retries (--retries) and timeouts (--timeout)


def test_a_task_failing_twice_then_succeeding_with_two_retries_is_recorded_three_times_and_counted_once() -> None:
    scheduler = make_scheduler(retries=2, exit_code_on_failure=True)
    stream = Stream(TASKS[:2])
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    assert feed_stream(scheduler, stream, now=1.0) == [SendTask(0, TASKS[0], attempt=1)]
    attempts = [
        finished(TASKS[0], return_code=1, start=10.0),
        finished(TASKS[0], return_code=1, start=11.0, attempt=2),
        finished(TASKS[0], start=12.0, attempt=3),
    ]
    # Each failed attempt is recorded, and the task is sent again at once, ahead of the rest of the stream.
    assert scheduler.handle(reported(0, attempts[0])) == [
        WriteRecord(attempts[0], final=False),
        SendTask(0, TASKS[0], 2),
    ]
    assert feed_stream(scheduler, stream, now=11.0) == []
    assert list(stream.unread) == [TASKS[1]]
    assert scheduler.counts == Counts()  # a failure that will be retried is no final result
    assert scheduler.handle(reported(0, attempts[1])) == [
        WriteRecord(attempts[1], final=False),
        SendTask(0, TASKS[0], 3),
    ]
    assert scheduler.handle(reported(0, attempts[2])) == [WriteRecord(attempts[2], final=True)]
    assert scheduler.counts == Counts(finished=1)
    # The next task is a first attempt again.
    assert feed_stream(scheduler, stream, now=13.0) == [SendTask(0, TASKS[1], attempt=1)]
    last = finished(TASKS[1], start=13.0)
    assert scheduler.handle(reported(0, last)) == [WriteRecord(last)]
    assert feed_stream(scheduler, stream, now=14.0) == [DrainEngine(0)]
    # -e: the failures were retried away, so the run ends with 0.
    assert scheduler.handle(EngineGone(0, lost=False, now=14.0)) == [Finish(0)]
    assert scheduler.counts == Counts(finished=2)


def test_a_failed_task_is_run_again_before_the_tasks_already_waiting() -> None:
    scheduler = make_scheduler(retries=1)
    scheduler.handle(EngineJoined(0, 'node0', slots=2))
    scheduler.handle(EngineJoined(1, 'node1', slots=1))
    assert feed_stream(scheduler, Stream(TASKS[:4]), now=1.0) == [
        SendTask(0, TASKS[0]),
        SendTask(0, TASKS[1]),
        SendTask(1, TASKS[2]),
    ]
    scheduler.handle(EngineGone(0, lost=True, now=2.0))
    assert list(scheduler.pending) == [TASKS[0], TASKS[1]]  # lost, waiting for a free slot
    failure = finished(TASKS[2], host='node1', return_code=1)
    assert scheduler.handle(reported(1, failure)) == [
        WriteRecord(failure, final=False),
        SendTask(1, TASKS[2], attempt=2),
    ]
    assert list(scheduler.pending) == [TASKS[0], TASKS[1]]
    assert scheduler.handle(EngineJoined(2, 'node2', slots=2)) == [
        SendTask(2, TASKS[0], attempt=2),
        SendTask(2, TASKS[1], attempt=2),
    ]


@pytest.mark.parametrize(('exit_code_on_failure', 'exit_code'), [(False, 0), (True, 1)])
def test_a_task_that_fails_every_retry_is_counted_failed_once(exit_code_on_failure: bool, exit_code: int) -> None:
    scheduler = make_scheduler(retries=1, exit_code_on_failure=exit_code_on_failure)
    stream = Stream(TASKS[:1])
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    feed_stream(scheduler, stream, now=1.0)
    failures = [finished(TASKS[0], return_code=3, start=10.0), finished(TASKS[0], return_code=3, start=11.0, attempt=2)]
    assert scheduler.handle(reported(0, failures[0])) == [
        WriteRecord(failures[0], final=False),
        SendTask(0, TASKS[0], 2),
    ]
    # The second attempt is the last (1 + 1 retry): recorded as the task's result, not sent again.
    assert scheduler.handle(reported(0, failures[1])) == [WriteRecord(failures[1], final=True)]
    assert scheduler.counts == Counts(finished=1, failed=1)
    assert feed_stream(scheduler, stream, now=12.0) == [DrainEngine(0)]
    assert scheduler.handle(EngineGone(0, lost=False, now=12.0)) == [Finish(exit_code)]
    assert scheduler.counts == Counts(finished=1, failed=1)


def test_fail_fast_waits_for_the_last_retry_of_a_task() -> None:
    scheduler = make_scheduler(retries=1, fail_fast=True)
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    scheduler.handle(EngineJoined(1, 'node1', slots=1))
    stream = Stream(TASKS[:3])
    assert feed_stream(scheduler, stream, now=1.0) == [SendTask(0, TASKS[0]), SendTask(1, TASKS[1])]
    first = finished(TASKS[0], return_code=1)
    assert scheduler.handle(reported(0, first)) == [
        WriteRecord(first, final=False),
        SendTask(0, TASKS[0], attempt=2),
    ]
    assert scheduler.state is RunState.RUNNING
    second = finished(TASKS[0], return_code=1, start=11.0, attempt=2)
    actions = scheduler.handle(reported(0, second))
    reason = reports(actions)[0]
    assert actions == [
        WriteRecord(second, final=True),
        Report(reason),
        AbortEngine(0, reason),
        AbortEngine(1, reason),
    ]
    assert 'task 0 (line 1) failed with return code 1' in reason
    assert '--fail-fast' in reason
    # The task killed by the stop is recorded, not retried: the run is stopping.
    killed = finished(TASKS[1], host='node1', return_code=-15)
    assert scheduler.handle(reported(1, killed)) == [WriteRecord(killed, final=True)]
    assert scheduler.handle(EngineGone(0, lost=False, now=12.0)) == []
    assert scheduler.handle(EngineGone(1, lost=False, now=12.0)) == [Finish(1)]
    assert list(stream.unread) == [TASKS[2]]
    assert scheduler.counts == Counts(finished=2, failed=2)


def test_a_barrier_check_ignores_a_failure_that_a_retry_made_good() -> None:
    scheduler = make_scheduler(retries=1)
    check = barrier(1, check=True)
    stream = Stream([TASKS[0], check, TASKS[2]])
    scheduler.handle(EngineJoined(0, 'node0', slots=2))
    assert feed_stream(scheduler, stream, now=5.0) == [SendTask(0, TASKS[0])]
    failure = finished(TASKS[0], return_code=1, start=5.0, elapsed=1.0)
    assert scheduler.handle(reported(0, failure)) == [
        WriteRecord(failure, final=False),
        SendTask(0, TASKS[0], attempt=2),
    ]
    success = finished(TASKS[0], start=6.0, elapsed=1.0, attempt=2)
    assert scheduler.handle(reported(0, success)) == [
        WriteRecord(success, final=True),
        WriteRecord(barrier_record(check, 5.0, 7.0)),
    ]
    assert feed_stream(scheduler, stream, now=7.0) == [SendTask(0, TASKS[2])]
    last = finished(TASKS[2], start=7.0)
    assert scheduler.handle(reported(0, last)) == [WriteRecord(last), DrainEngine(0)]
    assert scheduler.handle(EngineGone(0, lost=False, now=8.0)) == [Finish(0)]
    assert scheduler.counts == Counts(finished=2, barriers=1)


def test_a_timed_out_task_is_retried_like_a_failure_and_reported_as_timed_out() -> None:
    scheduler = make_scheduler(retries=1, fail_fast=True)
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    feed_stream(scheduler, Stream(TASKS[:2]), now=1.0)
    timed_out = [
        finished(TASKS[0], return_code=-15, elapsed=3.0, kind=RecordKind.TIMED_OUT),
        finished(TASKS[0], return_code=-9, start=13.0, elapsed=4.0, kind=RecordKind.TIMED_OUT, attempt=2),
    ]
    assert scheduler.handle(reported(0, timed_out[0])) == [
        WriteRecord(timed_out[0], final=False),
        SendTask(0, TASKS[0], 2),
    ]
    actions = scheduler.handle(reported(0, timed_out[1]))
    assert actions == [WriteRecord(timed_out[1], final=True), Report(ANY), AbortEngine(0, ANY)]
    assert 'task 0 (line 1) timed out' in reports(actions)[0]
    assert scheduler.counts == Counts(finished=1, failed=1)


@pytest.mark.parametrize(('retries', 'sent_again'), [(0, False), (1, True)])
def test_a_timed_out_task_fails_even_with_return_code_0(retries: int, sent_again: bool) -> None:
    # A task may catch SIGTERM and exit 0: it still did not finish in time.
    scheduler = make_scheduler(retries=retries, exit_code_on_failure=True)
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    feed_stream(scheduler, Stream(TASKS[:1]), now=1.0)
    caught = finished(TASKS[0], return_code=0, kind=RecordKind.TIMED_OUT)
    expected: list[Action] = [WriteRecord(caught, final=not sent_again)]
    if sent_again:
        expected.append(SendTask(0, TASKS[0], attempt=2))
    assert scheduler.handle(reported(0, caught)) == expected
    assert scheduler.counts == (Counts() if sent_again else Counts(finished=1, failed=1))


def test_retries_raise_the_budget_of_a_task_lost_again_and_again() -> None:
    # max_attempts 2, but --retries 4 allows 5 runs in all: lost ones count among them.
    scheduler = make_scheduler(max_attempts=2, retries=4)
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    assert feed_stream(scheduler, Stream(TASKS[:1]), now=1.0) == [SendTask(0, TASKS[0], attempt=1)]
    for rank in range(1, 5):
        now = float(rank + 1)
        assert scheduler.handle(EngineGone(rank - 1, lost=True, now=now)) == [
            Report(ANY),
            WriteRecord(lost(TASKS[0], f'node{rank - 1}', now), final=False),
        ]
        assert scheduler.handle(EngineJoined(rank, f'node{rank}', slots=1)) == [SendTask(rank, TASKS[0], rank + 1)]
    assert scheduler.counts == Counts(lost=4)
    # The fifth run is lost too: given up, and its lost record is the task's result.
    assert scheduler.handle(EngineGone(4, lost=True, now=6.0)) == [
        Report(ANY),
        WriteRecord(lost(TASKS[0], 'node4', 6.0), final=True),
    ]
    assert scheduler.pending == deque()
    assert scheduler.counts == Counts(finished=1, failed=1, lost=5)


def test_lost_and_failed_runs_share_one_count_of_attempts() -> None:
    scheduler = make_scheduler(max_attempts=3, retries=2, fail_fast=True)
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    feed_stream(scheduler, Stream(TASKS[:1]), now=1.0)
    failure = finished(TASKS[0], return_code=1)
    assert scheduler.handle(reported(0, failure)) == [
        WriteRecord(failure, final=False),
        SendTask(0, TASKS[0], attempt=2),
    ]
    assert scheduler.handle(EngineGone(0, lost=True, now=12.0)) == [
        Report(ANY),
        WriteRecord(lost(TASKS[0], 'node0', 12.0), final=False),
    ]
    assert scheduler.handle(EngineJoined(1, 'node1', slots=1)) == [SendTask(1, TASKS[0], attempt=3)]
    # The third run is the last of 1 + 2 retries: its failure is final.
    last = finished(TASKS[0], host='node1', return_code=1, start=13.0, attempt=3)
    actions = scheduler.handle(reported(1, last))
    assert actions == [WriteRecord(last, final=True), Report(ANY), AbortEngine(1, ANY)]
    assert 'task 0 (line 1) failed with return code 1' in reports(actions)[0]
    assert scheduler.counts == Counts(finished=1, failed=1, lost=1)


def test_a_failure_after_a_lost_run_is_final_once_one_plus_retries_runs_were_made() -> None:
    scheduler = make_scheduler(max_attempts=3, retries=1)
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    feed_stream(scheduler, Stream(TASKS[:1]), now=1.0)
    scheduler.handle(EngineGone(0, lost=True, now=2.0))
    assert scheduler.handle(EngineJoined(1, 'node1', slots=1)) == [SendTask(1, TASKS[0], attempt=2)]
    failure = finished(TASKS[0], host='node1', return_code=1, attempt=2)
    assert scheduler.handle(reported(1, failure)) == [WriteRecord(failure, final=True)]
    assert scheduler.counts == Counts(finished=1, failed=1, lost=1)


def test_a_task_killed_by_a_stop_is_not_retried() -> None:
    scheduler = make_scheduler(retries=3)
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    feed_stream(scheduler, Stream(TASKS[:2]), now=1.0)
    reason = 'SIGINT received: stopping every running task'
    assert scheduler.handle(StopRequested(reason, 130)) == [Report(reason), AbortEngine(0, reason)]
    killed = finished(TASKS[0], return_code=-2)
    assert scheduler.handle(reported(0, killed)) == [WriteRecord(killed, final=True)]
    assert scheduler.handle(EngineGone(0, lost=False, now=2.0)) == [Finish(130)]
    assert scheduler.counts == Counts(finished=1, failed=1)
