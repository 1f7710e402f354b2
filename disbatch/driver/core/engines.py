"""PURE: what the scheduler keeps of each engine's load: its slots, the tasks it holds, how far ahead it is fed.

`EngineLoad` is one engine as the scheduler sees it (the loop's `EnginePeer` is the same engine as a socket peer);
`EnginePool` holds them all, with the totals and indexes the scheduler asks for on every event kept up to date as
engines change, so that no event costs more than the engines it changes; `choose_spare` picks the idle engine kept at
the tail of a run.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from disbatch.taskfile.items import Task

# Engines whose recent tasks are shorter than this get tasks queued ahead of their slots, so a slot never waits a
# round trip for its next task: about PIPELINE_SECONDS of work per slot (at least one task, at most MAX_AHEAD), which
# also lets results and assignments travel in batches. The queue grows only with the short tasks an engine has
# finished in a row (one more task per slot for each slot's worth of them), and a long task empties it at once: a
# few quick tasks before long ones cannot pile long ones up on one engine. Engines running longer tasks get exactly
# one task per slot, so the balance stays dynamic.
PIPELINE_BELOW_SECONDS = 0.05
PIPELINE_SECONDS = 0.02
MAX_AHEAD = 16


@dataclass(slots=True)
class EngineLoad:
    """One engine's load. Its fields are read freely; what changes its capacity, the tasks it holds or whether it
    is drained goes through its `EnginePool`, which keeps the run's totals and indexes."""

    rank: int
    hostname: str
    slots: int
    context: str = ''
    assigned: dict[int, Task] = field(default_factory=dict)  # task id -> the task it holds, running or queued
    recent_elapsed: float | None = None  # moving average of task durations; None until one finished
    short_streak: int = 0  # tasks shorter than PIPELINE_BELOW_SECONDS finished in a row
    retiring: bool = False  # gets no new task; drained once idle
    drained: bool = False  # DrainEngine (or AbortEngine) sent
    aborted: bool = False  # AbortEngine sent: what it still holds when it goes was interrupted, not lost
    lost: bool = False  # EngineLost: taken for lost, its tasks may still run; gets no new task
    given: int = 0  # tasks ever sent to it
    finished: int = 0
    failed: int = 0

    @property
    def capacity(self) -> int:
        """How many tasks it should hold now: one per slot, plus the queue ahead while its tasks are short."""
        if self.retiring or self.lost:
            return 0
        if self.recent_elapsed is None or self.recent_elapsed >= PIPELINE_BELOW_SECONDS or not self.short_streak:
            return self.slots
        by_time = int(PIPELINE_SECONDS / max(self.recent_elapsed, 1e-6))
        ahead = min(MAX_AHEAD, by_time, self.short_streak // self.slots)
        return self.slots * (1 + max(1, ahead))

    @property
    def free(self) -> int:
        return max(0, self.capacity - len(self.assigned))

    def matches(self, ranks: tuple[int, ...], context: str) -> bool:
        """Whether it is one of `ranks`, or an engine of `context` (when given)."""
        return self.rank in ranks or (bool(context) and self.context == context)

    def observe(self, elapsed: float) -> None:
        """One of its tasks ended after `elapsed` seconds: what the queue ahead of its slots goes by."""
        self.recent_elapsed = elapsed if self.recent_elapsed is None else 0.8 * self.recent_elapsed + 0.2 * elapsed
        self.short_streak = self.short_streak + 1 if elapsed < PIPELINE_BELOW_SECONDS else 0


class EnginePool(Mapping[int, EngineLoad]):
    """The run's engines by rank, in the order they joined, with what the scheduler asks of them on every event:
    the free capacity and the tasks held, summed over all engines (`free`, `held`); the first engine in join order
    with free capacity (`first_with_free`, a heap of join numbers); the engines to drain now (`idle`, `drain_due`).

    Every change to an engine's capacity, held tasks or drain state is one of the methods below: each takes the
    engine's share out of the totals and indexes, changes it, and puts it back (`_change`), so an event costs
    O(log E) for the engines it changes, whatever the number E of engines. Iteration and `[]` are a mapping's."""

    def __init__(self) -> None:
        self._by_rank: dict[int, EngineLoad] = {}
        self._join_number: dict[int, int] = {}  # rank -> its place in join order
        self._by_join_number: dict[int, EngineLoad] = {}
        self._joined = 0
        self.free = 0  # the sum of every engine's `free`
        self.held = 0  # the tasks every engine holds, running or queued
        self._with_free: list[int] = []  # min-heap of join numbers: every engine with free capacity, and stale ones
        self._in_heap: set[int] = set()  # join numbers on the heap (at most once each)
        self._idle: set[int] = set()  # ranks of engines not drained and holding nothing
        self._drain_due: set[int] = set()  # ranks of idle engines that retire: drained at the end of the event

    # ------------------------------------------------------------ the mapping

    def __getitem__(self, rank: int) -> EngineLoad:
        return self._by_rank[rank]

    def __iter__(self) -> Iterator[int]:
        return iter(self._by_rank)

    def __len__(self) -> int:
        return len(self._by_rank)

    # ------------------------------------------------------------ changes

    def join(self, engine: EngineLoad) -> None:
        """A new engine, last in join order (an engine replacing one of the same rank keeps that one's place)."""
        previous = self._by_rank.get(engine.rank)
        if previous is not None:
            self._count_out(previous)
            number = self._join_number[engine.rank]
        else:
            number = self._joined
            self._joined += 1
            self._join_number[engine.rank] = number
        self._by_rank[engine.rank] = engine
        self._by_join_number[number] = engine
        self._count_in(engine)

    def leave(self, rank: int) -> EngineLoad | None:
        """The engine of `rank` is gone (None if it was not here); its heap entry goes stale."""
        engine = self._by_rank.pop(rank, None)
        if engine is None:
            return None
        self._count_out(engine)
        del self._by_join_number[self._join_number.pop(rank)]
        return engine

    def hold(self, engine: EngineLoad, task: Task) -> None:
        """`task` is sent to `engine`."""
        self._count_out(engine)
        engine.assigned[task.task_id] = task
        engine.given += 1
        self._count_in(engine)

    def release(self, engine: EngineLoad, task_id: int) -> Task | None:
        """`engine` reports `task_id` ended: the task it held, or None if it held no such task."""
        if task_id not in engine.assigned:
            return None
        self._count_out(engine)
        task = engine.assigned.pop(task_id)
        self._count_in(engine)
        return task

    def observe(self, engine: EngineLoad, elapsed: float) -> None:
        """A task of `engine` ended after `elapsed` seconds (how far ahead it is fed may change)."""
        self._count_out(engine)
        engine.observe(elapsed)
        self._count_in(engine)

    def retire(self, engine: EngineLoad) -> None:
        """`engine` gets no new task; it is drained once idle."""
        if engine.retiring:
            return
        self._count_out(engine)
        engine.retiring = True
        self._count_in(engine)

    def lose(self, engine: EngineLoad) -> None:
        """`engine` is taken for lost (`EngineLost`): it gets no new task and keeps what it holds until it is gone."""
        self._count_out(engine)
        engine.lost = True
        self._count_in(engine)

    def drain(self, engine: EngineLoad, *, abort: bool = False) -> None:
        """`engine` is sent a DrainEngine (or, with `abort`, an AbortEngine): it retires, and is drained."""
        self._count_out(engine)
        engine.retiring = engine.drained = True
        engine.aborted = engine.aborted or abort
        self._count_in(engine)

    # ------------------------------------------------------------ questions

    def first_with_free(self) -> EngineLoad | None:
        """The first engine in join order with free capacity, or None."""
        heap = self._with_free
        while heap:
            engine = self._by_join_number.get(heap[0])
            if engine is not None and engine.free > 0:
                return engine
            self._in_heap.discard(heapq.heappop(heap))  # gone, or full since it was pushed
        return None

    def idle(self) -> list[EngineLoad]:
        """The engines not drained and holding nothing, in join order."""
        return self._in_join_order(self._idle)

    def drain_due(self) -> list[EngineLoad]:
        """The idle engines that retire, in join order: they are drained now."""
        return self._in_join_order(self._drain_due) if self._drain_due else []

    def _in_join_order(self, ranks: Iterable[int]) -> list[EngineLoad]:
        return [self._by_rank[rank] for rank in sorted(ranks, key=self._join_number.__getitem__)]

    # ------------------------------------------------------------ the totals and indexes

    def _count_out(self, engine: EngineLoad) -> None:
        self.free -= engine.free
        self.held -= len(engine.assigned)
        self._idle.discard(engine.rank)
        self._drain_due.discard(engine.rank)

    def _count_in(self, engine: EngineLoad) -> None:
        free = engine.free
        self.free += free
        self.held += len(engine.assigned)
        number = self._join_number[engine.rank]
        if free > 0 and number not in self._in_heap:
            self._in_heap.add(number)
            heapq.heappush(self._with_free, number)
        if not engine.drained and not engine.assigned:
            self._idle.add(engine.rank)
            if engine.retiring:
                self._drain_due.add(engine.rank)


def choose_spare(engines: Iterable[EngineLoad], driver_host: str, previous_rank: int) -> EngineLoad | None:
    """The idle engine to keep at the tail of a run while others still run tasks: the one on the driver's own host
    if there is one (that node is never given back anyway), else the one kept before, else the first idle one."""
    idle = [
        engine
        for engine in engines
        if not engine.drained and not engine.retiring and not engine.lost and not engine.assigned
    ]
    if not idle:
        return None
    here = [engine for engine in idle if engine.hostname.split('.')[0] == driver_host.split('.')[0]]
    kept = [engine for engine in idle if engine.rank == previous_rank]
    return (here or kept or idle)[0]


class TaskLimits:
    """-C: the contexts whose engines stop after so many tasks, and how many tasks each has been given."""

    def __init__(self) -> None:
        self._limits: dict[str, int] = {}
        self._given: dict[str, int] = {}

    def set(self, context: str, limit: int) -> None:
        if limit > 0:
            self._limits[context] = limit

    def reached(self, context: str) -> bool:
        """Whether the engines of `context` are to take no more tasks."""
        limit = self._limits.get(context, 0)
        return bool(limit) and self._given.get(context, 0) >= limit

    def limited(self, context: str) -> bool:
        return bool(self._limits.get(context))

    def count(self, context: str) -> int | None:
        """A task went to an engine of the limited `context`: its count when that was the last one, else None."""
        given = self._given.get(context, 0) + 1
        self._given[context] = given
        return given if given == self._limits[context] else None
