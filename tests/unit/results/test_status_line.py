"""The status-line format: flags, format/parse round trip, the reference's example lines, bad lines."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import replace

import pytest
from hypothesis import given

from disbatch.results.record import LOST_RETURN_CODE, Outcome, RecordKind, StatusRecord
from disbatch.results.status_line import HEADER, flags, format_line, is_header, parse_line

from .strategies import records

_OUTCOME_FIELDS = {field.name for field in dataclasses.fields(Outcome)}


def make(**changes: object) -> StatusRecord:
    """A record; `changes` may name fields of the record or of its outcome."""
    identity: dict[str, object] = dict(
        kind=RecordKind.NORMAL, task_id=0, line_number=1, repeat_index=-1, host='vm', command='true'
    )
    outcome = Outcome(pid=100, return_code=0, start=1795502033.848, finish=1795502034.348, elapsed=0.5)
    identity.update((name, value) for name, value in changes.items() if name not in _OUTCOME_FIELDS)
    outcome = replace(outcome, **{name: value for name, value in changes.items() if name in _OUTCOME_FIELDS})
    return StatusRecord(outcome=outcome, **identity)  # type: ignore[arg-type]


START, FINISH = '1795502033.848', '1795502033.855'

# The example lines of reference §4, with the fields it elides filled in.
REFERENCE_LINES = [
    f" O  \t0\t4\t-1\tvm\t7380\t0\t0.007\t{START}\t{FINISH}\t6\t'hello\\n'\t0\t''\techo hello",
    f"  E \t1\t5\t-1\tvm\t7381\t0\t0.004\t{START}\t{FINISH}\t0\t''\t10\t'to-stderr\\n'\techo to-stderr >&2",
    f"R E \t4\t8\t1\tvm\t12052\t127\t0.004\t{START}\t{FINISH}\t0\t''\t43\t"
    "'/bin/bash: line 1: step: command not fou...nd\\n'\tX=1; step -1",
    f" O  \t8\t12\t-1\tvm\t12091\t0\t1.006\t{START}\t{FINISH}\t100\t'{'A' * 40}...{'B' * 40}'\t0\t''\t"
    'python3 -c \'print("A" * 50 + "B" * 50, end="")\'',
    f' O  \t0\t1\t-1\tvm\t18298\t0\t0.004\t{START}\t{FINISH}\t5\t"it\'s\\n"\t0\t\'\'\techo "it\'s"',
    f"   P\t0\t2\t-1\tvm\t13850\t0\t1.004\t{START}\t{FINISH}\t0\t''\t0\t''\techo P-echo start ; sleep 1",
    f"B    \t10\t13\t-1\tvm\t7342\t0\t1.003\t{START}\t{FINISH}\t0\t''\t0\t''\t#DISBATCH BARRIER",
    f"C    \t3\t4\t-1\tvm\t6901\t0\t1.003\t{START}\t{FINISH}\t0\t''\t0\t''\t#DISBATCH BARRIER CHECK otherkey",
    f"R  S\t2\t3\t-1\tvm\t6900\t1\t0.010\t{START}\t{FINISH}\t0\t''\t0\t''\tfalse",
    f"R EZ\t5\t7\t-1\tvm\t-1\t-100\t3.000\t{START}\t{FINISH}\t0\t''\t3\t'x\\ty'\tsleep 100",
    f"R   \t6\t8\t-1\tvm\t6902\t1\t0.010\t{START}\t{FINISH}\t0\t''\t0\t''\tb'echo \\xff\\tx'",
]


@pytest.mark.parametrize('line', REFERENCE_LINES)
def test_reference_lines_reformat_byte_identically(line: str) -> None:
    assert format_line(parse_line(line)) == line


def test_reference_line_fields() -> None:
    record = parse_line(REFERENCE_LINES[2])
    assert record == make(
        task_id=4,
        line_number=8,
        repeat_index=1,
        pid=12052,
        return_code=127,
        elapsed=0.004,
        start=1795502033.848,
        finish=1795502033.855,
        err_bytes=43,
        err_snippet="'/bin/bash: line 1: step: command not fou...nd\\n'",
        command='X=1; step -1',
    )
    assert parse_line(REFERENCE_LINES[6]).kind is RecordKind.BARRIER
    assert parse_line(REFERENCE_LINES[7]).kind is RecordKind.BARRIER_CHECK
    assert parse_line(REFERENCE_LINES[-1]).command == 'echo \udcff\tx'


@given(records)
def test_round_trip(record: StatusRecord) -> None:
    line = format_line(record)
    assert '\n' not in line and '\r' not in line
    assert parse_line(line) == record


@pytest.mark.parametrize(
    ('return_code', 'out_bytes', 'err_bytes', 'kind'),
    itertools.product(
        [0, 1, LOST_RETURN_CODE], [0, 6], [0, 9], [RecordKind.NORMAL, RecordKind.PER_ENGINE, RecordKind.ZOMBIE]
    ),
)
def test_flags_every_combination(return_code: int, out_bytes: int, err_bytes: int, kind: RecordKind) -> None:
    record = make(return_code=return_code, out_bytes=out_bytes, err_bytes=err_bytes, kind=kind)
    expected = ('R' if return_code else ' ') + ('O' if out_bytes else ' ') + ('E' if err_bytes else ' ') + kind.value
    assert flags(record) == expected
    assert flags(record.as_skipped()) == expected[:3] + 'S'  # S keeps the old record's R/O/E
    assert parse_line(format_line(record.as_skipped())) == record.as_skipped()


def test_barrier_flags_are_five_characters() -> None:
    assert flags(make(kind=RecordKind.BARRIER)) == 'B    '
    assert flags(make(kind=RecordKind.BARRIER_CHECK, return_code=0)) == 'C    '


def test_times_are_three_decimals() -> None:
    line = format_line(make(elapsed=0.0004, start=12.0, finish=1.23456))
    assert line.split('\t')[7:10] == ['0.000', '12.000', '1.235']


def test_commands_keep_tabs_and_write_bytes_forms() -> None:
    assert format_line(make(command='a\tb')).endswith('\ta\tb')
    assert format_line(make(command='echo \udcff')).endswith("\tb'echo \\xff'")
    assert format_line(make(command='echo a\nb')).endswith("\tb'echo a\\nb'")
    assert format_line(make(command="b'x'")).endswith('\tb"b\'x\'"')
    assert format_line(make(command="b'x")).endswith("\tb'x")  # not a bytes repr: text as it is
    assert format_line(make(command='echo é')).endswith('\techo é')


def test_header() -> None:
    assert HEADER.split('\t') == [
        'ROE[ PSZ]',
        'TaskID',
        'LineNum',
        'RepeatIndex',
        'Node',
        'PID',
        'ReturnCode',
        'Elapsed',
        'Start',
        'Finish',
        'BytesOfLeakedOutput',
        'OutputSnippet',
        'BytesOfLeakedError',
        'ErrorSnippet',
        'Command',
    ]
    assert is_header(HEADER)
    assert not any(is_header(line) for line in REFERENCE_LINES)
    with pytest.raises(ValueError, match='bad flags'):
        parse_line(HEADER)


def test_format_refuses_a_field_that_would_break_the_line() -> None:
    with pytest.raises(ValueError, match='tab or a line break'):
        format_line(make(host='a\tb'))
    with pytest.raises(ValueError, match='tab or a line break'):
        format_line(make(out_snippet="'a\nb'"))


GOOD = REFERENCE_LINES[0]


@pytest.mark.parametrize(
    ('line', 'reason'),
    [
        ('', '1 tab-separated fields, expected 15'),
        ('echo hello', '1 tab-separated fields'),
        ('\t'.join(GOOD.split('\t')[:14]), '14 tab-separated fields'),
        ('X' + GOOD[1:], 'bad flags'),
        ('  S \t' + GOOD.split('\t', 1)[1], 'bad flags'),
        ('B   \t' + GOOD.split('\t', 1)[1], 'bad flags'),
        (GOOD.replace('\t7380\t', '\tx7380\t'), "PID 'x7380' is not an integer"),
        (GOOD.replace('\t7380\t', '\t 7380\t'), 'PID'),
        (GOOD.replace('\t7380\t', '\t7_380\t'), 'PID'),
        (GOOD.replace('\t0.007\t', '\t0.0 07\t'), 'Elapsed'),
        (GOOD.replace('\t0.007\t', '\t\t'), 'Elapsed'),
        (GOOD.replace("'hello\\n'", 'hello'), 'OutputSnippet'),
        (GOOD.replace("\t''\t", '\t\'"\t'), 'ErrorSnippet'),
    ],
)
def test_bad_lines_say_why(line: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace('(', r'\(')):
        parse_line(line)


@pytest.mark.filterwarnings('error')
@pytest.mark.parametrize('command', ["b'\\d'", "b'\\x41'", "b'A' b'B'", "b'\\0'", "b'\\u1234'", "b'é'", 'b"it\'s"x"'])
def test_text_that_only_looks_like_bytes_stays_text(command: str) -> None:
    line = format_line(make(command=command))
    assert line.endswith('\t' + command)  # not the exact repr of any bytes: written as it is
    assert parse_line(line).command == command


@pytest.mark.parametrize('data', [b'', b"it's", b'say "hi"', b'both \' and "', bytes(range(256)), b'\\x41'])
def test_every_bytes_repr_reads_back(data: bytes) -> None:
    line = format_line(make(command=data.decode('utf-8', 'surrogateescape')))
    assert parse_line(line).command.encode('utf-8', 'surrogateescape') == data
    assert parse_line(line[: line.rindex('\t') + 1] + repr(data)).command.encode('utf-8', 'surrogateescape') == data
