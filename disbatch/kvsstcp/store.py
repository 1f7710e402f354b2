"""The key-value store behind the kvsstcp server: values, waiters, monitors and counters. No sockets, no threads.

Each key holds a FIFO of `(encoding, value)` pairs. A `get` takes the oldest, a `view` reads the newest; either
waits (a `Waiter` is queued on the key) when there is none. A put hands its value to the key's waiters in arrival
order: every `view` waiter receives it, and the first `get` waiter consumes it (later waiters keep waiting);
only an unconsumed value is stored.

Monitors (the `mkey` operation): a monitor key registered for some of the events get/put/view/wait on a key (or
on every key, spelled as the empty key) receives, for each such event, an ASTR value `repr((event, key))`.
Operations on monitor keys themselves are not monitored.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

EncodedValue = tuple[bytes, bytes]
"""A stored value: `(encoding tag, bytes)`."""

EVENTS = (('g', 'get'), ('p', 'put'), ('v', 'view'), ('w', 'wait'))
"""Monitor event letters (as in a `key:events` spec) and the event names sent to monitor keys."""

ALL_KEYS = b''
"""The key spelling that makes a monitor watch every key."""

SHORT_VALUE_CHARACTERS = 50


@dataclass(eq=False)
class Waiter:
    """A pending `get` (`removes=True`) or `view` on `key`; `deliver` is called once with the value."""

    key: bytes
    removes: bool
    deliver: Callable[[bytes, bytes], None]

    @property
    def event(self) -> str:
        return 'get' if self.removes else 'view'


class KeyValueStore:
    """Values, waiters and monitors of one server. Not thread-safe: the server serialises every call."""

    def __init__(self, on_put: Callable[[bytes, bytes, bytes], None] | None = None) -> None:
        self._values: dict[bytes, deque[EncodedValue]] = {}
        self._waiters: dict[bytes, deque[Waiter]] = {}
        self._monitors: dict[tuple[bytes, str], set[bytes]] = {}
        self._monitor_keys: set[bytes] = set()
        self._counts = dict.fromkeys(('get', 'put', 'view', 'wait', 'waits_started', 'waits_released'), 0)
        self._on_put = on_put

    def put(self, key: bytes, encoding: bytes, value: bytes) -> None:
        """Hand the value to the key's waiters in order; store it unless a `get` waiter consumed it."""
        self._counts['put'] += 1
        consumed = False
        waiters = self._waiters.get(key)
        while waiters and not consumed:
            waiter = waiters.popleft()
            self._counts['waits_released'] += 1
            self._counts[waiter.event] += 1
            consumed = waiter.removes
            waiter.deliver(encoding, value)
        if waiters is not None and not waiters:
            del self._waiters[key]
        if not consumed:
            self._values.setdefault(key, deque()).append((encoding, value))
        self._notify('put', key)
        if self._on_put is not None:
            self._on_put(key, encoding, value)

    def wait(self, waiter: Waiter) -> None:
        """Deliver a value to `waiter` now if the key has one, else queue it until a put."""
        self._notify(waiter.event, waiter.key)
        found = self.take_oldest(waiter.key) if waiter.removes else self.peek_newest(waiter.key)
        if found is not None:
            self._counts[waiter.event] += 1
            waiter.deliver(*found)
            return
        self._waiters.setdefault(waiter.key, deque()).append(waiter)
        self._counts['wait'] += 1
        self._counts['waits_started'] += 1
        self._notify('wait', waiter.key)

    def cancel(self, waiter: Waiter) -> None:
        """Forget a waiter that has not been served (no effect if it has been)."""
        waiters = self._waiters.get(waiter.key)
        if waiters is None:
            return
        if waiter in waiters:
            waiters.remove(waiter)
        if not waiters:
            del self._waiters[waiter.key]

    def peek_newest(self, key: bytes) -> EncodedValue | None:
        values = self._values.get(key)
        return values[-1] if values else None

    def take_oldest(self, key: bytes) -> EncodedValue | None:
        values = self._values.get(key)
        if not values:
            return None
        found = values.popleft()
        if not values:
            del self._values[key]
        return found

    def clear(self, key: bytes) -> None:
        """Forget every stored value of `key` (waiters keep waiting)."""
        self._values.pop(key, None)

    def monitor(self, monitor_key: bytes, spec: bytes) -> bool:
        """Apply a `key:events` spec for `monitor_key`; events not listed are turned off. False if malformed."""
        key, colon, letters = spec.rpartition(b':')
        if not colon:
            return False
        self._monitor_keys.add(monitor_key)
        for letter, event in EVENTS:
            listeners = self._monitors.setdefault((key, event), set())
            if letter.encode() in letters:
                listeners.add(monitor_key)
            else:
                listeners.discard(monitor_key)
        return True

    def _notify(self, event: str, key: bytes) -> None:
        if not self._monitors or key in self._monitor_keys:
            return
        listeners = self._monitors.get((key, event), set()) | self._monitors.get((ALL_KEYS, event), set())
        note = repr((event, key.decode('utf-8', 'backslashreplace'))).encode()
        for monitor_key in sorted(listeners):
            self.put(monitor_key, b'ASTR', note)

    def dump(self) -> bytes:
        """Statistics as UTF-8 JSON, in the shape of the reference's (pickled) dump:

        `[[get, put, view, wait, waits_started, waits_released], [[key, waiters], ...],
        [[key, values, [encoding, text or null, length]], ...]]` where the last element describes the newest
        value: JSON/HTML values in full, ASTR values in full up to 50 characters (else the first 24 + '...' +
        the last 23), other encodings as null.
        """
        counts = [self._counts[name] for name in ('get', 'put', 'view', 'wait', 'waits_started', 'waits_released')]
        waiting = [[_text(key), len(waiters)] for key, waiters in self._waiters.items()]
        stored = [[_text(key), len(values), _describe(*values[-1])] for key, values in self._values.items()]
        return json.dumps([counts, waiting, stored]).encode()


def _text(data: bytes) -> str:
    return data.decode('utf-8', 'replace')


def _describe(encoding: bytes, value: bytes) -> list[object]:
    if encoding in (b'JSON', b'HTML'):
        return [_text(encoding), _text(value), len(value)]
    if encoding != b'ASTR':
        return [_text(encoding), None, len(value)]
    text = _text(value)
    if len(text) > SHORT_VALUE_CHARACTERS:
        text = f'{text[:24]}...{text[-23:]}'
    return [_text(encoding), text, len(value)]
