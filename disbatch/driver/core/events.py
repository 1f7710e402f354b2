"""What the scheduler hears (events) and what it asks for (actions): small frozen dataclasses, no behaviour.

The driver loop turns sockets, pidfds and signals into events, and carries actions out; `scheduler.py` maps one to
the other. Kept apart so both sides can read the vocabulary without the state machine.
"""

from __future__ import annotations

from dataclasses import dataclass

from disbatch.results.record import Outcome, StatusRecord
from disbatch.taskfile.items import Item, Task

# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class EngineJoined:
    engine_rank: int
    hostname: str
    slots: int
    context: str = ''


@dataclass(frozen=True, slots=True)
class ContextJoined:
    """A context announces itself; with `task_limit` > 0 its engines stop after that many tasks (-C)."""

    label: str
    task_limit: int


@dataclass(frozen=True, slots=True)
class ItemRead:
    item: Item
    now: float


@dataclass(frozen=True, slots=True)
class RecordRead:
    """A task an earlier run finished (from `-r`): counted, not run. Its `S` line is in the status file already: a
    resumed run writes them all before it starts (`ResumeIndex.carried`)."""

    record: StatusRecord


@dataclass(frozen=True, slots=True)
class StreamEnded:
    now: float


@dataclass(frozen=True, slots=True)
class TaskFinished:
    """An engine reports how a task it ran ended. The scheduler records it: it knows the task (which it gave that
    engine, or the run's per-engine tasks), the engine's host, and which attempt this was."""

    engine_rank: int
    task_id: int
    outcome: Outcome
    timed_out: bool = False  # the engine stopped it after --timeout seconds
    interrupted: bool = False  # the engine stopped it because the run stopped it
    phase: str = ''  # 'START' or 'STOP' for a per-engine task


@dataclass(frozen=True, slots=True)
class EngineGone:
    """An engine said goodbye, or its process/connection vanished (then `lost` is True)."""

    engine_rank: int
    lost: bool
    now: float


@dataclass(frozen=True, slots=True)
class EngineLost:
    """An engine was taken for lost while its tasks may still run (it went silent, or its launcher ended without
    saying they are over): it gets no new task, and what it holds stays its own until `EngineGone` says its tasks
    have certainly ended; then they are recorded lost and run again."""

    engine_rank: int


@dataclass(frozen=True, slots=True)
class NoMoreEngines:
    """Every context has stopped launching engines and none is alive."""

    now: float


@dataclass(frozen=True, slots=True)
class RetireEngines:
    """The user asked (from the monitor) that these engines, or every engine of a context, take no more tasks."""

    engine_ranks: tuple[int, ...] = ()
    context: str = ''


@dataclass(frozen=True, slots=True)
class InterruptEngines:
    """Stop the tasks of these engines (or of every engine of a context) now, and let those engines go.

    Their running and queued tasks are recorded as interrupted (`RecordKind.INTERRUPTED`) and, while the run goes
    on, handed to other engines; the run itself continues. For a context about to lose its nodes (a walltime).
    """

    reason: str
    engine_ranks: tuple[int, ...] = ()
    context: str = ''


@dataclass(frozen=True, slots=True)
class StopRequested:
    """The run is to stop (a signal, a bad task stream); `exit_code` is what the run should end with.

    With `abort`, running tasks are stopped and recorded as interrupted (`RecordKind.INTERRUPTED`, re-run by `-r`).
    """

    reason: str
    exit_code: int
    abort: bool = True  # stop running tasks; False only when none runs (a BARRIER CHECK, the walltime drain)


@dataclass(frozen=True, slots=True)
class ClockTick:
    """The driver's clock, once a turn, for a run with an allocation end: tasks are held, and the run stopped, by
    the time it says."""

    now: float


@dataclass(frozen=True, slots=True)
class AllocationEndChanged:
    """The allocation's end moved (the job's time limit was changed with `scontrol update`)."""

    end: float


Event = (
    EngineJoined
    | ContextJoined
    | ItemRead
    | RecordRead
    | StreamEnded
    | TaskFinished
    | EngineGone
    | EngineLost
    | NoMoreEngines
    | RetireEngines
    | InterruptEngines
    | StopRequested
    | ClockTick
    | AllocationEndChanged
)


# ---------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class SendTask:
    engine_rank: int
    task: Task
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class WriteRecord:
    record: StatusRecord
    final: bool = True  # False for an attempt that is run again (--retries, a lost engine): not the task's result
    carried: bool = False  # True for a task done by an earlier run: on file since the run started; observers only


@dataclass(frozen=True, slots=True)
class PutBarrierKey:
    key: str
    task_id: int


@dataclass(frozen=True, slots=True)
class DrainEngine:
    engine_rank: int


@dataclass(frozen=True, slots=True)
class AbortEngine:
    engine_rank: int
    reason: str


@dataclass(frozen=True, slots=True)
class Report:
    """Something the user should see on stderr and in the log."""

    message: str


@dataclass(frozen=True, slots=True)
class LogWarning:
    """Something for the log only (an engine's report the run cannot place)."""

    message: str


@dataclass(frozen=True, slots=True)
class Finish:
    exit_code: int


Action = SendTask | WriteRecord | PutBarrierKey | DrainEngine | AbortEngine | Report | LogWarning | Finish
