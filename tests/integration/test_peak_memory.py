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


# Not met yet (issue 28): a task is exec'd from the engine's memory (posix_spawn), and Linux keeps that memory's
# high-water mark in the task's ru_maxrss, so a small task reads the engine's ~20 MiB. `python -m
# bench.spawn_memory` measures the launchers that would meet it, and what they cost per task.
@pytest.mark.xfail(strict=True, reason="issue 28: small tasks read the engine's own size")
@pytest.mark.timeout(60)
@pytest.mark.parametrize('command', ['true', 'sleep 1', 'ls'])
def test_a_small_task_reports_at_most_4_mib(procs: Processes, tmp_path: Path, command: str) -> None:
    assert _peak(procs, tmp_path, command) <= 4 * MIB
