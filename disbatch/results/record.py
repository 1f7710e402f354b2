"""One status-file record: what happened to one task (or barrier) in a run.

This is the value the engine reports, the scheduler records, the status file stores and resume reads back.
Formatting and parsing of the 15-column line live in `results/report.py`; nothing else knows the format.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace


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
