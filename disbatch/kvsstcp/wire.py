"""The kvsstcp wire format: the only code that turns requests and replies into bytes and back.

A request is a 4-byte operation followed by its arguments (reference §10):

    put_  key value          key   = length(10) + bytes
    get_  key                value = encoding(4) + length(10) + bytes
    view  key                length = ASCII decimal, right-justified in 10 bytes ('%10d')
    mkey  monitor_key spec   spec  = length(10) + b'key:events'
    dump | clos | down       no arguments

Replies: a `get_`/`view` reply is a value (encoding + length + bytes); a `dump` reply is length(10) + bytes.

`RequestParser` is an incremental, allocation-bounded decoder for a server: it is fed whatever bytes arrived and
hands back whole requests one at a time, rejecting a bad length field or an oversized key/value as soon as the
10 length bytes are in, before any of the body is buffered. Pure: no sockets, no clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

OPERATION_BYTES = 4
ENCODING_BYTES = 4
LENGTH_BYTES = 10
MAX_LENGTH = 10**LENGTH_BYTES - 1
AUTH_KEY = b'.auth'
"""The key a client puts its token to as its first request, when the server requires one."""


class FrameError(ValueError):
    """Bytes that are not a kvsstcp request: unknown operation, bad length field, oversized field."""


@dataclass(frozen=True)
class Put:
    """Append `value` (tagged with a 4-byte `encoding`) to the values of `key`."""

    key: bytes
    encoding: bytes
    value: bytes


@dataclass(frozen=True)
class Get:
    """Remove and return the oldest value of `key`; wait for one if there is none."""

    key: bytes


@dataclass(frozen=True)
class View:
    """Return the newest value of `key` without removing it; wait for one if there is none."""

    key: bytes


@dataclass(frozen=True)
class Monitor:
    """Make `monitor_key` receive an event for each listed operation on a key; `spec` is `b'key:events'`."""

    monitor_key: bytes
    spec: bytes


@dataclass(frozen=True)
class Dump:
    """Ask for statistics of the store."""


@dataclass(frozen=True)
class Close:
    """Close this connection."""


@dataclass(frozen=True)
class Shutdown:
    """Shut the server down."""


Request = Put | Get | View | Monitor | Dump | Close | Shutdown


def encode_length(length: int) -> bytes:
    """Return `length` as 10 ASCII bytes, right-justified decimal (the reference's `'%10d'`)."""
    if not 0 <= length <= MAX_LENGTH:
        raise FrameError(f'length {length} does not fit in {LENGTH_BYTES} digits')
    return b'%10d' % length


def parse_length(field: bytes) -> int:
    """Read a 10-byte length field: ASCII digits, padded with spaces. Anything else is a `FrameError`."""
    digits = field.strip(b' ')
    if len(field) != LENGTH_BYTES or not digits or not digits.isdigit():
        raise FrameError(f'bad length field {field!r}')
    return int(digits)


def encode_key(key: bytes) -> bytes:
    """Return a key (or any length-prefixed argument) as length(10) + bytes."""
    return encode_length(len(key)) + key


def encode_value(encoding: bytes, value: bytes) -> bytes:
    """Return a value as encoding(4) + length(10) + bytes; this is also the `get_`/`view` reply."""
    if len(encoding) != ENCODING_BYTES:
        raise FrameError(f'encoding tag must be {ENCODING_BYTES} bytes, not {encoding!r}')
    return encoding + encode_length(len(value)) + value


def encode_dump_reply(payload: bytes) -> bytes:
    """Return the reply to `dump`: length(10) + payload."""
    return encode_length(len(payload)) + payload


def encode_request(request: Request) -> bytes:
    """Return the bytes a client sends for `request`."""
    if isinstance(request, Put):
        return b'put_' + encode_key(request.key) + encode_value(request.encoding, request.value)
    if isinstance(request, Get):
        return b'get_' + encode_key(request.key)
    if isinstance(request, View):
        return b'view' + encode_key(request.key)
    if isinstance(request, Monitor):
        return b'mkey' + encode_key(request.monitor_key) + encode_key(request.spec)
    if isinstance(request, Dump):
        return b'dump'
    if isinstance(request, Close):
        return b'clos'
    return b'down'


class _Reader:
    """A cursor over a buffer that reports `None` when the bytes it needs have not arrived yet."""

    def __init__(self, buffer: bytearray, max_length: int) -> None:
        self.buffer = buffer
        self.position = 0
        self.max_length = max_length

    def fixed(self, size: int) -> bytes | None:
        end = self.position + size
        if end > len(self.buffer):
            return None
        with memoryview(self.buffer) as view:
            chunk = bytes(view[self.position : end])
        self.position = end
        return chunk

    def sized(self) -> bytes | None:
        """Read length(10) + bytes; a bad or oversized length fails before the body is awaited."""
        field = self.fixed(LENGTH_BYTES)
        if field is None:
            return None
        length = parse_length(field)
        if length > self.max_length:
            raise FrameError(f'field of {length} bytes exceeds the limit of {self.max_length}')
        return self.fixed(length)


def _read_put(reader: _Reader) -> Request | None:
    key = reader.sized()
    encoding = None if key is None else reader.fixed(ENCODING_BYTES)
    value = None if encoding is None else reader.sized()
    if key is None or encoding is None or value is None:
        return None
    return Put(key, encoding, value)


def _read_get(reader: _Reader) -> Request | None:
    key = reader.sized()
    return None if key is None else Get(key)


def _read_view(reader: _Reader) -> Request | None:
    key = reader.sized()
    return None if key is None else View(key)


def _read_monitor(reader: _Reader) -> Request | None:
    monitor_key = reader.sized()
    spec = None if monitor_key is None else reader.sized()
    if monitor_key is None or spec is None:
        return None
    return Monitor(monitor_key, spec)


def _constant(request: Request) -> Callable[[_Reader], Request | None]:
    return lambda reader: request


_READERS: dict[bytes, Callable[[_Reader], Request | None]] = {
    b'put_': _read_put,
    b'get_': _read_get,
    b'view': _read_view,
    b'mkey': _read_monitor,
    b'dump': _constant(Dump()),
    b'clos': _constant(Close()),
    b'down': _constant(Shutdown()),
}


class RequestParser:
    """Incremental request decoder: `feed` bytes as they arrive, then take requests with `next_request`.

    `max_length` bounds every key and value (and may be changed between requests, e.g. raised after
    authentication). After a `FrameError` the stream cannot be resynchronised: drop the connection.
    """

    def __init__(self, max_length: int) -> None:
        self.max_length = max_length
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def buffered(self) -> int:
        """The number of bytes received but not yet consumed by a whole request."""
        return len(self._buffer)

    def next_request(self) -> Request | None:
        """Return the next whole request, or `None` until more bytes arrive; raise `FrameError` on bad input."""
        reader = _Reader(self._buffer, self.max_length)
        operation = reader.fixed(OPERATION_BYTES)
        if operation is None:
            return None
        read = _READERS.get(operation)
        if read is None:
            raise FrameError(f'unknown operation {operation!r}')
        request = read(reader)
        if request is not None:
            del self._buffer[: reader.position]
        return request
