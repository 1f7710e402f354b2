"""Stopping early (--fail-fast, a signal, a bad stream) and interrupted tasks: recorded, neither finished nor failed."""

from __future__ import annotations

from unittest.mock import ANY

from disbatch.driver.core.events import (
    AbortEngine,
    ContextJoined,
    DrainEngine,
    EngineGone,
    EngineJoined,
    Finish,
    InterruptEngines,
    NoMoreEngines,
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
    feed_stream,
    finished,
    lost,
    make_scheduler,
    reported,
    reports,
)

# ---------------------------------------------------------------- stopping early


def test_fail_fast_aborts_every_engine_at_the_first_failure_and_finishes_with_1() -> None:
    scheduler = make_scheduler(fail_fast=True)
    stream = Stream(TASKS[:5])
    scheduler.handle(EngineJoined(0, 'node0', slots=2))
    scheduler.handle(EngineJoined(1, 'node1', slots=1))
    feed_stream(scheduler, stream, now=1.0)
    failure = finished(TASKS[1], return_code=1)
    actions = scheduler.handle(reported(0, failure))
    reason = reports(actions)[0]
    assert actions == [WriteRecord(failure), Report(reason), AbortEngine(0, reason), AbortEngine(1, reason)]
    assert 'task 1 (line 2) failed with return code 1' in reason
    assert scheduler.state is RunState.STOPPING
    assert feed_stream(scheduler, stream, now=11.0) == []
    assert list(stream.unread) == TASKS[3:5]
    # The aborted engines report the tasks they killed, then leave.
    killed = [finished(TASKS[0], return_code=-15), finished(TASKS[2], host='node1', return_code=-15)]
    assert scheduler.handle(reported(0, killed[0])) == [WriteRecord(killed[0])]
    assert scheduler.handle(EngineGone(0, lost=False, now=12.0)) == []
    assert scheduler.handle(reported(1, killed[1])) == [WriteRecord(killed[1])]
    assert scheduler.handle(EngineGone(1, lost=False, now=12.0)) == [Finish(1)]
    assert scheduler.counts == Counts(finished=3, failed=3)


def test_fail_fast_also_stops_the_tail_of_the_run() -> None:
    scheduler = make_scheduler(fail_fast=True)
    scheduler.handle(EngineJoined(0, 'node0', slots=3))
    assert feed_stream(scheduler, Stream(TASKS[:2]), now=1.0) == [SendTask(0, TASKS[0]), SendTask(0, TASKS[1])]
    assert not scheduler.more_tasks  # the stream has ended: this is the tail of the run
    failure = finished(TASKS[0], return_code=1)
    actions = scheduler.handle(reported(0, failure))
    assert actions == [WriteRecord(failure), Report(ANY), AbortEngine(0, ANY)]  # task 1 must not run on
    assert 'task 0 (line 1) failed with return code 1' in reports(actions)[0]
    assert scheduler.state is RunState.STOPPING
    scheduler.handle(reported(0, finished(TASKS[1], return_code=-15)))
    assert scheduler.handle(EngineGone(0, lost=False, now=12.0)) == [Finish(1)]


def test_a_signal_aborts_every_engine_and_finishes_with_its_exit_code() -> None:
    scheduler = make_scheduler()
    stream = Stream(TASKS[:3])
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    scheduler.handle(EngineJoined(1, 'node1', slots=1))
    feed_stream(scheduler, stream, now=1.0)
    reason = 'SIGINT received: stopping every running task'
    assert scheduler.handle(StopRequested(reason, 130)) == [
        Report(reason),
        AbortEngine(0, reason),
        AbortEngine(1, reason),
    ]
    assert not scheduler.wants_item()
    scheduler.handle(reported(0, finished(TASKS[0], return_code=-2)))
    assert scheduler.handle(EngineGone(0, lost=False, now=2.0)) == []
    # Engine 1 vanished without reporting, after the run aborted it: its task is recorded interrupted (the run
    # stopped it, a plain -r runs it again; not reported as lost) and, the run stopping, not re-issued.
    assert scheduler.handle(EngineGone(1, lost=True, now=3.0)) == [
        WriteRecord(lost(TASKS[1], 'node1', 3.0).as_interrupted()),
        Finish(130),
    ]
    assert scheduler.counts == Counts(finished=1, failed=1, interrupted=1)


def test_a_stop_that_lets_tasks_finish_drains_the_engines() -> None:
    scheduler = make_scheduler()
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    feed_stream(scheduler, Stream(TASKS[:3]), now=1.0)
    reason = 'tasks.txt:7: unknown directive'
    assert scheduler.handle(StopRequested(reason, 1, abort=False)) == [Report(reason), DrainEngine(0)]
    scheduler.handle(reported(0, finished(TASKS[0])))
    assert scheduler.handle(EngineGone(0, lost=False, now=2.0)) == [Finish(1)]


def test_a_stop_with_no_engine_finishes_at_once() -> None:
    scheduler = make_scheduler()
    assert scheduler.handle(StopRequested('SIGTERM received', 143)) == [Report('SIGTERM received'), Finish(143)]


# ---------------------------------------------------------------- interrupted tasks


def test_a_task_the_run_stopped_is_recorded_interrupted_neither_finished_nor_failed() -> None:
    scheduler = make_scheduler(fail_fast=True, exit_code_on_failure=True)
    scheduler.handle(EngineJoined(0, 'node0', slots=2))
    feed_stream(scheduler, Stream(TASKS[:2]), now=1.0)
    scheduler.handle(StopRequested('SIGINT received', 130))
    stopped = finished(TASKS[0], return_code=-15, kind=RecordKind.INTERRUPTED)
    assert scheduler.handle(reported(0, stopped)) == [WriteRecord(stopped)]  # no --fail-fast report, no retry
    # Task 1 was queued on the engine and never started: it comes back interrupted when the engine leaves.
    assert scheduler.handle(EngineGone(0, lost=False, now=2.0)) == [
        WriteRecord(lost(TASKS[1], 'node0', 2.0).as_interrupted()),
        Finish(130),
    ]
    assert scheduler.counts == Counts(interrupted=2)


def test_interrupting_one_engine_hands_its_tasks_to_another_while_the_run_goes_on() -> None:
    scheduler = make_scheduler()
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    feed_stream(scheduler, Stream(TASKS[:2]), now=1.0)
    scheduler.handle(EngineJoined(1, 'node1', slots=1))
    assert scheduler.handle(InterruptEngines('walltime', engine_ranks=(0,))) == [AbortEngine(0, 'walltime')]
    stopped = finished(TASKS[0], return_code=-15, kind=RecordKind.INTERRUPTED)
    # The attempt is not the task's result; its next attempt goes to the other engine at once (queued behind task 1).
    assert scheduler.handle(reported(0, stopped)) == [WriteRecord(stopped, final=False), SendTask(1, TASKS[0], 2)]
    assert TASKS[0] not in scheduler.pending
    assert scheduler.counts.interrupted == 0


def test_an_engine_that_interrupts_a_task_on_its_own_is_stopping_and_gets_no_new_task() -> None:
    # A signal reached it (a batch system ending the job signals every process): its task comes back interrupted
    # before its goodbye, and its freed slot must not take the task back, nor another.
    scheduler = make_scheduler()
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    feed_stream(scheduler, Stream(TASKS[:2]), now=1.0)
    stopped = finished(TASKS[0], return_code=-15, kind=RecordKind.INTERRUPTED)
    actions = scheduler.handle(reported(0, stopped))
    assert actions == [WriteRecord(stopped, final=False), DrainEngine(0)]  # run again elsewhere, not here
    assert scheduler.handle(EngineJoined(1, 'node1', slots=1)) == [SendTask(1, TASKS[0], 2)]


def test_engines_that_left_on_purpose_make_the_run_wait_and_say_how_to_add_a_context() -> None:
    scheduler = make_scheduler(add_context_hint='x_dbUtil.sh -s HOST:N')
    scheduler.handle(ContextJoined('SSH0', task_limit=1))
    scheduler.handle(EngineJoined(0, 'node0', slots=1, context='SSH0'))
    feed_stream(scheduler, Stream(TASKS[:2]), now=1.0)
    record = finished(TASKS[0])
    assert DrainEngine(0) in scheduler.handle(reported(0, record))  # -C 1: its one task is done
    # Its process may end before its goodbye is read: still a departure on purpose.
    assert scheduler.handle(EngineGone(0, lost=True, now=2.0)) == []
    actions = scheduler.handle(NoMoreEngines(now=5.0))
    assert actions == [Report(ANY)]
    assert 'waiting for a context' in reports(actions)[0] and 'x_dbUtil.sh -s HOST:N' in reports(actions)[0]
    assert scheduler.handle(NoMoreEngines(now=6.0)) == []  # said once
    scheduler.handle(EngineJoined(1, 'node1', slots=1))
    assert scheduler.wants_item()  # the run goes on with the new engine
