"""The kvsstcp server: one thread running a `selectors` loop over non-blocking TCP connections.

Owns sockets, per-connection buffers, authentication and the thread; the store semantics live in `store.py`
and the bytes in `wire.py`. Bad input costs nothing: a frame that does not parse, a length over
`max_value_bytes`, a failed authentication or an unknown operation closes that one connection with a warning
naming the peer (before authentication: counted, see below). A connection that does not read its replies stops
being read from (its output is bounded).

Connections that have not authenticated yet (with a token) cost little and cannot pile up: each has
`AUTH_SECONDS` to present the token, at most `MAX_UNAUTHENTICATED` wait at once (a new one closes the oldest), and
when the process is out of descriptors (EMFILE, ENFILE) the older half of them is closed, or, with none to close,
accepting pauses for `ACCEPT_PAUSE_SECONDS` instead of spinning. What is closed this way is logged as a count, at
most once per `LOG_EVERY_SECONDS`, never a line per connection.

The owner of the server (the driver) also uses it in-process, from any thread: `put`, `view_nowait`,
`get_nowait`, and `watch(key, callback)`, which calls `callback(key, encoding, value)` on the server thread
after every put to `key` (from a client or in-process). A callback must be quick and must not block; it may
call `put`. An exception in a callback is logged and does not stop the server.
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import logging
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from types import TracebackType
from typing import cast

from disbatch.kvsstcp import wire
from disbatch.kvsstcp.store import EncodedValue, KeyValueStore, Waiter

logger = logging.getLogger(__name__)

DEFAULT_MAX_VALUE_BYTES = 64 * 1024 * 1024
RECEIVE_BYTES = 256 * 1024
PRE_AUTH_MAX_LENGTH = 4096
SHUTDOWN_SECONDS = 1.0
AUTH_SECONDS = 5.0  # a client presents the token in its first request, at once; a stranger is closed after this
MAX_UNAUTHENTICATED = 64  # connections waiting to authenticate at once; over it, the oldest is closed
ACCEPT_PAUSE_SECONDS = 0.5  # out of descriptors: accept nothing for this long
ACCEPT_BATCH = 16  # accepted per turn of the loop, so requests already sent are read between (fewer than the cap)
LOG_EVERY_SECONDS = 10.0  # closed strangers and accept failures: one line per this long at most
_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)

WatchCallback = Callable[[bytes, bytes, bytes], None]


@dataclass(eq=False)
class _Connection:
    sock: socket.socket
    peer: str
    parser: wire.RequestParser
    authenticated: bool
    first_request: bool = True
    output: deque[bytes] = field(default_factory=deque)
    output_offset: int = 0
    output_bytes: int = 0
    waiter: Waiter | None = None
    closing: bool = False
    interest: int = selectors.EVENT_READ
    accepted: float = 0.0  # time.monotonic() of the accept


class _Tally:
    """Counts of things not worth a log line each (strangers closed, accepts failed), logged together at most once
    per `LOG_EVERY_SECONDS`; the first of a quiet spell is logged at once."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.last_logged = -LOG_EVERY_SECONDS

    def add(self, what: str, now: float) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1
        self.flush(now)

    def flush(self, now: float, force: bool = False) -> None:
        if not self.counts or (not force and now - self.last_logged < LOG_EVERY_SECONDS):
            return
        logger.warning('kvsstcp: %s', '; '.join(f'{what}: {count}' for what, count in self.counts.items()))
        self.counts.clear()
        self.last_logged = now


class KVSServer:
    """A kvsstcp server bound at construction (`port=0` picks a free port); `start()` runs it in a thread."""

    def __init__(
        self,
        host: str = '127.0.0.1',
        port: int = 0,
        *,
        token: bytes | None = None,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        backlog: int = 4000,
    ) -> None:
        self.max_value_bytes = max_value_bytes
        self._token = token
        self._lock = threading.RLock()
        self._store = KeyValueStore(on_put=self._note_put)
        self._watchers: dict[bytes, list[WatchCallback]] = {}
        self._callbacks: deque[tuple[WatchCallback, bytes, bytes, bytes]] = deque()
        self._connections: dict[socket.socket, _Connection] = {}
        self._unauthenticated: dict[socket.socket, _Connection] = {}  # oldest first
        self._accepting_again: float | None = None  # time.monotonic() when accepting resumes after EMFILE
        self._tally = _Tally()
        self._dirty: set[_Connection] = set()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener = socket.create_server((host, port), backlog=backlog)
        self._listener.setblocking(False)
        bound_host, bound_port = self._listener.getsockname()[:2]
        self._address = (str(bound_host), int(bound_port))
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._wake_reader, selectors.EVENT_READ)

    @property
    def address(self) -> tuple[str, int]:
        return self._address

    # ---- life cycle ---------------------------------------------------------------------------------------------

    def start(self) -> KVSServer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name='kvsstcp-server', daemon=True)
            self._thread.start()
        return self

    def shutdown(self) -> None:
        """Stop the loop and close every socket; returns within about a second."""
        self._stopping.set()
        self._wake()
        if self._thread is None:
            self._close_all()
        elif self._thread is not threading.current_thread():
            self._thread.join(SHUTDOWN_SECONDS)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server has stopped (e.g. after a client's `down`); False on timeout."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> KVSServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.shutdown()

    # ---- in-process API (any thread) ----------------------------------------------------------------------------

    def put(self, key: bytes, value: bytes, encoding: bytes = b'ASTR') -> None:
        """Put a value as a client would (waiters are served, watchers called on the server thread)."""
        if len(encoding) != wire.ENCODING_BYTES:
            raise ValueError(f'encoding tag must be {wire.ENCODING_BYTES} bytes, not {encoding!r}')
        with self._lock:
            self._store.put(key, encoding, value)
        self._wake()

    def replace(self, key: bytes, value: bytes, encoding: bytes = b'ASTR') -> None:
        """Make `value` the key's only value (a status the owner keeps current); waiters are served as by `put`."""
        if len(encoding) != wire.ENCODING_BYTES:
            raise ValueError(f'encoding tag must be {wire.ENCODING_BYTES} bytes, not {encoding!r}')
        with self._lock:
            self._store.clear(key)
            self._store.put(key, encoding, value)
        self._wake()

    def view_nowait(self, key: bytes) -> EncodedValue | None:
        """The newest `(encoding, value)` of `key`, or None; nothing is removed."""
        with self._lock:
            return self._store.peek_newest(key)

    def get_nowait(self, key: bytes) -> EncodedValue | None:
        """Remove and return the oldest `(encoding, value)` of `key`, or None."""
        with self._lock:
            return self._store.take_oldest(key)

    def watch(self, key: bytes, callback: WatchCallback) -> None:
        """Call `callback(key, encoding, value)` on the server thread after every later put to `key`."""
        with self._lock:
            self._watchers.setdefault(key, []).append(callback)

    def unwatch(self, key: bytes, callback: WatchCallback) -> None:
        with self._lock:
            callbacks = self._watchers.get(key, [])
            if callback in callbacks:
                callbacks.remove(callback)

    def _note_put(self, key: bytes, encoding: bytes, value: bytes) -> None:
        for callback in self._watchers.get(key, ()):
            self._callbacks.append((callback, key, encoding, value))

    # ---- the loop (server thread) -------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                ready = self._selector.select(self._timeout(time.monotonic()))
                with self._lock:
                    for key, mask in ready:
                        self._dispatch(cast(socket.socket, key.fileobj), mask)
                    self._flush()
                    self._on_timers(time.monotonic())
                self._run_callbacks()
        except Exception:
            logger.exception('kvsstcp server loop failed')
        finally:
            self._close_all()

    def _dispatch(self, sock: socket.socket, mask: int) -> None:
        if sock is self._listener:
            self._accept()
        elif sock is self._wake_reader:
            self._drain_wake()
        elif sock in self._connections:
            connection = self._connections[sock]
            if mask & selectors.EVENT_WRITE:
                self._dirty.add(connection)
            if mask & selectors.EVENT_READ:
                self._read(connection)

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):  # more wait in the backlog: the listener stays readable
            now = time.monotonic()
            try:
                sock, peer_address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                if error.errno in _OUT_OF_DESCRIPTORS:
                    self._out_of_descriptors(now, error)
                else:  # an aborted handshake: the server carries on
                    self._tally.add(f'accept failed ({error.strerror or error})', now)
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            peer = f'{peer_address[0]}:{peer_address[1]}'
            limit = self.max_value_bytes if self._token is None else max(PRE_AUTH_MAX_LENGTH, len(self._token))
            connection = _Connection(sock, peer, wire.RequestParser(limit), self._token is None, accepted=now)
            self._connections[sock] = connection
            self._selector.register(sock, selectors.EVENT_READ)
            if not connection.authenticated:
                self._unauthenticated[sock] = connection
                if len(self._unauthenticated) > MAX_UNAUTHENTICATED:
                    self._drop_stranger(f'closed over the cap of {MAX_UNAUTHENTICATED} unauthenticated', now)
            logger.debug('kvsstcp: accepted %s', peer)

    def _out_of_descriptors(self, now: float, error: OSError) -> None:
        """Out of descriptors: close the older half of the strangers to free some; with none to close, accept nothing
        for a moment (the listener stays readable, so accepting again at once would spin)."""
        if self._unauthenticated:
            for _ in range((len(self._unauthenticated) + 1) // 2):
                self._drop_stranger(f'closed to free descriptors ({error.strerror})', now)
            return
        self._tally.add(f'accepting paused, out of descriptors ({error.strerror})', now)
        self._selector.unregister(self._listener)
        self._accepting_again = now + ACCEPT_PAUSE_SECONDS

    def _drop_stranger(self, why: str, now: float) -> None:
        """Close the oldest connection still waiting to authenticate, counted under `why`."""
        connection = next(iter(self._unauthenticated.values()))
        self._tally.add(f'unauthenticated connections {why}', now)
        self._drop(connection, None)

    def _timeout(self, now: float) -> float | None:
        """Seconds until the next timer: the oldest stranger's deadline, accepting again, the tally's next line."""
        times = [when for when in (self._accepting_again,) if when is not None]
        if self._unauthenticated:
            times.append(next(iter(self._unauthenticated.values())).accepted + AUTH_SECONDS)
        if self._tally.counts:
            times.append(self._tally.last_logged + LOG_EVERY_SECONDS)
        return max(0.0, min(times) - now) if times else None

    def _on_timers(self, now: float) -> None:
        while self._unauthenticated:
            oldest = next(iter(self._unauthenticated.values()))
            if oldest.accepted + AUTH_SECONDS > now:
                break
            self._drop_stranger(f'closed for not authenticating within {AUTH_SECONDS:g} s', now)
        if self._accepting_again is not None and now >= self._accepting_again:
            self._accepting_again = None
            self._selector.register(self._listener, selectors.EVENT_READ)
        self._tally.flush(now)

    def _read(self, connection: _Connection) -> None:
        try:
            data = connection.sock.recv(RECEIVE_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            self._drop(connection, f'receive failed: {error}')
            return
        if not data:
            self._drop(connection, None)
            return
        connection.parser.feed(data)
        self._process(connection)

    def _process(self, connection: _Connection) -> None:
        """Serve the whole requests buffered so far, pausing while the replies are not being read."""
        try:
            while self._may_process(connection):
                request = connection.parser.next_request()
                if request is None:
                    return
                self._handle(connection, request)
        except wire.FrameError as error:
            self._drop(connection, str(error))

    def _may_process(self, connection: _Connection) -> bool:
        return (
            not connection.closing
            and not self._stopping.is_set()
            and connection.sock in self._connections
            and connection.output_bytes <= self.max_value_bytes
        )

    def _handle(self, connection: _Connection, request: wire.Request) -> None:
        first, connection.first_request = connection.first_request, False
        if first and isinstance(request, wire.Put) and request.key == wire.AUTH_KEY:
            self._authenticate(connection, request.value)
        elif not connection.authenticated:
            self._drop(connection, 'first request is not the authentication put')
        else:
            self._serve(connection, request)

    def _authenticate(self, connection: _Connection, presented: bytes) -> None:
        if self._token is not None and not hmac.compare_digest(presented, self._token):
            self._drop(connection, 'wrong authentication token')
            return
        connection.authenticated = True
        self._unauthenticated.pop(connection.sock, None)
        connection.parser.max_length = self.max_value_bytes

    def _serve(self, connection: _Connection, request: wire.Request) -> None:
        match request:
            case wire.Put(key, encoding, value):
                self._store.put(key, encoding, value)
            case wire.Get(key) | wire.View(key):
                if connection.waiter is not None:  # one pending wait per connection: the new one replaces it
                    self._store.cancel(connection.waiter)
                connection.waiter = Waiter(key, isinstance(request, wire.Get), partial(self._deliver, connection))
                self._store.wait(connection.waiter)
            case wire.Monitor(monitor_key, spec):
                if not self._store.monitor(monitor_key, spec):
                    logger.debug('kvsstcp: ignoring monitor spec %r from %s (no colon)', spec, connection.peer)
            case wire.Dump():
                self._send(connection, wire.encode_dump_reply(self._store.dump()))
            case wire.Close():
                connection.closing = True
                self._dirty.add(connection)
            case wire.Shutdown():
                logger.info('kvsstcp: shutdown requested by %s', connection.peer)
                self._stopping.set()

    def _deliver(self, connection: _Connection, encoding: bytes, value: bytes) -> None:
        connection.waiter = None  # the store serves a waiter at most once, and only one that is not cancelled
        self._send(connection, wire.encode_value(encoding, value))

    # ---- output -------------------------------------------------------------------------------------------------

    def _send(self, connection: _Connection, data: bytes) -> None:
        connection.output.append(data)
        connection.output_bytes += len(data)
        self._dirty.add(connection)

    def _flush(self) -> None:
        """Write what each connection with pending output can take now; then set what to wait for."""
        while self._dirty:
            connection = self._dirty.pop()
            if connection.sock not in self._connections:
                continue
            try:
                self._write(connection)
            except OSError as error:
                self._drop(connection, f'send failed: {error}')
                continue
            if connection.closing and not connection.output:
                self._drop(connection, None)
                continue
            if connection.parser.buffered and self._may_process(connection):
                self._process(connection)  # requests held back while the output was over the limit
                if connection.sock not in self._connections:
                    continue
            reading = not connection.closing and connection.output_bytes <= self.max_value_bytes
            interest = (selectors.EVENT_READ if reading else 0) | (selectors.EVENT_WRITE if connection.output else 0)
            if interest and interest != connection.interest:
                self._selector.modify(connection.sock, interest)
                connection.interest = interest

    def _write(self, connection: _Connection) -> None:
        while connection.output:
            with memoryview(connection.output[0]) as chunk:
                try:
                    sent = connection.sock.send(chunk[connection.output_offset :])
                except (BlockingIOError, InterruptedError):
                    return
            connection.output_offset += sent
            connection.output_bytes -= sent
            if connection.output_offset < len(connection.output[0]):
                return
            connection.output.popleft()
            connection.output_offset = 0

    def _drop(self, connection: _Connection, reason: str | None) -> None:
        if reason is not None and not connection.authenticated:  # strangers are counted, not logged one by one
            self._tally.add(f'unauthenticated connections refused ({reason.partition(":")[0]})', time.monotonic())
        elif reason is not None:
            logger.warning('kvsstcp: closing connection from %s: %s', connection.peer, reason)
        if connection.waiter is not None:
            self._store.cancel(connection.waiter)
            connection.waiter = None
        self._connections.pop(connection.sock, None)
        self._unauthenticated.pop(connection.sock, None)
        self._dirty.discard(connection)
        self._selector.unregister(connection.sock)
        connection.sock.close()

    # ---- helpers ------------------------------------------------------------------------------------------------

    def _run_callbacks(self) -> None:
        while True:
            with self._lock:
                if not self._callbacks:
                    return
                callback, key, encoding, value = self._callbacks.popleft()
            try:
                callback(key, encoding, value)
            except Exception:  # foreign code on the server thread: log it, keep serving
                logger.exception('kvsstcp: watch callback for %r failed', key)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # already awake (buffer full), or closed after shutdown
            self._wake_writer.send(b'\0')

    def _drain_wake(self) -> None:
        try:
            while self._wake_reader.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _close_all(self) -> None:
        with self._lock:
            if self._stopped.is_set():
                return
            for connection in list(self._connections.values()):
                self._drop(connection, None)
            self._tally.flush(time.monotonic(), force=True)
            self._selector.close()
            for sock in (self._listener, self._wake_reader, self._wake_writer):
                sock.close()
            self._stopped.set()
