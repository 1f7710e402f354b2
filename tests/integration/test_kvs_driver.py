"""The key-value store every run serves, spoken to byte for byte while the run is alive (reference §10).

The run's address is in `<stem>_kvsinfo.txt` while it runs (and in DISBATCH_KVSSTCP_HOST inside tasks). The task
file puts the barrier's id under `mykey`, puts a value through the project's client from inside a task, and then
keeps the run alive until the test creates `release` (bounded: the task gives up after 30 s).
"""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from disbatch.results.record import RecordKind

from ..conftest import Processes, disbatch_cmd
from .helpers import by_task_id, dbutil_exports, read_status, run_files, status_path, wait_for
from .kvs_wire import get, put, receive_value, reply, view

WAIT = 10.0

Connect = Callable[[], socket.socket]


@pytest.fixture
def live_run(procs: Processes, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A `-s localhost:1` run that waits for `release`; yields its KVS address and its directory."""
    client = f'{shlex.quote(sys.executable)} -m disbatch.kvsstcp client $DISBATCH_KVSSTCP_HOST'
    (tmp_path / 'Tasks').write_text(
        'echo before\n'
        '#DISBATCH BARRIER mykey\n'
        f'{client} put fromtask hello\n'
        'for i in $(seq 300); do [ -e release ] && exit 0; sleep 0.1; done; exit 1\n'
    )
    driver = procs.spawn(
        disbatch_cmd('-s', 'localhost:1', 'Tasks'), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert wait_for(lambda: bool(run_files(tmp_path, 'kvsinfo.txt')) or driver.poll() is not None, 15)
    assert driver.poll() is None, driver.communicate(timeout=5)
    address = run_files(tmp_path, 'kvsinfo.txt')[0].read_text().strip()
    try:
        yield address, tmp_path
    finally:
        (tmp_path / 'release').touch()
    _, stderr = driver.communicate(timeout=15)
    assert driver.returncode == 0, stderr
    assert not run_files(tmp_path, 'kvsinfo.txt'), 'kvsinfo.txt outlived the run'
    records = read_status(status_path(tmp_path))
    assert sorted(by_task_id(records)) == [0, 2, 3] and all(not record.failed for record in records), records


@pytest.fixture
def connect(live_run: tuple[str, Path]) -> Iterator[Connect]:
    host, _, port = live_run[0].rpartition(':')
    opened: list[socket.socket] = []

    token = dbutil_exports(live_run[1])['DISBATCH_KVSSTCP_TOKEN'].encode()

    def open_connection() -> socket.socket:
        sock = socket.create_connection((host, int(port)), timeout=WAIT)
        opened.append(sock)
        sock.sendall(put(b'.auth', token))  # the one extra put a reference-style client makes
        return sock

    yield open_connection
    for sock in opened:
        sock.close()


@pytest.mark.timeout(60)
def test_get_is_fifo_and_view_is_newest(connect: Connect) -> None:
    sock = connect()
    sock.sendall(put(b'fifo', b'first') + put(b'fifo', b'{"n": 2}', b'JSON'))
    sock.sendall(get(b'fifo'))
    assert receive_value(sock) == reply(b'first')
    sock.sendall(get(b'fifo'))
    assert receive_value(sock) == reply(b'{"n": 2}', b'JSON')
    sock.sendall(put(b'seen', b'old') + put(b'seen', b'new'))
    sock.sendall(view(b'seen') + view(b'seen'))
    assert receive_value(sock) == reply(b'new')
    assert receive_value(sock) == reply(b'new')  # view removes nothing ...
    sock.sendall(get(b'seen'))
    assert receive_value(sock) == reply(b'old')  # ... and get_ takes the oldest


@pytest.mark.timeout(60)
def test_blocking_get_is_woken_by_a_put_from_another_connection(connect: Connect) -> None:
    waiter, putter = connect(), connect()
    answers: list[bytes] = []
    waiter.sendall(get(b'later'))
    thread = threading.Thread(target=lambda: answers.append(receive_value(waiter)), daemon=True)
    thread.start()
    thread.join(0.3)
    assert thread.is_alive() and not answers, 'get_ of an empty key answered at once'
    putter.sendall(put(b'later', b'woken'))
    thread.join(WAIT)
    assert answers == [reply(b'woken')]


@pytest.mark.timeout(60)
def test_barrier_key_and_a_put_from_inside_a_task(connect: Connect, live_run: tuple[str, Path]) -> None:
    sock = connect()
    sock.sendall(view(b'mykey'))  # waits for the barrier if it is not resolved yet
    barrier_value = receive_value(sock)
    sock.sendall(get(b'fromtask'))  # waits for the task that puts it
    assert receive_value(sock) == reply(b'hello')
    barriers = by_task_id(read_status(status_path(live_run[1])), RecordKind.BARRIER)
    assert list(barriers) == [1], barriers
    assert barrier_value == reply(b'1')
