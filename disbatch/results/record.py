"""One attempt's result, end to end: the engine's `Outcome`, and the status-file `StatusRecord` that carries it.

`Outcome` is how one attempt of a task ended: what the engine measured of the task's process (and sends in its
`TaskDone`), or what the run knows of an attempt no process reported. `StatusRecord` is the task's identity (id,
line, repeat index, command), where it ran, what kind of line it is, and its outcome: the value the scheduler
records, the status file stores and resume reads back. Its named constructors say which record is which (`lost`,
`stopped`, `barrier`, `per_engine`, ...); formatting and parsing of the 15-column line live in
`results/status_line.py`; nothing else knows the format.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from disbatch.taskfile.items import NO_REPEAT, Barrier, PerEngineTask, Task

# The snippet of no output at all: the repr of an empty str, as the status file writes it.
EMPTY_SNIPPET = "''"
# The reference's return code for an attempt no engine reported (lost with its engine, or never started): with
# PID -1 (`NO_PID`, also the PID of a task whose process could not be created) it marks a line that records what
# the run knows, not what a task did.
LOST_RETURN_CODE = -100
NO_PID = -1


class RecordKind(enum.Enum):
    """What the fourth flag (or the barrier flag) of a status line says."""

    NORMAL = ' '
    PER_ENGINE = 'P'
    SKIPPED = 'S'  # carried over from an earlier run by -r
    ZOMBIE = 'Z'  # reported by an engine after the driver had given the attempt up
    TIMED_OUT = 'T'  # stopped after --timeout seconds (new in disbatch 4; a failure, like a non-zero return code)
    INTERRUPTED = 'I'  # stopped by the run itself (Ctrl-C, SIGTERM, --fail-fast, walltime drain): re-run by -r
    BARRIER = 'B'
    BARRIER_CHECK = 'C'


def task_kind(timed_out: bool, interrupted: bool) -> RecordKind:
    """The kind of a task's record from what its engine says ended it: --timeout, the run stopping it, or the task
    itself."""
    if timed_out:
        return RecordKind.TIMED_OUT
    return RecordKind.INTERRUPTED if interrupted else RecordKind.NORMAL


@dataclass(frozen=True, slots=True)
class ResourceUsage:
    """What a task's processes used, from the engine's `wait4`. Not in the status file (its 15 columns stay the
    reference's); `--json` carries it."""

    # None: unknown (--fork-tasks); else the peak resident set of the task's largest process (bash or a descendant
    # it waited for)
    max_rss_bytes: int | None
    user_seconds: float  # CPU time of the whole tree the task waited for
    system_seconds: float


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt ended. `elapsed` is kept, not derived: a line read back keeps the Elapsed it was written
    with, to the last digit."""

    pid: int
    return_code: int  # the exit status, or minus the signal number that killed it
    start: float
    finish: float
    elapsed: float
    out_bytes: int = 0
    out_snippet: str = EMPTY_SNIPPET  # already in the status-file form: a Python repr of a str, e.g. "'hello\\n'"
    err_bytes: int = 0
    err_snippet: str = EMPTY_SNIPPET
    usage: ResourceUsage | None = None  # None when no process ran (lost, skipped, barrier, spawn failure)

    @classmethod
    def ran(
        cls,
        pid: int,
        return_code: int,
        start: float,
        finish: float,
        out_bytes: int,
        out_snippet: str,
        err_bytes: int,
        err_snippet: str,
        usage: ResourceUsage,
    ) -> Outcome:
        """A task process that ran from `start` to `finish`."""
        return cls(
            pid, return_code, start, finish, finish - start, out_bytes, out_snippet, err_bytes, err_snippet, usage
        )

    @classmethod
    def spawn_failure(cls, return_code: int, reason: str, start: float) -> Outcome:
        """A task whose process could not be created: no PID, the reason as its error output."""
        return cls(NO_PID, return_code, start, start, 0.0, err_bytes=len(reason), err_snippet=repr(reason))

    @classmethod
    def unreported(cls, now: float) -> Outcome:
        """An attempt no engine reported (lost with its engine, or stopped before it began): PID -1, return code
        -100, start = finish = now."""
        return cls(NO_PID, LOST_RETURN_CODE, now, now, 0.0)

    @property
    def is_unreported(self) -> bool:
        return self.pid == NO_PID and self.return_code == LOST_RETURN_CODE


@dataclass(frozen=True, slots=True)
class StatusRecord:
    """One line of the status file: which task (or barrier), where, what kind of line, and how the attempt ended."""

    kind: RecordKind
    task_id: int
    line_number: int
    repeat_index: int
    command: str  # decoded with surrogateescape; formatted as b'...' when not valid UTF-8
    host: str
    outcome: Outcome
    # Known only while the run is live (not in the status file, so a record read back by -r has the default):
    attempt: int = 1  # which run of the task this is (--retries, a lost engine); 0 for a per-engine task

    # ------------------------------------------------------------ named constructors

    @classmethod
    def of_task(
        cls, task: Task, host: str, outcome: Outcome, kind: RecordKind = RecordKind.NORMAL, attempt: int = 1
    ) -> StatusRecord:
        """What became of one attempt of `task`, as its engine reported it."""
        return cls(kind, task.task_id, task.line_number, task.repeat_index, task.command, host, outcome, attempt)

    @classmethod
    def per_engine(cls, task: PerEngineTask, host: str, outcome: Outcome) -> StatusRecord:
        """A PERENGINE START or STOP task that ran on the engine on `host`."""
        return cls(RecordKind.PER_ENGINE, task.task_id, task.line_number, NO_REPEAT, task.command, host, outcome, 0)

    @classmethod
    def lost(cls, task: Task, host: str, now: float) -> StatusRecord:
        """An attempt that died with its engine: no engine reported it (see `Outcome.unreported`)."""
        return cls.of_task(task, host, Outcome.unreported(now))

    @classmethod
    def stopped(cls, task: Task, host: str, now: float) -> StatusRecord:
        """An attempt the run stopped with its engine before the task ended or began: unreported, interrupted.
        (Not named `interrupted`, the predicate: a class method of that name would make the predicate always
        true.)"""
        return cls.of_task(task, host, Outcome.unreported(now), RecordKind.INTERRUPTED)

    @classmethod
    def barrier(cls, barrier: Barrier, host: str, pid: int, reached: float, now: float) -> StatusRecord:
        """A barrier reached at `reached` and passed at `now`, recorded by the driver (its host and PID)."""
        kind = RecordKind.BARRIER_CHECK if barrier.check else RecordKind.BARRIER
        outcome = Outcome(pid, 0, reached, now, round(now - reached, 3))
        return cls(kind, barrier.task_id, barrier.line_number, NO_REPEAT, barrier.text, host, outcome)

    # ------------------------------------------------------------ the outcome, read through

    @property
    def pid(self) -> int:
        return self.outcome.pid

    @property
    def return_code(self) -> int:
        return self.outcome.return_code

    @property
    def start(self) -> float:
        return self.outcome.start

    @property
    def finish(self) -> float:
        return self.outcome.finish

    @property
    def elapsed(self) -> float:
        return self.outcome.elapsed

    @property
    def out_bytes(self) -> int:
        return self.outcome.out_bytes

    @property
    def out_snippet(self) -> str:
        return self.outcome.out_snippet

    @property
    def err_bytes(self) -> int:
        return self.outcome.err_bytes

    @property
    def err_snippet(self) -> str:
        return self.outcome.err_snippet

    @property
    def usage(self) -> ResourceUsage | None:
        return self.outcome.usage

    # ------------------------------------------------------------ predicates

    @property
    def unreported(self) -> bool:
        """No engine reported this attempt (PID -1, return code -100): lost with its engine, or stopped unstarted."""
        return self.outcome.is_unreported

    @property
    def is_lost(self) -> bool:
        """The attempt died with its engine (unreported, and not stopped by the run)."""
        return self.outcome.is_unreported and self.kind is not RecordKind.INTERRUPTED

    @property
    def failed(self) -> bool:
        """The task ran and did not succeed. An interrupted task did not fail: the run stopped it."""
        if self.kind is RecordKind.INTERRUPTED:
            return False
        return self.outcome.return_code != 0 or self.kind is RecordKind.TIMED_OUT

    @property
    def interrupted(self) -> bool:
        """The run stopped this task (or never started it) before it could end by itself; `-r` runs it again."""
        return self.kind is RecordKind.INTERRUPTED

    # ------------------------------------------------------------ the same attempt, another kind

    def as_skipped(self) -> StatusRecord:
        """The line a resumed run writes for a task an earlier run finished."""
        return replace(self, kind=RecordKind.SKIPPED)

    def as_interrupted(self) -> StatusRecord:
        """The same attempt, recorded as stopped by the run (its return code, times and output kept)."""
        return replace(self, kind=RecordKind.INTERRUPTED)
