"""`disbatch.kvsstcp.kvsclient`: the reference's client API and command line, on our wire code.

A program written for the reference's kvsstcp runs unchanged: `KVSClient(host[:port] | (host, port), port, retry)`,
`put(key, value, encoding=True)`, `get`/`view(key, encoding=True)`, `_get_nb`/`_view_nb(key, encoding, timeout)`,
`monkey`, `dump`, `clone`, `close`, `shutdown`. Encodings are the reference's: `True` pickles on put (tag PYPK) and
unpickles a PYPK value on get, because the caller asked for it; `False` stores text as ASTR and returns raw bytes;
a 4-character tag stores bytes as they are and returns `(tag, bytes)`. Nothing else here, and nothing in the server
or the driver, ever unpickles: a pickled value is opaque bytes everywhere else.

Every connection (clones too) presents the run's token by itself, from `$KVSSTCP_TOKEN` or `$DISBATCH_KVSSTCP_TOKEN`,
so a task of a run (which has `DISBATCH_KVSSTCP_HOST` and the token) needs no change.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import sys
import time
from typing import Any

from disbatch.kvsstcp import wire
from disbatch.kvsstcp.client import TOKEN_VARIABLES

Encoding = bool | str | bytes


class KVSClient:
    """A connection to a kvsstcp server, with the reference's API (see the module docstring)."""

    def __init__(self, host: str | tuple[str, int] | None = None, port: int | str | None = None, retry: int = 0):
        if not host:
            host, port = os.environ.get('KVSSTCP_HOST'), os.environ.get('KVSSTCP_PORT')
        if not host:
            raise ValueError('no KVS server: give host:port, or set KVSSTCP_HOST and KVSSTCP_PORT')
        if not port:
            if isinstance(host, tuple):
                host, port = host
            elif ':' in host:
                host, port = host.rsplit(':', 1)
            else:
                raise ValueError(f'no port in the KVS server address {host!r}')
        assert isinstance(host, str)
        self.addr = (host, int(port))
        self.socket: socket.socket | None = None
        self._waiting: tuple[bytes, bytes] | None = None  # a _get_nb/_view_nb that timed out, still pending
        self.connect(retry)

    def clone(self) -> KVSClient:
        """A new connection to the same server (it presents the token too)."""
        return KVSClient(self.addr)

    def connect(self, retry: int = 0) -> None:
        """Connect (again, after close), retrying `retry` times with growing pauses."""
        attempt = 0
        while self.socket is None:
            try:
                self.socket = socket.create_connection(self.addr)
            except OSError as error:
                if attempt >= retry:
                    raise
                print(f'kvs socket error: {error}, retrying', file=sys.stderr)
                time.sleep(2**attempt)
                attempt += 1
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        token = next((os.environ[name] for name in TOKEN_VARIABLES if os.environ.get(name)), None)
        if token is not None:
            self._send(wire.Put(wire.AUTH_KEY, b'ASTR', token.encode()))

    def put(self, key: str | bytes, value: Any, encoding: Encoding = True) -> None:
        """Add a value to `key`: pickled (True), as text (False), or bytes under a 4-character tag."""
        if encoding is True:
            tag, data = b'PYPK', pickle.dumps(value)
        elif encoding is False:
            tag, data = b'ASTR', _as_bytes(value if isinstance(value, str | bytes) else repr(value))
        else:
            tag, data = _as_bytes(encoding), _as_bytes(value)
            if len(tag) != wire.ENCODING_BYTES:
                raise TypeError(f'Invalid encoding: {encoding!r}')
        self._send(wire.Put(_as_bytes(key), tag, data))

    def get(self, key: str | bytes, encoding: Encoding = True) -> Any:
        """Remove and return the oldest value of `key`, waiting for one."""
        return self._get_view(b'get_', key, encoding, None)

    def view(self, key: str | bytes, encoding: Encoding = True) -> Any:
        """Return the newest value of `key` without removing it, waiting for one."""
        return self._get_view(b'view', key, encoding, None)

    def _get_nb(self, key: str | bytes, encoding: Encoding = True, timeout: float | None = None) -> Any:
        """`get` that gives up after `timeout` seconds with None; then call it again (same key) for the value."""
        return self._get_view(b'get_', key, encoding, timeout)

    def _view_nb(self, key: str | bytes, encoding: Encoding = True, timeout: float | None = None) -> Any:
        """`view` that gives up after `timeout` seconds with None (see `_get_nb`)."""
        return self._get_view(b'view', key, encoding, timeout)

    def monkey(self, mkey: str | bytes, value: str | bytes) -> None:
        """Make `mkey` receive events on a key: `value` is `'key:events'`, events a subset of `gpvw`."""
        self._send(wire.Monitor(_as_bytes(mkey), _as_bytes(value)))

    def dump(self) -> Any:
        """The server's statistics: ours answers in JSON, the reference's in a pickle (decoded, as its client does)."""
        self._send(wire.Dump())
        payload = self._receive(wire.parse_length(self._receive(wire.LENGTH_BYTES)))
        try:
            return json.loads(payload)
        except ValueError:
            return pickle.loads(payload)  # the reference's server: what its own client would do

    def close(self) -> None:
        """Say goodbye and close the connection (connect() opens it again)."""
        if self.socket is None:
            return
        try:
            self.socket.sendall(b'clos')
            self.socket.shutdown(socket.SHUT_RDWR)
        except OSError as error:
            print(f'Ignoring exception during client close: "{error}"', file=sys.stderr)
        self._disconnect()

    def shutdown(self) -> None:
        """Tell the server to shut down, and close this connection."""
        try:
            self._connected().sendall(b'down')
        finally:
            self._disconnect()

    def _get_view(self, operation: bytes, key: str | bytes, encoding: Encoding, timeout: float | None) -> Any:
        request = (operation, _as_bytes(key))
        if self._waiting is not None and self._waiting != request:
            raise RuntimeError(f'Previous {self._waiting[0]!r} of {self._waiting[1]!r} timed out: get its value first')
        if self._waiting is None:
            self._send(wire.Get(request[1]) if operation == b'get_' else wire.View(request[1]))
        self._waiting = request
        connection = self._connected()
        if timeout is not None:
            connection.settimeout(timeout)
            try:
                first = connection.recv(1)
            except (TimeoutError, BlockingIOError):
                return None
            finally:
                connection.settimeout(None)
            if not first:
                raise ConnectionError('Connection closed')
            head = first + self._receive(wire.ENCODING_BYTES - 1 + wire.LENGTH_BYTES)
        else:
            head = self._receive(wire.ENCODING_BYTES + wire.LENGTH_BYTES)
        self._waiting = None
        tag = head[: wire.ENCODING_BYTES]
        value = self._receive(wire.parse_length(head[wire.ENCODING_BYTES :]))
        if encoding is True:
            return pickle.loads(value) if tag == b'PYPK' else value
        return value if encoding is False else (tag, value)

    def _connected(self) -> socket.socket:
        if self.socket is None:
            raise ConnectionError(f'the connection to {self.addr[0]}:{self.addr[1]} is closed')
        return self.socket

    def _send(self, request: wire.Request) -> None:
        self._connected().sendall(wire.encode_request(request))

    def _receive(self, size: int) -> bytes:
        connection, data = self._connected(), bytearray()
        while len(data) < size:
            chunk = connection.recv(size - len(data))
            if not chunk:
                raise ConnectionError('Connection closed')
            data += chunk
        return bytes(data)

    def _disconnect(self) -> None:
        if self.socket is not None:
            self.socket.close()
            self.socket = None
            self._waiting = None


def _as_bytes(data: str | bytes) -> bytes:
    return data.encode() if isinstance(data, str) else data
