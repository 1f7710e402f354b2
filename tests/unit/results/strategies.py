"""Hypothesis strategies for status records, shared by the results tests."""

from __future__ import annotations

from hypothesis import strategies as st

from disbatch.results.record import Outcome, RecordKind, StatusRecord
from disbatch.results.snippet import OutputCapture


def _snippet_of(chunks: list[bytes]) -> str:
    capture = OutputCapture()
    for chunk in chunks:
        capture.add(chunk)
    return capture.snippet()


snippets = st.lists(st.binary(max_size=100), max_size=4).map(_snippet_of)
times = st.floats(allow_nan=False).map(lambda value: round(value, 3))
hosts = st.text(alphabet=st.characters(blacklist_characters='\t\n\r', codec='utf-8'), max_size=20)
commands = st.one_of(
    st.text(),  # any text, with tabs, newlines, \x85, \u2028, ...
    st.binary().map(lambda data: data.decode('utf-8', 'surrogateescape')),  # what the task-file parser makes
    st.text().map(lambda text: f"b'{text}'"),  # text that looks like a bytes repr
    st.sampled_from(['', 'echo hello', "b''", 'b""', "b'\\xff'", 'a\tb\t', '\x85\u2028\x0c']),
)

outcomes = st.builds(
    Outcome,
    pid=st.integers(),
    return_code=st.integers(),
    start=times,
    finish=times,
    elapsed=times,
    out_bytes=st.integers(),
    out_snippet=snippets,
    err_bytes=st.integers(),
    err_snippet=snippets,
)
records = st.builds(
    StatusRecord,
    kind=st.sampled_from(RecordKind),
    task_id=st.integers(),
    line_number=st.integers(),
    repeat_index=st.integers(),
    command=commands,
    host=hosts,
    outcome=outcomes,
)
