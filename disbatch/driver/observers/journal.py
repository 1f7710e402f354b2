"""`--json FILE`: the run as a stream of events, one JSON object a line, each line flushed as it is written.

The loop hands the journal every scheduler event together with the actions it led to (`on_step`): an engine
joining or leaving, a task handed to an engine, a record written. Nothing here decides anything or raises into the
driver: a file that cannot be written (a full disk) is reported once, in one line, the journal stops and `failure`
says why (the run then ends with a non-zero exit code: its promised events file is incomplete). The file is created
by `disbatch.privacy` (mode 0600, never through a planted link). The events are the contract's
(`contract/json_events.py`, following `docs/events.schema.json`); `disbatch report` reads them back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from disbatch.contract.json_events import (
    SCHEMA_VERSION,
    EngineJoinedEntry,
    EngineLeftEntry,
    Entry,
    RunEndEntry,
    RunStartEntry,
    TaskFinishedEntry,
    TaskStartedEntry,
    write_entry,
)
from disbatch.driver.core import events as ev
from disbatch.driver.core.scheduler import Counts
from disbatch.privacy import create_file
from disbatch.results.outputs import output_paths, per_engine_output_paths
from disbatch.results.record import RecordKind, StatusRecord
from disbatch.results.snippet import snippet_text
from disbatch.results.status_line import flags

log = logging.getLogger('disbatch.driver')


def record_state(record: StatusRecord) -> str:
    """What became of the task, in one word: succeeded, failed, timed_out, interrupted, lost, skipped or barrier."""
    if record.kind in (RecordKind.BARRIER, RecordKind.BARRIER_CHECK):
        return 'barrier'
    named = {RecordKind.SKIPPED: 'skipped', RecordKind.TIMED_OUT: 'timed_out', RecordKind.INTERRUPTED: 'interrupted'}
    if record.kind in named:
        return named[record.kind]
    if record.unreported:
        return 'lost'
    return 'failed' if record.return_code != 0 else 'succeeded'


def display_text(text: str) -> str:
    """Text decoded with surrogateescape, as valid Unicode: bytes that were not UTF-8 become U+FFFD."""
    return text.encode('utf-8', 'surrogateescape').decode('utf-8', 'replace')


def finished_event(
    time: float,
    record: StatusRecord,
    final: bool,
    engine: int | None,
    stdout_file: str | None = None,
    stderr_file: str | None = None,
) -> TaskFinishedEntry:
    """A record as an event: every status-file field, plus its attempt, state and resource usage."""
    usage = record.usage
    return TaskFinishedEntry(
        time=time,
        task_id=record.task_id,
        line_number=record.line_number,
        repeat_index=record.repeat_index,
        kind=record.kind.name.lower(),
        state=record_state(record),
        flags=flags(record),
        host=record.host,
        pid=record.pid,
        return_code=record.return_code,
        elapsed=round(record.elapsed, 3),
        start=round(record.start, 3),
        finish=round(record.finish, 3),
        out_bytes=record.out_bytes,
        out_snippet=snippet_text(record.out_snippet),
        err_bytes=record.err_bytes,
        err_snippet=snippet_text(record.err_snippet),
        command=display_text(record.command),
        attempt=record.attempt,
        max_rss_bytes=usage.max_rss_bytes if usage else None,
        user_seconds=round(usage.user_seconds, 3) if usage else None,
        system_seconds=round(usage.system_seconds, 3) if usage else None,
        final=final,
        engine=engine,
        stdout_file=stdout_file,
        stderr_file=stderr_file,
    )


class Journal:
    """Writes the events of one run to `stream` (a line-buffered text file); `close` writes the run's end."""

    def __init__(self, stream: IO[str], results_dir: str = '', clock: Callable[[], float] = time.time) -> None:
        self.stream: IO[str] | None = stream
        self.results_dir = results_dir
        self.clock = clock
        self._hosts: dict[int, str] = {}  # engine rank -> host
        self.failure: str | None = None  # why the file could not be written, once it could not
        self.path = ''
        self.tell_failure = False  # a first line that cannot be written is the opener's to tell (see `start`)

    @classmethod
    def open(cls, path: str, results_dir: str = '', *, named: bool = False) -> Journal:
        """The events file at `path`, created anew (`named`: the user named it; see `privacy.create_file`)."""
        stream = os.fdopen(create_file(path, named=named), 'w', encoding='utf-8', buffering=1)  # closed by close()
        journal = cls(stream, results_dir)
        journal.path = path
        return journal

    def start(self, **facts: Any) -> None:
        """The first line: the schema version and what the run is (`RunStartEntry`: run id, status file, task file,
        ...); from now on a line that cannot be written is told (until now, `failure` is the caller's to check)."""
        self._write(RunStartEntry(time=self._now(), schema_version=SCHEMA_VERSION, **facts))
        self.tell_failure = True

    def on_step(self, event: ev.Event, actions: list[ev.Action]) -> None:
        """One scheduler step: what happened, then what it led to."""
        if isinstance(event, ev.EngineJoined):
            self._hosts[event.engine_rank] = event.hostname
            self._write(EngineJoinedEntry(self._now(), event.engine_rank, event.hostname, event.slots, event.context))
        rank = event.engine_rank if isinstance(event, (ev.TaskFinished, ev.EngineGone)) else None
        for action in actions:
            if isinstance(action, ev.SendTask):
                task = action.task
                self._write(
                    TaskStartedEntry(
                        time=self._now(),
                        task_id=task.task_id,
                        line_number=task.line_number,
                        repeat_index=task.repeat_index,
                        attempt=action.attempt,
                        engine=action.engine_rank,
                        host=self._hosts.get(action.engine_rank, ''),
                        command=display_text(task.command),
                    )
                )
            elif isinstance(action, ev.WriteRecord):
                self._write(self._finished(action, rank))
        if isinstance(event, ev.EngineGone):
            host = self._hosts.get(event.engine_rank, '')
            self._write(EngineLeftEntry(self._now(), event.engine_rank, host, event.lost))

    def close(self, exit_code: int, counts: Counts) -> None:
        self._write(
            RunEndEntry(
                time=self._now(),
                exit_code=exit_code,
                finished=counts.finished,
                failed=counts.failed,
                skipped=counts.skipped,
                barriers=counts.barriers,
                lost=counts.lost,
            )
        )
        stream, self.stream = self.stream, None
        if stream is not None:
            try:
                stream.close()
            except OSError as error:
                self._fail(error)

    def _finished(self, action: ev.WriteRecord, rank: int | None) -> TaskFinishedEntry:
        record = action.record
        if record.kind in (RecordKind.BARRIER, RecordKind.BARRIER_CHECK, RecordKind.SKIPPED):
            rank = None  # recorded by the driver, not run by an engine
        out = err = None
        if self.results_dir and record.usage is not None:
            if record.kind is RecordKind.PER_ENGINE:
                out, err = per_engine_output_paths(self.results_dir, record.line_number, rank or 0)
            else:
                out, err = output_paths(self.results_dir, record.task_id, record.attempt)
        return finished_event(self._now(), record, action.final, rank, out, err)

    def _now(self) -> float:
        return round(self.clock(), 3)

    def _write(self, entry: Entry) -> None:
        if self.stream is None:
            return
        try:
            self.stream.write(write_entry(entry) + '\n')
        except (OSError, ValueError) as error:
            self._fail(error)

    def _fail(self, error: OSError | ValueError) -> None:
        """Tell once, in one line, that the events file is incomplete; write nothing more to it."""
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        self.failure = f'--json: cannot write the events file {self.path}: {reason}'
        if self.tell_failure:
            told = f'{self.failure}; the events from here on are lost (the status file still has every record)'
            log.error('%s', told)
            print(f'disbatch: {told}', file=sys.stderr, flush=True)
        stream, self.stream = self.stream, None
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):  # what it still held is lost, and told
                stream.close()
