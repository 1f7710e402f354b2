"""Reading sessions from /proc/PID/stat (pure parsing), and finding a session's leftovers, or a process's descendants,
in a /proc made up here."""

from __future__ import annotations

from pathlib import Path

import pytest

from disbatch.engine.sessions import (
    ProcessStat,
    descendants,
    group_members,
    leftovers,
    parse_stat,
    session_members,
)


def stat_line(pid: int, name: str, state: str, pgrp: int, session: int, parent: int = 1) -> str:
    return f'{pid} ({name}) {state} {parent} {pgrp} {session} 34816 {pid} 4194560 120 0 0 0 0 0 0 0 20 0 1 0 99 0 0\n'


def test_the_parent_is_field_four_and_the_session_field_six() -> None:
    assert parse_stat(stat_line(4242, 'sleep', 'S', 4240, 4239, parent=4241)) == ProcessStat(
        4242, 'S', 4241, 4239, 4240
    )


@pytest.mark.parametrize('name', ['a b', 'x) S 1 2 3', ') (', '', 'tab\there', '((('])
def test_a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields(name: str) -> None:
    assert parse_stat(stat_line(7, name, 'R', 5, 3)) == ProcessStat(7, 'R', 1, 3, 5)


@pytest.mark.parametrize('text', ['', '12', '12 (x)', '12 (x) S 1 2', 'x (y) S 1 2 3', '12 (x) S 1 2 three', 'garbage'])
def test_an_unreadable_stat_is_none(text: str) -> None:
    assert parse_stat(text) is None


def fake_proc(tmp_path: Path, *entries: tuple[int, str, int, int] | tuple[int, str, int, int, int]) -> str:
    for pid, state, pgrp, session, *parent in entries:
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / 'stat').write_text(stat_line(pid, 'p', state, pgrp, session, *parent))
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


def test_group_members_are_found_by_process_group_whatever_their_session(tmp_path: Path) -> None:
    # --fork-tasks: a task leads a process group inside its slot shell's session (40)
    proc = fake_proc(
        tmp_path, (40, 'S', 40, 40), (41, 'S', 41, 40), (42, 'S', 41, 40), (43, 'Z', 41, 40), (44, 'S', 41, 44)
    )
    assert group_members(41, proc) == [41, 42, 44]
    assert group_members(45, proc) == []


def test_no_proc_means_nothing_found(tmp_path: Path) -> None:
    assert session_members({1}, str(tmp_path / 'absent')) == {}


def test_descendants_are_found_through_every_generation_and_session(tmp_path: Path) -> None:
    proc = fake_proc(
        tmp_path,
        (100, 'S', 100, 100, 1),  # the supervisor
        (101, 'S', 100, 100, 100),  # its engine
        (110, 'S', 110, 110, 101),  # a task, in a session of its own
        (111, 'S', 110, 110, 110),
        (112, 'Z', 110, 110, 110),  # exited: runs nothing
        (120, 'S', 120, 120, 100),  # what a dead task left: re-parented to the supervisor
        (121, 'R', 121, 121, 120),  # ... and what that one started in a session of its own (setsid)
        (200, 'S', 200, 200, 1),  # someone else's
        (201, 'S', 200, 200, 200),
    )
    assert descendants(100, proc) == [101, 110, 111, 120, 121]
    assert descendants(120, proc) == [121]
    assert descendants(300, proc) == []
