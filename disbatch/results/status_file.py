"""The status file on disk: appending records as tasks finish, and reading a file back for `-r`.

Writing: lines go out with `os.write` on an `O_APPEND` descriptor, no Python buffering, so a line is in the page
cache (and survives the driver being killed) once the call returns. `write` puts one record there at once; the
driver loop instead `add`s the records of a turn and `flush`es them in one `os.write` at the end of the turn, before
anyone is told those tasks are done (see docs/architecture.md, "The status file"). Nothing is fsynced. The file is
created by `disbatch.privacy` (mode 0600, never through a planted link); lines that cannot be written (a full disk)
are an `OutputLostError` naming the file and the tasks whose records are lost, and what part of them was written is
cut off again, so the file still ends with a whole line.

Reading: lines are split on `\\n` only (a command may hold other characters `str.splitlines` would split on), decoded
as UTF-8 with `surrogateescape`; a `\\r` before the `\\n` is dropped. The header line and blank lines are skipped.
A last line without its newline is taken to be cut short by a writer that was killed, and ignored (so its task
runs again), unless no line came before it and it is not a status line: then the file is not a status file.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable, Iterator
from types import TracebackType

from disbatch.errors import OutputLostError, StatusFileError
from disbatch.privacy import create_file, open_append
from disbatch.results.record import StatusRecord
from disbatch.results.status_line import HEADER, format_line, is_header, parse_line

_BATCH_BYTES = 1 << 20  # write_all: lines per os.write


class StatusFileWriter:
    """An open status file; `write` puts one record on disk as one line; `add` holds one back until `flush`."""

    def __init__(self, path: str, descriptor: int) -> None:
        self.path = path
        self._descriptor: int | None = descriptor
        self._size = os.fstat(descriptor).st_size  # where the next line starts
        self.carried = 0  # how many records of earlier runs `open` wrote first
        self._held: list[tuple[int, str]] = []  # (task id, line) added, not yet flushed

    @classmethod
    def open(
        cls,
        path: str,
        header: bool = False,
        *,
        append: bool = False,
        carried: Iterable[StatusRecord] | None = None,
    ) -> StatusFileWriter:
        """Create the file at `path` anew (or add to it with `append`); write the header line if asked.

        With `append`, the header is written only if the file is empty. With `carried` (a resumed run's records of
        earlier runs), the file is written whole under a temporary name first and then renamed to `path`: a driver
        killed meanwhile leaves no status file that looks complete and is not (`carried` then tells how many).
        RunFileError if the file cannot be made safely (`disbatch.privacy`), OutputLostError if it cannot be written.
        """
        if append and carried is not None:
            raise ValueError('carried records go into a new status file, not one appended to')
        building = path if carried is None else f'{path}.carrying'
        descriptor = open_append(path) if append else create_file(building)
        writer = cls(building, descriptor)
        try:
            if header and writer._size == 0:
                writer._write_text(HEADER, 'the header line')
            if carried is not None:
                writer.carried = writer.write_all(carried)
                os.rename(building, path)
                writer.path = path
        except BaseException:
            writer.close()
            if building != path:
                with contextlib.suppress(OSError):
                    os.unlink(building)
            raise
        return writer

    def write(self, record: StatusRecord) -> None:
        """Put `record`'s line in the file now (after the lines held back, if any); OutputLostError (naming the
        tasks) if it cannot be written."""
        self.add(record)
        self.flush()

    def add(self, record: StatusRecord) -> None:
        """Hold `record`'s line back until `flush`."""
        self._held.append((record.task_id, format_line(record)))

    def flush(self) -> None:
        """Put the lines held back in the file, in order, with one `os.write`; OutputLostError naming their tasks if
        they cannot be written (none of them is then in the file)."""
        if not self._held:
            return
        held, self._held = self._held, []
        first, last = held[0][0], held[-1][0]
        what = (
            f'the record of task {first}'
            if len(held) == 1
            else f'the records of {len(held)} tasks ({first} ... {last})'
        )
        self._write_text('\n'.join(line for _, line in held), what)

    def write_all(self, records: Iterable[StatusRecord]) -> int:
        """Write many records, about a mebibyte per `os.write` (a resumed run's carried records); how many."""
        lines: list[str] = []
        size = count = 0
        for record in records:
            line = format_line(record)
            lines.append(line)
            size += len(line) + 1
            count += 1
            if size >= _BATCH_BYTES:
                self._write_text('\n'.join(lines), 'the records carried from earlier runs')
                lines, size = [], 0
        if lines:
            self._write_text('\n'.join(lines), 'the records carried from earlier runs')
        return count

    def close(self) -> None:
        """Flush what is held back, and close the file."""
        if self._descriptor is None:
            return
        try:
            self.flush()
        finally:
            descriptor, self._descriptor = self._descriptor, None
            os.close(descriptor)

    def __enter__(self) -> StatusFileWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _write_text(self, line: str, what: str) -> None:
        if self._descriptor is None:
            raise ValueError(f'status file {self.path} is closed')
        data = (line + '\n').encode('utf-8', 'backslashreplace')
        try:
            written = os.write(self._descriptor, data)
            while written < len(data):  # only after a short write (disk full, ...): finish the line or raise
                written += os.write(self._descriptor, data[written:])
        except OSError as error:
            with contextlib.suppress(OSError):
                os.ftruncate(self._descriptor, self._size)  # no half line
                os.lseek(self._descriptor, self._size, os.SEEK_SET)  # and the next write right after the last line
            raise OutputLostError(
                f'status file {self.path}: cannot write {what}: {error.strerror or error}; the run stops, and a '
                f'resume (-r {self.path}) runs again every task it does not record'
            ) from None
        self._size += len(data)


def read_status_file(path: str) -> Iterator[StatusRecord]:
    """The records of the status file at `path`, in file order; StatusFileError if it is not one.

    The error names the line (0 when the file cannot be read at all) and says why.
    """
    try:
        stream = open(path, 'rb')  # noqa: SIM115 -- closed by the with below; open errors need their own message
    except OSError as error:
        raise StatusFileError(path, 0, f'cannot read status file: {error.strerror or error}') from error
    with stream:
        mode = os.fstat(stream.fileno()).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):  # /dev/zero would be read for ever
            raise StatusFileError(path, 0, 'not a status file: not a regular file')
        line_number = 0
        seen_line = False
        try:
            for raw in stream:
                line_number += 1
                terminated = raw.endswith(b'\n')
                text = raw.rstrip(b'\n').removesuffix(b'\r').decode('utf-8', 'surrogateescape')
                if not text.strip() or is_header(text):
                    seen_line = True
                    continue
                try:
                    record = parse_line(text)
                except ValueError as error:
                    if not terminated and seen_line:
                        return  # the last line, cut short by a killed writer
                    raise StatusFileError(path, line_number, f'not a disbatch status line: {error}') from None
                if not terminated:
                    return  # a last line cut short may still parse (inside the command): do not trust it
                seen_line = True
                yield record
        except OSError as error:
            raise StatusFileError(path, line_number, f'cannot read status file: {error.strerror or error}') from error
