"""Resume (`-r`, `-R`, `--force-resume`): which tasks an earlier run already did, and the line to write for them.

Fixes over the reference (SPEC §3):

* `S` lines (tasks a resumed run carried over) count as done, like normal lines; `P`, `Z`, `B` and `C` lines do not.
* `I` lines (tasks the run stopped itself: Ctrl-C, SIGTERM, --fail-fast, the walltime drain) do not count as done
  either: a plain `-r` runs them again. `T` lines (timed out) count as done, as failures: only `-R` re-runs them.
* Nor does a lost attempt (PID -1, return code -100: its engine died before reporting it, whatever the line's kind):
  the task never finished, and a run killed while it waited to run it again must not lose it to a plain `-r`.
* Across every `-r` file the best record of a task id wins: a record with return code 0 beats a failed one; between
  two of the same kind the later `Finish` wins, and on equal `Finish` the one read last (later file, later line).
* A mismatch names the task, its line and both command texts.
* A resumed run's status file accounts for every task an earlier run finished, from its start: before any task runs,
  the run writes an `S` line for each task the `-r` files say is done (`carried`), so a run stopped at any moment
  (Ctrl-C, SIGKILL, the walltime) leaves a status file that alone is enough for the next `-r`. (The reference wrote
  these lines only as it reached each task in the task file: a resume of a stopped resume ran finished tasks again.)

The match check is made only for a task that would be skipped: with `-R`, a failed task runs again even if its
line changed (fixing a failed command and resuming with `-R` is the usual way to use it).

Memory: the index keeps one entry per task id, the record's line as compact bytes, parsed again only when needed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from disbatch.errors import ResumeMismatchError
from disbatch.results.record import RecordKind, StatusRecord
from disbatch.results.status_file import read_status_file
from disbatch.results.status_line import format_line, parse_line
from disbatch.taskfile.items import NO_REPEAT, Task

_DONE_KINDS = (RecordKind.NORMAL, RecordKind.SKIPPED, RecordKind.TIMED_OUT)  # a timed-out task ran: -R re-runs it
_ENCODING = 'utf-8'
_ERRORS = 'surrogatepass'  # lossless for any str, so a stored line reads back to the same record


def _better(new: StatusRecord, old: StatusRecord) -> bool:
    """Whether `new` should replace `old` for the same task id (success first, then the later finish)."""
    if new.failed != old.failed:
        return not new.failed
    return new.finish >= old.finish


class ResumeIndex:
    """The best earlier record of every task id, and the decision to skip a task or run it."""

    def __init__(self) -> None:
        self._lines: dict[int, bytes] = {}
        self.skipped = 0
        self.warnings: list[str] = []  # filled by decide(force=True); the caller drains it

    @classmethod
    def load(cls, paths: Sequence[str]) -> ResumeIndex:
        """The index of the status files at `paths`, in order; StatusFileError if one is not a status file."""
        index = cls()
        for path in paths:
            index.add_records(read_status_file(path))
        return index

    @classmethod
    def from_records(cls, records: Iterable[StatusRecord]) -> ResumeIndex:
        index = cls()
        index.add_records(records)
        return index

    def add_records(self, records: Iterable[StatusRecord]) -> None:
        for record in records:
            if record.kind not in _DONE_KINDS or record.unreported:
                continue
            stored = self._record(record.task_id)
            if stored is None or _better(record, stored):
                self._lines[record.task_id] = format_line(record).encode(_ENCODING, _ERRORS)

    def __len__(self) -> int:
        return len(self._lines)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._lines

    def carried(self, retry_failed: bool) -> Iterator[StatusRecord]:
        """The `S` record of every task that counts as done (with `retry_failed`, the successful ones only), in task
        id order: what a resumed run writes first, so its status file alone accounts for every task done before."""
        for task_id in sorted(self._lines):
            record = self._record(task_id)
            if record is not None and not (retry_failed and record.failed):
                yield record.as_skipped()

    def record(self, task_id: int) -> StatusRecord | None:
        """The best earlier record of `task_id`, if any."""
        return self._record(task_id)

    def decide(self, task: Task, retry_failed: bool, force: bool) -> StatusRecord | None:
        """The `S` record to write if `task` is already done, else None (run it).

        A task is done if an earlier record has its id and (without `retry_failed`) any return code, or (with it)
        return code 0. A done task must match its record (line, repeat index, command): ResumeMismatchError if not,
        unless `force`, which skips it by id alone (keeping the old command text) and adds a warning.
        """
        old = self._record(task.task_id)
        if old is None or (retry_failed and old.failed):
            return None
        if (old.line_number, old.repeat_index, old.command) != (task.line_number, task.repeat_index, task.command):
            message = _mismatch_message(task, old)
            if not force:
                raise ResumeMismatchError(f'{message}; use --force-resume to skip by task id alone')
            self.warnings.append(f'{message}; skipped by task id (--force-resume)')
        self.skipped += 1
        return old.as_skipped()

    def _record(self, task_id: int) -> StatusRecord | None:
        line = self._lines.get(task_id)
        return None if line is None else parse_line(line.decode(_ENCODING, _ERRORS))


def _mismatch_message(task: Task, old: StatusRecord) -> str:
    where = f'line {task.line_number}'
    if task.repeat_index != NO_REPEAT or old.repeat_index != NO_REPEAT:
        where += f', repeat {task.repeat_index}'
    return (
        f'task {task.task_id} ({where}) does not match the status file: now {task.command!r}, '
        f'was {old.command!r} (line {old.line_number}, repeat {old.repeat_index})'
    )
