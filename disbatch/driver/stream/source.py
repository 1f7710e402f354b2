"""Where task lines come from, and the protocol every source follows.

A source hands out raw stream items (bytes) one at a time: `read()` returns the next item, `NOT_YET` when a live
producer has nothing more for now (the driver waits on `fds` and asks again), or None at the end of the stream.
A file (or stdin) is `FileSource`; a producer over the KVS is `kvs_source.KVSTaskSource`.
"""

from __future__ import annotations

import enum
from typing import BinaryIO


class NotYet(enum.Enum):
    NOT_YET = 'not yet'


NOT_YET = NotYet.NOT_YET


class FileSource:
    """Lines of a file or of stdin; never NOT_YET."""

    fds: tuple[int, ...] = ()

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle

    def read(self) -> bytes | NotYet | None:
        line = self._handle.readline()
        return line or None

    def on_ready(self, fd: int) -> None:  # pragma: no cover - a file source has no fds
        pass
