"""The pure scheduler, the plain run: reading and assignment, the queue ahead of each slot, and the end of a run.

Feed events, compare the exact list of actions the scheduler answers with (helpers in `scheduling.py`).
"""

from __future__ import annotations

import pytest

from disbatch.driver.core.engines import MAX_AHEAD
from disbatch.driver.core.events import (
    AbortEngine,
    DrainEngine,
    EngineGone,
    EngineJoined,
    Finish,
    LogWarning,
    NoMoreEngines,
    SendTask,
    StopRequested,
    TaskFinished,
    WriteRecord,
)
from disbatch.driver.core.scheduler import Counts, RunState
from disbatch.results.record import Outcome, RecordKind, StatusRecord
from disbatch.taskfile.items import NO_REPEAT, PerEngineTask, Phase

from .scheduling import (
    TASKS,
    Stream,
    feed_stream,
    finished,
    make_scheduler,
    reported,
    task,
)

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
    assert scheduler.handle(reported(0, record)) == [WriteRecord(record)]
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
    scheduler.handle(reported(0, finished(TASKS[0], elapsed=0.015)))
    assert feed_stream(scheduler, stream, now=2.0) == [
        SendTask(0, TASKS[2]),
        SendTask(0, TASKS[3]),
        SendTask(0, TASKS[4]),
    ]
    assert scheduler.running == 4
    # A long task pulls the average over the threshold: back to one task per slot, so nothing is sent until
    # fewer than 2 are outstanding.
    scheduler.handle(reported(0, finished(TASKS[1], elapsed=5.0)))
    assert feed_stream(scheduler, stream, now=7.0) == []
    scheduler.handle(reported(0, finished(TASKS[2], elapsed=5.0)))
    assert feed_stream(scheduler, stream, now=12.0) == []
    scheduler.handle(reported(0, finished(TASKS[3], elapsed=5.0)))
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
        scheduler.handle(reported(0, finished(tasks[done], elapsed=elapsed)))
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
        scheduler.handle(reported(0, finished(tasks[done], elapsed=0.001)))
        feed_stream(scheduler, stream, now=2.0 + done)
        outstanding.append(scheduler.running)
    # 1 ahead per slot from the first short task on, then one more per slot for every 2 (= slots) in a row
    assert outstanding == [4, 4, 4, 6, 6, 8, 8, 10]
    scheduler.handle(reported(0, finished(tasks[8], elapsed=5.0)))
    assert feed_stream(scheduler, stream, now=20.0) == []  # back to one per slot: nothing more until they drain
    assert scheduler.running == 9


def test_a_resumed_record_is_counted_and_shown_without_needing_a_slot() -> None:
    # its S line went on file when the run started (ResumeIndex.carried): the action is for the observers only
    scheduler = make_scheduler()
    skipped = [finished(TASKS[0]).as_skipped(), finished(TASKS[1]).as_skipped()]
    stream = Stream([*skipped, TASKS[2], TASKS[3]])
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    assert feed_stream(scheduler, stream, now=1.0) == [
        WriteRecord(skipped[0], carried=True),
        WriteRecord(skipped[1], carried=True),
        SendTask(0, TASKS[2]),
    ]
    assert list(stream.unread) == [TASKS[3]]
    assert scheduler.counts == Counts(skipped=2)


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
    scheduler.handle(reported(0, finished(TASKS[0])))
    # Engine 0 is the only idle engine at the tail: kept as the spare while engines 1 and 2 run.
    assert feed_stream(scheduler, stream, now=11.0) == []
    assert scheduler.state is RunState.DRAINING
    # Engine 1 goes idle: the spare stays the same, and engine 1 is released at once.
    record = finished(TASKS[1], host='node1')
    assert scheduler.handle(reported(1, record)) == [WriteRecord(record), DrainEngine(1)]
    assert scheduler.handle(EngineGone(1, lost=False, now=11.0)) == []
    # A busy engine is drained only when its last task has finished, and with nothing running the spare goes too.
    record = finished(TASKS[2], host='node2')
    assert scheduler.handle(reported(2, record)) == [WriteRecord(record), DrainEngine(0), DrainEngine(2)]
    assert scheduler.handle(EngineGone(0, lost=False, now=12.0)) == []
    assert scheduler.handle(EngineGone(2, lost=False, now=12.0)) == [Finish(0)]
    assert scheduler.counts == Counts(finished=3)


@pytest.mark.parametrize(('exit_code_on_failure', 'exit_code'), [(False, 0), (True, 1)])
def test_a_failed_task_sets_the_exit_code_only_with_dash_e(exit_code_on_failure: bool, exit_code: int) -> None:
    scheduler = make_scheduler(exit_code_on_failure=exit_code_on_failure)
    stream = Stream(TASKS[:1])
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    feed_stream(scheduler, stream, now=1.0)
    scheduler.handle(reported(0, finished(TASKS[0], return_code=2)))
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
    assert scheduler.state is RunState.DRAINING
    # The first to join while engine 0 runs is kept as the spare; the next one is drained at once.
    assert scheduler.handle(EngineJoined(1, 'node1', slots=4)) == []
    assert scheduler.handle(EngineJoined(2, 'node2', slots=4)) == [DrainEngine(2)]
    assert not scheduler.wants_item()
    assert scheduler.handle(EngineGone(2, lost=False, now=2.0)) == []
    record = finished(TASKS[0])
    assert scheduler.handle(reported(0, record)) == [WriteRecord(record), DrainEngine(0), DrainEngine(1)]
    assert scheduler.handle(EngineGone(0, lost=False, now=11.0)) == []
    assert scheduler.handle(EngineGone(1, lost=False, now=11.0)) == [Finish(0)]


def test_an_engine_joining_while_the_run_stops_is_aborted_and_waited_for() -> None:
    scheduler = make_scheduler()
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    feed_stream(scheduler, Stream(TASKS[:3]), now=1.0)
    scheduler.handle(StopRequested('SIGTERM received', 143))
    assert scheduler.handle(EngineJoined(1, 'node1', slots=1)) == [AbortEngine(1, 'run is stopping')]
    scheduler.handle(reported(0, finished(TASKS[0], return_code=-15)))
    assert scheduler.handle(EngineGone(0, lost=False, now=2.0)) == []
    assert scheduler.handle(EngineGone(1, lost=False, now=2.0)) == [Finish(143)]


def test_per_engine_task_records_are_just_written() -> None:
    hostname = PerEngineTask(Phase.START, 0, 1, 'hostname')
    scheduler = make_scheduler(per_engine_tasks=(hostname, PerEngineTask(Phase.STOP, 0, 5, 'date')))
    stream = Stream(TASKS[:3])
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    feed_stream(scheduler, stream, now=1.0)
    outcome = Outcome(4242, 0, 10.0, 11.0, 1.0)
    record = StatusRecord(RecordKind.PER_ENGINE, 0, 1, NO_REPEAT, 'hostname', 'node0', outcome, attempt=0)
    assert scheduler.handle(TaskFinished(0, 0, outcome, phase='START')) == [WriteRecord(record)]
    assert scheduler.running == 1  # task 0 (the normal one, same id) is still running
    assert feed_stream(scheduler, stream, now=2.0) == []
    stop = StatusRecord(RecordKind.PER_ENGINE, 0, 5, NO_REPEAT, 'date', 'node0', outcome, attempt=0)
    assert scheduler.handle(TaskFinished(0, 0, outcome, phase='STOP')) == [WriteRecord(stop)]
    assert scheduler.handle(TaskFinished(0, 1, outcome, phase='STOP')) == [
        LogWarning('engine 0 reported an unknown STOP task 1')
    ]
    # A gone engine's reports never reach the scheduler (the loop forgets the engine first); were one to, it is
    # only logged: the host of its record is not known any more.
    assert scheduler.handle(TaskFinished(7, 0, outcome, phase='START')) == [
        LogWarning('engine 7, gone, reported task 0')
    ]
    assert scheduler.counts == Counts()
