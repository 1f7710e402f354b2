"""A task's peak memory as a real engine reports it (`wait4`'s ru_maxrss): the task's own, and its children's."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from ..conftest import Processes
from .helpers import run_disbatch, write_task_file
from .test_usage import _task_done

MB = 1_000_000
MIB = 1 << 20
ALLOCATE = f'{sys.executable} -c "b = bytearray({{size}})"'  # zero-filled: every page touched


def _peak(procs: Processes, tmp_path: Path, command: str) -> int:
    outcome = _task_done(procs, tmp_path, command, attempt=0).outcome
    assert outcome.return_code == 0 and outcome.usage is not None, outcome
    return outcome.usage.max_rss_bytes


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


def _finished(path: Path) -> dict[int, dict[str, Any]]:
    events = [json.loads(line) for line in path.read_text().splitlines()]
    return {event['task_id']: event for event in events if event['event'] == 'task_finished'}


@pytest.mark.timeout(90)
def test_a_launcher_that_dies_is_replaced_and_the_tasks_run_on(procs: Processes, tmp_path: Path) -> None:
    # The task's parent is the engine (the launcher makes it with CLONE_PARENT); its other child is the launcher.
    kill_launcher = "kill -9 $(ps -o pid=,comm= --ppid $PPID | awk '$2 ~ /^task-launcher/ {print $1}')"
    write_task_file(tmp_path / 'Tasks', f'{kill_launcher}\nsleep 0.2\ntrue\nls\n')
    finished = run_disbatch(procs, tmp_path, '-s', 'localhost:1', '--json', 'events.jsonl', 'Tasks')
    assert finished.returncode == 0, finished.stderr
    assert 'the task launcher has exited; starting another' in finished.stderr + _engine_logs(tmp_path)
    done = _finished(tmp_path / 'events.jsonl')
    assert [done[task]['return_code'] for task in range(4)] == [0, 0, 0, 0]
    assert all(done[task]['max_rss_bytes'] <= 4 * MIB for task in (1, 2, 3)), done


@pytest.mark.timeout(90)
def test_without_a_compiler_the_engine_starts_the_tasks_itself(procs: Processes, tmp_path: Path) -> None:
    # No cc on PATH and an empty cache: no launcher; the tasks run as before (their figure's floor is the engine's).
    write_task_file(tmp_path / 'Tasks', 'true\n/bin/ls\n')
    environment = {'PATH': str(tmp_path / 'nothing'), 'XDG_CACHE_HOME': str(tmp_path / 'cache')}
    finished = run_disbatch(procs, tmp_path, '-s', 'localhost:1', '--json', 'events.jsonl', 'Tasks', env=environment)
    assert finished.returncode == 0, finished.stderr
    done = _finished(tmp_path / 'events.jsonl')
    assert [done[task]['return_code'] for task in range(2)] == [0, 0]
    assert all(done[task]['max_rss_bytes'] > 8 * MIB for task in range(2)), done


def _engine_logs(directory: Path) -> str:
    return ''.join(path.read_text(errors='replace') for path in directory.rglob('*engine*.log'))
