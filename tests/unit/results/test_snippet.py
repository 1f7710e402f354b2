"""Output snippets: head, `...`, tail of the rest, total count, whatever the chunking."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from disbatch.results.record import EMPTY_SNIPPET
from disbatch.results.snippet import OutputCapture, readable


def expected_snippet(data: bytes) -> str:
    """The reference rule, computed on the whole output at once."""
    text = data[:40].decode('utf-8', 'replace')
    if len(data) > 40:
        text += '...' + data[40:][-40:].decode('utf-8', 'replace')
    return repr(text)


def capture(chunks: list[bytes]) -> OutputCapture:
    result = OutputCapture()
    for chunk in chunks:
        result.add(chunk)
    return result


def test_empty_is_two_quotes() -> None:
    assert OutputCapture().snippet() == EMPTY_SNIPPET == "''"
    assert capture([b'', b'']).total == 0


def test_reference_examples() -> None:
    assert capture([b'hello\n']).snippet() == "'hello\\n'"
    assert capture([b"it's\n"]).snippet() == '"it\'s\\n"'
    error = capture([b'/bin/bash: line 1: ', b'step: command not found\n'])
    assert error.total == 43
    assert error.snippet() == "'/bin/bash: line 1: step: command not fou...nd\\n'"
    assert capture([b'A' * 50 + b'B' * 50]).snippet() == repr('A' * 40 + '...' + 'B' * 40)


@pytest.mark.parametrize('size', [0, 1, 39, 40, 41, 79, 80, 81, 1000])
def test_sizes(size: int) -> None:
    data = bytes(range(32, 127)) * 20
    data = data[:size]
    whole = capture([data])
    one_by_one = capture([data[index : index + 1] for index in range(size)])
    assert whole.total == one_by_one.total == size
    assert whole.snippet() == one_by_one.snippet() == expected_snippet(data)


def test_41_bytes_has_a_one_byte_tail() -> None:
    assert capture([b'a' * 40 + b'Z']).snippet() == repr('a' * 40 + '...Z')


def test_split_utf8_character_becomes_replacement() -> None:
    data = b'x' * 39 + 'é'.encode()  # é straddles the 40-byte head
    assert capture([data]).snippet() == repr('x' * 39 + '\ufffd...\ufffd')


@given(st.binary(max_size=300), st.lists(st.integers(min_value=0, max_value=300), max_size=10))
def test_chunking_does_not_matter(data: bytes, cuts: list[int]) -> None:
    points = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    chunks = [data[start:end] for start, end in itertools.pairwise(points)]
    result = capture(chunks)
    assert result.total == len(data)
    assert result.snippet() == expected_snippet(data)


def test_memory_stays_small() -> None:
    result = capture([b'y' * 1_000_000] * 5)
    assert result.total == 5_000_000
    assert len(result._head) == len(result._tail) == 40


def test_readable_joins_head_and_tail_when_nothing_was_left_out() -> None:
    capture = OutputCapture()
    text = 'No such file or directory in some place quite long here\n'
    capture.add(text.encode())
    assert readable(capture.snippet(), capture.total) == text


def test_readable_marks_the_gap_between_whole_words_when_output_was_left_out() -> None:
    capture = OutputCapture()
    text = 'No such file or directory: the configuration file /etc/some/where/quite/deep.conf was not found\n'
    capture.add(text.encode())
    assert readable(capture.snippet(), capture.total) == 'No such file or directory: the [...] was not found\n'


def test_readable_keeps_a_short_snippet_and_a_literal_ellipsis() -> None:
    assert readable(repr('wait...'), 7) == 'wait...'
    assert readable('not a repr', 100) == 'not a repr'
