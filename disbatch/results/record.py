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
        return self.return_code != 0 or self.kind is RecordKind.TIMED_OUT

    def as_skipped(self) -> StatusRecord:
        """The line a resumed run writes for a task an earlier run finished."""
        return replace(self, kind=RecordKind.SKIPPED)
