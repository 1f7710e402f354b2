"""What the scheduler tests share: builders of tasks, barriers and records, the task stream, and `SimulatedDriver`.

Items are pulled the way the driver loop pulls them: one at a time while `wants_item()` is True (`feed_stream`).
`Report` messages are matched with `ANY` in the action lists and checked for their key words separately.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from disbatch.driver.core.engines import MAX_AHEAD
from disbatch.driver.core.events import (
    AbortEngine,
    Action,
    DrainEngine,
    EngineGone,
    EngineJoined,
    Event,
    Finish,
    ItemRead,
    RecordRead,
    Report,
    SendTask,
    StreamEnded,
    TaskFinished,
    WriteRecord,
)
from disbatch.driver.core.scheduler import RunState, Scheduler, SchedulerConfig
from disbatch.results.record import EMPTY_SNIPPET, LOST_RETURN_CODE, NO_PID, Outcome, RecordKind, StatusRecord
from disbatch.taskfile.items import NO_REPEAT, Barrier, Task

# ---------------------------------------------------------------- builders


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
    attempt: int = 1,
) -> StatusRecord:
    """The record of an attempt of a task that ran (on the engine on `host`)."""
    return StatusRecord.of_task(of, host, Outcome(4242, return_code, start, start + elapsed, elapsed), kind, attempt)


def reported(engine_rank: int, record: StatusRecord) -> TaskFinished:
    """What the engine reports of the attempt `record` records: the scheduler is to record exactly `record`."""
    return TaskFinished(
        engine_rank,
        record.task_id,
        record.outcome,
        timed_out=record.kind is RecordKind.TIMED_OUT,
        interrupted=record.kind is RecordKind.INTERRUPTED,
    )


def lost(of: Task, host: str, now: float) -> StatusRecord:
    """The record of an attempt that died with its engine: PID -1, return code -100, start = finish = now."""
    return StatusRecord.of_task(of, host, Outcome(NO_PID, LOST_RETURN_CODE, now, now, 0.0))


def barrier_record(of: Barrier, start: float, finish: float) -> StatusRecord:
    """The record of a barrier: the driver's host and PID, no output, elapsed rounded to the millisecond."""
    kind = RecordKind.BARRIER_CHECK if of.check else RecordKind.BARRIER
    outcome = Outcome(1, 0, start, finish, round(finish - start, 3), 0, EMPTY_SNIPPET, 0, EMPTY_SNIPPET)
    return StatusRecord(kind, of.task_id, of.line_number, NO_REPEAT, of.text, 'head', outcome)


TASKS = [task(number) for number in range(10)]

# ---------------------------------------------------------------- the stream


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
    if scheduler.state is not RunState.DRAINING or scheduler.pending:
        return
    idle = [rank for rank, engine in scheduler.engines.items() if not engine.drained and not engine.assigned]
    if scheduler.running == 0:
        assert idle == []
    else:
        assert len(idle) == 1 if drained else len(idle) <= 1


# ---------------------------------------------------------------- a simulated driver for whole runs


@dataclass(frozen=True, slots=True)
class Held:
    """A task an engine holds (running or queued), and which attempt it is."""

    rank: int
    task: Task
    attempt: int


# A test's own check of one action, called with the whole list the action came in and its index there.
ActionCheck = Callable[[list[Action], int], None]


class SimulatedDriver:
    """The driver loop around a scheduler, for property tests over whole runs.

    It carries actions out the way the loop does (a task sent is held by its engine until the test finishes it or
    loses the engine; a drained engine leaves, at once with `leave_at_once`, else on the next `let_drained_leave`),
    keeps the log of every action, and checks what every run keeps to after each step: a task goes only to a live
    engine that is not drained, once at a time, as the next attempt, and no engine holds more than its capacity;
    only idle engines are drained, each once, the driver host's only once nothing runs; the spare at the tail
    (`check_the_spare`); no engine is aborted and nothing is reported but a lost engine. `check` adds a test's own
    checks of each action.
    """

    def __init__(self, scheduler: Scheduler, stream: Stream, *, leave_at_once: bool, check: ActionCheck) -> None:
        self.scheduler = scheduler
        self.stream = stream
        self.leave_at_once = leave_at_once
        self.check = check
        self.log: list[Action] = []
        self.running: dict[int, Held] = {}  # task id -> who holds it
        self.runs: dict[int, int] = {}  # task id -> attempts sent
        self.slots: dict[int, int] = {}  # rank -> slots, of every engine that joined
        self.hostnames: dict[int, str] = {}
        self.alive: set[int] = set()
        self.drained: list[int] = []  # every DrainEngine, in order
        self.lost: set[int] = set()
        self.clock = 0.0

    @property
    def finished(self) -> bool:
        return self.scheduler.state is RunState.FINISHED

    # ------------------------------------------------------------ steps

    def join(self, rank: int, slots: int, hostname: str | None = None) -> None:
        self.alive.add(rank)
        self.slots[rank] = slots
        self.hostnames[rank] = f'node{rank}' if hostname is None else hostname
        self.step(EngineJoined(rank, self.hostnames[rank], slots))

    def feed(self) -> None:
        """Read what the scheduler wants from the stream."""
        mark = len(self.log)
        self._carry_out(feed_stream(self.scheduler, self.stream, now=self.clock))
        self._check_the_spare(mark)

    def finish(
        self, task_id: int, *, return_code: int = 0, elapsed: float = 1.0, kind: RecordKind = RecordKind.NORMAL
    ) -> None:
        """The engine holding `task_id` reports it ended, started at the current clock."""
        held = self.running.pop(task_id)
        record = finished(
            held.task,
            host=self.hostnames[held.rank],
            return_code=return_code,
            start=self.clock,
            elapsed=elapsed,
            kind=kind,
            attempt=held.attempt,
        )
        mark = len(self.log)
        self.step(reported(held.rank, record))
        # The scheduler records the attempt as the engine ran it: its task, its engine's host, its attempt.
        assert [action.record for action in self.log[mark:] if isinstance(action, WriteRecord)][:1] == [record]

    def lose(self, rank: int) -> None:
        """The engine vanishes with what it holds."""
        for task_id in [task_id for task_id, held in self.running.items() if held.rank == rank]:
            del self.running[task_id]
        self.alive.remove(rank)
        self.lost.add(rank)
        self.step(EngineGone(rank, lost=True, now=self.clock), losing=True)

    def let_drained_leave(self) -> None:
        """Each drained engine still here says goodbye (a drained engine holds nothing: it was idle)."""
        for rank in sorted(set(self.drained) & self.alive):
            self.alive.remove(rank)
            self.step(EngineGone(rank, lost=False, now=self.clock))

    def step(self, event: Event, losing: bool = False) -> None:
        mark = len(self.log)
        self._carry_out(self.scheduler.handle(event), losing)
        self._check_the_spare(mark)

    # ------------------------------------------------------------ the end

    def check_the_end(self) -> None:
        """The run finished once, with its last action; every engine that joined was drained exactly once, or
        lost, and none is left."""
        assert self.finished
        assert [action for action in self.log if isinstance(action, Finish)] == [self.log[-1]]
        assert not self.alive
        assert sorted(self.drained) == sorted(set(self.slots) - self.lost)

    # ------------------------------------------------------------ carrying actions out

    def _carry_out(self, actions: list[Action], losing: bool = False) -> None:
        for index, action in enumerate(actions):
            self.log.append(action)
            if isinstance(action, SendTask):
                self._send(action)
            elif isinstance(action, DrainEngine):
                self._drain(action.engine_rank)
            assert not isinstance(action, AbortEngine)
            assert losing or not isinstance(action, Report)
            self.check(actions, index)

    def _send(self, action: SendTask) -> None:
        task_id, rank = action.task.task_id, action.engine_rank
        assert task_id not in self.running
        assert rank in self.alive and rank not in self.drained
        assert action.attempt == self.runs.get(task_id, 0) + 1
        self.runs[task_id] = action.attempt
        self.running[task_id] = Held(rank, action.task, action.attempt)
        assert sum(1 for held in self.running.values() if held.rank == rank) <= (1 + MAX_AHEAD) * self.slots[rank]

    def _drain(self, rank: int) -> None:
        assert rank not in self.drained
        assert all(held.rank != rank for held in self.running.values())
        # The driver host's engine, when idle, is the spare: drained only once nothing runs.
        here = self.hostnames[rank].split('.')[0] == self.scheduler.config.driver_host.split('.')[0]
        assert not here or not self.running
        self.drained.append(rank)
        if self.leave_at_once:
            self.alive.remove(rank)
            self._carry_out(self.scheduler.handle(EngineGone(rank, lost=False, now=self.clock)))

    def _check_the_spare(self, mark: int) -> None:
        check_the_spare(self.scheduler, any(isinstance(action, DrainEngine) for action in self.log[mark:]))
