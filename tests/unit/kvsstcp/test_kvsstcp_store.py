"""The store semantics without sockets: FIFO gets, newest views, waiter hand-off, monitors, dump."""

from __future__ import annotations

import json

from disbatch.kvsstcp.store import KeyValueStore, Waiter


class Inbox:
    def __init__(self) -> None:
        self.received: list[tuple[bytes, bytes]] = []

    def deliver(self, encoding: bytes, value: bytes) -> None:
        self.received.append((encoding, value))


def waiter(key: bytes, removes: bool) -> tuple[Waiter, Inbox]:
    inbox = Inbox()
    return Waiter(key, removes, inbox.deliver), inbox


def test_get_is_fifo_and_view_is_newest() -> None:
    store = KeyValueStore()
    for value in (b'1', b'2', b'3'):
        store.put(b'k', b'ASTR', value)
    assert store.peek_newest(b'k') == (b'ASTR', b'3')
    assert [store.take_oldest(b'k') for _ in range(3)] == [(b'ASTR', b'1'), (b'ASTR', b'2'), (b'ASTR', b'3')]
    assert store.take_oldest(b'k') is None


def test_put_feeds_all_view_waiters_and_first_get_waiter() -> None:
    store = KeyValueStore()
    (view1, seen1), (view2, seen2) = waiter(b'k', False), waiter(b'k', False)
    (get1, got1), (get2, got2) = waiter(b'k', True), waiter(b'k', True)
    for each in (view1, get1, view2, get2):
        store.wait(each)
    store.put(b'k', b'ASTR', b'v')
    assert seen1.received == [(b'ASTR', b'v')]
    assert got1.received == [(b'ASTR', b'v')]
    assert seen2.received == []  # queued behind the get that consumed the value
    assert got2.received == []
    assert store.peek_newest(b'k') is None
    store.put(b'k', b'ASTR', b'w')
    assert seen2.received == [(b'ASTR', b'w')]
    assert got2.received == [(b'ASTR', b'w')]


def test_cancelled_waiter_is_not_served() -> None:
    store = KeyValueStore()
    cancelled, inbox = waiter(b'k', True)
    store.wait(cancelled)
    store.cancel(cancelled)
    store.put(b'k', b'ASTR', b'v')
    assert inbox.received == []
    assert store.peek_newest(b'k') == (b'ASTR', b'v')


def test_monitor_reports_listed_events_only() -> None:
    store = KeyValueStore()
    assert store.monitor(b'mon', b'k:pw')
    store.put(b'k', b'ASTR', b'v')
    store.wait(waiter(b'k', True)[0])  # get with a value: event g, not listed
    store.wait(waiter(b'k', True)[0])  # get without one: g and w
    store.put(b'other', b'ASTR', b'x')
    notes = [store.take_oldest(b'mon') for _ in range(2)]
    assert notes == [(b'ASTR', b"('put', 'k')"), (b'ASTR', b"('wait', 'k')")]
    assert store.take_oldest(b'mon') is None
    assert not store.monitor(b'mon', b'no colon')


def test_monitor_of_all_keys() -> None:
    store = KeyValueStore()
    store.monitor(b'mon', b':p')
    store.put(b'a', b'ASTR', b'1')
    assert store.take_oldest(b'mon') == (b'ASTR', b"('put', 'a')")


def test_dump_is_json_in_the_reference_shape() -> None:
    store = KeyValueStore()
    store.put(b'short', b'ASTR', b'hi')
    store.put(b'long', b'ASTR', b'x' * 60)
    store.put(b'pickled', b'PYPK', b'\x80\x04.')
    store.wait(waiter(b'empty', True)[0])
    counts, waiting, stored = json.loads(store.dump())
    assert counts == [0, 3, 0, 1, 1, 0]
    assert waiting == [['empty', 1]]
    assert stored == [
        ['short', 1, ['ASTR', 'hi', 2]],
        ['long', 1, ['ASTR', 'x' * 24 + '...' + 'x' * 23, 60]],
        ['pickled', 1, ['PYPK', None, 3]],
    ]


def test_on_put_hook_sees_every_put() -> None:
    seen: list[tuple[bytes, bytes, bytes]] = []
    store = KeyValueStore(on_put=lambda key, encoding, value: seen.append((key, encoding, value)))
    store.put(b'k', b'JSON', b'{}')
    assert seen == [(b'k', b'JSON', b'{}')]
