"""What a task file says, as typed items: the output of the parser and the input of the scheduler.

Ids follow the reference exactly: one counter from 0 over normal tasks, REPEAT expansions and barriers;
PERENGINE START and PERENGINE STOP tasks each have a counter of their own from 0.
`line_number` is the 1-based index of the item in its stream (the physical line for a file).
Commands are `str` decoded from the file's bytes as UTF-8 with `surrogateescape`, so any byte survives the
round trip to `/bin/bash -c` (encode with `surrogateescape` to get the bytes back).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

NO_REPEAT = -1


@dataclass(frozen=True, slots=True)
class Task:
    """A command to run once on some slot."""

    task_id: int
    line_number: int
    repeat_index: int  # NO_REPEAT unless the task comes from a REPEAT directive
    command: str  # prefix + command + suffix


@dataclass(frozen=True, slots=True)
class Barrier:
    """`#DISBATCH BARRIER [CHECK] [key]`: nothing after it starts until everything before it has finished."""

    task_id: int
    line_number: int
    check: bool  # BARRIER CHECK: end the run if a task since the previous barrier failed
    key: str | None  # the KVS key the barrier's task id is put under, if any
    text: str  # the directive line as written; the status file records it as the command


class Phase(enum.Enum):
    START = 'START'
    STOP = 'STOP'


@dataclass(frozen=True, slots=True)
class PerEngineTask:
    """`#DISBATCH PERENGINE START|STOP cmd`: runs once on every engine, before its slots start / after they stop."""

    phase: Phase
    task_id: int  # counted per phase from 0
    line_number: int
    command: str  # prefix + command + suffix


Item = Task | Barrier | PerEngineTask
