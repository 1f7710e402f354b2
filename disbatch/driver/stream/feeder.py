"""The feeder: the task stream as the scheduler sees it — items to run, and records of tasks already done.

It reads the task file (or stdin) lazily through the parser, takes the per-engine tasks off the top, and asks the
resume index (from `-r`) about every task, turning the ones an earlier run finished into `RecordRead` events.
For a regular file, `validate` first scans the directive lines of the whole file, so a malformed file is reported
as `FILE:LINE: message` before anything runs, without holding the file in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from disbatch.driver.core.events import ItemRead, RecordRead
from disbatch.driver.stream.source import NOT_YET, FileSource, NotYet

if TYPE_CHECKING:
    from disbatch.driver.stream.kvs_source import KVSTaskSource
from disbatch.results.resume import ResumeIndex
from disbatch.taskfile.items import Item, PerEngineTask, Phase, Task
from disbatch.taskfile.parser import TaskFileParser

Warn = Callable[[str], None]


class Feeder:
    """Turns a source's raw items into scheduler events: parses them, takes per-engine tasks, asks resume."""

    def __init__(
        self,
        source: FileSource | KVSTaskSource,
        name: str,
        resume: ResumeIndex | None,
        retry_failed: bool,
        force_resume: bool,
        warn: Warn,
    ) -> None:
        self.source = source
        self._parser = TaskFileParser(name)
        self._line_number = 0
        self._items: Iterator[Item] = iter(())
        self._resume = resume
        self._retry_failed = retry_failed
        self._force_resume = force_resume
        self._warn = warn
        self._held: Item | None = None
        self._ended = False
        self.start_tasks: list[PerEngineTask] = []
        self.stop_tasks: list[PerEngineTask] = []

    def take_per_engine_tasks(self) -> None:
        """Read the PERENGINE block at the top of the stream (the grammar allows it nowhere else); a live source
        is read only as far as it has items now."""
        while True:
            item = self._next_item()
            if item is None or item is NOT_YET:
                return
            if not isinstance(item, PerEngineTask):
                self._held = item
                return
            (self.start_tasks if item.phase is Phase.START else self.stop_tasks).append(item)

    @property
    def empty(self) -> bool:
        """After `take_per_engine_tasks`: True when the stream has ended with nothing but per-engine tasks."""
        return self._held is None and self._ended

    def next_event(self, now: float) -> ItemRead | RecordRead | NotYet | None:
        """The next thing the scheduler should hear about; NOT_YET when a live source has nothing for now; None at
        the end of the stream."""
        item: Item | NotYet | None = self._held
        self._held = None
        if item is None:
            item = self._next_item()
        if item is None or item is NOT_YET:
            return item
        if isinstance(item, PerEngineTask):
            self._warn(
                f'{self._parser.source}:{item.line_number}: a PERENGINE task that arrives after the engines '
                'started is ignored'
            )
            return self.next_event(now)
        if isinstance(item, Task) and self._resume is not None:
            record = self._resume.decide(item, self._retry_failed, self._force_resume)
            for warning in self._resume.warnings:
                self._warn(warning)
            self._resume.warnings.clear()
            if record is not None:
                return RecordRead(record)
        return ItemRead(item, now)

    def _next_item(self) -> Item | NotYet | None:
        while True:
            item = next(self._items, None)
            if item is not None:
                return item
            if self._ended:
                return None
            raw = self.source.read()
            if raw is None:
                self._ended = True
                return None
            if raw is NOT_YET:
                return NOT_YET
            self._line_number += 1
            self._items = self._parser.feed_iter(raw, self._line_number)
            for warning in self._parser.warnings:
                self._warn(warning)
            self._parser.warnings.clear()
