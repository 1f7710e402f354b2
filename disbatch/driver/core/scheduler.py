"""The scheduler: the driver's whole decision logic, as a pure state machine.

`Scheduler.handle(event) -> list[Action]`. Events say what happened (an engine joined, a task finished, an item was
read from the task stream, an engine vanished, the user pressed Ctrl-C); actions say what the driver's I/O shell
must do (send a task, write a status line, drain or abort an engine, finish the run). Time arrives inside events;
nothing here reads a clock or touches a socket, so tests feed events and compare action lists.

Reading is pulled, not pushed: the shell asks `wants_item()` and feeds one item at a time, so a million-task file
is never held, and nothing past an unresolved barrier is read.

Cost: an event costs O(log E) in the number E of engines (amortised), never a look at every engine: the engines'
free capacity, held tasks and which of them are idle are kept as they change (`EnginePool`), the next task goes to
the first engine with free capacity found on a heap, and only the engines an event changed are drained. Only the
events that are about every engine (a stop, a monitor command, a context reaching its -C limit) visit them all.

Life of a run:

    RUNNING ──(stream ends, nothing pending or running)──▶ DRAINING ──(every engine gone)──▶ Finish
       │                                                       ▲
       └──(fail-fast, BARRIER CHECK, signal, no engines)──▶ STOPPING
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from disbatch.driver.core.engines import EngineLoad, EnginePool, TaskLimits, choose_spare
from disbatch.driver.core.events import (
    AbortEngine,
    Action,
    AllocationEndChanged,
    ClockTick,
    ContextJoined,
    DrainEngine,
    EngineGone,
    EngineJoined,
    EngineLost,
    Event,
    Finish,
    InterruptEngines,
    ItemRead,
    LogWarning,
    NoMoreEngines,
    PutBarrierKey,
    RecordRead,
    Report,
    RetireEngines,
    SendTask,
    StopRequested,
    StreamEnded,
    TaskFinished,
    WriteRecord,
)
from disbatch.driver.core.walltime import EXIT_WALLTIME, Allocation, DrainGate, clock
from disbatch.results.record import RecordKind, StatusRecord, task_kind
from disbatch.taskfile.items import Barrier, PerEngineTask, Task

# How many times a task lost with its engine is re-issued before it is given up.
MAX_ATTEMPTS = 3


class RunState(enum.Enum):
    RUNNING = 'running'
    DRAINING = 'draining'
    STOPPING = 'stopping'
    FINISHED = 'finished'


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    driver_host: str
    driver_pid: int
    fail_fast: bool = False
    exit_code_on_failure: bool = False  # -e
    max_attempts: int = MAX_ATTEMPTS  # runs of a task whose engines keep getting lost
    retries: int = 0  # --retries: runs of a failed task after the first
    wait_for_contexts: bool = False  # -S: with no engine left, wait for a context to be added instead of failing
    add_context_hint: str = ''  # how the user adds a context (the dbUtil script), for the waiting message
    allocation: Allocation | None = None  # when the run must end (walltime): tasks are held, then stopped, by it
    per_engine_tasks: tuple[PerEngineTask, ...] = ()  # PERENGINE START and STOP: what an engine reports of them


@dataclass(slots=True)
class Counts:
    finished: int = 0
    failed: int = 0
    skipped: int = 0
    barriers: int = 0
    lost: int = 0
    interrupted: int = 0  # tasks whose final record says the run stopped them (not counted in finished)


@dataclass(slots=True)
class _OpenBarrier:
    barrier: Barrier
    reached: float


class Scheduler:
    def __init__(self, config: SchedulerConfig) -> None:
        self.config = config
        self.state = RunState.RUNNING
        self.engines = EnginePool()  # read it freely; change it through its methods
        self.departed: dict[int, tuple[EngineLoad, str, str]] = {}  # engines gone: (engine, 'left'/'lost', why)
        self.pending: deque[Task] = deque()
        self.counts = Counts()
        self._attempts: dict[int, int] = {}
        self._barrier: _OpenBarrier | None = None
        self._stream_ended = False
        self._failed_since_barrier = False
        self._last_finish = 0.0
        self._exit_code = 0
        self.stop_reason = ''  # why the run stopped early (the first reason), '' while it has not
        self._task_limits = TaskLimits()  # -C
        self._per_engine = {(task.phase.value, task.task_id): task for task in config.per_engine_tasks}
        self._spare_rank = -1  # the idle engine kept at the tail of the run (see _advance)
        self._waiting_reported = config.wait_for_contexts  # -S: the start-up message already says we wait
        self._last_left_on_purpose = False  # the last engine to go was retired (-C, the monitor), not lost
        self.drain = DrainGate(config.allocation) if config.allocation is not None else None
        self._now = 0.0  # the latest ClockTick: what the walltime decisions go by

    # ------------------------------------------------------------ queries

    def wants_item(self) -> bool:
        """Should the shell read another item from the task stream now?"""
        if self.state is not RunState.RUNNING or self._stream_ended or self._barrier is not None:
            return False
        if self.drain is not None and self.drain.holding:
            return False  # draining for the end of the allocation: what is not read yet is left for the next run
        return len(self.pending) < self.engines.free

    @property
    def running(self) -> int:
        return self.engines.held

    @property
    def stream_ended(self) -> bool:
        return self._stream_ended

    def holds_tasks(self, engine_rank: int) -> bool:
        """Whether the engine holds tasks (running or queued): a lost one's may still run."""
        engine = self.engines.get(engine_rank)
        return engine is not None and bool(engine.assigned)

    @property
    def more_tasks(self) -> bool:
        return not self._stream_ended or bool(self.pending) or self._barrier is not None

    # ------------------------------------------------------------ events

    def handle(self, event: Event) -> list[Action]:
        if self.state is RunState.FINISHED:
            return []
        actions: list[Action] = []
        match event:  # the events of every task first
            case TaskFinished():
                self._on_task_finished(event, actions)
            case ItemRead():
                self._on_item_read(event, actions)
            case ClockTick():
                self._on_clock_tick(event, actions)
            case EngineJoined():
                self._on_engine_joined(event, actions)
            case ContextJoined():
                self._on_context_joined(event, actions)
            case RecordRead():
                self._on_record_read(event, actions)
            case StreamEnded():
                self._on_stream_ended(event, actions)
            case EngineGone():
                self._on_engine_gone(event, actions)
            case EngineLost():
                self._on_engine_lost(event, actions)
            case NoMoreEngines():
                self._on_no_more_engines(event, actions)
            case RetireEngines():
                self._on_retire_engines(event, actions)
            case InterruptEngines():
                self._on_interrupt_engines(event, actions)
            case StopRequested():
                self._on_stop_requested(event, actions)
            case AllocationEndChanged():
                self._on_allocation_end_changed(event, actions)
        self._advance(actions)
        return actions

    def _on_engine_joined(self, event: EngineJoined, actions: list[Action]) -> None:
        engine = EngineLoad(event.engine_rank, event.hostname, event.slots, event.context)
        self.engines.join(engine)
        self._waiting_reported = False
        if self._task_limits.reached(event.context):
            self.engines.retire(engine)
        if self.state is RunState.STOPPING:
            self._abort_engine(engine, 'run is stopping', actions)

    def _on_context_joined(self, event: ContextJoined, actions: list[Action]) -> None:
        self._task_limits.set(event.label, event.task_limit)

    def _on_item_read(self, event: ItemRead, actions: list[Action]) -> None:
        item = event.item
        if isinstance(item, Task):
            self.pending.append(item)
        elif isinstance(item, Barrier):
            self._barrier = _OpenBarrier(item, event.now)
        else:  # pragma: no cover - per-engine tasks are taken out before the run starts
            raise ValueError(f'per-engine task {item.task_id} read after the run started')

    def _on_record_read(self, event: RecordRead, actions: list[Action]) -> None:
        self.counts.skipped += 1
        actions.append(WriteRecord(event.record, carried=True))

    def _on_stream_ended(self, event: StreamEnded, actions: list[Action]) -> None:
        self._stream_ended = True

    def _on_task_finished(self, event: TaskFinished, actions: list[Action]) -> None:
        engine = self.engines.get(event.engine_rank)
        if engine is None:
            actions.append(LogWarning(f'engine {event.engine_rank}, gone, reported task {event.task_id}'))
            return
        if event.phase:
            per_engine = self._per_engine.get((event.phase, event.task_id))
            if per_engine is None:
                message = f'engine {engine.rank} reported an unknown {event.phase} task {event.task_id}'
                actions.append(LogWarning(message))
            else:
                actions.append(WriteRecord(StatusRecord.per_engine(per_engine, engine.hostname, event.outcome)))
            return
        task = self.engines.release(engine, event.task_id)
        if task is None:
            message = f'engine {engine.rank} reported task {event.task_id}, which it was not running'
            actions.append(LogWarning(message))
            return
        kind = task_kind(event.timed_out, event.interrupted)
        attempt = self._attempts.get(task.task_id, 0) + 1  # the attempt it was sent as (SendTask)
        record = StatusRecord.of_task(task, engine.hostname, event.outcome, kind, attempt)
        self._last_finish = max(self._last_finish, record.finish)
        self.engines.observe(engine, record.elapsed)
        if record.interrupted:
            # Only a stopping engine interrupts a task (a signal reached it, or we aborted it): it gets no more.
            self.engines.retire(engine)
            self._interrupted(task, record, actions)
            return
        engine.finished += 1
        engine.failed += record.failed
        if self.drain is not None:
            self.drain.observe(task.line_number, record.elapsed)
        if record.failed and self._may_run_again(task.task_id, 1 + self.config.retries):
            actions.append(WriteRecord(record, final=False))
            self.pending.appendleft(task)  # --retries: the failed task goes first in the queue
            return
        actions.append(WriteRecord(record))
        self._attempts.pop(task.task_id, None)
        how = 'timed out' if record.kind is RecordKind.TIMED_OUT else f'failed with return code {record.return_code}'
        self._count_finished(actions, record.failed, f'task {record.task_id} (line {record.line_number}) {how}')

    def _on_engine_gone(self, event: EngineGone, actions: list[Action]) -> None:
        engine = self.engines.leave(event.engine_rank)
        if engine is None:
            return
        # Asked to stop (-C limit, the monitor, the tail): its process may end before its goodbye is read.
        self._last_left_on_purpose = not event.lost or engine.retiring or engine.drained
        self.departed[engine.rank] = (engine, *_departure(event.lost, engine))
        if event.lost and engine.assigned and not engine.aborted:  # an aborted engine's tasks are interrupted
            held = f'{len(engine.assigned)} task(s) running or queued'
            actions.append(Report(f'engine {engine.rank} on {engine.hostname} was lost with {held}'))
        retry: list[Task] = []
        for task in engine.assigned.values():
            if engine.aborted:  # queued, or killed with its engine after the stop's grace time: we stopped it
                self._interrupted(task, StatusRecord.stopped(task, engine.hostname, event.now), actions)
                continue
            self.counts.lost += 1
            again = self._may_run_again(task.task_id, max(self.config.max_attempts, 1 + self.config.retries))
            actions.append(WriteRecord(StatusRecord.lost(task, engine.hostname, event.now), final=not again))
            if again:
                retry.append(task)
            else:
                attempts = self._attempts.pop(task.task_id, 0) + 1
                self._count_finished(
                    actions, True, f'task {task.task_id} (line {task.line_number}) was lost {attempts} time(s)'
                )
        self.pending.extendleft(reversed(retry))

    def _on_engine_lost(self, event: EngineLost, actions: list[Action]) -> None:
        if (engine := self.engines.get(event.engine_rank)) is not None:
            self.engines.lose(engine)

    def _on_no_more_engines(self, event: NoMoreEngines, actions: list[Action]) -> None:
        if self.state not in _ACTIVE or self.engines or not self.more_tasks:
            return
        if self.config.wait_for_contexts or self._last_left_on_purpose:
            # Engines that left on purpose mean the user means to add resources: wait for them, and say how.
            if not self._waiting_reported:
                self._waiting_reported = True
                hint = f' (add one with {self.config.add_context_hint})' if self.config.add_context_hint else ''
                actions.append(Report(f'no engine is left and tasks remain: waiting for a context to be added{hint}'))
            return
        self._stop(actions, 'no engine is left to run the remaining tasks', exit_code=1)

    def _on_retire_engines(self, event: RetireEngines, actions: list[Action]) -> None:
        for engine in self.engines.values():
            if engine.matches(event.engine_ranks, event.context):
                self.engines.retire(engine)

    def _on_interrupt_engines(self, event: InterruptEngines, actions: list[Action]) -> None:
        for engine in self.engines.values():
            if not engine.aborted and engine.matches(event.engine_ranks, event.context):
                self._abort_engine(engine, event.reason, actions)

    def _on_stop_requested(self, event: StopRequested, actions: list[Action]) -> None:
        self._stop(actions, event.reason, event.exit_code, abort=event.abort)

    def _on_clock_tick(self, event: ClockTick, actions: list[Action]) -> None:
        self._now = max(self._now, event.now)
        if self.drain is None or not self.drain.must_stop(self._now) or self.state not in _ACTIVE:
            return
        if self.running or self.pending or not self._stream_ended or self._barrier is not None:
            self._stop(actions, self.drain.stop_reason(self.running), exit_code=EXIT_WALLTIME)

    def _on_allocation_end_changed(self, event: AllocationEndChanged, actions: list[Action]) -> None:
        if self.drain is not None and self.state in _ACTIVE and event.end != self.drain.allocation.end:
            self.drain.move_end(event.end)
            actions.append(Report(f'the allocation now ends at {clock(event.end)}'))

    def _may_run_again(self, task_id: int, budget: int) -> bool:
        """Whether a task whose attempt just ended (failed or lost) gets another within `budget` attempts; if so,
        the attempt is counted."""
        made = self._attempts.get(task_id, 0) + 1
        if self.state not in _ACTIVE or made >= budget:
            return False
        self._attempts[task_id] = made
        return True

    def _interrupted(self, task: Task, record: StatusRecord, actions: list[Action]) -> None:
        """The run stopped `task` (or never started it): run it elsewhere while the run goes on, else record it
        as interrupted, which is neither finished nor failed, and which `-r` runs again."""
        if self._may_run_again(task.task_id, max(self.config.max_attempts, 1 + self.config.retries)):
            actions.append(WriteRecord(record, final=False))
            self.pending.appendleft(task)
            return
        actions.append(WriteRecord(record))
        self._attempts.pop(task.task_id, None)
        self.counts.interrupted += 1

    def _abort_engine(self, engine: EngineLoad, reason: str, actions: list[Action]) -> None:
        """Stop the engine's tasks now and let it go; what it held comes back interrupted."""
        self.engines.drain(engine, abort=True)
        actions.append(AbortEngine(engine.rank, reason))

    def _count_finished(self, actions: list[Action], failed: bool, failure: str) -> None:
        """A task has its final record: count it, and apply -e and --fail-fast when it failed."""
        self.counts.finished += 1
        if not failed:
            return
        self.counts.failed += 1
        self._failed_since_barrier = True
        if self.config.exit_code_on_failure:
            self._exit_code = 1
        if self.config.fail_fast and self.state in _ACTIVE:
            self._stop(actions, f'{failure}; --fail-fast stops the run', exit_code=1)

    # ------------------------------------------------------------ progress

    def _advance(self, actions: list[Action]) -> None:
        """Hand out what can be handed out, resolve a satisfied barrier, and notice the end of the run.

        At the tail (stream over, nothing pending) each engine is drained as soon as it is idle, so idle nodes are
        released while busy ones finish; but one idle engine is kept as a spare while others still run tasks (the
        one on the driver's own host when there is one: that node is never given back anyway), so a task lost at
        the tail still has somewhere to run.
        """
        if self.state in _ACTIVE:
            self._assign(actions)
            if self._barrier is not None and not self.pending and self.running == 0:
                self._resolve_barrier(actions)
        if self.state in _ACTIVE and self._stream_ended and self._barrier is None:
            self.state = RunState.DRAINING
        self._check_walltime_drain(actions)
        tail = self.state is RunState.DRAINING and not self.pending
        if tail:  # every idle engine, but the spare while tasks run; at the tail, few are idle and not yet drained
            idle = self.engines.idle()
            spare = choose_spare(idle, self.config.driver_host, self._spare_rank) if self.running else None
            if spare is not None:
                self._spare_rank = spare.rank
            to_drain = [engine for engine in idle if engine is not spare]
        else:  # the idle engines that retire
            to_drain = self.engines.drain_due()
        for engine in to_drain:
            self.engines.drain(engine)
            actions.append(DrainEngine(engine.rank))
        done = self.state is RunState.STOPPING or (self.state is RunState.DRAINING and not self.pending)
        if done and not self.engines:
            self.state = RunState.FINISHED
            actions.append(Finish(self._exit_code))

    def _check_walltime_drain(self, actions: list[Action]) -> None:
        """Tasks are held for the end of the allocation and nothing runs any more: the run ends here."""
        if self.drain is None or not self.drain.holding or self.running or self.state not in _ACTIVE:
            return
        self._stop(actions, self.drain.drain_reason(), exit_code=EXIT_WALLTIME, abort=False)

    def _assign(self, actions: list[Action]) -> None:
        """Pending tasks go, in order, to the first engine in join order with free capacity, until it is full."""
        while self.pending and (engine := self.engines.first_with_free()) is not None:
            if self.drain is not None and not self.drain.may_start(self.pending[0].line_number, self._now):
                return
            task = self.pending.popleft()
            self.engines.hold(engine, task)
            actions.append(SendTask(engine.rank, task, self._attempts.get(task.task_id, 0) + 1))
            if self._task_limits.limited(engine.context):
                self._count_for_context(engine.context, actions)

    def _count_for_context(self, context: str, actions: list[Action]) -> None:
        """A task went to an engine of a context with a task limit (-C): at the limit, its engines retire."""
        count = self._task_limits.count(context)
        if count is None:
            return
        actions.append(Report(f'context {context} has been given its {count} tasks (-C): its engines stop'))
        for engine in self.engines.values():
            if engine.context == context:
                self.engines.retire(engine)

    def _resolve_barrier(self, actions: list[Action]) -> None:
        assert self._barrier is not None
        barrier, reached = self._barrier.barrier, self._barrier.reached
        self._barrier = None
        self.counts.barriers += 1
        # The barrier is recorded when the last task before it is recorded; that record's finish is the latest.
        now = max(reached, self._last_finish)
        record = StatusRecord.barrier(barrier, self.config.driver_host, self.config.driver_pid, reached, now)
        actions.append(WriteRecord(record))
        if barrier.key is not None:
            actions.append(PutBarrierKey(barrier.key, barrier.task_id))
        if barrier.check and self._failed_since_barrier:
            self._stop(
                actions,
                f'BARRIER CHECK at line {barrier.line_number}: a task since the previous barrier '
                'failed; the rest of the run is skipped',
                exit_code=self._exit_code,
                abort=False,
            )
        self._failed_since_barrier = False

    def _stop(self, actions: list[Action], reason: str, exit_code: int, abort: bool = True) -> None:
        """End the run early: nothing more is handed out; engines are aborted (or drained when nothing runs)."""
        if self.state in (RunState.STOPPING, RunState.FINISHED):
            self._exit_code = max(self._exit_code, exit_code)
            return
        self.state = RunState.STOPPING
        self.stop_reason = reason
        self._exit_code = max(self._exit_code, exit_code)
        self.pending.clear()
        actions.append(Report(reason))
        for engine in self.engines.values():
            if abort:
                self._abort_engine(engine, reason, actions)
            elif not engine.drained:
                self.engines.drain(engine)
                actions.append(DrainEngine(engine.rank))
            else:
                self.engines.retire(engine)


_ACTIVE = (RunState.RUNNING, RunState.DRAINING)


def _departure(lost: bool, engine: EngineLoad) -> tuple[str, str]:
    """How an engine left the run, in the snapshot's words (`EngineView.stage`, `why`)."""
    if lost and not (engine.retiring or engine.drained):
        return 'lost', 'silent, or its process or connection ended'
    if engine.aborted:
        return 'left', 'stopped with the run'
    return 'left', 'finished its tasks and was let go (retired, or no more tasks for it)'
