"""Garbage on the ports of a live run costs the driver nothing (SPEC §6): hypothesis throws random bytes and
random, badly framed kvsstcp requests at the KVS port, random bytes (bare, and after a well-formed ZMTP greeting)
at the engine port, and random frames through a CURVE link that has the key but not the secret. The driver stays
alive after every example, its KVS still serves the token holder, and the held run then completes normally.

Each test drives its own run, so the hypothesis body is a nested function run once per test (bounded examples, no
deadline: the driver's log lines make some examples slower than others).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from disbatch.protocol.messages import MESSAGE_TYPES

from ..conftest import Processes
from . import kvs_wire
from .test_security import STATUS_KEY, LiveRun, curve_dealer, kvs_read_status, start_live_run

EXAMPLES = 50
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
CONNECT_SECONDS = 5.0


@pytest.fixture
def live_run(procs: Processes, tmp_path: Path) -> Iterator[LiveRun]:
    run = start_live_run(procs, tmp_path)
    try:
        yield run
    finally:
        (run.directory / 'release').touch()


def send_and_close(address: tuple[str, int], data: bytes, read_seconds: float = 0.02) -> None:
    """Send `data` on a fresh connection, read whatever comes back for a moment, close."""
    with socket.create_connection(address, timeout=CONNECT_SECONDS) as sock:
        try:
            sock.sendall(data)
            sock.settimeout(read_seconds)
            while sock.recv(65536):
                pass
        except (TimeoutError, ConnectionResetError, BrokenPipeError):
            pass


def engine_address(run: LiveRun) -> tuple[str, int]:
    host, _, port = run.engine_address.rpartition(':')
    return host, int(port)


def check_survived(run: LiveRun) -> None:
    assert run.alive(), 'the driver died'
    assert kvs_read_status(run, run.exports['DISBATCH_KVSSTCP_TOKEN'].encode())
    run.check_completed()
    log = run.driver_log()
    assert 'Traceback' not in log and 'loop failed' not in log, log


# ------------------------------------------------------------------------------------------- KVS port

lengths = st.one_of(
    st.integers(min_value=0, max_value=64).map(lambda n: b'%10d' % n),
    st.sampled_from([b'9999999999', b'-000000001', b'         x', b'0x00000010', b'   1e3    ', b' ' * 10]),
    st.integers(min_value=0, max_value=10**10 - 1).map(lambda n: b'%10d' % n),
    st.binary(min_size=10, max_size=10),
)
keys = st.one_of(st.sampled_from([b'', b'k', b'.auth', b'fuzz']), st.binary(max_size=24)).filter(
    lambda key: key != STATUS_KEY  # a get_ would take the run's snapshot away; that is a legal request, not garbage
)
ops = st.one_of(
    st.sampled_from([b'put_', b'get_', b'view', b'mkey', b'dump', b'clos', b'PUT_', b'dow', b'\x00\x00\x00\x00']),
    st.binary(min_size=4, max_size=4).filter(lambda op: op != b'down'),
)


@st.composite
def framed_requests(draw: st.DrawFn) -> bytes:
    """One kvsstcp-shaped request whose lengths may lie: op, key (length + bytes), maybe a value."""
    op = draw(ops)
    key = draw(keys)
    key_length = draw(st.one_of(st.just(b'%10d' % len(key)), lengths))
    request = op + key_length + key
    if draw(st.booleans()):
        value = draw(st.binary(max_size=64))
        encoding = draw(st.sampled_from([b'ASTR', b'JSON', b'PYPK', b'\xff\xff\xff\xff', b'']))
        request += encoding + draw(st.one_of(st.just(b'%10d' % len(value)), lengths)) + value
    return request


@pytest.mark.timeout(90)
def test_random_bytes_at_the_kvs_port(live_run: LiveRun) -> None:
    @FUZZ
    @given(st.binary(max_size=4096))
    def fuzz(data: bytes) -> None:
        send_and_close(live_run.kvs_address, data)
        assert live_run.alive()

    fuzz()
    check_survived(live_run)


@pytest.mark.timeout(90)
def test_badly_framed_requests_at_the_kvs_port(live_run: LiveRun) -> None:
    token = live_run.exports['DISBATCH_KVSSTCP_TOKEN'].encode()

    @FUZZ
    @given(st.booleans(), st.lists(framed_requests(), min_size=1, max_size=6))
    def fuzz(authenticated: bool, requests: list[bytes]) -> None:
        data = b''.join(requests)
        # `down` is a legal request of a token holder (it stops the KVS), not garbage: keep it out, even misaligned
        assume(not authenticated or b'down' not in data)
        opening = kvs_wire.put(b'.auth', token) if authenticated else b''
        send_and_close(live_run.kvs_address, opening + data)
        assert live_run.alive()

    fuzz()
    check_survived(live_run)


# ------------------------------------------------------------------------------------------- engine port

# A ZMTP 3 greeting: signature, version, mechanism (20 bytes), as-server, filler
greetings = st.builds(
    lambda mechanism, major, minor: (
        b'\xff' + b'\x00' * 8 + b'\x7f' + bytes([major, minor]) + mechanism.ljust(20, b'\x00') + b'\x00' + b'\x00' * 31
    ),
    st.sampled_from([b'NULL', b'CURVE', b'PLAIN', b'GSSAPI', b'XXXX']),
    st.sampled_from([3, 2, 1, 255]),
    st.sampled_from([0, 1, 255]),
)


@pytest.mark.timeout(90)
def test_random_bytes_at_the_engine_port(live_run: LiveRun) -> None:
    address = engine_address(live_run)

    @FUZZ
    @given(st.one_of(greetings, st.just(b'')), st.binary(max_size=4096))
    def fuzz(greeting: bytes, data: bytes) -> None:
        send_and_close(address, greeting + data)
        assert live_run.alive()

    fuzz()
    check_survived(live_run)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12,
)
tags = st.sampled_from([cls.TAG for cls in MESSAGE_TYPES] + ['', 'HELLO', 'x'])
message_like = st.builds(
    lambda tag, fields: json.dumps([tag, *fields]).encode(), tags, st.lists(json_values, max_size=12)
)
frames = st.lists(st.one_of(message_like, st.binary(max_size=300)), min_size=1, max_size=3)


@pytest.mark.timeout(90)
def test_garbage_frames_through_a_curve_link_without_the_secret(live_run: LiveRun) -> None:
    context = zmq.Context()
    try:
        dealer = curve_dealer(context, live_run.exports['DISBATCH_RUN_KEY'].encode())
        dealer.connect(f'tcp://{live_run.engine_address}')

        @FUZZ
        @given(frames)
        def fuzz(parts: list[bytes]) -> None:
            dealer.send_multipart(parts)
            assert live_run.alive()

        fuzz()
        # whatever it sent, the driver never welcomed it
        answers = []
        while dealer.poll(300):
            answers.append(dealer.recv_multipart())
        assert all(b'welcome' not in b''.join(answer) for answer in answers), answers
    finally:
        context.destroy(linger=0)
    check_survived(live_run)
