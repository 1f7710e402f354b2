"""The status file on disk: appending records as tasks finish, and reading a file back for `-r`.

Writing: lines go out with `os.write` on an `O_APPEND` descriptor, no Python buffering, so a line is in the page
cache (and survives the driver being killed) once the call returns. `write` puts one record there at once; the
driver loop instead `add`s the records of a turn and `flush`es them in one `os.write` at the end of the turn, before
anyone is told those tasks are done (see docs/architecture.md, "The status file"). Nothing is fsynced.

Reading: lines are split on `\\n` only (a command may hold other characters `str.splitlines` would split on), decoded
as UTF-8 with `surrogateescape`; a `\\r` before the `\\n` is dropped. The header line and blank lines are skipped.
A last line without its newline is taken to be cut short by a writer that was killed, and ignored (so its task
runs again), unless no line came before it and it is not a status line: then the file is not a status file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from types import TracebackType

from disbatch.errors import StatusFileError
from disbatch.results.record import StatusRecord
from disbatch.results.report import HEADER, format_line, is_header, parse_line

_FILE_MODE = 0o600  # the user's only: it holds commands and output (see disbatch/privacy.py)


class StatusFileWriter:
    """An open status file; `write` puts one record on disk as one line; `add` holds one back until `flush`."""

    def __init__(self, path: str, descriptor: int) -> None:
        self.path = path
        self._descriptor: int | None = descriptor
        self._held: list[str] = []  # lines added, not yet flushed

    @classmethod
    def open(cls, path: str, header: bool = False, *, append: bool = False) -> StatusFileWriter:
        """Create (or truncate, unless `append`) the file at `path`; write the header line if asked.

        With `append`, the header is written only if the file is empty. OSError if the file cannot be opened.
        """
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, 'O_CLOEXEC', 0)
        if not append:
            flags |= os.O_TRUNC
        descriptor = os.open(path, flags, _FILE_MODE)
        if not append:
            os.fchmod(descriptor, _FILE_MODE)  # a file truncated for this run is this run's
        writer = cls(path, descriptor)
        try:
            if header and os.fstat(descriptor).st_size == 0:
                writer._write_text(HEADER)
        except BaseException:
            writer.close()
            raise
        return writer

    def write(self, record: StatusRecord) -> None:
        """Put `record`'s line in the file now (after the lines held back, if any)."""
        self.add(record)
        self.flush()

    def add(self, record: StatusRecord) -> None:
        """Hold `record`'s line back until `flush`."""
        self._held.append(format_line(record))

    def flush(self) -> None:
        """Put the lines held back in the file, in order, with one `os.write`."""
        if self._held:
            text = '\n'.join(self._held)
            self._held.clear()
            self._write_text(text)

    def close(self) -> None:
        """Flush what is held back, and close the file."""
        if self._descriptor is None:
            return
        try:
            self.flush()
        finally:
            descriptor, self._descriptor = self._descriptor, None
            os.close(descriptor)

    @property
    def closed(self) -> bool:
        return self._descriptor is None

    def __enter__(self) -> StatusFileWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _write_text(self, line: str) -> None:
        if self._descriptor is None:
            raise ValueError(f'status file {self.path} is closed')
        data = (line + '\n').encode('utf-8', 'backslashreplace')
        written = os.write(self._descriptor, data)
        while written < len(data):  # only after a short write (disk full, ...): finish the line or raise
            written += os.write(self._descriptor, data[written:])


def read_status_file(path: str) -> Iterator[StatusRecord]:
    """The records of the status file at `path`, in file order; StatusFileError if it is not one.

    The error names the line (0 when the file cannot be read at all) and says why.
    """
    try:
        stream = open(path, 'rb')  # noqa: SIM115 -- closed by the with below; open errors need their own message
    except OSError as error:
        raise StatusFileError(path, 0, f'cannot read status file: {error.strerror or error}') from error
    with stream:
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
