"""The task file, pure: lines (bytes) in, typed items with ids and line numbers out."""

from __future__ import annotations

from disbatch.taskfile.items import NO_REPEAT, Barrier, Item, PerEngineTask, Phase, Task
from disbatch.taskfile.parser import MARKER, TaskFileParser, parse_stream

__all__ = [
    'MARKER',
    'NO_REPEAT',
    'Barrier',
    'Item',
    'PerEngineTask',
    'Phase',
    'Task',
    'TaskFileParser',
    'parse_stream',
]
