"""A real kvsstcp server on a free loopback port, spoken to byte for byte over raw sockets (and by our client)."""

from __future__ import annotations

import contextlib
import os
import pathlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from disbatch.kvsstcp import KVSClient, KVSServer

from .kvs_wire import get, key, put, receive, reply, view

pytestmark = pytest.mark.timeout(20)

WAIT = 5.0

Connect = Callable[[], socket.socket]


def assert_closed(sock: socket.socket) -> None:
    with contextlib.suppress(ConnectionResetError):  # a reset is a close too
        assert sock.recv(1) == b''


def assert_silent(sock: socket.socket, seconds: float = 0.2) -> None:
    sock.settimeout(seconds)
    with pytest.raises(TimeoutError):
        sock.recv(1)
    sock.settimeout(WAIT)


@pytest.fixture
def server() -> Iterator[KVSServer]:
    with KVSServer('127.0.0.1', 0, max_value_bytes=1024) as running:
        yield running


@pytest.fixture
def connect(server: KVSServer) -> Iterator[Connect]:
    opened: list[socket.socket] = []

    def open_connection() -> socket.socket:
        sock = socket.create_connection(server.address, timeout=WAIT)
        opened.append(sock)
        return sock

    yield open_connection
    for sock in opened:
        sock.close()


def test_get_is_fifo_across_puts(connect: Connect) -> None:
    sock = connect()
    sock.sendall(put(b'q', b'one') + put(b'q', b'two') + put(b'q', b'three', b'JSON'))
    for expected in (reply(b'one'), reply(b'two'), reply(b'three', b'JSON')):
        sock.sendall(get(b'q'))
        assert receive(sock, len(expected)) == expected


def test_view_returns_newest_and_keeps_it(connect: Connect) -> None:
    sock = connect()
    sock.sendall(put(b'k', b'old') + put(b'k', b'new') + view(b'k') + view(b'k') + get(b'k') + get(b'k'))
    expected = reply(b'new') + reply(b'new') + reply(b'old') + reply(b'new')
    assert receive(sock, len(expected)) == expected


def test_blocking_get_woken_by_put_from_another_connection(connect: Connect) -> None:
    waiting, putting = connect(), connect()
    results: list[bytes] = []
    waiting.sendall(get(b'later'))
    thread = threading.Thread(target=lambda: results.append(receive(waiting, len(reply(b'hello')))))
    thread.start()
    time.sleep(0.1)
    assert results == []
    putting.sendall(put(b'later', b'hello'))
    thread.join(WAIT)
    assert results == [reply(b'hello')]


def test_two_view_waiters_are_both_woken_and_value_stays(connect: Connect) -> None:
    first, second, putting = connect(), connect(), connect()
    first.sendall(view(b'v'))
    second.sendall(view(b'v'))
    time.sleep(0.1)
    putting.sendall(put(b'v', b'seen'))
    assert receive(first, len(reply(b'seen'))) == reply(b'seen')
    assert receive(second, len(reply(b'seen'))) == reply(b'seen')
    putting.sendall(get(b'v'))
    assert receive(putting, len(reply(b'seen'))) == reply(b'seen')


def test_get_waiters_are_served_in_arrival_order(connect: Connect) -> None:
    waiters = [connect() for _ in range(3)]
    for sock in waiters:
        sock.sendall(get(b'g'))
        time.sleep(0.05)
    putting = connect()
    putting.sendall(put(b'g', b'a') + put(b'g', b'b') + put(b'g', b'c'))
    assert [receive(sock, len(reply(b'a'))) for sock in waiters] == [reply(b'a'), reply(b'b'), reply(b'c')]


def test_new_wait_cancels_pending_wait_on_same_connection(connect: Connect) -> None:
    sock, putting = connect(), connect()
    sock.sendall(get(b'first'))
    sock.sendall(get(b'second'))
    time.sleep(0.1)
    putting.sendall(put(b'first', b'x'))
    assert_silent(sock)
    putting.sendall(put(b'second', b'y'))
    assert receive(sock, len(reply(b'y'))) == reply(b'y')
    putting.sendall(get(b'first'))  # the cancelled get did not take it
    assert receive(putting, len(reply(b'x'))) == reply(b'x')


def test_clos_closes_the_connection(connect: Connect) -> None:
    sock = connect()
    sock.sendall(put(b'k', b'v') + view(b'k') + b'clos')
    assert receive(sock, len(reply(b'v'))) == reply(b'v')
    assert_closed(sock)


def test_down_stops_the_server(server: KVSServer, connect: Connect) -> None:
    waiting = connect()
    waiting.sendall(get(b'never'))
    connect().sendall(b'down')
    assert server.wait(WAIT)
    assert_closed(waiting)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(server.address, timeout=WAIT)


@pytest.mark.parametrize(
    'garbage',
    [
        b'HELO',
        b'get_      abcd',
        b'put_        -1',
        b'get_9999999999',
        b'put_' + key(b'k') + b'ASTR' + b'%10d' % 1025,
        b'get_' + b'%10d' % 1025 + b'k' * 1025,
    ],
    ids=['unknown-op', 'letters-in-length', 'negative-length', 'huge-key', 'oversized-value', 'oversized-key'],
)
def test_bad_input_closes_only_that_connection(
    connect: Connect, garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    good, bad = connect(), connect()
    good.sendall(get(b'k'))
    bad.sendall(garbage)
    assert_closed(bad)
    assert '127.0.0.1:' in caplog.text
    good.sendall(put(b'k', b'still here'))
    assert receive(good, len(reply(b'still here'))) == reply(b'still here')


def test_partial_frames_one_byte_at_a_time(connect: Connect) -> None:
    slow, fast = connect(), connect()
    slow.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    stream = put(b'drip', b'value') + get(b'drip')
    for index, byte in enumerate(stream):
        slow.sendall(bytes([byte]))
        if index == 7:  # a half-sent frame does not hold up anyone else
            fast.sendall(put(b'quick', b'q') + get(b'quick'))
            assert receive(fast, len(reply(b'q'))) == reply(b'q')
        time.sleep(0.001)
    assert receive(slow, len(reply(b'value'))) == reply(b'value')


def test_client_that_does_not_read_does_not_block_others(connect: Connect) -> None:
    hog, other = connect(), connect()
    hog.sendall(put(b'big', b'x' * 1000))
    hog.sendall(view(b'big') * 3000)  # about 3 MB of replies that are never read
    other.sendall(put(b'k', b'v') + get(b'k'))
    assert receive(other, len(reply(b'v'))) == reply(b'v')
    expected = reply(b'x' * 1000)
    assert receive(hog, len(expected) * 3000) == expected * 3000  # held-back requests resume as replies drain


def test_dump_replies_length_and_json(connect: Connect) -> None:
    sock = connect()
    sock.sendall(put(b'k', b'v') + b'dump')
    length = int(receive(sock, 10))
    assert receive(sock, length) == b'[[0, 1, 0, 0, 0, 0], [], [["k", 1, ["ASTR", "v", 1]]]]'


def test_monitor_key_receives_events(connect: Connect) -> None:
    sock = connect()
    sock.sendall(b'mkey' + key(b'mon') + key(b'k:p') + put(b'k', b'v') + get(b'mon'))
    expected = reply(b"('put', 'k')")
    assert receive(sock, len(expected)) == expected


def test_shutdown_is_prompt_and_closes_connections() -> None:
    server = KVSServer().start()
    sock = socket.create_connection(server.address, timeout=WAIT)
    sock.sendall(get(b'never'))
    time.sleep(0.05)
    started = time.monotonic()
    server.shutdown()
    assert time.monotonic() - started < 1.0
    assert_closed(sock)
    sock.close()


class TestAuthentication:
    TOKEN = b's3cret-token'

    @pytest.fixture
    def guarded(self) -> Iterator[KVSServer]:
        with KVSServer(token=self.TOKEN) as running:
            yield running

    def connect(self, server: KVSServer) -> socket.socket:
        return socket.create_connection(server.address, timeout=WAIT)

    def test_right_token_is_accepted_and_not_stored(self, guarded: KVSServer) -> None:
        with self.connect(guarded) as sock:
            sock.sendall(put(b'.auth', self.TOKEN, b'AUTH') + put(b'k', b'v') + get(b'k'))
            assert receive(sock, len(reply(b'v'))) == reply(b'v')
        assert guarded.view_nowait(b'.auth') is None

    @pytest.mark.parametrize('first', [put(b'.auth', b'wrong'), put(b'k', b'v'), get(b'k'), b'dump', b'down'])
    def test_anything_else_first_is_refused(self, guarded: KVSServer, first: bytes) -> None:
        with self.connect(guarded) as sock:
            sock.sendall(first)
            assert_closed(sock)
        assert guarded.view_nowait(b'k') is None
        assert not guarded.wait(0.05)  # an unauthenticated `down` did nothing

    def test_big_frame_before_authentication_is_refused(self, guarded: KVSServer) -> None:
        with self.connect(guarded) as sock:
            sock.sendall(b'put_' + key(b'.auth') + b'ASTR' + b'%10d' % 100_000)
            assert_closed(sock)

    def test_client_authenticates(self, guarded: KVSServer) -> None:
        host, port = guarded.address
        with KVSClient(host, port, token=self.TOKEN, timeout=WAIT) as client:
            client.put('k', 'v')
            assert client.get('k') == (b'ASTR', b'v')
        with KVSClient(host, port, timeout=WAIT) as client, pytest.raises(ConnectionError):
            client.put('k', 'v')
            client.get('k')


class TestClient:
    def test_put_get_view_dump(self, server: KVSServer) -> None:
        host, port = server.address
        with KVSClient.from_address(f'{host}:{port}', timeout=WAIT) as client:
            client.put('k', 'é')
            client.put(b'k', b'\x80\x04.', b'PYPK')
            assert client.view('k') == (b'PYPK', b'\x80\x04.')
            assert client.get('k') == (b'ASTR', 'é'.encode())
            assert client.dump()[2] == [['k', 1, ['PYPK', None, 3]]]

    def test_monkey(self, server: KVSServer) -> None:
        with KVSClient(*server.address, timeout=WAIT) as client:
            client.monkey('mon', 'k:gw')
            client.put('k', 'v')
            client.get('k')
            assert client.get('mon') == (b'ASTR', b"('get', 'k')")

    def test_address_from_environment(self, server: KVSServer, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv('KVSSTCP_HOST', server.address[0])
        monkeypatch.setenv('KVSSTCP_PORT', str(server.address[1]))
        with KVSClient(timeout=WAIT) as client:
            client.put('k', 'v')
            assert client.view('k') == (b'ASTR', b'v')

    def test_timeout_closes_the_client(self, server: KVSServer) -> None:
        client = KVSClient(*server.address, timeout=0.1)
        with pytest.raises(TimeoutError):
            client.get('nothing')
        with pytest.raises(ConnectionError):
            client.get('nothing')

    def test_shutdown(self, server: KVSServer) -> None:
        KVSClient(*server.address, timeout=WAIT).shutdown()
        assert server.wait(WAIT)


class TestInProcess:
    def test_put_wakes_a_remote_waiter(self, server: KVSServer, connect: Connect) -> None:
        sock = connect()
        sock.sendall(get(b'k'))
        time.sleep(0.05)
        server.put(b'k', b'{}', b'JSON')
        assert receive(sock, len(reply(b'{}', b'JSON'))) == reply(b'{}', b'JSON')
        assert server.view_nowait(b'k') is None

    def test_view_and_get_nowait(self, server: KVSServer) -> None:
        server.put(b'k', b'1')
        server.put(b'k', b'2')
        assert server.view_nowait(b'k') == (b'ASTR', b'2')
        assert server.get_nowait(b'k') == (b'ASTR', b'1')
        assert server.view_nowait(b'missing') is None

    def test_watch_calls_back_on_the_server_thread(self, server: KVSServer, connect: Connect) -> None:
        seen: list[tuple[bytes, bytes, bytes, str]] = []
        called = threading.Event()

        def callback(name: bytes, encoding: bytes, value: bytes) -> None:
            seen.append((name, encoding, value, threading.current_thread().name))
            called.set()

        server.watch(b'w', callback)
        connect().sendall(put(b'w', b'from a client'))
        assert called.wait(WAIT)
        called.clear()
        server.put(b'w', b'in process')
        assert called.wait(WAIT)
        assert seen == [
            (b'w', b'ASTR', b'from a client', 'kvsstcp-server'),
            (b'w', b'ASTR', b'in process', 'kvsstcp-server'),
        ]


def test_command_line_serve_and_client(tmp_path: pathlib.Path) -> None:
    addrfile = tmp_path / 'address'
    environment = {key: value for key, value in os.environ.items() if not key.startswith('KVSSTCP_')}
    serving = subprocess.Popen(
        [sys.executable, '-m', 'disbatch.kvsstcp', 'serve', '-a', str(addrfile)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=environment,
    )
    try:
        assert serving.stdout is not None
        address = serving.stdout.readline().decode().strip()
        assert addrfile.read_text() == address

        def client(*arguments: str) -> subprocess.CompletedProcess[bytes]:
            command = [sys.executable, '-m', 'disbatch.kvsstcp', 'client', address, *arguments]
            return subprocess.run(command, capture_output=True, timeout=10, env=environment)

        assert client('put', 'k', 'hello').returncode == 0
        assert client('view', 'k').stdout == b'hello\n'
        assert client('get', 'k').stdout == b'hello\n'
        assert client('down').returncode == 0
        assert serving.wait(5) == 0
        failed = client('get', 'k')
        assert failed.returncode == 1
        assert b'kvsstcp:' in failed.stderr
    finally:
        if serving.poll() is None:
            serving.kill()
            serving.wait()
        if serving.stdout is not None:
            serving.stdout.close()
