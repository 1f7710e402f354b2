"""Reading sessions from /proc/PID/stat (pure parsing), and finding a session's leftovers in a /proc made up here."""

from __future__ import annotations

from pathlib import Path

import pytest

from disbatch.engine.sessions import leftovers, parse_stat, session_members


def stat_line(pid: int, name: str, state: str, pgrp: int, session: int) -> str:
    return f'{pid} ({name}) {state} 1 {pgrp} {session} 34816 {pid} 4194560 120 0 0 0 0 0 0 0 20 0 1 0 99 0 0\n'


def test_the_session_is_field_six() -> None:
    assert parse_stat(stat_line(4242, 'sleep', 'S', 4240, 4239)) == (4242, 'S', 4239)


@pytest.mark.parametrize('name', ['a b', 'x) S 1 2 3', ') (', '', 'tab\there', '((('])
def test_a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields(name: str) -> None:
    assert parse_stat(stat_line(7, name, 'R', 5, 3)) == (7, 'R', 3)


@pytest.mark.parametrize('text', ['', '12', '12 (x)', '12 (x) S 1 2', 'x (y) S 1 2 3', '12 (x) S 1 2 three', 'garbage'])
def test_an_unreadable_stat_is_none(text: str) -> None:
    assert parse_stat(text) is None


def fake_proc(tmp_path: Path, *entries: tuple[int, str, int, int]) -> str:
    for pid, state, pgrp, session in entries:
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / 'stat').write_text(stat_line(pid, 'p', state, pgrp, session))
    (tmp_path / 'self').mkdir()  # not a pid: skipped
    (tmp_path / '99').mkdir()  # a process that exited while we looked: no stat file
    return str(tmp_path)


def test_members_are_found_by_session_whatever_their_process_group(tmp_path: Path) -> None:
    proc = fake_proc(
        tmp_path,
        (10, 'S', 10, 10),  # a running task: the leader of session 10
        (11, 'S', 10, 10),
        (21, 'S', 21, 20),  # session 20 lost its leader; one member moved to a group of its own (set -m)
        (22, 'R', 20, 20),
        (23, 'Z', 20, 20),  # a zombie runs nothing: not a leftover
        (30, 'S', 30, 30),  # someone else's session
    )
    assert session_members({10, 20}, proc) == {10: [10, 11], 20: [21, 22]}
    assert leftovers({10, 20, 40}, proc) == {20: [21, 22]}


def test_no_proc_means_nothing_found(tmp_path: Path) -> None:
    assert session_members({1}, str(tmp_path / 'absent')) == {}
