"""The protocol codec: every message round-trips; every malformed frame, and only that, raises CodecError."""

from __future__ import annotations

import contextlib
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from disbatch.protocol import codec
from disbatch.protocol.codec import CodecError, decode, encode
from disbatch.protocol.messages import (
    MESSAGE_TYPES,
    Abort,
    ContextGoodbye,
    ContextHello,
    ContextWelcome,
    Drain,
    Goodbye,
    Heartbeat,
    Hello,
    Leftover,
    Message,
    TaskAttempt,
    TaskDone,
    Welcome,
)
from disbatch.results.record import EMPTY_SNIPPET, Outcome, ResourceUsage

# Text as commands and hostnames really hold it: any Unicode, and bytes decoded with surrogateescape.
texts = st.one_of(
    st.text(),
    # Lone surrogates among others. A high surrogate right before a low one is a pair to JSON (one character):
    # text decoded with surrogateescape never holds one, so such pairs are left out.
    st.text(st.characters(codec=None, categories=['Cs', 'Ll', 'Zs', 'Cc'])).filter(
        lambda text: re.search('[\ud800-\udbff][\udc00-\udfff]', text) is None
    ),
    st.binary().map(lambda data: data.decode('utf-8', 'surrogateescape')),
    st.sampled_from(['', '\udcff', 'a\udc80b', '\ud800', '"\\\n\t\x00', '\u2028\x85']),
)
integers = st.integers()
numbers = st.floats(allow_nan=False)  # NaN is never equal to itself; infinities round-trip
environments = st.dictionaries(texts, texts, max_size=4)

# An Outcome: pid return_code start finish elapsed out_bytes out_snippet err_bytes err_snippet usage (or None).
usages = st.none() | st.builds(ResourceUsage, integers, numbers, numbers)
outcomes = st.builds(Outcome, integers, integers, numbers, numbers, numbers, integers, texts, integers, texts, usages)

messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(Hello, texts, integers, texts, texts, integers, integers, integers, texts, texts),
    # Per-engine task lists are left empty here: see test_welcome_per_engine_tasks_round_trip_as_tuples.
    st.builds(
        Welcome, integers, texts, environments, st.just([]), st.just([]), numbers, st.booleans(), texts, st.booleans()
    ),
    st.builds(TaskAttempt, integers, integers, integers, texts, integers),
    st.builds(TaskDone, integers, texts, outcomes, st.booleans(), st.booleans(), integers),
    st.builds(Leftover, integers, texts, st.lists(integers, max_size=4)),
    st.just(Drain()),
    st.builds(Abort, texts),
    st.builds(Goodbye, texts),
    st.builds(ContextHello, texts, integers, texts, texts, texts, texts, integers),
    st.builds(ContextWelcome, texts, numbers, integers, integers, texts),
    st.builds(ContextGoodbye, texts),
    st.just(Heartbeat()),
)


def test_every_message_type_is_covered() -> None:
    assert {cls.TAG for cls in MESSAGE_TYPES} == {
        'hello', 'welcome', 'run', 'done', 'leftover', 'drain', 'abort', 'goodbye', 'heartbeat',
        'context-hello', 'context-welcome', 'context-goodbye',
    }  # fmt: skip


@given(messages)
def test_every_message_round_trips(message: Message) -> None:
    frame = encode(message)
    assert frame.isascii()
    decoded = decode(frame)
    assert type(decoded) is type(message)
    assert decoded == message


def test_a_frame_is_a_json_array_of_the_tag_then_the_fields_in_order() -> None:
    assert encode(TaskAttempt(3, 4, -1, 'echo \udcff', 2)) == b'["run",3,4,-1,"echo \\udcff",2]'
    assert encode(Drain()) == b'["drain"]'
    outcome = Outcome(100, -15, 1.5, 2.5, 1.0, 0, EMPTY_SNIPPET, 0, EMPTY_SNIPPET, ResourceUsage(4096, 0.25, 0.5))
    done = TaskDone(1, '', outcome, True, False, 2)
    assert encode(done) == b'["done",1,"",[100,-15,1.5,2.5,1.0,0,"\'\'",0,"\'\'",[4096,0.25,0.5]],true,false,2]'
    unmeasured = TaskDone(0, 'START', Outcome.spawn_failure(2, 'gone', 1.5), False, False, 0)
    assert encode(unmeasured) == b'["done",0,"START",[-1,2,1.5,1.5,0.0,0,"\'\'",4,"\'gone\'",null],false,false,0]'
    welcome = Welcome(0, '/w', {}, [], [], 2.5, True, '/w/out', True)
    assert encode(welcome) == b'["welcome",0,"/w",{},[],[],2.5,true,"/w/out",true]'
    assert encode(Leftover(3, '', [41, 42])) == b'["leftover",3,"",[41,42]]'
    hello = Hello('s', 2, 'disbatch 4 at /py', 'node2', 7, 4, 1, 'SSH', 'SSH0/1')
    assert encode(hello) == b'["hello","s",2,"disbatch 4 at /py","node2",7,4,1,"SSH","SSH0/1"]'
    context_hello = ContextHello('s', 2, 'disbatch 4 at /py', 'L', 'SLURM', '12', 0)
    assert encode(context_hello) == b'["context-hello","s",2,"disbatch 4 at /py","L","SLURM","12",0]'


def test_a_lone_surrogate_survives_the_round_trip() -> None:
    command = b'echo \xff\xfe'.decode('utf-8', 'surrogateescape')
    decoded = decode(encode(TaskAttempt(0, 1, -1, command, 1)))
    assert isinstance(decoded, TaskAttempt)
    assert decoded.command.encode('utf-8', 'surrogateescape') == b'echo \xff\xfe'


def test_welcome_per_engine_tasks_round_trip_as_tuples() -> None:
    welcome = Welcome(
        0, '/work', {'DISBATCH_JOBID': 'x'}, [(0, 1, 'hostname'), (1, 2, 'date')], [(0, 3, 'sync')], 0.0, False, ''
    )
    assert decode(encode(welcome)) == welcome


@pytest.mark.parametrize(
    'frame',
    [
        pytest.param(b'', id='empty'),
        pytest.param(b'not json', id='not json'),
        pytest.param(b'["run",1,2,-1,"echo",1', id='truncated'),
        pytest.param(b'["run",1,2,-1,"echo",1] x', id='trailing garbage'),
        pytest.param(b'["run",1,2,-1,"\xff",1]', id='not ASCII'),
        pytest.param('["run",1,2,-1,"é",1]'.encode(), id='UTF-8 but not ASCII'),
        pytest.param(b'"run"', id='a string'),
        pytest.param(b'null', id='null'),
        pytest.param(b'{"tag":"run"}', id='an object'),
        pytest.param(b'[]', id='an empty array'),
        pytest.param(b'[1,2,-1,"echo",1]', id='no tag'),
        pytest.param(b'["nosuch"]', id='unknown tag'),
        pytest.param(b'["RUN",1,2,-1,"echo",1]', id='tag in the wrong case'),
        pytest.param(b'["run",1,2,-1,"echo"]', id='a field short (the attempt of an older driver)'),
        pytest.param(b'["run",1,2,-1,"echo",1,"extra"]', id='a field over'),
        pytest.param(b'["done",1,"",[100,0,1.5,2.5,1.0,0,"",0,"",null]]', id='done without timed_out'),
        pytest.param(b'["done",1,"",[100,0,1.5,2.5,1.0,0,"",0,"",null],false]', id='done without interrupted'),
        pytest.param(b'["done",1,"",[100,0,1.5,2.5,1.0,0,"",0,"",null],false,false]', id='done without attempt'),
        pytest.param(
            b'["done",1,"",100,0,1.5,2.5,0,"",0,"",false,false,1,4096,0,0]',
            id='flat done (an older engine)',
        ),
        pytest.param(b'["done",1,"",[100,0,1.5,2.5,0,"",0,"",null],false,false,1]', id='outcome without elapsed'),
        pytest.param(b'["done",1,"",[100,0,1.5,2.5,1.0,0,"",0,""],false,false,1]', id='outcome without usage'),
        pytest.param(b'["done",1,"",[100,0,1.5,2.5,1.0,0,"",0,"",null,0],false,false,1]', id='outcome a field over'),
        pytest.param(b'["done",1,"",null,false,false,1]', id='null for outcome'),
        pytest.param(b'["done",1,"",{"pid":100},false,false,1]', id='object for outcome'),
        pytest.param(b'["done",1,"","[100]",false,false,1]', id='string for outcome'),
        pytest.param(b'["done",1,"",[],false,false,1]', id='empty outcome'),
        pytest.param(b'["done",1,"",[true,0,1.5,2.5,1.0,0,"",0,"",null],false,false,1]', id='bool for pid'),
        pytest.param(b'["done",1,"",[100,0.0,1.5,2.5,1.0,0,"",0,"",null],false,false,1]', id='float for return code'),
        pytest.param(b'["done",1,"",[100,0,1.5,2.5,null,0,"",0,"",null],false,false,1]', id='null for elapsed'),
        pytest.param(b'["done",1,"",[100,0,1.5,2.5,1.0,"0","",0,"",null],false,false,1]', id='string for out_bytes'),
        pytest.param(b'["done",1,"",[100,0,1.5,2.5,1.0,0,0,0,"",null],false,false,1]', id='int for out_snippet'),
        pytest.param(b'["done",1,"",[100,0,1.5,2.5,1.0,0,"",0,["x"],null],false,false,1]', id='array for err_snippet'),
        pytest.param(
            b'["done",1,"",[100,0,1.5,2.5,1.0,0,"",0,"",[4096.0,0,0]],false,false,1]', id='float for peak RSS'
        ),
        pytest.param(
            b'["done",1,"",[100,0,1.5,2.5,1.0,0,"",0,"",[4096,"0",0]],false,false,1]', id='string for CPU seconds'
        ),
        pytest.param(b'["done",1,"",[100,0,1.5,2.5,1.0,0,"",0,"",[4096,0]],false,false,1]', id='usage a field short'),
        pytest.param(
            b'["done",1,"",[100,0,1.5,2.5,1.0,0,"",0,"",[4096,0,0,0]],false,false,1]', id='usage a field over'
        ),
        pytest.param(b'["done",1,"",[100,0,1.5,2.5,1.0,0,"",0,"",0],false,false,1]', id='int for usage'),
        pytest.param(b'["done",1,"",[100,0,1.5,2.5,1.0,0,"",0,"",{}],false,false,1]', id='object for usage'),
        pytest.param(b'["welcome",0,"/",{},[],[]]', id='welcome without timeout'),
        pytest.param(b'["welcome",0,"/",{},[],[],0,false]', id='welcome without results_dir (an older driver)'),
        pytest.param(b'["welcome",0,"/",{},[],[],0,false,null,false]', id='null for results_dir'),
        pytest.param(b'["welcome",0,"/",{},[],[],0,false,""]', id='welcome without fork_tasks (an older driver)'),
        pytest.param(b'["welcome",0,"/",{},[],[],0,false,"",0]', id='int for fork_tasks'),
        pytest.param(b'["drain",null]', id='a field for a message that has none'),
        pytest.param(b'["run","1",2,-1,"echo",1]', id='string for int'),
        pytest.param(b'["run",true,2,-1,"echo",1]', id='bool for int'),
        pytest.param(b'["run",1.0,2,-1,"echo",1]', id='float for int'),
        pytest.param(b'["run",null,2,-1,"echo",1]', id='null for int'),
        pytest.param(b'["run",1,2,-1,3,1]', id='int for string'),
        pytest.param(b'["run",1,2,-1,["echo"],1]', id='array for string'),
        pytest.param(b'["run",1,2,-1,"echo",true]', id='bool for attempt'),
        pytest.param(b'["run",1,2,-1,"echo","2"]', id='string for attempt'),
        pytest.param(b'["abort",false]', id='bool for string'),
        pytest.param(b'["done",1,"",[100,0,"1.5",2.5,1.0,0,"",0,"",null],false,false,1]', id='string for float'),
        pytest.param(b'["done",1,"",[100,0,true,2.5,1.0,0,"",0,"",null],false,false,1]', id='bool for float'),
        pytest.param(b'["done",1,"",[100,0,1.5,2.5,1.0,0,"",0,"",null],1,false,1]', id='int for timed_out'),
        pytest.param(b'["done",1,"",[100,0,1.5,2.5,1.0,0,"",0,"",null],null,false,1]', id='null for timed_out'),
        pytest.param(b'["done",1,"",[100,0,1.5,2.5,1.0,0,"",0,"",null],"true",false,1]', id='string for timed_out'),
        pytest.param(b'["done",1,"",[100,0,1.5,2.5,1.0,0,"",0,"",null],false,0,1]', id='int for interrupted'),
        pytest.param(b'["done",1,"",[100,0,1.5,2.5,1.0,0,"",0,"",null],false,null,1]', id='null for interrupted'),
        pytest.param(b'["done",1,"",[100,0,1.5,2.5,1.0,0,"",0,"",null],false,false,true]', id='bool for attempt'),
        pytest.param(b'["hello","s",2,"d","h",1,true,1,"ssh","launch"]', id='bool for slots'),
        pytest.param(b'["hello","s",true,"d","h",1,2,1,"ssh","launch"]', id='bool for protocol_version'),
        pytest.param(b'["hello","s","h",1,2,1,"ssh","launch"]', id='hello of protocol 1'),
        pytest.param(b'["welcome",0,"/",["A","B"],[],[],0,false,"",false]', id='array for environment'),
        pytest.param(b'["welcome",0,"/",{},{},[],0,false,"",false]', id='object for task list'),
        pytest.param(b'["welcome",0,"/",{},[],[],"1",false,"",false]', id='string for timeout'),
        pytest.param(b'["welcome",0,"/",{},[],[],false,false,"",false]', id='bool for timeout'),
    ],
)
def test_a_malformed_frame_raises_codec_error(frame: bytes) -> None:
    with pytest.raises(CodecError):
        decode(frame)


def test_well_formed_frames_decode() -> None:
    assert decode(b'["run",1,2,-1,"echo",3]') == TaskAttempt(1, 2, -1, 'echo', 3)
    assert decode(b'["done",1,"",[100,0,1.5,2.5,1.0,0,"",0,"",[8192,0.5,0.25]],false,false,1]') == TaskDone(
        1, '', Outcome(100, 0, 1.5, 2.5, 1.0, 0, '', 0, '', ResourceUsage(8192, 0.5, 0.25)), False, False, 1
    )
    assert decode(b'["done",1,"",[100,-9,1.5,2.5,1.0,0,"",0,"",[0,0.0,0.0]],true,false,3]') == TaskDone(
        1, '', Outcome(100, -9, 1.5, 2.5, 1.0, 0, '', 0, '', ResourceUsage(0, 0.0, 0.0)), True, False, 3
    )
    assert decode(b'["done",1,"",[100,-15,1.5,2.5,1.0,0,"",0,"",[0,0.0,0.0]],false,true,1]') == TaskDone(
        1, '', Outcome(100, -15, 1.5, 2.5, 1.0, 0, '', 0, '', ResourceUsage(0, 0.0, 0.0)), False, True, 1
    )
    assert decode(b'["done",0,"STOP",[-1,2,1.5,1.5,0.0,0,"",4,"\'x\'",null],false,false,0]') == TaskDone(
        0, 'STOP', Outcome(-1, 2, 1.5, 1.5, 0.0, 0, '', 4, "'x'", None), False, False, 0
    )
    assert decode(b'["welcome",0,"/",{},[],[],0.5,false,"",false]') == Welcome(0, '/', {}, [], [], 0.5, False, '')


def test_an_int_is_accepted_where_a_float_is_expected() -> None:
    assert decode(b'["done",1,"",[100,0,1,2,1,0,"",0,"",[0,1,2]],false,false,1]') == TaskDone(
        1, '', Outcome(100, 0, 1, 2, 1, 0, '', 0, '', ResourceUsage(0, 1, 2)), False, False, 1
    )
    assert decode(b'["welcome",0,"/",{},[],[],30,false,"/r",false]') == Welcome(0, '/', {}, [], [], 30, False, '/r')


def test_a_decoded_outcome_is_an_outcome_and_its_usage_a_resource_usage() -> None:
    done = decode(b'["done",1,"",[100,0,1.5,2.5,1.0,0,"",0,"",[8192,0.5,0.25]],false,false,1]')
    assert isinstance(done, TaskDone)
    assert type(done.outcome) is Outcome and type(done.outcome.usage) is ResourceUsage


def test_an_oversized_frame_raises_codec_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, 'MAX_FRAME_BYTES', 64)
    frame = encode(TaskAttempt(0, 1, -1, 'x' * 45, 1))
    assert len(frame) == 64
    assert decode(frame) == TaskAttempt(0, 1, -1, 'x' * 45, 1)
    with pytest.raises(CodecError, match='over the limit'):
        decode(encode(TaskAttempt(0, 1, -1, 'x' * 46, 1)))


def test_the_frame_limit_is_64_mib() -> None:
    assert codec.MAX_FRAME_BYTES == 64 * 1024 * 1024


def test_a_deeply_nested_frame_raises_codec_error() -> None:
    with pytest.raises(CodecError):
        decode(b'[' * 100_000 + b']' * 100_000)


@pytest.mark.parametrize(
    'frame',
    [
        pytest.param(b'["welcome",0,"/",{"A":1},[],[],0,false,""]', id='int environment value'),
        pytest.param(b'["welcome",0,"/",{},[[0,1]],[],0,false,""]', id='short per-engine task'),
        pytest.param(b'["welcome",0,"/",{},[],["date"],0,false,""]', id='string for per-engine task'),
        pytest.param(b'["welcome",0,"/",{},[["0",1,"date"]],[],0,false,""]', id='string for per-engine task id'),
        pytest.param(b'["welcome",0,"/",{},[],[],0,0,""]', id='int for kill_leftovers'),
        pytest.param(b'["leftover",1,"",["12"]]', id='string for a leftover pid'),
        pytest.param(b'["leftover",1,"",[true]]', id='bool for a leftover pid'),
    ],
)
def test_a_welcome_with_malformed_contents_raises_codec_error(frame: bytes) -> None:
    with pytest.raises(CodecError):
        decode(frame)


@given(st.binary(max_size=200))
def test_random_bytes_raise_nothing_but_codec_error(frame: bytes) -> None:
    with contextlib.suppress(CodecError):
        decode(frame)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)


@given(st.sampled_from([cls.TAG for cls in MESSAGE_TYPES]), st.lists(json_values, max_size=8))
def test_random_json_arrays_with_a_real_tag_raise_nothing_but_codec_error(tag: str, values: list[object]) -> None:
    frame = json.dumps([tag, *values]).encode('ascii')
    try:
        message = decode(frame)
    except CodecError:
        return
    assert tag == message.TAG
