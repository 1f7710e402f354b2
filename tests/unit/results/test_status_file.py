"""The status file on disk: one write per line (or per batch held back), header, reading back, bad files, a cut-short
last line."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from disbatch.errors import StatusFileError
from disbatch.results.record import RecordKind, StatusRecord
from disbatch.results.status_file import StatusFileWriter, read_status_file
from disbatch.results.status_line import HEADER, format_line

from .strategies import records
from .test_status_line import make


def read(path: Path) -> list[StatusRecord]:
    return list(read_status_file(str(path)))


def test_write_then_read(tmp_path: Path) -> None:
    path = tmp_path / 'x_status.txt'
    written = [
        make(task_id=0),
        make(task_id=1, kind=RecordKind.PER_ENGINE),
        make(task_id=2, command='a\x85b\u2028c\x0c'),
    ]
    with StatusFileWriter.open(str(path), header=True) as writer:
        for record in written:
            writer.write(record)
        assert read(path) == written  # on disk before close: nothing buffered
    lines = path.read_bytes().decode().split('\n')
    assert lines[0] == HEADER
    assert lines[1:] == [format_line(record) for record in written] + ['']


def test_one_os_write_per_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = StatusFileWriter.open(str(tmp_path / 's.txt'))
    calls: list[bytes] = []
    real_write = os.write

    def counting_write(descriptor: int, data: bytes) -> int:
        calls.append(bytes(data))
        return real_write(descriptor, data)

    monkeypatch.setattr(os, 'write', counting_write)
    writer.write(make(command='x' * 100_000))
    monkeypatch.undo()
    writer.close()
    assert len(calls) == 1 and calls[0].endswith(b'\n') and calls[0].count(b'\n') == 1


def test_lines_added_go_in_the_file_on_flush_in_order_with_one_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / 's.txt'
    added = [make(task_id=number) for number in range(5)]
    writer = StatusFileWriter.open(str(path))
    calls: list[bytes] = []
    real_write = os.write

    def counting_write(descriptor: int, data: bytes) -> int:
        calls.append(bytes(data))
        return real_write(descriptor, data)

    monkeypatch.setattr(os, 'write', counting_write)
    for record in added:
        writer.add(record)
    assert read(path) == [] and calls == []  # held back
    writer.flush()
    writer.flush()  # nothing more held: no write
    monkeypatch.undo()
    assert read(path) == added
    assert len(calls) == 1 and calls[0].count(b'\n') == len(added)
    writer.write(make(task_id=9))  # written at once, after them
    assert [record.task_id for record in read(path)] == [0, 1, 2, 3, 4, 9]
    writer.close()


def test_closing_flushes_the_lines_held_back(tmp_path: Path) -> None:
    path = tmp_path / 's.txt'
    with StatusFileWriter.open(str(path), header=True) as writer:
        writer.add(make(task_id=7))
    assert [record.task_id for record in read(path)] == [7]


def test_open_truncates_or_appends(tmp_path: Path) -> None:
    path = tmp_path / 's.txt'
    with StatusFileWriter.open(str(path), header=True) as writer:
        writer.write(make(task_id=1))
    with StatusFileWriter.open(str(path), header=True, append=True) as writer:
        writer.write(make(task_id=2))
    assert [record.task_id for record in read(path)] == [1, 2]
    assert path.read_text().count(HEADER) == 1
    with StatusFileWriter.open(str(path)) as writer:
        pass
    assert path.read_bytes() == b''


def test_write_after_close_is_an_error(tmp_path: Path) -> None:
    writer = StatusFileWriter.open(str(tmp_path / 's.txt'))
    writer.close()
    writer.close()
    with pytest.raises(ValueError, match='closed'):
        writer.write(make())


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(records, max_size=5))
def test_file_round_trip(tmp_path: Path, written: list[StatusRecord]) -> None:
    path = tmp_path / 'round.txt'
    with StatusFileWriter.open(str(path), header=True) as writer:
        for record in written:
            writer.write(record)
    assert read(path) == written


def test_empty_file_blank_lines_crlf(tmp_path: Path) -> None:
    path = tmp_path / 's.txt'
    path.write_bytes(b'')
    assert read(path) == []
    line = format_line(make(command='echo hi')).encode()
    path.write_bytes(b'\n' + HEADER.encode() + b'\r\n  \n' + line + b'\r\n\n')
    assert read(path) == [make(command='echo hi')]


def test_cut_short_last_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / 's.txt'
    whole = format_line(make(task_id=1)).encode() + b'\n'
    last = format_line(make(task_id=2, command='echo a long command')).encode()
    for cut in (1, 5, 30, len(last) - 3, len(last)):
        path.write_bytes(whole + last[:cut])
        assert [record.task_id for record in read(path)] == [1]
    path.write_bytes(last[:-3])  # the only line, cut in the command: still looks like a status line
    assert read(path) == []


def test_junk_files_are_refused_with_the_line(tmp_path: Path) -> None:
    path = tmp_path / 'junk'
    path.write_bytes(format_line(make()).encode() + b'\n\x00\xff\xfe binary\x89PNG\n' + format_line(make()).encode())
    with pytest.raises(StatusFileError) as caught:
        read(path)
    assert caught.value.line_number == 2
    assert str(caught.value).startswith(f'{path}:2: not a disbatch status line: ')
    path.write_bytes(b'echo hello')  # a task file given to -r, even without a final newline
    with pytest.raises(StatusFileError, match=r':1: not a disbatch status line: 1 tab-separated fields'):
        read(path)
    path.write_bytes(os.urandom(64).replace(b'\n', b'') + b'\n')
    with pytest.raises(StatusFileError, match=':1: not a disbatch status line'):
        read(path)


def test_unreadable_files_are_line_zero_and_named_without_a_line(tmp_path: Path) -> None:
    with pytest.raises(StatusFileError, match=r'missing: cannot read status file: No such file or directory') as caught:
        read(tmp_path / 'missing')
    assert caught.value.line_number == 0
    assert ':0:' not in str(caught.value)
    with pytest.raises(StatusFileError, match=f'{tmp_path.name}: cannot read status file: Is a directory'):
        read(tmp_path)


def test_carried_records_reach_the_name_only_once_all_are_written(tmp_path: Path) -> None:
    path = tmp_path / 'x_status.txt'
    carried = [make(task_id=task, kind=RecordKind.SKIPPED) for task in range(3)]
    with StatusFileWriter.open(str(path), header=True, carried=iter(carried)) as writer:
        assert writer.carried == 3 and writer.path == str(path)
        writer.write(make(task_id=3))
    assert read(path) == [*carried, make(task_id=3)]
    assert sorted(os.listdir(tmp_path)) == ['x_status.txt']


def test_a_run_stopped_while_carrying_leaves_no_status_file_that_looks_complete(tmp_path: Path) -> None:
    def cut_short() -> Iterator[StatusRecord]:
        yield make(task_id=0, kind=RecordKind.SKIPPED)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        StatusFileWriter.open(str(tmp_path / 'x_status.txt'), carried=cut_short())
    assert os.listdir(tmp_path) == []


def test_carried_records_never_go_into_a_file_appended_to(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        StatusFileWriter.open(str(tmp_path / 'x_status.txt'), append=True, carried=iter(()))
    assert os.listdir(tmp_path) == []
