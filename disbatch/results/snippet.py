"""What the status file keeps of a task's output: the byte count and a short snippet, in constant memory.

The snippet follows the reference (§4): the first 40 bytes, then `...` and the last bytes (at most 40) of the
*rest* (head and tail never overlap), each part decoded as UTF-8 with U+FFFD for bad bytes, written as the Python
repr of the joined text; `''` when there was no output. `readable` gives a snippet back as a person should read
it: the `...` the capture put in says nothing was left out when nothing was (`[...]` where bytes were), and words
the gap cut are dropped rather than shown as fragments.
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


GAP = ' [...] '  # where `readable` shows that output was left out


def readable(snippet: str, total_bytes: int) -> str:
    """The text of a snippet of `total_bytes` bytes of output, joined where nothing was left out, else with `GAP`
    between the whole words of its head and of its tail."""
    text = snippet_text(snippet)
    gap = _gap(text) if total_bytes > SNIPPET_BYTES else None
    if gap is None:
        return text
    head, tail = text[:gap], text[gap + 3 :]
    if total_bytes <= 2 * SNIPPET_BYTES:  # the tail starts where the head ends
        return head + tail
    if head and not head[-1].isspace():
        cut = max(head.rfind(' '), head.rfind('\n'), head.rfind('\t'))
        head = head[:cut] if cut > 0 else head
    if tail and not tail[0].isspace():
        cut = min((index for index in (tail.find(' '), tail.find('\n'), tail.find('\t')) if index >= 0), default=-1)
        tail = tail[cut + 1 :] if cut >= 0 else tail
    return head.rstrip(' \t') + GAP + tail.lstrip(' \t')


def _gap(text: str) -> int | None:
    """Where the capture put its `...`: after the head, the text of the first SNIPPET_BYTES bytes (a character cut
    there decodes as one U+FFFD, so the head's length in UTF-8 is near SNIPPET_BYTES, not exactly)."""
    start = text.find('...')
    while start >= 0:
        if SNIPPET_BYTES - 4 <= len(text[:start].encode('utf-8', 'replace')) <= SNIPPET_BYTES + 6:
            return start
        start = text.find('...', start + 1)
    return None
