"""PURE: what the scheduler keeps of each engine's load: its slots, the tasks it holds, how far ahead it is fed.

`EngineLoad` is one engine as the scheduler sees it (the loop's `EnginePeer` is the same engine as a socket peer);
`choose_spare` picks the idle engine kept at the tail of a run.
"""

from __future__ import annotations

from collections.abc import Iterable
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
