"""The pure scheduler: feed events, compare the exact list of actions it answers with.

Items are pulled the way the driver loop pulls them: one at a time while `wants_item()` is True (`feed_stream`).
`Report` messages are matched with `ANY` in the action lists and checked for their key words separately.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import replace
from unittest.mock import ANY

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from disbatch.driver.core.scheduler import (
    LOST_RETURN_CODE,
    MAX_AHEAD,
    AbortEngine,
    Action,
    ContextJoined,
    Counts,
    DrainEngine,
    EngineGone,
    EngineJoined,
    Finish,
    InterruptEngines,
    ItemRead,
    NoMoreEngines,
    PutBarrierKey,
    RecordRead,
    Report,
    RetireEngines,
    Scheduler,
    SchedulerConfig,
    SendTask,
    State,
    StopRequested,
    StreamEnded,
    TaskFinished,
    WriteRecord,
)
from disbatch.results.record import RecordKind, StatusRecord
from disbatch.taskfile.items import NO_REPEAT, Barrier, Task

# ---------------------------------------------------------------- helpers


def make_scheduler(**options: object) -> Scheduler:
    return Scheduler(SchedulerConfig(driver_host='head', driver_pid=1, **options))  # type: ignore[arg-type]


def task(task_id: int, line_number: int | None = None) -> Task:
    return Task(task_id, task_id + 1 if line_number is None else line_number, NO_REPEAT, f'echo {task_id}')


def barrier(task_id: int, check: bool = False, key: str | None = None) -> Barrier:
    text = '#DISBATCH BARRIER' + (' CHECK' if check else '') + (f' {key}' if key is not None else '')
    return Barrier(task_id, task_id + 1, check, key, text)


def finished(
    of: Task,
    *,
    host: str = 'node0',
    return_code: int = 0,
    start: float = 10.0,
    elapsed: float = 1.0,
    kind: RecordKind = RecordKind.NORMAL,
) -> StatusRecord:
    """The record an engine reports for a task that ran."""
    return StatusRecord(
        kind=kind,
        task_id=of.task_id,
        line_number=of.line_number,
        repeat_index=of.repeat_index,
        host=host,
        pid=4242,
        return_code=return_code,
        elapsed=elapsed,
        start=start,
        finish=start + elapsed,
        out_bytes=0,
        out_snippet="''",
        err_bytes=0,
        err_snippet="''",
        command=of.command,
    )


def lost(of: Task, host: str, now: float) -> StatusRecord:
    """The record of an attempt that died with its engine: PID -1, return code -100, start = finish = now."""
    return replace(finished(of, host=host, start=now, elapsed=0.0), pid=-1, return_code=LOST_RETURN_CODE, finish=now)


def barrier_record(of: Barrier, start: float, finish: float) -> StatusRecord:
    return StatusRecord(
        kind=RecordKind.BARRIER_CHECK if of.check else RecordKind.BARRIER,
        task_id=of.task_id,
        line_number=of.line_number,
        repeat_index=NO_REPEAT,
        host='head',
        pid=1,
        return_code=0,
        elapsed=round(finish - start, 3),
        start=start,
        finish=finish,
        out_bytes=0,
        out_snippet="''",
        err_bytes=0,
        err_snippet="''",
        command=of.text,
    )


class Stream:
    """A task stream the test can inspect: what is still unread."""

    def __init__(self, items: Iterable[Task | Barrier | StatusRecord]) -> None:
        self.unread = deque(items)


def feed_stream(scheduler: Scheduler, stream: Stream, now: float) -> list[Action]:
    """Pull items while the scheduler wants them, as the driver loop does; the actions it answered with."""
    actions: list[Action] = []
    while scheduler.wants_item():
        if not stream.unread:
            actions += scheduler.handle(StreamEnded(now))
            continue
        item = stream.unread.popleft()
        event = RecordRead(item) if isinstance(item, StatusRecord) else ItemRead(item, now)
        actions += scheduler.handle(event)
    return actions


def reports(actions: list[Action]) -> list[str]:
    return [action.message for action in actions if isinstance(action, Report)]


def check_the_spare(scheduler: Scheduler, drained: bool) -> None:
    """At the tail (stream over, nothing pending) at most one idle engine is left undrained while tasks run, and
    none once nothing runs; when an engine was just drained while tasks run, one idle engine was kept (no engine is
    retired in the runs that call this)."""
    if scheduler.state is not State.DRAINING or scheduler.pending:
        return
    idle = [rank for rank, engine in scheduler.engines.items() if not engine.drained and not engine.assigned]
    if scheduler.running == 0:
        assert idle == []
    else:
        assert len(idle) == 1 if drained else len(idle) <= 1


TASKS = [task(number) for number in range(10)]

# ---------------------------------------------------------------- reading and assignment


def test_nothing_is_read_before_an_engine_joins() -> None:
    scheduler = make_scheduler()
    stream = Stream(TASKS[:2])
    assert not scheduler.wants_item()
    assert feed_stream(scheduler, stream, now=1.0) == []
    assert list(stream.unread) == TASKS[:2]


def test_tasks_are_sent_up_to_the_slots_of_a_new_engine() -> None:
    scheduler = make_scheduler()
    stream = Stream(TASKS[:5])
    assert scheduler.handle(EngineJoined(0, 'node0', slots=2)) == []
    assert feed_stream(scheduler, stream, now=1.0) == [SendTask(0, TASKS[0]), SendTask(0, TASKS[1])]
    assert not scheduler.wants_item()
    assert list(stream.unread) == TASKS[2:5]
    assert scheduler.running == 2


def test_tasks_are_spread_over_engines_in_join_order() -> None:
    scheduler = make_scheduler()
    stream = Stream(TASKS[:5])
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    scheduler.handle(EngineJoined(1, 'node1', slots=2))
    assert feed_stream(scheduler, stream, now=1.0) == [
        SendTask(0, TASKS[0]),
        SendTask(1, TASKS[1]),
        SendTask(1, TASKS[2]),
    ]


def test_a_finished_task_frees_its_slot_for_the_next() -> None:
    scheduler = make_scheduler()
    stream = Stream(TASKS[:4])
    scheduler.handle(EngineJoined(0, 'node0', slots=2))
    feed_stream(scheduler, stream, now=1.0)
    record = finished(TASKS[0], elapsed=1.0)
    assert scheduler.handle(TaskFinished(0, record)) == [WriteRecord(record)]
    assert feed_stream(scheduler, stream, now=12.0) == [SendTask(0, TASKS[2])]
    assert not scheduler.wants_item()
    assert scheduler.counts == Counts(finished=1)


def test_engines_running_short_tasks_get_tasks_queued_ahead_and_one_per_slot_again_once_tasks_are_long() -> None:
    scheduler = make_scheduler()
    stream = Stream(TASKS)
    scheduler.handle(EngineJoined(0, 'node0', slots=2))
    assert feed_stream(scheduler, stream, now=1.0) == [SendTask(0, TASKS[0]), SendTask(0, TASKS[1])]
    # One short task finished (15 ms: one task's worth of PIPELINE_SECONDS): the engine now takes 2 x 2 tasks
    # (one running and one queued per slot).
    scheduler.handle(TaskFinished(0, finished(TASKS[0], elapsed=0.015)))
    assert feed_stream(scheduler, stream, now=2.0) == [
        SendTask(0, TASKS[2]),
        SendTask(0, TASKS[3]),
        SendTask(0, TASKS[4]),
    ]
    assert scheduler.running == 4
    # A long task pulls the average over the threshold: back to one task per slot, so nothing is sent until
    # fewer than 2 are outstanding.
    scheduler.handle(TaskFinished(0, finished(TASKS[1], elapsed=5.0)))
    assert feed_stream(scheduler, stream, now=7.0) == []
    scheduler.handle(TaskFinished(0, finished(TASKS[2], elapsed=5.0)))
    assert feed_stream(scheduler, stream, now=12.0) == []
    scheduler.handle(TaskFinished(0, finished(TASKS[3], elapsed=5.0)))
    assert feed_stream(scheduler, stream, now=17.0) == [SendTask(0, TASKS[5])]
    assert scheduler.running == 2


@pytest.mark.parametrize(('elapsed', 'per_slot'), [(0.001, 1 + MAX_AHEAD), (0.0035, 1 + 5), (0.03, 2), (0.06, 1)])
def test_the_queue_ahead_of_each_slot_holds_about_pipeline_seconds_of_work(elapsed: float, per_slot: int) -> None:
    tasks = [task(i) for i in range(200)]
    scheduler = make_scheduler()
    stream = Stream(tasks)
    scheduler.handle(EngineJoined(0, 'node0', slots=3))
    feed_stream(scheduler, stream, now=1.0)
    for done in range(3 * MAX_AHEAD):  # enough short tasks in a row for the queue to reach its full depth
        scheduler.handle(TaskFinished(0, finished(tasks[done], elapsed=elapsed)))
        feed_stream(scheduler, stream, now=2.0 + done)
    assert scheduler.running == 3 * per_slot


def test_the_queue_ahead_grows_with_the_short_tasks_done_in_a_row_and_a_long_one_empties_it() -> None:
    tasks = [task(i) for i in range(100)]
    scheduler = make_scheduler()
    stream = Stream(tasks)
    scheduler.handle(EngineJoined(0, 'node0', slots=2))
    feed_stream(scheduler, stream, now=1.0)
    outstanding = []
    for done in range(8):
        scheduler.handle(TaskFinished(0, finished(tasks[done], elapsed=0.001)))
        feed_stream(scheduler, stream, now=2.0 + done)
        outstanding.append(scheduler.running)
    # 1 ahead per slot from the first short task on, then one more per slot for every 2 (= slots) in a row
    assert outstanding == [4, 4, 4, 6, 6, 8, 8, 10]
    scheduler.handle(TaskFinished(0, finished(tasks[8], elapsed=5.0)))
    assert feed_stream(scheduler, stream, now=20.0) == []  # back to one per slot: nothing more until they drain
    assert scheduler.running == 9


def test_a_resumed_record_is_written_and_counted_without_needing_a_slot() -> None:
    scheduler = make_scheduler()
    skipped = [finished(TASKS[0]).as_skipped(), finished(TASKS[1]).as_skipped()]
    stream = Stream([*skipped, TASKS[2], TASKS[3]])
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    assert feed_stream(scheduler, stream, now=1.0) == [
        WriteRecord(skipped[0]),
        WriteRecord(skipped[1]),
        SendTask(0, TASKS[2]),
    ]
    assert list(stream.unread) == [TASKS[3]]
    assert scheduler.counts == Counts(skipped=2)


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
    assert scheduler.handle(TaskFinished(0, second)) == [WriteRecord(second)]
    assert feed_stream(scheduler, stream, now=8.0) == []
    # The barrier is recorded with the last record before it: start = when reached, finish = the last finish.
    assert scheduler.handle(TaskFinished(0, first)) == [
        WriteRecord(first),
        WriteRecord(barrier_record(wall, 5.0, 15.0)),
    ]
    assert feed_stream(scheduler, stream, now=15.0) == [SendTask(0, TASKS[3])]  # busy: drained once idle
    last = finished(TASKS[3], start=15.0)
    assert scheduler.handle(TaskFinished(0, last)) == [WriteRecord(last), DrainEngine(0)]
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
    assert scheduler.handle(TaskFinished(0, record)) == [
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
    assert scheduler.handle(TaskFinished(0, record)) == [
        WriteRecord(record),
        WriteRecord(barrier_record(check, 5.0, 6.0)),
    ]
    assert feed_stream(scheduler, stream, now=6.0) == [SendTask(0, TASKS[2])]
    last = finished(TASKS[2], start=6.0)
    assert scheduler.handle(TaskFinished(0, last)) == [WriteRecord(last), DrainEngine(0)]
    assert scheduler.counts == Counts(finished=2, barriers=1)


def test_a_barrier_check_ignores_failures_before_the_previous_barrier() -> None:
    scheduler = make_scheduler()
    wall, check = barrier(1), barrier(3, check=True)
    stream = Stream([TASKS[0], wall, TASKS[2], check, TASKS[4]])
    scheduler.handle(EngineJoined(0, 'node0', slots=2))
    assert feed_stream(scheduler, stream, now=1.0) == [SendTask(0, TASKS[0])]
    failure = finished(TASKS[0], return_code=1, start=1.0, elapsed=10.0)
    assert scheduler.handle(TaskFinished(0, failure)) == [
        WriteRecord(failure),
        WriteRecord(barrier_record(wall, 1.0, 11.0)),
    ]
    assert feed_stream(scheduler, stream, now=11.0) == [SendTask(0, TASKS[2])]
    success = finished(TASKS[2], start=11.0)
    assert scheduler.handle(TaskFinished(0, success)) == [
        WriteRecord(success),
        WriteRecord(barrier_record(check, 11.0, 12.0)),
    ]
    assert feed_stream(scheduler, stream, now=12.0) == [SendTask(0, TASKS[4])]
    last = finished(TASKS[4], start=12.0)
    assert scheduler.handle(TaskFinished(0, last)) == [WriteRecord(last), DrainEngine(0)]
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
    assert scheduler.handle(TaskFinished(0, failure)) == [WriteRecord(failure)]
    actions = scheduler.handle(TaskFinished(0, success))
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


# ---------------------------------------------------------------- the end of a run


def test_the_end_of_the_stream_drains_each_engine_once_idle_and_the_run_finishes_when_all_are_gone() -> None:
    scheduler = make_scheduler()
    stream = Stream(TASKS[:3])
    for rank in range(3):
        scheduler.handle(EngineJoined(rank, f'node{rank}', slots=1))
    assert feed_stream(scheduler, stream, now=1.0) == [
        SendTask(0, TASKS[0]),
        SendTask(1, TASKS[1]),
        SendTask(2, TASKS[2]),
    ]
    scheduler.handle(TaskFinished(0, finished(TASKS[0])))
    # Engine 0 is the only idle engine at the tail: kept as the spare while engines 1 and 2 run.
    assert feed_stream(scheduler, stream, now=11.0) == []
    assert scheduler.state is State.DRAINING
    # Engine 1 goes idle: the spare stays the same, and engine 1 is released at once.
    record = finished(TASKS[1], host='node1')
    assert scheduler.handle(TaskFinished(1, record)) == [WriteRecord(record), DrainEngine(1)]
    assert scheduler.handle(EngineGone(1, lost=False, now=11.0)) == []
    # A busy engine is drained only when its last task has finished, and with nothing running the spare goes too.
    record = finished(TASKS[2], host='node2')
    assert scheduler.handle(TaskFinished(2, record)) == [WriteRecord(record), DrainEngine(0), DrainEngine(2)]
    assert scheduler.handle(EngineGone(0, lost=False, now=12.0)) == []
    assert scheduler.handle(EngineGone(2, lost=False, now=12.0)) == [Finish(0)]
    assert scheduler.counts == Counts(finished=3)


@pytest.mark.parametrize(('exit_code_on_failure', 'exit_code'), [(False, 0), (True, 1)])
def test_a_failed_task_sets_the_exit_code_only_with_dash_e(exit_code_on_failure: bool, exit_code: int) -> None:
    scheduler = make_scheduler(exit_code_on_failure=exit_code_on_failure)
    stream = Stream(TASKS[:1])
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    feed_stream(scheduler, stream, now=1.0)
    scheduler.handle(TaskFinished(0, finished(TASKS[0], return_code=2)))
    assert feed_stream(scheduler, stream, now=11.0) == [DrainEngine(0)]
    assert scheduler.handle(EngineGone(0, lost=False, now=11.0)) == [Finish(exit_code)]
    assert scheduler.counts == Counts(finished=1, failed=1)


def test_no_event_has_any_effect_once_the_run_is_finished() -> None:
    scheduler = make_scheduler()
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    feed_stream(scheduler, Stream([]), now=1.0)
    assert scheduler.handle(EngineGone(0, lost=False, now=1.0)) == [Finish(0)]
    assert scheduler.handle(NoMoreEngines(now=2.0)) == []  # nothing was left: no error
    assert scheduler.handle(EngineJoined(1, 'node1', slots=1)) == []
    assert scheduler.handle(StopRequested('SIGINT received', 130)) == []
    assert not scheduler.wants_item()


def test_an_engine_joining_while_the_run_drains_is_drained() -> None:
    scheduler = make_scheduler()
    stream = Stream(TASKS[:1])
    scheduler.handle(EngineJoined(0, 'node0', slots=2))
    assert feed_stream(scheduler, stream, now=1.0) == [SendTask(0, TASKS[0])]
    assert scheduler.state is State.DRAINING
    # The first to join while engine 0 runs is kept as the spare; the next one is drained at once.
    assert scheduler.handle(EngineJoined(1, 'node1', slots=4)) == []
    assert scheduler.handle(EngineJoined(2, 'node2', slots=4)) == [DrainEngine(2)]
    assert not scheduler.wants_item()
    assert scheduler.handle(EngineGone(2, lost=False, now=2.0)) == []
    record = finished(TASKS[0])
    assert scheduler.handle(TaskFinished(0, record)) == [WriteRecord(record), DrainEngine(0), DrainEngine(1)]
    assert scheduler.handle(EngineGone(0, lost=False, now=11.0)) == []
    assert scheduler.handle(EngineGone(1, lost=False, now=11.0)) == [Finish(0)]


def test_an_engine_joining_while_the_run_stops_is_aborted_and_waited_for() -> None:
    scheduler = make_scheduler()
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    feed_stream(scheduler, Stream(TASKS[:3]), now=1.0)
    scheduler.handle(StopRequested('SIGTERM received', 143))
    assert scheduler.handle(EngineJoined(1, 'node1', slots=1)) == [AbortEngine(1, 'run is stopping')]
    scheduler.handle(TaskFinished(0, finished(TASKS[0], return_code=-15)))
    assert scheduler.handle(EngineGone(0, lost=False, now=2.0)) == []
    assert scheduler.handle(EngineGone(1, lost=False, now=2.0)) == [Finish(143)]


def test_per_engine_task_records_are_just_written() -> None:
    scheduler = make_scheduler()
    stream = Stream(TASKS[:3])
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    feed_stream(scheduler, stream, now=1.0)
    start_task = finished(Task(0, 1, NO_REPEAT, 'hostname'), kind=RecordKind.PER_ENGINE)
    assert scheduler.handle(TaskFinished(0, start_task)) == [WriteRecord(start_task)]
    assert scheduler.running == 1  # task 0 (the normal one, same id) is still running
    assert feed_stream(scheduler, stream, now=2.0) == []
    assert scheduler.handle(TaskFinished(7, start_task)) == [WriteRecord(start_task)]  # even from a gone engine
    assert scheduler.counts == Counts()


# ---------------------------------------------------------------- the spare kept at the tail


def test_one_idle_engine_is_kept_as_a_spare_while_another_runs_and_drained_when_the_last_task_finishes() -> None:
    scheduler = make_scheduler()
    for rank in range(3):
        scheduler.handle(EngineJoined(rank, f'node{rank}', slots=1))
    # The stream ends with engines 0 and 1 busy: engine 2, the only idle one, is kept as the spare.
    assert feed_stream(scheduler, Stream(TASKS[:2]), now=1.0) == [SendTask(0, TASKS[0]), SendTask(1, TASKS[1])]
    assert scheduler.state is State.DRAINING
    # Engine 0 goes idle: the spare stays engine 2 (not the first idle engine), so engine 0 is drained.
    first = finished(TASKS[0])
    assert scheduler.handle(TaskFinished(0, first)) == [WriteRecord(first), DrainEngine(0)]
    assert scheduler.handle(EngineGone(0, lost=False, now=11.0)) == []
    # The last task finishes: nothing runs any more, so the spare is drained too.
    last = finished(TASKS[1], host='node1')
    assert scheduler.handle(TaskFinished(1, last)) == [WriteRecord(last), DrainEngine(1), DrainEngine(2)]
    assert scheduler.handle(EngineGone(1, lost=False, now=11.0)) == []
    assert scheduler.handle(EngineGone(2, lost=False, now=11.0)) == [Finish(0)]
    assert scheduler.counts == Counts(finished=2)


def test_the_first_idle_engine_in_rank_order_is_the_spare_when_the_tail_begins() -> None:
    scheduler = make_scheduler()
    for rank in (5, 3, 4):  # insertion order, not rank number
        scheduler.handle(EngineJoined(rank, f'node{rank}', slots=1))
    assert feed_stream(scheduler, Stream(TASKS[:1]), now=1.0) == [
        SendTask(5, TASKS[0]),
        DrainEngine(4),
    ]
    record = finished(TASKS[0], host='node5')
    assert scheduler.handle(TaskFinished(5, record)) == [WriteRecord(record), DrainEngine(5), DrainEngine(3)]


@pytest.mark.parametrize(
    ('driver_host', 'hostname'), [('head', 'head'), ('head', 'head.cluster.org'), ('head.cluster.org', 'head')]
)
def test_the_engine_on_the_driver_host_is_preferred_as_the_spare(driver_host: str, hostname: str) -> None:
    scheduler = Scheduler(SchedulerConfig(driver_host=driver_host, driver_pid=1))
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    scheduler.handle(EngineJoined(1, 'node1', slots=1))
    scheduler.handle(EngineJoined(2, hostname, slots=1))
    # All idle at the tail while engine 0 runs: the driver host's engine is kept, though not first in rank order.
    assert feed_stream(scheduler, Stream(TASKS[:1]), now=1.0) == [SendTask(0, TASKS[0]), DrainEngine(1)]
    record = finished(TASKS[0])
    assert scheduler.handle(TaskFinished(0, record)) == [WriteRecord(record), DrainEngine(0), DrainEngine(2)]


def test_the_driver_host_engine_going_idle_takes_over_as_the_spare_and_the_previous_spare_is_drained() -> None:
    scheduler = make_scheduler()
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    scheduler.handle(EngineJoined(1, 'head.cluster.org', slots=1))
    scheduler.handle(EngineJoined(2, 'node2', slots=1))
    assert feed_stream(scheduler, Stream(TASKS[:2]), now=1.0) == [SendTask(0, TASKS[0]), SendTask(1, TASKS[1])]
    # Engine 2 is the spare until the driver host's engine is idle; then engine 2 is drained.
    here = finished(TASKS[1], host='head')
    assert scheduler.handle(TaskFinished(1, here)) == [WriteRecord(here), DrainEngine(2)]
    # An engine joining now does not displace the driver host's spare.
    assert scheduler.handle(EngineJoined(3, 'node3', slots=1)) == [DrainEngine(3)]
    assert scheduler.handle(EngineGone(2, lost=False, now=2.0)) == []
    assert scheduler.handle(EngineGone(3, lost=False, now=2.0)) == []
    last = finished(TASKS[0])
    assert scheduler.handle(TaskFinished(0, last)) == [WriteRecord(last), DrainEngine(0), DrainEngine(1)]
    assert scheduler.handle(EngineGone(0, lost=False, now=12.0)) == []
    assert scheduler.handle(EngineGone(1, lost=False, now=12.0)) == [Finish(0)]


def test_a_task_lost_at_the_tail_runs_on_the_spare_and_the_run_finishes_with_0() -> None:
    scheduler = make_scheduler()
    for rank in range(3):
        scheduler.handle(EngineJoined(rank, f'node{rank}', slots=1))
    assert feed_stream(scheduler, Stream(TASKS[:2]), now=1.0) == [SendTask(0, TASKS[0]), SendTask(1, TASKS[1])]
    # Engine 0 crashes at the tail: its task goes to the spare (engine 2) as its second attempt.
    actions = scheduler.handle(EngineGone(0, lost=True, now=3.0))
    assert actions == [
        Report(ANY),
        WriteRecord(lost(TASKS[0], 'node0', 3.0), final=False),
        SendTask(2, TASKS[0], attempt=2),
    ]
    assert 'engine 0 on node0 was lost with 1 task(s) running or queued' in reports(actions)[0]
    # The spare, idle again while engine 1 still runs, is kept again.
    retried = finished(TASKS[0], host='node2', start=4.0)
    assert scheduler.handle(TaskFinished(2, retried)) == [WriteRecord(retried, final=True)]
    last = finished(TASKS[1], host='node1')
    assert scheduler.handle(TaskFinished(1, last)) == [WriteRecord(last), DrainEngine(1), DrainEngine(2)]
    assert scheduler.handle(EngineGone(1, lost=False, now=12.0)) == []
    assert scheduler.handle(EngineGone(2, lost=False, now=12.0)) == [Finish(0)]
    assert scheduler.counts == Counts(finished=2, lost=1)


def test_an_engine_retired_by_the_monitor_is_never_kept_as_the_spare() -> None:
    scheduler = make_scheduler()
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    scheduler.handle(EngineJoined(1, 'node1', slots=1))
    scheduler.handle(EngineJoined(2, 'head', slots=1))
    assert feed_stream(scheduler, Stream(TASKS[:2]), now=1.0) == [SendTask(0, TASKS[0]), SendTask(1, TASKS[1])]
    # The spare (on the driver host) is retired: drained at once, though engines 0 and 1 still run.
    assert scheduler.handle(RetireEngines(engine_ranks=(2,))) == [DrainEngine(2)]
    # A busy engine retired at the tail is drained once idle, not kept, though it is the only idle one while
    # engine 1 still runs.
    assert scheduler.handle(RetireEngines(engine_ranks=(0,))) == []
    record = finished(TASKS[0])
    assert scheduler.handle(TaskFinished(0, record)) == [WriteRecord(record), DrainEngine(0)]
    last = finished(TASKS[1], host='node1')
    assert scheduler.handle(TaskFinished(1, last)) == [WriteRecord(last), DrainEngine(1)]
    for rank in range(3):
        scheduler.handle(EngineGone(rank, lost=False, now=12.0))
    assert scheduler.state is State.FINISHED


def test_an_engine_whose_context_reached_its_task_limit_is_never_kept_as_the_spare() -> None:
    scheduler = make_scheduler()
    scheduler.handle(ContextJoined('local', task_limit=1))
    scheduler.handle(EngineJoined(0, 'head', slots=1, context='local'))
    scheduler.handle(EngineJoined(1, 'node1', slots=1))
    scheduler.handle(EngineJoined(2, 'node2', slots=1))
    actions = feed_stream(scheduler, Stream(TASKS[:2]), now=1.0)
    assert actions == [SendTask(0, TASKS[0]), Report(ANY), SendTask(1, TASKS[1])]
    assert 'context local has been given its 1 tasks (-C)' in reports(actions)[0]
    # Engine 0 is on the driver host but retiring (-C): drained when idle; engine 2 stays the spare.
    record = finished(TASKS[0], host='head')
    assert scheduler.handle(TaskFinished(0, record)) == [WriteRecord(record), DrainEngine(0)]
    last = finished(TASKS[1], host='node1')
    assert scheduler.handle(TaskFinished(1, last)) == [WriteRecord(last), DrainEngine(1), DrainEngine(2)]
    assert scheduler.handle(EngineGone(0, lost=False, now=12.0)) == []
    assert scheduler.handle(EngineGone(1, lost=False, now=12.0)) == []
    assert scheduler.handle(EngineGone(2, lost=False, now=12.0)) == [Finish(0)]


# ---------------------------------------------------------------- stopping early


def test_fail_fast_aborts_every_engine_at_the_first_failure_and_finishes_with_1() -> None:
    scheduler = make_scheduler(fail_fast=True)
    stream = Stream(TASKS[:5])
    scheduler.handle(EngineJoined(0, 'node0', slots=2))
    scheduler.handle(EngineJoined(1, 'node1', slots=1))
    feed_stream(scheduler, stream, now=1.0)
    failure = finished(TASKS[1], return_code=1)
    actions = scheduler.handle(TaskFinished(0, failure))
    reason = reports(actions)[0]
    assert actions == [WriteRecord(failure), Report(reason), AbortEngine(0, reason), AbortEngine(1, reason)]
    assert 'task 1 (line 2) failed with return code 1' in reason
    assert scheduler.state is State.STOPPING
    assert feed_stream(scheduler, stream, now=11.0) == []
    assert list(stream.unread) == TASKS[3:5]
    # The aborted engines report the tasks they killed, then leave.
    killed = [finished(TASKS[0], return_code=-15), finished(TASKS[2], host='node1', return_code=-15)]
    assert scheduler.handle(TaskFinished(0, killed[0])) == [WriteRecord(killed[0])]
    assert scheduler.handle(EngineGone(0, lost=False, now=12.0)) == []
    assert scheduler.handle(TaskFinished(1, killed[1])) == [WriteRecord(killed[1])]
    assert scheduler.handle(EngineGone(1, lost=False, now=12.0)) == [Finish(1)]
    assert scheduler.counts == Counts(finished=3, failed=3)


def test_fail_fast_also_stops_the_tail_of_the_run() -> None:
    scheduler = make_scheduler(fail_fast=True)
    scheduler.handle(EngineJoined(0, 'node0', slots=3))
    assert feed_stream(scheduler, Stream(TASKS[:2]), now=1.0) == [SendTask(0, TASKS[0]), SendTask(0, TASKS[1])]
    assert not scheduler.more_tasks  # the stream has ended: this is the tail of the run
    failure = finished(TASKS[0], return_code=1)
    actions = scheduler.handle(TaskFinished(0, failure))
    assert actions == [WriteRecord(failure), Report(ANY), AbortEngine(0, ANY)]  # task 1 must not run on
    assert 'task 0 (line 1) failed with return code 1' in reports(actions)[0]
    assert scheduler.state is State.STOPPING
    scheduler.handle(TaskFinished(0, finished(TASKS[1], return_code=-15)))
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
    scheduler.handle(TaskFinished(0, finished(TASKS[0], return_code=-2)))
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
    scheduler.handle(TaskFinished(0, finished(TASKS[0])))
    assert scheduler.handle(EngineGone(0, lost=False, now=2.0)) == [Finish(1)]


def test_a_stop_with_no_engine_finishes_at_once() -> None:
    scheduler = make_scheduler()
    assert scheduler.handle(StopRequested('SIGTERM received', 143)) == [Report('SIGTERM received'), Finish(143)]


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
    assert scheduler.state is State.DRAINING
    actions = scheduler.handle(EngineGone(0, lost=True, now=3.0))
    assert actions == [
        Report(ANY),
        WriteRecord(lost(TASKS[0], 'node0', 3.0), final=False),
        SendTask(1, TASKS[0], attempt=2),
    ]
    assert scheduler.counts == Counts(lost=1)
    # Engine 1 is drained when the last of its tasks has finished, and the run is over when it has gone.
    records = [finished(TASKS[1], host='node1'), finished(TASKS[0], host='node1', start=11.0)]
    assert scheduler.handle(TaskFinished(1, records[0])) == [WriteRecord(records[0])]
    assert scheduler.handle(TaskFinished(1, records[1])) == [WriteRecord(records[1]), DrainEngine(1)]
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
    record = finished(TASKS[0], host='node3', start=5.0)
    assert scheduler.handle(TaskFinished(3, record)) == [WriteRecord(record), DrainEngine(3)]
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
    record = finished(TASKS[0], host='node2', start=5.0)
    assert scheduler.handle(TaskFinished(2, record)) == [WriteRecord(record), DrainEngine(2)]
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


def test_a_late_report_of_a_task_given_up_is_recorded_as_a_zombie() -> None:
    scheduler = make_scheduler()
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    feed_stream(scheduler, Stream(TASKS[:3]), now=1.0)
    scheduler.handle(EngineGone(0, lost=True, now=2.0))
    assert scheduler.handle(EngineJoined(1, 'node1', slots=1)) == [SendTask(1, TASKS[0], attempt=2)]
    late = finished(TASKS[0])
    assert scheduler.handle(TaskFinished(0, late)) == [WriteRecord(replace(late, kind=RecordKind.ZOMBIE))]
    # Engine 1 holds task 0 but was never sent task 1: a report of task 1 from it is a zombie too.
    stray = finished(TASKS[1], host='node1')
    assert scheduler.handle(TaskFinished(1, stray)) == [WriteRecord(replace(stray, kind=RecordKind.ZOMBIE))]
    assert scheduler.running == 1
    assert scheduler.counts == Counts(lost=1)


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


# ---------------------------------------------------------------- retries (--retries) and timeouts (--timeout)


def test_a_task_failing_twice_then_succeeding_with_two_retries_is_recorded_three_times_and_counted_once() -> None:
    scheduler = make_scheduler(retries=2, exit_code_on_failure=True)
    stream = Stream(TASKS[:2])
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    assert feed_stream(scheduler, stream, now=1.0) == [SendTask(0, TASKS[0], attempt=1)]
    attempts = [
        finished(TASKS[0], return_code=1, start=10.0),
        finished(TASKS[0], return_code=1, start=11.0),
        finished(TASKS[0], start=12.0),
    ]
    # Each failed attempt is recorded, and the task is sent again at once, ahead of the rest of the stream.
    assert scheduler.handle(TaskFinished(0, attempts[0])) == [
        WriteRecord(attempts[0], final=False),
        SendTask(0, TASKS[0], 2),
    ]
    assert feed_stream(scheduler, stream, now=11.0) == []
    assert list(stream.unread) == [TASKS[1]]
    assert scheduler.counts == Counts()  # a failure that will be retried is no final result
    assert scheduler.handle(TaskFinished(0, attempts[1])) == [
        WriteRecord(attempts[1], final=False),
        SendTask(0, TASKS[0], 3),
    ]
    assert scheduler.handle(TaskFinished(0, attempts[2])) == [WriteRecord(attempts[2], final=True)]
    assert scheduler.counts == Counts(finished=1)
    # The next task is a first attempt again.
    assert feed_stream(scheduler, stream, now=13.0) == [SendTask(0, TASKS[1], attempt=1)]
    last = finished(TASKS[1], start=13.0)
    assert scheduler.handle(TaskFinished(0, last)) == [WriteRecord(last)]
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
    assert scheduler.handle(TaskFinished(1, failure)) == [
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
    failures = [finished(TASKS[0], return_code=3, start=10.0), finished(TASKS[0], return_code=3, start=11.0)]
    assert scheduler.handle(TaskFinished(0, failures[0])) == [
        WriteRecord(failures[0], final=False),
        SendTask(0, TASKS[0], 2),
    ]
    # The second attempt is the last (1 + 1 retry): recorded as the task's result, not sent again.
    assert scheduler.handle(TaskFinished(0, failures[1])) == [WriteRecord(failures[1], final=True)]
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
    assert scheduler.handle(TaskFinished(0, first)) == [
        WriteRecord(first, final=False),
        SendTask(0, TASKS[0], attempt=2),
    ]
    assert scheduler.state is State.RUNNING
    second = finished(TASKS[0], return_code=1, start=11.0)
    actions = scheduler.handle(TaskFinished(0, second))
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
    assert scheduler.handle(TaskFinished(1, killed)) == [WriteRecord(killed, final=True)]
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
    assert scheduler.handle(TaskFinished(0, failure)) == [
        WriteRecord(failure, final=False),
        SendTask(0, TASKS[0], attempt=2),
    ]
    success = finished(TASKS[0], start=6.0, elapsed=1.0)
    assert scheduler.handle(TaskFinished(0, success)) == [
        WriteRecord(success, final=True),
        WriteRecord(barrier_record(check, 5.0, 7.0)),
    ]
    assert feed_stream(scheduler, stream, now=7.0) == [SendTask(0, TASKS[2])]
    last = finished(TASKS[2], start=7.0)
    assert scheduler.handle(TaskFinished(0, last)) == [WriteRecord(last), DrainEngine(0)]
    assert scheduler.handle(EngineGone(0, lost=False, now=8.0)) == [Finish(0)]
    assert scheduler.counts == Counts(finished=2, barriers=1)


def test_a_timed_out_task_is_retried_like_a_failure_and_reported_as_timed_out() -> None:
    scheduler = make_scheduler(retries=1, fail_fast=True)
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    feed_stream(scheduler, Stream(TASKS[:2]), now=1.0)
    timed_out = [
        finished(TASKS[0], return_code=-15, elapsed=3.0, kind=RecordKind.TIMED_OUT),
        finished(TASKS[0], return_code=-9, start=13.0, elapsed=4.0, kind=RecordKind.TIMED_OUT),
    ]
    assert scheduler.handle(TaskFinished(0, timed_out[0])) == [
        WriteRecord(timed_out[0], final=False),
        SendTask(0, TASKS[0], 2),
    ]
    actions = scheduler.handle(TaskFinished(0, timed_out[1]))
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
    assert scheduler.handle(TaskFinished(0, caught)) == expected
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
    assert scheduler.handle(TaskFinished(0, failure)) == [
        WriteRecord(failure, final=False),
        SendTask(0, TASKS[0], attempt=2),
    ]
    assert scheduler.handle(EngineGone(0, lost=True, now=12.0)) == [
        Report(ANY),
        WriteRecord(lost(TASKS[0], 'node0', 12.0), final=False),
    ]
    assert scheduler.handle(EngineJoined(1, 'node1', slots=1)) == [SendTask(1, TASKS[0], attempt=3)]
    # The third run is the last of 1 + 2 retries: its failure is final.
    last = finished(TASKS[0], host='node1', return_code=1, start=13.0)
    actions = scheduler.handle(TaskFinished(1, last))
    assert actions == [WriteRecord(last, final=True), Report(ANY), AbortEngine(1, ANY)]
    assert 'task 0 (line 1) failed with return code 1' in reports(actions)[0]
    assert scheduler.counts == Counts(finished=1, failed=1, lost=1)


def test_a_failure_after_a_lost_run_is_final_once_one_plus_retries_runs_were_made() -> None:
    scheduler = make_scheduler(max_attempts=3, retries=1)
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    feed_stream(scheduler, Stream(TASKS[:1]), now=1.0)
    scheduler.handle(EngineGone(0, lost=True, now=2.0))
    assert scheduler.handle(EngineJoined(1, 'node1', slots=1)) == [SendTask(1, TASKS[0], attempt=2)]
    failure = finished(TASKS[0], host='node1', return_code=1)
    assert scheduler.handle(TaskFinished(1, failure)) == [WriteRecord(failure, final=True)]
    assert scheduler.counts == Counts(finished=1, failed=1, lost=1)


def test_a_task_killed_by_a_stop_is_not_retried() -> None:
    scheduler = make_scheduler(retries=3)
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    feed_stream(scheduler, Stream(TASKS[:2]), now=1.0)
    reason = 'SIGINT received: stopping every running task'
    assert scheduler.handle(StopRequested(reason, 130)) == [Report(reason), AbortEngine(0, reason)]
    killed = finished(TASKS[0], return_code=-2)
    assert scheduler.handle(TaskFinished(0, killed)) == [WriteRecord(killed, final=True)]
    assert scheduler.handle(EngineGone(0, lost=False, now=2.0)) == [Finish(130)]
    assert scheduler.counts == Counts(finished=1, failed=1)


@settings(max_examples=200, deadline=None)
@given(
    failures=st.lists(st.integers(0, 4), min_size=1, max_size=6),
    retries=st.integers(0, 3),
    max_attempts=st.integers(1, 3),
    slots=st.lists(st.integers(1, 3), min_size=1, max_size=3),
    data=st.data(),
)
def test_every_task_runs_until_it_succeeds_or_its_attempts_are_spent_and_has_one_final_record(
    failures: list[int], retries: int, max_attempts: int, slots: list[int], data: st.DataObject
) -> None:
    """Task i fails its first failures[i] runs (4: every run), some of them by timing out; engines may be lost.

    A failed run is run again while fewer than 1 + retries runs were made, a lost one while fewer than
    max(max_attempts, 1 + retries): lost and failed runs share the count. Every record of a run that is run again is
    written with final=False; the last record of each task, and only it, is final.
    """
    tasks = [task(task_id) for task_id in range(len(failures))]
    scheduler = make_scheduler(retries=retries, max_attempts=max_attempts, exit_code_on_failure=True)
    stream = Stream(tasks)
    log: list[Action] = []
    running: dict[int, tuple[int, Task, int]] = {}  # task id -> (engine, task, attempt)
    runs: dict[int, int] = {}
    alive: set[int] = set()
    joined: set[int] = set()
    drained: list[int] = []
    lost_ranks: set[int] = set()
    losses = 0
    clock = 0.0

    def carry_out(actions: list[Action], losing: bool = False) -> None:
        for index, action in enumerate(actions):
            log.append(action)
            if isinstance(action, SendTask):
                task_id = action.task.task_id
                assert task_id not in running
                assert action.engine_rank in alive
                assert action.attempt == runs.get(task_id, 0) + 1
                runs[task_id] = action.attempt
                running[task_id] = (action.engine_rank, action.task, action.attempt)
            elif isinstance(action, WriteRecord):
                record = action.record
                was_lost = record.pid == -1 and record.return_code == LOST_RETURN_CODE
                budget = max(max_attempts, 1 + retries) if was_lost else 1 + retries
                assert action.final == (not record.failed or runs[record.task_id] >= budget)
                if record.failed and not was_lost and not action.final:  # retried at once, ahead of anything else
                    assert actions[index + 1] == SendTask(ANY, tasks[record.task_id], runs[record.task_id] + 1)
            elif isinstance(action, DrainEngine):
                assert all(holder != action.engine_rank for holder, _, _ in running.values())
                drained.append(action.engine_rank)
                alive.remove(action.engine_rank)
                carry_out(scheduler.handle(EngineGone(action.engine_rank, lost=False, now=clock)))
            assert not isinstance(action, AbortEngine)
            assert losing or not isinstance(action, Report)

    def join(rank: int, count: int) -> None:
        alive.add(rank)
        joined.add(rank)
        carry_out(scheduler.handle(EngineJoined(rank, f'node{rank}', count)))

    for rank, count in enumerate(slots):
        join(rank, count)
    for _ in range(200):
        mark = len(log)
        carry_out(feed_stream(scheduler, stream, now=clock))
        check_the_spare(scheduler, any(isinstance(action, DrainEngine) for action in log[mark:]))
        if scheduler.state is State.FINISHED:
            break
        assert running, 'the run is stuck'
        clock += 1.0
        if losses < 4 and data.draw(st.booleans(), label='an engine is lost'):
            rank = data.draw(st.sampled_from(sorted({rank for rank, _, _ in running.values()})), label='lost engine')
            for task_id in [task_id for task_id, (holder, _, _) in running.items() if holder == rank]:
                del running[task_id]
            alive.remove(rank)
            lost_ranks.add(rank)
            carry_out(scheduler.handle(EngineGone(rank, lost=True, now=clock)), losing=True)
            losses += 1
            if not isinstance(log[-1], Finish):  # a task given up can end the run: then no engine joins
                join(len(slots) + losses - 1, data.draw(st.integers(1, 3), label='slots of a new engine'))
            continue
        task_id = data.draw(st.sampled_from(sorted(running)), label='finishes')
        rank, done, attempt = running.pop(task_id)
        failing = attempt <= failures[task_id]
        kind = RecordKind.TIMED_OUT if failing and data.draw(st.booleans(), label='timed out') else RecordKind.NORMAL
        return_code = (-15 if kind is RecordKind.TIMED_OUT else 1) if failing else 0
        record = finished(done, host=f'node{rank}', return_code=return_code, start=clock, kind=kind)
        mark = len(log)
        carry_out(scheduler.handle(TaskFinished(rank, record)))
        check_the_spare(scheduler, any(isinstance(action, DrainEngine) for action in log[mark:]))

    assert scheduler.state is State.FINISHED
    # No engine is left undrained: each one that joined was drained exactly once, or lost.
    assert not alive
    assert sorted(drained) == sorted(joined - lost_ranks)
    assert [action for action in log if isinstance(action, Finish)] == [log[-1]]
    written = [(index, action) for index, action in enumerate(log) if isinstance(action, WriteRecord)]
    results: dict[int, StatusRecord] = {}
    for item in tasks:
        of_task = [(index, action) for index, action in written if action.record.task_id == item.task_id]
        # Exactly one final record per task, and it is the task's last record: after it the task is not run again.
        assert [action.final for _, action in of_task] == [False] * (len(of_task) - 1) + [True]
        assert len(of_task) == runs[item.task_id]
        last_index, last = of_task[-1]
        assert not any(isinstance(action, SendTask) and action.task == item for action in log[last_index:])
        results[item.task_id] = last.record
    lost_records = [action for _, action in written if action.record.return_code == LOST_RETURN_CODE]
    if not lost_records:
        assert runs == {task_id: min(count + 1, 1 + retries) for task_id, count in enumerate(failures)}
    final_failures = sum(1 for record in results.values() if record.failed)
    assert scheduler.counts == Counts(finished=len(tasks), failed=final_failures, lost=len(lost_records))
    assert log[-1] == Finish(1 if final_failures else 0)


# ---------------------------------------------------------------- a property over whole runs


@st.composite
def runs(draw: st.DrawFn) -> tuple[list[Task | Barrier], dict[int, int], list[int], bool]:
    """A stream of tasks and plain or keyed barriers, each task's return code, engine slots, and `-e`."""
    kinds = draw(st.lists(st.sampled_from(['task', 'task', 'task', 'barrier', 'keyed']), max_size=16))
    items: list[Task | Barrier] = []
    return_codes: dict[int, int] = {}
    for task_id, kind in enumerate(kinds):
        if kind == 'task':
            items.append(task(task_id))
            return_codes[task_id] = draw(st.sampled_from([0, 0, 0, 1]))
        else:
            items.append(barrier(task_id, key=f'key{task_id}' if kind == 'keyed' else None))
    slots = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    return items, return_codes, slots, draw(st.booleans())


@settings(max_examples=150, deadline=None)
@given(run=runs(), data=st.data())
def test_every_run_records_each_task_once_and_keeps_its_barriers(
    run: tuple[list[Task | Barrier], dict[int, int], list[int], bool], data: st.DataObject
) -> None:
    items, return_codes, slots, exit_code_on_failure = run
    scheduler = make_scheduler(exit_code_on_failure=exit_code_on_failure)
    stream = Stream(items)
    log: list[Action] = []
    running: dict[int, tuple[int, Task]] = {}  # task id -> (engine, task)
    draining: set[int] = set()
    alive: set[int] = set()
    waiting = list(range(len(slots)))  # engines not yet joined
    here = data.draw(st.integers(-1, len(slots) - 1), label='the engine on the driver host (-1: none)')
    clock = 0.0

    def carry_out(actions: list[Action]) -> None:
        for action in actions:
            log.append(action)
            if isinstance(action, SendTask):
                assert action.engine_rank in alive and action.engine_rank not in draining
                running[action.task.task_id] = (action.engine_rank, action.task)
                held = sum(1 for rank, _ in running.values() if rank == action.engine_rank)
                assert held <= (1 + MAX_AHEAD) * slots[action.engine_rank]
            elif isinstance(action, DrainEngine):
                assert action.engine_rank not in draining
                assert all(holder != action.engine_rank for holder, _ in running.values())
                # The driver host's engine, when idle, is the spare: drained only once nothing runs.
                assert action.engine_rank != here or not running
                draining.add(action.engine_rank)
            assert not isinstance(action, AbortEngine | Report)

    def join() -> None:
        rank = waiting.pop(0)
        alive.add(rank)
        hostname = 'head.cluster.org' if rank == here else f'node{rank}'
        mark = len(log)
        carry_out(scheduler.handle(EngineJoined(rank, hostname, slots[rank])))
        check_the_spare(scheduler, any(isinstance(action, DrainEngine) for action in log[mark:]))

    join()
    for _ in range(10 * len(items) + 10):
        mark = len(log)
        carry_out(feed_stream(scheduler, stream, now=clock))
        check_the_spare(scheduler, any(isinstance(action, DrainEngine) for action in log[mark:]))
        for rank in sorted(draining & alive):
            if all(holder != rank for holder, _ in running.values()):
                alive.remove(rank)
                carry_out(scheduler.handle(EngineGone(rank, lost=False, now=clock)))
        if scheduler.state is State.FINISHED:
            break
        if waiting and (not running or data.draw(st.booleans(), label='join')):
            join()
            continue
        assert running, 'the run is stuck: nothing runs and no event can come'
        task_id = data.draw(st.sampled_from(sorted(running)), label='finishes')
        rank, done = running.pop(task_id)
        elapsed = data.draw(st.sampled_from([0.01, 1.0]), label='elapsed')
        record = finished(done, host=f'node{rank}', return_code=return_codes[task_id], start=clock, elapsed=elapsed)
        clock += elapsed
        mark = len(log)
        carry_out(scheduler.handle(TaskFinished(rank, record)))
        check_the_spare(scheduler, any(isinstance(action, DrainEngine) for action in log[mark:]))

    tasks = [item for item in items if isinstance(item, Task)]
    barriers = [item for item in items if isinstance(item, Barrier)]
    failed = any(return_codes.values())
    assert log[-1] == Finish(1 if exit_code_on_failure and failed else 0)
    assert [action for action in log if isinstance(action, Finish)] == [log[-1]]
    # No engine is left undrained: every engine that joined was drained, and has gone.
    assert not alive
    assert draining == set(range(len(slots))) - set(waiting)

    written = [(index, action.record) for index, action in enumerate(log) if isinstance(action, WriteRecord)]
    # Nothing is lost and nothing retried: every record is a task's (or a barrier's) result.
    assert all(action.final for action in log if isinstance(action, WriteRecord))
    sent = {action.task.task_id: index for index, action in enumerate(log) if isinstance(action, SendTask)}
    normal = sorted(record.task_id for _, record in written if record.kind is RecordKind.NORMAL)
    assert normal == [item.task_id for item in tasks]
    recorded_at = {record.task_id: index for index, record in written if record.kind is RecordKind.NORMAL}
    for wall in barriers:
        [index] = [
            index for index, record in written if record.kind is RecordKind.BARRIER and record.task_id == wall.task_id
        ]
        assert all(recorded_at[item.task_id] < index for item in tasks if item.task_id < wall.task_id)
        assert all(sent[item.task_id] > index for item in tasks if item.task_id > wall.task_id)
        if wall.key is not None:
            assert log[index + 1] == PutBarrierKey(wall.key, wall.task_id)
    assert scheduler.counts == Counts(
        finished=len(tasks), failed=sum(1 for code in return_codes.values() if code), barriers=len(barriers)
    )


# ---------------------------------------------------------------- interrupted tasks


def test_a_task_the_run_stopped_is_recorded_interrupted_neither_finished_nor_failed() -> None:
    scheduler = make_scheduler(fail_fast=True, exit_code_on_failure=True)
    scheduler.handle(EngineJoined(0, 'node0', slots=2))
    feed_stream(scheduler, Stream(TASKS[:2]), now=1.0)
    scheduler.handle(StopRequested('SIGINT received', 130))
    stopped = finished(TASKS[0], return_code=-15, kind=RecordKind.INTERRUPTED)
    assert scheduler.handle(TaskFinished(0, stopped)) == [WriteRecord(stopped)]  # no --fail-fast report, no retry
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
    actions = scheduler.handle(TaskFinished(0, stopped))
    assert actions[0] == WriteRecord(stopped, final=False)
    assert SendTask(1, TASKS[0], 2) in actions or TASKS[0] in scheduler.pending
    assert scheduler.counts.interrupted == 0


def test_engines_that_left_on_purpose_make_the_run_wait_and_say_how_to_add_a_context() -> None:
    scheduler = make_scheduler(add_context_hint='x_dbUtil.sh -s HOST:N')
    scheduler.handle(ContextJoined('SSH0', task_limit=1))
    scheduler.handle(EngineJoined(0, 'node0', slots=1, context='SSH0'))
    feed_stream(scheduler, Stream(TASKS[:2]), now=1.0)
    record = finished(TASKS[0])
    assert DrainEngine(0) in scheduler.handle(TaskFinished(0, record))  # -C 1: its one task is done
    # Its process may end before its goodbye is read: still a departure on purpose.
    assert scheduler.handle(EngineGone(0, lost=True, now=2.0)) == []
    actions = scheduler.handle(NoMoreEngines(now=5.0))
    assert actions == [Report(ANY)]
    assert 'waiting for a context' in reports(actions)[0] and 'x_dbUtil.sh -s HOST:N' in reports(actions)[0]
    assert scheduler.handle(NoMoreEngines(now=6.0)) == []  # said once
    scheduler.handle(EngineJoined(1, 'node1', slots=1))
    assert scheduler.wants_item()  # the run goes on with the new engine
