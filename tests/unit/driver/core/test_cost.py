"""What an event costs: the engines the scheduler looks at per event do not grow with the number of engines.

No timing: every read of an engine's fields is counted (`EngineLoad.__getattribute__`), and an event (a `handle`
or a `wants_item`) costs the number of distinct engines it read. A whole run with a thousand engines, steady
state and tail included, must cost a few engines per event on average, as it does with ten.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from disbatch.driver.core.engines import EngineLoad
from disbatch.driver.core.events import (
    DrainEngine,
    EngineGone,
    EngineJoined,
    Event,
    Finish,
    ItemRead,
    SendTask,
    StreamEnded,
)
from disbatch.driver.core.scheduler import Counts, RunState, Scheduler

from .scheduling import finished, make_scheduler, reported, task


class EngineVisits:
    """Counts, per event, the distinct engines whose fields were read."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.events = 0
        self.visits = 0

    def event(self) -> None:
        self.events += 1
        self.visits += len(self.seen)
        self.seen.clear()

    @property
    def per_event(self) -> float:
        return self.visits / self.events


@contextmanager
def counting_engine_visits(monkeypatch: pytest.MonkeyPatch) -> Iterator[EngineVisits]:
    visits = EngineVisits()
    read = object.__getattribute__

    def counted(engine: EngineLoad, name: str) -> object:
        visits.seen.add(id(engine))
        return read(engine, name)

    with monkeypatch.context() as patch:
        patch.setattr(EngineLoad, '__getattribute__', counted)
        yield visits


def whole_run(scheduler: Scheduler, visits: EngineVisits, engines: int, slots: int, tasks: int) -> None:
    """Engines join; tasks are pulled while the scheduler wants them (as the loop does) and finish oldest first,
    one per event; drained engines leave at once; until the run's Finish. Every event's engine visits are counted."""
    unread = deque(task(number) for number in range(tasks))
    held: deque[SendTask] = deque()
    ends: list[Finish] = []

    def step(event: Event) -> None:
        for action in scheduler.handle(event):
            if isinstance(action, SendTask):
                held.append(action)
            elif isinstance(action, DrainEngine):
                visits.event()
                step(EngineGone(action.engine_rank, lost=False, now=20.0))
            elif isinstance(action, Finish):
                ends.append(action)
        visits.event()

    for rank in range(engines):
        step(EngineJoined(rank, f'node{rank}', slots))
    while True:
        while scheduler.wants_item():
            visits.event()
            step(ItemRead(unread.popleft(), 10.0) if unread else StreamEnded(10.0))
        visits.event()
        if not held:
            break
        sent = held.popleft()
        step(reported(sent.engine_rank, finished(sent.task, host=f'node{sent.engine_rank}')))
    assert scheduler.counts == Counts(finished=tasks)
    assert ends == [Finish(0)]
    assert scheduler.state is RunState.FINISHED


@pytest.mark.parametrize('engines', [10, 1000])
def test_an_event_looks_at_a_few_engines_whatever_their_number(monkeypatch: pytest.MonkeyPatch, engines: int) -> None:
    scheduler = make_scheduler()
    with counting_engine_visits(monkeypatch) as visits:
        whole_run(scheduler, visits, engines, slots=4, tasks=3 * 4 * engines)
    assert visits.per_event < 3, f'{visits.per_event:.1f} engines read per event with {engines} engines'
