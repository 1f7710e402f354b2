"""What the status file keeps of a task's output: the byte count and a short snippet, in constant memory.

The snippet follows the reference (§4): the first 40 bytes, then `...` and the last bytes (at most 40) of the
*rest* (head and tail never overlap), each part decoded as UTF-8 with U+FFFD for bad bytes, written as the Python
repr of the joined text; `''` when there was no output.
"""

from __future__ import annotations

import ast

SNIPPET_BYTES = 40


class OutputCapture:
    """Feed it a stream's chunks with `add`; it keeps the head, the tail and the total, nothing else."""

    __slots__ = ('_head', '_tail', 'total')

    def __init__(self) -> None:
        self._head = b''
        self._tail = b''
        self.total = 0

    def add(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.total += len(chunk)
        room = SNIPPET_BYTES - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self._tail = (self._tail + chunk[-SNIPPET_BYTES:])[-SNIPPET_BYTES:]

    def snippet(self) -> str:
        text = self._head.decode('utf-8', 'replace')
        if self.total > SNIPPET_BYTES:
            text += '...' + self._tail.decode('utf-8', 'replace')
        return repr(text)


def snippet_text(snippet: str) -> str:
    """A status snippet (the repr of a str) as its text; a snippet that is not one comes back as it is."""
    try:
        value = ast.literal_eval(snippet)
    except (ValueError, SyntaxError):
        return snippet
    return value if isinstance(value, str) else snippet
