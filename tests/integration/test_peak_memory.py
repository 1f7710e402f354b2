"""A task's peak memory as a real engine reports it (`wait4`'s ru_maxrss): the task's own, and its children's."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ..conftest import Processes
from .test_usage import _task_done

MB = 1_000_000
MIB = 1 << 20
ALLOCATE = f'{sys.executable} -c "b = bytearray({{size}}); b[::4096] = bytes(len(b) // 4096)"'


def _peak(procs: Processes, tmp_path: Path, command: str) -> int:
    usage = _task_done(procs, tmp_path, command, attempt=0).outcome.usage
    assert usage is not None
    return usage.max_rss_bytes


@pytest.mark.timeout(60)
def test_a_task_that_allocates_200_mb_reports_200_to_215_mb(procs: Processes, tmp_path: Path) -> None:
    assert 200 * MB <= _peak(procs, tmp_path, ALLOCATE.format(size=200 * MB)) <= 215 * MB


@pytest.mark.timeout(60)
def test_a_task_whose_child_allocates_100_mb_reports_at_least_that(procs: Processes, tmp_path: Path) -> None:
    command = ALLOCATE.format(size=100 * MB)
    assert _peak(procs, tmp_path, f'{command}; echo the child is done') >= 100 * MB


# Made by the engine itself (posix_spawn), a task kept the engine's ~20 MiB as the floor of its ru_maxrss (Linux
# keeps the old memory's high-water mark at exec); made by the launcher, it reads its own (bash: ~3 MiB).
@pytest.mark.timeout(60)
@pytest.mark.parametrize('command', ['true', 'sleep 1', 'ls'])
def test_a_small_task_reports_at_most_4_mib(procs: Processes, tmp_path: Path, command: str) -> None:
    assert _peak(procs, tmp_path, command) <= 4 * MIB
