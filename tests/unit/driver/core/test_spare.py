"""The spare kept at the tail of a run: one idle engine stays while others run, the driver host's preferred."""

from __future__ import annotations

from unittest.mock import ANY

import pytest

from disbatch.driver.core.events import (
    ContextJoined,
    DrainEngine,
    EngineGone,
    EngineJoined,
    Finish,
    Report,
    RetireEngines,
    SendTask,
    WriteRecord,
)
from disbatch.driver.core.scheduler import Counts, RunState, Scheduler, SchedulerConfig

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

# ---------------------------------------------------------------- the spare kept at the tail


def test_one_idle_engine_is_kept_as_a_spare_while_another_runs_and_drained_when_the_last_task_finishes() -> None:
    scheduler = make_scheduler()
    for rank in range(3):
        scheduler.handle(EngineJoined(rank, f'node{rank}', slots=1))
    # The stream ends with engines 0 and 1 busy: engine 2, the only idle one, is kept as the spare.
    assert feed_stream(scheduler, Stream(TASKS[:2]), now=1.0) == [SendTask(0, TASKS[0]), SendTask(1, TASKS[1])]
    assert scheduler.state is RunState.DRAINING
    # Engine 0 goes idle: the spare stays engine 2 (not the first idle engine), so engine 0 is drained.
    first = finished(TASKS[0])
    assert scheduler.handle(reported(0, first)) == [WriteRecord(first), DrainEngine(0)]
    assert scheduler.handle(EngineGone(0, lost=False, now=11.0)) == []
    # The last task finishes: nothing runs any more, so the spare is drained too.
    last = finished(TASKS[1], host='node1')
    assert scheduler.handle(reported(1, last)) == [WriteRecord(last), DrainEngine(1), DrainEngine(2)]
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
    assert scheduler.handle(reported(5, record)) == [WriteRecord(record), DrainEngine(5), DrainEngine(3)]


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
    assert scheduler.handle(reported(0, record)) == [WriteRecord(record), DrainEngine(0), DrainEngine(2)]


def test_the_driver_host_engine_going_idle_takes_over_as_the_spare_and_the_previous_spare_is_drained() -> None:
    scheduler = make_scheduler()
    scheduler.handle(EngineJoined(0, 'node0', slots=1))
    scheduler.handle(EngineJoined(1, 'head.cluster.org', slots=1))
    scheduler.handle(EngineJoined(2, 'node2', slots=1))
    assert feed_stream(scheduler, Stream(TASKS[:2]), now=1.0) == [SendTask(0, TASKS[0]), SendTask(1, TASKS[1])]
    # Engine 2 is the spare until the driver host's engine is idle; then engine 2 is drained.
    here = finished(TASKS[1], host='head.cluster.org')
    assert scheduler.handle(reported(1, here)) == [WriteRecord(here), DrainEngine(2)]
    # An engine joining now does not displace the driver host's spare.
    assert scheduler.handle(EngineJoined(3, 'node3', slots=1)) == [DrainEngine(3)]
    assert scheduler.handle(EngineGone(2, lost=False, now=2.0)) == []
    assert scheduler.handle(EngineGone(3, lost=False, now=2.0)) == []
    last = finished(TASKS[0])
    assert scheduler.handle(reported(0, last)) == [WriteRecord(last), DrainEngine(0), DrainEngine(1)]
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
    retried = finished(TASKS[0], host='node2', start=4.0, attempt=2)
    assert scheduler.handle(reported(2, retried)) == [WriteRecord(retried, final=True)]
    last = finished(TASKS[1], host='node1')
    assert scheduler.handle(reported(1, last)) == [WriteRecord(last), DrainEngine(1), DrainEngine(2)]
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
    assert scheduler.handle(reported(0, record)) == [WriteRecord(record), DrainEngine(0)]
    last = finished(TASKS[1], host='node1')
    assert scheduler.handle(reported(1, last)) == [WriteRecord(last), DrainEngine(1)]
    for rank in range(3):
        scheduler.handle(EngineGone(rank, lost=False, now=12.0))
    assert scheduler.state is RunState.FINISHED


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
    assert scheduler.handle(reported(0, record)) == [WriteRecord(record), DrainEngine(0)]
    last = finished(TASKS[1], host='node1')
    assert scheduler.handle(reported(1, last)) == [WriteRecord(last), DrainEngine(1), DrainEngine(2)]
    assert scheduler.handle(EngineGone(0, lost=False, now=12.0)) == []
    assert scheduler.handle(EngineGone(1, lost=False, now=12.0)) == []
    assert scheduler.handle(EngineGone(2, lost=False, now=12.0)) == [Finish(0)]
