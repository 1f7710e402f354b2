"""What a task leaves running in the background (SPEC §6: a run never leaves a process behind).

A leftover is logged — in the engine's log and the driver log, with the task id and pids — when its task's main
process exits; it is ended (SIGTERM, SIGKILL 1 s later) when its engine leaves, or at once with --kill-leftovers.
"Gone" is checked three ways: the pid, the process group, and the test's marker on every process it started.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from ..conftest import Processes, disbatch_cmd
from .helpers import run_disbatch, run_files, wait_for, write_task_file

GONE_WITHIN_SECONDS = 2.0
# The task backgrounds `sleep 60`, notes its pid and process group, and exits at once.
BACKGROUNDER = 'sleep 60 & echo $! > bg.pid; ps -o pgid= -p $! > bg.pgid; echo started\n'


@pytest.fixture(params=[(), ('--fork-tasks',)], ids=['exec', 'fork'])
def mode(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """Every test here runs twice: tasks executed by bash (the default) and forked by slot shells (--fork-tasks)."""
    return tuple(request.param)


def running(pid: int) -> bool:
    """Whether `pid` runs (a zombie runs nothing: it only waits for init to reap it)."""
    try:
        text = Path(f'/proc/{pid}/stat').read_text()
    except OSError:
        return False
    return text.rpartition(')')[2].split()[0] != 'Z'


def group_running(pgid: int) -> list[int]:
    """The pids still running in process group `pgid` (field 5 of /proc/PID/stat)."""
    found = []
    for entry in Path('/proc').iterdir():
        try:
            fields = (entry / 'stat').read_text().rpartition(')')[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != 'Z':
            found.append(int(entry.name))
    return found


def all_gone(procs: Processes, pid: int, pgid: int) -> bool:
    return wait_for(
        lambda: not running(pid) and not group_running(pgid) and not procs.alive(), timeout=GONE_WITHIN_SECONDS
    )


def driver_log(directory: Path) -> str:
    (log,) = run_files(directory, 'driver.log')
    return log.read_text()


@pytest.mark.timeout(30)
def test_a_backgrounded_sleep_is_logged_and_ended_when_the_run_ends(
    procs: Processes, tmp_path: Path, mode: tuple[str, ...]
) -> None:
    write_task_file(tmp_path / 'Tasks', BACKGROUNDER)
    result = run_disbatch(procs, tmp_path, *mode, '-s', 'localhost:1', 'Tasks')
    assert result.returncode == 0, result.describe()
    pid, pgid = int((tmp_path / 'bg.pid').read_text()), int((tmp_path / 'bg.pgid').read_text())
    assert all_gone(procs, pid, pgid), f'left running: pid {pid}, group {group_running(pgid)}, {procs.alive()}'
    text = driver_log(tmp_path)
    assert 'task 0 on engine 0' in text and f'pid {pid}' in text, text
    assert 'leaving 1 process(es) running' in text, text


@pytest.mark.timeout(30)
def test_a_leftover_that_ignores_sigterm_is_killed(procs: Processes, tmp_path: Path, mode: tuple[str, ...]) -> None:
    write_task_file(
        tmp_path / 'Tasks',
        'bash -c \'trap "" TERM; while :; do sleep 0.1; done\' & echo $! > bg.pid; ps -o pgid= -p $! > bg.pgid\n',
    )
    result = run_disbatch(procs, tmp_path, *mode, '-s', 'localhost:1', 'Tasks')
    assert result.returncode == 0, result.describe()
    pid, pgid = int((tmp_path / 'bg.pid').read_text()), int((tmp_path / 'bg.pgid').read_text())
    assert all_gone(procs, pid, pgid), f'left running: pid {pid}, group {group_running(pgid)}, {procs.alive()}'
    (engine_log,) = run_files(tmp_path, 'engine_wrap.log')
    assert f'killed (SIGKILL) leftover pid {pid}' in engine_log.read_text()


@pytest.mark.timeout(30)
def test_a_leftover_in_a_process_group_of_its_own_is_ended_too(
    procs: Processes, tmp_path: Path, mode: tuple[str, ...]
) -> None:
    # `set -m`: the background job gets a process group of its own, but it stays in the task's session
    write_task_file(tmp_path / 'Tasks', 'set -m; ' + BACKGROUNDER)
    result = run_disbatch(procs, tmp_path, *mode, '-s', 'localhost:1', 'Tasks')
    assert result.returncode == 0, result.describe()
    pid, pgid = int((tmp_path / 'bg.pid').read_text()), int((tmp_path / 'bg.pgid').read_text())
    assert pgid == pid  # its own group
    assert all_gone(procs, pid, pgid), f'left running: pid {pid}, group {group_running(pgid)}, {procs.alive()}'


@pytest.mark.timeout(30)
@pytest.mark.parametrize(('flags', 'seen'), [((), 'running'), (('--kill-leftovers',), 'ended')])
def test_kill_leftovers_ends_them_at_their_tasks_end(
    procs: Processes, tmp_path: Path, mode: tuple[str, ...], flags: tuple[str, ...], seen: str
) -> None:
    # one slot: the second task runs after the first, and looks at what the first left
    look = 'sleep 1.5; if [ "$(ps -o stat= -p $(cat bg.pid) | cut -c1)" = S ]; then echo running; else echo ended; fi'
    write_task_file(tmp_path / 'Tasks', BACKGROUNDER + f'{look} > seen.txt\n')
    result = run_disbatch(procs, tmp_path, *mode, '-s', 'localhost:1', *flags, 'Tasks')
    assert result.returncode == 0, result.describe()
    assert (tmp_path / 'seen.txt').read_text().strip() == seen
    pid, pgid = int((tmp_path / 'bg.pid').read_text()), int((tmp_path / 'bg.pgid').read_text())
    assert all_gone(procs, pid, pgid), f'left running: pid {pid}, group {group_running(pgid)}, {procs.alive()}'


@pytest.mark.timeout(30)
def test_sigterm_to_the_driver_ends_leftovers_too(procs: Processes, tmp_path: Path, mode: tuple[str, ...]) -> None:
    write_task_file(tmp_path / 'Tasks', BACKGROUNDER + 'sleep 100\n')
    driver = procs.spawn(
        disbatch_cmd(*mode, '-s', 'localhost:1', 'Tasks'), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert wait_for(lambda: 'leaving 1 process' in ''.join(p.read_text() for p in tmp_path.glob('*driver.log')), 15)
    time.sleep(0.2)  # the second task has started
    driver.send_signal(signal.SIGTERM)
    _, stderr = driver.communicate(timeout=10)
    assert driver.returncode == 143, stderr
    pid, pgid = int((tmp_path / 'bg.pid').read_text()), int((tmp_path / 'bg.pgid').read_text())
    assert all_gone(procs, pid, pgid), f'left running: pid {pid}, group {group_running(pgid)}, {procs.alive()}'
