"""One status-file record: what happened to one task (or barrier) in a run.

This is the value the engine reports, the scheduler records, the status file stores and resume reads back.
Formatting and parsing of the 15-column line live in `results/report.py`; nothing else knows the format.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

# The reference's return code for an attempt no engine reported (lost with its engine, or never started): with
# PID -1 it marks a line that records what the run knows, not what a task did.
LOST_RETURN_CODE = -100


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


@dataclass(frozen=True, slots=True)
class ResourceUsage:
    """What a task's processes used, from the engine's `wait4`. Not in the status file (its 15 columns stay the
    reference's); `--json` carries it."""

    max_rss_bytes: int  # peak resident set of the task's largest process (bash or a descendant it waited for)
    user_seconds: float  # CPU time of the whole tree the task waited for
    system_seconds: float


@dataclass(frozen=True, slots=True)
class StatusRecord:
    kind: RecordKind
    task_id: int
    line_number: int
    repeat_index: int
    host: str
    pid: int
    return_code: int
    elapsed: float
    start: float
    finish: float
    out_bytes: int
    out_snippet: str  # already in the status-file form: a Python repr of a str, e.g. "'hello\\n'"
    err_bytes: int
    err_snippet: str
    command: str  # decoded with surrogateescape; formatted as b'...' when not valid UTF-8
    # Known only while the run is live (not in the status file, so a record read back by -r has the defaults):
    attempt: int = 1  # which run of the task this is (--retries, a lost engine); 0 for a per-engine task
    usage: ResourceUsage | None = None  # None when no process ran (lost, skipped, barrier, spawn failure)

    @property
    def unreported(self) -> bool:
        """No engine reported this attempt (PID -1, return code -100): lost with its engine, or stopped unstarted."""
        return self.pid == -1 and self.return_code == LOST_RETURN_CODE

    @property
    def failed(self) -> bool:
        """The task ran and did not succeed. An interrupted task did not fail: the run stopped it."""
        if self.kind is RecordKind.INTERRUPTED:
            return False
        return self.return_code != 0 or self.kind is RecordKind.TIMED_OUT

    @property
    def interrupted(self) -> bool:
        """The run stopped this task (or never started it) before it could end by itself; `-r` runs it again."""
        return self.kind is RecordKind.INTERRUPTED

    def as_skipped(self) -> StatusRecord:
        """The line a resumed run writes for a task an earlier run finished."""
        return replace(self, kind=RecordKind.SKIPPED)

    def as_interrupted(self) -> StatusRecord:
        """The same attempt, recorded as stopped by the run (its return code, times and output kept)."""
        return replace(self, kind=RecordKind.INTERRUPTED)
