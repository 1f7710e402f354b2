"""`codec.read_greeting`: what a hello of another protocol version still says of itself, so the driver can refuse
it clearly; every other frame reads as None."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from disbatch.protocol import codec
from disbatch.protocol.codec import FIRST_VERSION, Greeting, read_greeting
from disbatch.protocol.messages import PROTOCOL_VERSION, ContextHello, Hello, this_software


def test_this_version_is_at_least_two_and_hellos_carry_it() -> None:
    assert PROTOCOL_VERSION >= 2 > FIRST_VERSION
    hello = Hello('s', PROTOCOL_VERSION, this_software(), 'node2', 7, 4, 1, 'SSH', '')
    assert codec.decode(codec.encode(hello)) == hello
    assert this_software().startswith('disbatch ') and ' at /' in this_software()


def test_a_hello_of_this_version_reads_as_its_greeting() -> None:
    frame = codec.encode(Hello('s', PROTOCOL_VERSION, 'disbatch 9 at /py', 'node2', 7, 4, 1, 'SSH', ''))
    assert read_greeting(frame) == Greeting('hello', 's', PROTOCOL_VERSION, 'disbatch 9 at /py', 'node2')
    frame = codec.encode(ContextHello('s', PROTOCOL_VERSION, 'disbatch 9 at /py', 'L', 'SSH', '', 0))
    assert read_greeting(frame) == Greeting('context-hello', 's', PROTOCOL_VERSION, 'disbatch 9 at /py', 'L')


def test_a_hello_of_protocol_1_has_no_version_and_reads_as_version_1() -> None:
    # secret, hostname, pid, slots, cores_per_task, context, launch_id: the Hello before versions
    assert read_greeting(b'["hello","s","node2",7,4,1,"SSH","SSH0/1"]') == Greeting('hello', 's', 1, '', 'node2')
    # secret, label, kind, job_id, task_limit
    frame = b'["context-hello","s","L","SLURM","12",0]'
    assert read_greeting(frame) == Greeting('context-hello', 's', 1, '', 'L')


def test_a_hello_of_a_later_version_with_more_fields_reads_by_its_prefix() -> None:
    frame = b'["hello","s",7,"disbatch 9 at /py","node2",{"new":1},[1,2]]'
    assert read_greeting(frame) == Greeting('hello', 's', 7, 'disbatch 9 at /py', 'node2')
    assert read_greeting(b'["hello","s",7]') == Greeting('hello', 's', 7, '', '')  # as much as it says
    assert read_greeting(b'["hello","s",7,3,null]') == Greeting('hello', 's', 7, '', '')


@pytest.mark.parametrize(
    'frame',
    [
        b'["done",1,"",[],false,false,1]',
        b'["hello"]',
        b'["hello","s"]',
        b'["hello",1,2,"x"]',  # no secret
        b'["hello",null,2,"x"]',
        b'{"hello":1}',
        b'not json',
        b'\xff\xfe',
        b'[]',
    ],
)
def test_anything_else_reads_as_none(frame: bytes) -> None:
    assert read_greeting(frame) is None


def test_an_oversized_frame_reads_as_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, 'MAX_FRAME_BYTES', 10)
    assert read_greeting(b'["hello","s","node2",7,4,1,"SSH",""]') is None


@given(st.lists(st.none() | st.booleans() | st.integers() | st.text(), max_size=8))
def test_random_hellos_read_as_a_greeting_or_none(values: list[object]) -> None:
    greeting = read_greeting(json.dumps(['hello', *values]).encode('ascii'))
    assert greeting is None or (greeting.tag == 'hello' and isinstance(greeting.protocol_version, int))
