"""Fuzzing the task-file parser: on any bytes it yields items or raises `TaskFileError` (`SOURCE:LINE: ...`), never
anything else, and never hangs. `driver.scan.validate` (the pre-scan of a regular file) is held to the same rule.

Lines are drawn from plain random bytes and from directive-shaped lines (the `#DISBATCH` marker, a keyword in any
case, random words and numbers), so the fuzzing reaches every directive's own checks, not only the first `if`.
A REPEAT expands lazily, so items are taken with a bound: a `REPEAT 10**30` is fine to parse but not to list.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from disbatch.driver.stream.scan import validate
from disbatch.errors import TaskFileError
from disbatch.taskfile import Barrier, PerEngineTask, Task, TaskFileParser

SOURCE = 'fuzzed.tasks'
ITEMS_PER_LINE = 50  # how many items of one line's (possibly huge) REPEAT are made
SECONDS_PER_EXAMPLE = 2.0

KEYWORDS = ['PREFIX', 'SUFFIX', 'PERENGINE', 'REPEAT', 'BARRIER', 'START', 'STOP', 'CHECK', 'step', 'start', 'foo']
SEPARATORS = [b' ', b'\t', b'  ', b'\x0b', b'\x0c', b'\r', b'', b'\xa0', b'\x00']

numbers = st.integers(min_value=-5, max_value=10**30).map(lambda number: str(number).encode())
words = st.one_of(
    st.sampled_from(KEYWORDS).map(str.encode),
    st.sampled_from(KEYWORDS).map(lambda word: word.lower().encode()),
    numbers,
    st.binary(max_size=8),
    st.text(max_size=8).map(lambda text: text.encode('utf-8', 'surrogatepass')),
)
directive_lines = st.builds(
    lambda marker, parts, separators: marker + b''.join(s + p for s, p in zip(separators, parts, strict=False)),
    st.sampled_from([b'#DISBATCH', b'#DISBATCH ', b'#disbatch', b' #DISBATCH', b'#DISBATCHX', b'#']),
    st.lists(words, max_size=6),
    st.lists(st.sampled_from(SEPARATORS), min_size=6, max_size=6),
)
lines = st.one_of(st.binary(max_size=80), directive_lines)


def check_error(error: TaskFileError, line_number: int) -> None:
    assert str(error).startswith(f'{SOURCE}:{line_number}: '), str(error)
    assert '\n' not in str(error).rstrip('\n'), f'a multi-line message: {str(error)!r}'
    assert error.line_number == line_number


def check_items(items: list[Task | Barrier | PerEngineTask], line_number: int) -> None:
    for item in items:
        assert item.line_number == line_number, item
        if isinstance(item, Task):
            # any byte survives the round trip to bash
            item.command.encode('utf-8', 'surrogateescape')


def feed_all(stream: list[bytes]) -> None:
    """Feed `stream` line by line; every line either yields items or raises TaskFileError naming it."""
    parser = TaskFileParser(SOURCE)
    for line_number, raw in enumerate(stream, start=1):
        started = time.monotonic()
        try:
            items = list(itertools.islice(parser.feed_iter(raw, line_number), ITEMS_PER_LINE))
        except TaskFileError as error:
            check_error(error, line_number)
            continue  # the file is rejected here; the parser must still not misbehave on later lines
        finally:
            assert time.monotonic() - started < SECONDS_PER_EXAMPLE, f'line {raw!r} took too long'
        check_items(items, line_number)
        for warning in parser.warnings:
            assert warning.startswith(f'{SOURCE}:'), warning
        parser.warnings.clear()


@settings(max_examples=300, deadline=None)
@given(st.lists(lines, max_size=12))
def test_parser_raises_only_task_file_errors_that_name_the_line(stream: list[bytes]) -> None:
    feed_all(stream)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_parser_on_one_blob_of_random_bytes(blob: bytes) -> None:
    # a stream item may hold several lines (KVS sources): all are numbered with the item's line number
    parser = TaskFileParser(SOURCE)
    try:
        items = list(itertools.islice(parser.feed_iter(blob, 7), ITEMS_PER_LINE))
    except TaskFileError as error:
        check_error(error, 7)
        return
    check_items(items, 7)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=st.lists(lines, max_size=12))
def test_validate_raises_only_task_file_errors(tmp_path: Path, stream: list[bytes]) -> None:
    path = tmp_path / SOURCE
    path.write_bytes(b'\n'.join(stream))
    started = time.monotonic()
    try:
        total = validate(str(path))
    except TaskFileError as error:
        assert str(error).startswith(f'{path}:'), str(error)
        assert error.line_number >= 1
    else:
        assert total is not None and total >= 0
    assert time.monotonic() - started < SECONDS_PER_EXAMPLE


@pytest.mark.parametrize(
    'line',
    [
        b'#DISBATCH REPEAT ' + b'9' * 5000 + b' echo',
        b'#DISBATCH REPEAT 2 start ' + b'9' * 5000 + b' echo',
        b'#DISBATCH REPEAT 2 start 1 step ' + b'9' * 5000 + b' echo',
    ],
    ids=['count', 'start', 'step'],
)
def test_repeat_with_a_huge_number_is_a_task_file_error(line: bytes) -> None:
    # more digits than int() takes from a string (4300) must not escape as ValueError
    parser = TaskFileParser(SOURCE)
    with pytest.raises(TaskFileError) as caught:
        list(itertools.islice(parser.feed_iter(line, 3), 2))
    check_error(caught.value, 3)
