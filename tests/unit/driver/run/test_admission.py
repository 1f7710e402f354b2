"""`Admission`: a hello with the wrong secret is refused in the log only; one that speaks another wire protocol
(decoded, or read as far as every version agrees) is reported and answered with an Abort that says why."""

from __future__ import annotations

import logging

import pytest

from disbatch.driver.run.admission import Admission, version_refusal
from disbatch.driver.run.peers import Outbox
from disbatch.driver.run.settings import DriverSettings
from disbatch.protocol import codec
from disbatch.protocol.messages import PROTOCOL_VERSION, Abort, ContextHello, Hello, Message
from disbatch.protocol.transport import Credentials

PEER = b'peer'
OLD_HELLO = b'["hello","s3cret","node2",7,4,1,"SSH","SSH0/1"]'  # protocol 1: no version field


class Sent:
    """Stands in for the driver endpoint: what the outbox would send."""

    def __init__(self) -> None:
        self.messages: list[tuple[bytes, Message]] = []

    def send(self, peer: bytes, *messages: Message) -> bool:
        self.messages.extend((peer, message) for message in messages)
        return True


@pytest.fixture
def admission() -> tuple[Admission, list[str], Outbox]:
    settings = DriverSettings('127.0.0.1', '/', Credentials('s3cret', 'key'), {}, '')
    reports: list[str] = []
    outbox = Outbox()
    return Admission(settings, outbox, reports.append), reports, outbox


def sent(outbox: Outbox) -> list[tuple[bytes, Message]]:
    endpoint = Sent()
    outbox.flush(endpoint)  # type: ignore[arg-type]
    return endpoint.messages


def hello(secret: str = 's3cret', version: int = PROTOCOL_VERSION) -> Hello:
    return Hello(secret, version, 'disbatch 0.1 at /other/python', 'node2', 7, 4, 1, 'SSH', 'SSH0/1')


def test_an_engine_of_this_version_with_the_secret_is_let_in(admission: tuple[Admission, list[str], Outbox]) -> None:
    door, reports, outbox = admission
    assert not door.refuses_engine(PEER, hello())
    assert not door.refuses_context(PEER, ContextHello('s3cret', PROTOCOL_VERSION, '', 'L', 'SSH', '', 0))
    assert reports == [] and sent(outbox) == []


def test_a_wrong_secret_is_refused_in_the_log_only(
    admission: tuple[Admission, list[str], Outbox], caplog: pytest.LogCaptureFixture
) -> None:
    door, reports, outbox = admission
    with caplog.at_level(logging.WARNING):
        assert door.refuses_engine(PEER, hello('wrong', version=1))
        door.on_unreadable(PEER, OLD_HELLO.replace(b's3cret', b'wrong'), codec.CodecError('x'))
    assert reports == [] and sent(outbox) == []
    assert [record.message.startswith('refused') for record in caplog.records] == [True, True]


def test_another_version_is_reported_and_told(admission: tuple[Admission, list[str], Outbox]) -> None:
    door, reports, outbox = admission
    assert door.refuses_engine(PEER, hello(version=PROTOCOL_VERSION + 1))
    assert len(reports) == 1
    assert reports[0].startswith(f'engine on node2 refused: it speaks wire protocol {PROTOCOL_VERSION + 1} ')
    assert '(disbatch 0.1 at /other/python)' in reports[0]
    assert f'this run speaks {PROTOCOL_VERSION} (disbatch ' in reports[0]
    assert reports[0].endswith('; run the same disbatch on every node')
    assert sent(outbox) == [(PEER, Abort(reports[0]))]
    assert door.refused == {'SSH0/1'}  # the loop does not report its exit again


def test_a_context_of_another_version_is_refused(admission: tuple[Admission, list[str], Outbox]) -> None:
    door, reports, outbox = admission
    assert door.refuses_context(PEER, ContextHello('s3cret', PROTOCOL_VERSION + 1, 'x', '', 'SLURM', '12', 0))
    assert reports[0].startswith('context SLURM refused: it speaks wire protocol')
    assert sent(outbox) == [(PEER, Abort(reports[0]))]


def test_a_hello_without_a_version_is_refused_clearly(admission: tuple[Admission, list[str], Outbox]) -> None:
    door, reports, outbox = admission
    door.on_unreadable(PEER, OLD_HELLO, codec.CodecError('hello needs 9 fields, got 7'))
    assert reports == [version_refusal('engine on node2', 1, '')]
    assert 'wire protocol 1 (a disbatch from before protocol versions)' in reports[0]
    assert sent(outbox) == [(PEER, Abort(reports[0]))]


def test_a_malformed_hello_of_this_version_is_refused_with_its_error(
    admission: tuple[Admission, list[str], Outbox],
) -> None:
    door, reports, outbox = admission
    frame = f'["hello","s3cret",{PROTOCOL_VERSION},"d","node2",7,"four",1,"SSH",""]'.encode()
    door.on_unreadable(PEER, frame, codec.CodecError('hello.slots has the wrong type'))
    assert reports == ['engine on node2 refused: its hello is malformed (hello.slots has the wrong type)']
    assert [type(message) for _, message in sent(outbox)] == [Abort]


def test_other_garbage_is_dropped(
    admission: tuple[Admission, list[str], Outbox], caplog: pytest.LogCaptureFixture
) -> None:
    door, reports, outbox = admission
    with caplog.at_level(logging.WARNING):
        door.on_unreadable(PEER, b'["done",1]', codec.CodecError('done needs 6 fields, got 1'))
    assert reports == [] and sent(outbox) == []
    assert 'dropped a malformed message from peer' in caplog.text


def test_this_version_is_not_refused() -> None:
    assert version_refusal('engine on x', PROTOCOL_VERSION, '') is None
