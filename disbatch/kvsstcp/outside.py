"""A KVS server someone else runs (`--kvsserver`, `--taskserver HOST:PORT`), used by the driver as it uses its own.

The driver needs of a KVS what `KVSStore` lists: puts, a value it keeps current (`replace`), and the keys it consumes
(task-source sign-in and items, monitor commands), read without waiting and announced by a callback (`watch`). The
run's own server does all this in-process; here every watched key gets a connection of its own that waits on `get`
and hands each value to the driver as it arrives, so the driver never waits on the outside server in its loop. The
run never shuts the outside server down; it only closes its connections.

Unwatching a key closes its connection: a value in flight at that moment is lost (the server gave it away), so keys
are unwatched only when nobody should be putting to them any more (a task source's sign-in, the end of the run).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

from disbatch.kvsstcp.client import KVSClient, parse_address

log = logging.getLogger('disbatch.driver')

EncodedValue = tuple[bytes, bytes]
WatchCallback = Callable[[bytes, bytes, bytes], None]
TRIM_SECONDS = 1.0  # how long `replace` waits to take the previous value (see `_trim`)


class KVSStore(Protocol):
    """What the driver uses of a KVS: the run's own `KVSServer`, or an `OutsideKVS`."""

    def put(self, key: bytes, value: bytes, encoding: bytes = b'ASTR') -> None: ...

    def replace(self, key: bytes, value: bytes, encoding: bytes = b'ASTR') -> None: ...

    def get_nowait(self, key: bytes) -> EncodedValue | None: ...

    def watch(self, key: bytes, callback: WatchCallback) -> None: ...

    def unwatch(self, key: bytes, callback: WatchCallback) -> None: ...


class OutsideKVS:
    """Connections to an outside kvsstcp server at `address`; `token` None: from the environment (our server's
    `-e` hands it to its child), and none at all for a server that asks for none (the reference's)."""

    def __init__(self, address: str, token: bytes | None = None) -> None:
        self.address = parse_address(address)
        self._token = token
        self._lock = threading.Lock()
        self._client = self._connect()
        self._client.ping()  # refused token, or not a kvsstcp server: fail now, with the address in the message
        self._values: dict[bytes, deque[EncodedValue]] = {}
        self._watchers: dict[bytes, list[WatchCallback]] = {}
        self._drains: dict[bytes, KVSClient] = {}
        self._replaced: set[bytes] = set()
        self._trimmer: KVSClient | None = None
        self._closed = False
        self.lost: str | None = None  # why the server is gone (a watching connection broke), None while it serves

    def put(self, key: bytes, value: bytes, encoding: bytes = b'ASTR') -> None:
        with self._lock:
            self._quietly(lambda: self._client.put(key, value, encoding), key)

    def replace(self, key: bytes, value: bytes, encoding: bytes = b'ASTR') -> None:
        """Put the new value, then take the oldest (the previous one): readers that `view` always find one."""
        with self._lock:
            self._quietly(lambda: self._client.put(key, value, encoding), key)
            if key in self._replaced:
                self._quietly(lambda: self._trim(key, value, encoding), key)
            self._replaced.add(key)

    def get_nowait(self, key: bytes) -> EncodedValue | None:
        with self._lock:
            values = self._values.get(key)
            return values.popleft() if values else None

    def watch(self, key: bytes, callback: WatchCallback) -> None:
        with self._lock:
            self._watchers.setdefault(key, []).append(callback)
            if key in self._drains or self._closed:
                return
            client = self._connect()
            self._drains[key] = client
        threading.Thread(target=self._drain, args=(key, client), name=f'kvs-drain {key!r}', daemon=True).start()

    def unwatch(self, key: bytes, callback: WatchCallback) -> None:
        with self._lock:
            callbacks = self._watchers.get(key, [])
            if callback in callbacks:
                callbacks.remove(callback)
            client = None if callbacks else self._drains.pop(key, None)
        if client is not None:
            client.interrupt()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            drains, self._drains = list(self._drains.values()), {}
        for client in drains:
            client.interrupt()
        with self._lock:
            self._client.close()
            if self._trimmer is not None:
                self._trimmer.close()

    def __enter__(self) -> OutsideKVS:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _connect(self) -> KVSClient:
        return KVSClient(*self.address, token=self._token)

    def _trim(self, key: bytes, value: bytes, encoding: bytes) -> None:
        """Take the oldest value of `key`, the previous one, on a connection of its own that waits at most
        TRIM_SECONDS. Someone else's `get` may have taken a value: then the oldest is the one just put, which goes
        back; or there is none (a waiting `get` took the new one), and the driver must not wait for one."""
        if self._trimmer is None:
            self._trimmer = KVSClient(*self.address, token=self._token, timeout=TRIM_SECONDS)
        try:
            if self._trimmer.get(key) == (encoding, value):
                self._client.put(key, value, encoding)
        except TimeoutError:
            self._trimmer = None  # the client closed the connection: its wait is cancelled with it
        except OSError:
            self._trimmer = None  # the next replace connects again
            raise

    def _drain(self, key: bytes, client: KVSClient) -> None:
        """Thread: take every value put to `key` as it comes, keep it for `get_nowait`, and call the watchers."""
        try:
            while True:
                encoding, value = client.get(key)
                with self._lock:
                    self._values.setdefault(key, deque()).append((encoding, value))
                    callbacks = list(self._watchers.get(key, ()))
                for callback in callbacks:
                    callback(key, encoding, value)
        except OSError as error:
            with self._lock:
                expected = self._closed or self._drains.get(key) is not client
            if not expected:
                log.warning('the outside KVS server closed the connection waiting on %r: %s', key, error)
                self._lose(f'the outside KVS server {self.address[0]}:{self.address[1]} is gone ({error})')
        finally:
            with contextlib.suppress(OSError):
                client.close()

    def _lose(self, why: str) -> None:
        """The server is gone: say why in `lost`, and wake every watcher so the driver looks (a task source ends)."""
        with self._lock:
            if self.lost is not None:
                return
            self.lost = why
            callbacks = [(key, callback) for key, watching in self._watchers.items() for callback in watching]
        for key, callback in callbacks:
            callback(key, b'', b'')

    def _quietly(self, action: Callable[[], None], key: bytes) -> None:
        """The run goes on when the outside server is gone (its tasks do not need it): say so in the log."""
        try:
            action()
        except OSError as error:
            log.warning('the outside KVS server %s:%d failed a put to %r: %s', *self.address, key, error)
