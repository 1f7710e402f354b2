"""A blocking kvsstcp client: one TCP connection, one request at a time.

Keys and values may be `str` (sent as UTF-8) or `bytes`; replies are `(encoding, value)` as bytes and nothing
is ever unpickled. With a `timeout`, a `get`/`view` that waits longer raises `TimeoutError` and closes the
connection (a late reply would otherwise be read as the answer to the next request).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from types import TracebackType
from typing import Any

from disbatch.kvsstcp import wire

Data = str | bytes


def _as_bytes(data: Data) -> bytes:
    return data.encode() if isinstance(data, str) else data


def parse_address(address: str) -> tuple[str, int]:
    """Split `'host:port'` (the `_kvsinfo.txt` and `--kvsserver` form) into host and port."""
    host, colon, port = address.strip().rpartition(':')
    if not colon or not host or not port.isdigit():
        raise ValueError(f'not a host:port address: {address!r}')
    return host, int(port)


TOKEN_VARIABLES = ('KVSSTCP_TOKEN', 'DISBATCH_KVSSTCP_TOKEN')


class KVSClient:
    """A connection to a kvsstcp server; `host`/`port` default to `$KVSSTCP_HOST`/`$KVSSTCP_PORT`, the token (sent as
    a first put to `.auth`, as a disbatch run's KVS requires) to `$KVSSTCP_TOKEN` or `$DISBATCH_KVSSTCP_TOKEN`."""

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        token: bytes | None = None,
        timeout: float | None = None,
    ) -> None:
        host = host if host is not None else os.environ.get('KVSSTCP_HOST')
        port_text = str(port) if port is not None else os.environ.get('KVSSTCP_PORT')
        if not host or not port_text or not port_text.isdigit():
            raise ValueError('no kvsstcp server address: give host and port, or set KVSSTCP_HOST and KVSSTCP_PORT')
        self.address = (host, int(port_text))
        self._socket: socket.socket | None = socket.create_connection(self.address, timeout=timeout)
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if token is None:
            token = next((os.environ[name].encode() for name in TOKEN_VARIABLES if os.environ.get(name)), None)
        if token is not None:
            self.put(wire.AUTH_KEY, token)

    @classmethod
    def from_address(cls, address: str, token: bytes | None = None, timeout: float | None = None) -> KVSClient:
        host, port = parse_address(address)
        return cls(host, port, token=token, timeout=timeout)

    def put(self, key: Data, value: Data, encoding: Data = b'ASTR') -> None:
        """Append a value to `key` (the server hands it to waiters first)."""
        self._send(wire.Put(_as_bytes(key), _as_bytes(encoding), _as_bytes(value)))

    def get(self, key: Data) -> tuple[bytes, bytes]:
        """Remove and return the oldest `(encoding, value)` of `key`, waiting for one if needed."""
        self._send(wire.Get(_as_bytes(key)))
        return self._receive_value()

    def view(self, key: Data) -> tuple[bytes, bytes]:
        """Return the newest `(encoding, value)` of `key` without removing it, waiting for one if needed."""
        self._send(wire.View(_as_bytes(key)))
        return self._receive_value()

    def monkey(self, monitor_key: Data, spec: Data) -> None:
        """Make `monitor_key` receive events; `spec` is `'key:events'`, events a subset of `gpvw`."""
        self._send(wire.Monitor(_as_bytes(monitor_key), _as_bytes(spec)))

    def dump(self) -> Any:
        """Statistics of the store, as decoded JSON (see `KeyValueStore.dump`)."""
        self._send(wire.Dump())
        return json.loads(self._receive(wire.parse_length(self._receive(wire.LENGTH_BYTES))))

    def ping(self) -> None:
        """Check that the server answers (a `dump`, whose reply is read but not decoded: any server's will do);
        raises OSError (ConnectionError when it refused this client's token)."""
        self._send(wire.Dump())
        self._receive(wire.parse_length(self._receive(wire.LENGTH_BYTES)))

    def interrupt(self) -> None:
        """Shut the connection down from another thread: a `get` waiting in this client ends with ConnectionError."""
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Say goodbye (`clos`) and close the connection; safe to call twice."""
        if self._socket is None:
            return
        with contextlib.suppress(OSError):  # the server is gone already: closing is all that is left
            self._socket.sendall(wire.encode_request(wire.Close()))
        self._disconnect()

    def shutdown(self) -> None:
        """Ask the server to shut down (`down`), then close the connection."""
        self._send(wire.Shutdown())
        self._disconnect()

    def __enter__(self) -> KVSClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _connected(self) -> socket.socket:
        if self._socket is None:
            raise ConnectionError(f'kvsstcp connection to {self.address[0]}:{self.address[1]} is closed')
        return self._socket

    def _disconnect(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _send(self, request: wire.Request) -> None:
        self._connected().sendall(wire.encode_request(request))

    def _receive_value(self) -> tuple[bytes, bytes]:
        head = self._receive(wire.ENCODING_BYTES + wire.LENGTH_BYTES)
        encoding, length = head[: wire.ENCODING_BYTES], wire.parse_length(head[wire.ENCODING_BYTES :])
        return encoding, self._receive(length)

    def _receive(self, size: int) -> bytes:
        connection = self._connected()
        chunks = bytearray()
        try:
            while len(chunks) < size:
                chunk = connection.recv(min(size - len(chunks), 1 << 20))
                if not chunk:
                    raise ConnectionError(f'kvsstcp server {self.address[0]}:{self.address[1]} closed the connection')
                chunks += chunk
        except (TimeoutError, ConnectionError):
            self._disconnect()
            raise
        return bytes(chunks)
