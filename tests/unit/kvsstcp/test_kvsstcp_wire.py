"""The kvsstcp framing: requests round-trip through bytes, partial input waits, bad input is refused early."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from disbatch.kvsstcp import wire

LIMIT = 1 << 16

keys = st.binary(max_size=64)
requests = st.one_of(
    st.builds(wire.Put, keys, st.binary(min_size=4, max_size=4), st.binary(max_size=256)),
    st.builds(wire.Get, keys),
    st.builds(wire.View, keys),
    st.builds(wire.Monitor, keys, keys),
    st.just(wire.Dump()),
    st.just(wire.Close()),
    st.just(wire.Shutdown()),
)


def parse_all(parser: wire.RequestParser) -> list[wire.Request]:
    found = []
    while (request := parser.next_request()) is not None:
        found.append(request)
    return found


@given(st.lists(requests, max_size=8))
def test_requests_round_trip(sent: list[wire.Request]) -> None:
    parser = wire.RequestParser(LIMIT)
    parser.feed(b''.join(wire.encode_request(request) for request in sent))
    assert parse_all(parser) == sent
    assert parser.buffered == 0


@given(st.lists(requests, min_size=1, max_size=4), st.data())
def test_requests_survive_any_split(sent: list[wire.Request], data: st.DataObject) -> None:
    stream = b''.join(wire.encode_request(request) for request in sent)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    parser = wire.RequestParser(LIMIT)
    received: list[wire.Request] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        parser.feed(stream[start:end])
        received += parse_all(parser)
    assert received == sent


@given(st.integers(0, wire.MAX_LENGTH))
def test_length_round_trip(length: int) -> None:
    field = wire.encode_length(length)
    assert len(field) == wire.LENGTH_BYTES
    assert wire.parse_length(field) == length


def test_exact_bytes_of_a_put() -> None:
    assert wire.encode_request(wire.Put(b'key', b'ASTR', b'hello')) == b'put_         3keyASTR         5hello'
    assert wire.encode_request(wire.Monitor(b'mk', b'k:gp')) == b'mkey         2mk         4k:gp'


def test_reply_framing() -> None:
    assert wire.encode_value(b'JSON', b'{}') == b'JSON         2{}'
    assert wire.encode_dump_reply(b'[]') == b'         2[]'


@pytest.mark.parametrize('field', [b'        -1', b'      0x10', b'          ', b'     1 2  ', b'\xff' * 10, b'123'])
def test_bad_length_fields_are_refused(field: bytes) -> None:
    with pytest.raises(wire.FrameError):
        wire.parse_length(field)


def test_unknown_operation_is_refused() -> None:
    parser = wire.RequestParser(LIMIT)
    parser.feed(b'HELO')
    with pytest.raises(wire.FrameError, match='unknown operation'):
        parser.next_request()


def test_oversized_field_is_refused_before_its_body_arrives() -> None:
    parser = wire.RequestParser(100)
    parser.feed(b'put_' + wire.encode_length(101))
    with pytest.raises(wire.FrameError, match='exceeds'):
        parser.next_request()


def test_incomplete_request_waits() -> None:
    parser = wire.RequestParser(LIMIT)
    parser.feed(b'get_         5ab')
    assert parser.next_request() is None
    parser.feed(b'c')
    assert parser.next_request() is None
    parser.feed(b'de')
    assert parser.next_request() == wire.Get(b'abcde')


def test_encoding_tag_must_be_four_bytes() -> None:
    with pytest.raises(wire.FrameError):
        wire.encode_value(b'PICKLE', b'')
