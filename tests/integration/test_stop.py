"""Stopping a run through the real CLI: `--fail-fast`, SIGINT, SIGTERM, SIGKILL of the driver (SPEC §3: every running
task is stopped, whole process groups, no orphan; what was running is recorded). The reference left orphans and
took 16-20 s (reference §1.3).

The `procs` fixture marks every process a test starts (the driver, its engines and their tasks, whatever session
they move to), so `procs.alive()` lists exactly what this test left running.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from disbatch.results.record import RecordKind, StatusRecord

from ..conftest import Processes, disbatch_cmd
from .helpers import by_task_id, read_status, run_disbatch, run_files, status_path, wait_for, write_task_file

# Two tasks that say they started, then sleep; a third that must never start (there are only 2 slots).
SLEEPERS = 'touch started_$DISBATCH_TASKID; sleep 100\n' * 2 + 'touch must_not_run\n'
LEFTOVER_SECONDS = 2.0


@pytest.fixture(params=[(), ('--fork-tasks',)], ids=['exec', 'fork'])
def mode(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """Every test here runs twice: tasks executed by bash (the default) and forked by slot shells (--fork-tasks)."""
    return tuple(request.param)


def nothing_left(procs: Processes) -> bool:
    return wait_for(lambda: not procs.alive(), timeout=LEFTOVER_SECONDS)


def is_engine(pid: int) -> bool:
    try:
        return b'disbatch.engine' in Path(f'/proc/{pid}/cmdline').read_bytes()
    except OSError:
        return True  # gone meanwhile


def start_sleepers(procs: Processes, tmp_path: Path, mode: tuple[str, ...]) -> subprocess.Popen[str]:
    write_task_file(tmp_path / 'Tasks', SLEEPERS)
    driver = procs.spawn(
        disbatch_cmd(*mode, '-s', 'localhost:2', 'Tasks'), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    started = wait_for(lambda: len(list(tmp_path.glob('started_*'))) == 2 or driver.poll() is not None, timeout=15)
    assert started and driver.poll() is None, driver.communicate(timeout=5)
    return driver


def check_stopped_tasks(records: list[StatusRecord], task_ids: set[int]) -> None:
    tasks = by_task_id(records, RecordKind.INTERRUPTED)  # stopped by the run itself: a plain -r runs them again
    assert set(tasks) == task_ids, records
    assert not by_task_id(records), records
    for record in tasks.values():
        assert record.return_code < 0, record  # killed by a signal
        assert record.finish - record.start < 10, record


@pytest.mark.timeout(30)
@pytest.mark.parametrize(('signum', 'exit_code'), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_every_task_and_records_them(
    procs: Processes, tmp_path: Path, mode: tuple[str, ...], signum: signal.Signals, exit_code: int
) -> None:
    driver = start_sleepers(procs, tmp_path, mode)
    sent = time.monotonic()
    driver.send_signal(signum)
    try:
        _, stderr = driver.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f'the driver did not exit within 10 s of {signum.name}')
    took = time.monotonic() - sent
    assert driver.returncode == exit_code, stderr
    assert took < 2.0, f'{signum.name}: driver took {took:.2f} s to exit'
    assert 'Traceback' not in stderr, stderr
    assert nothing_left(procs), f'left running: {procs.alive()}'
    check_stopped_tasks(read_status(status_path(tmp_path)), {0, 1})
    assert not (tmp_path / 'must_not_run').exists()
    assert run_files(tmp_path, 'kvsinfo.txt') == []


@pytest.mark.timeout(30)
def test_sigkill_of_the_driver_takes_engines_and_tasks_down(
    procs: Processes, tmp_path: Path, mode: tuple[str, ...]
) -> None:
    driver = start_sleepers(procs, tmp_path, mode)
    assert len(procs.alive()) >= 4  # driver, engine, 2 tasks (bash, sleep)
    driver.send_signal(signal.SIGKILL)
    driver.communicate(timeout=5)
    # the engine notices at once (it watches the driver's pidfd) and kills its tasks' process groups
    tasks_gone = wait_for(lambda: all(is_engine(pid) for pid in procs.alive()), timeout=1.0)
    assert tasks_gone, f'tasks left running: {[pid for pid in procs.alive() if not is_engine(pid)]}'
    # the engine itself may linger up to ~2 s (its last message to the dead driver: zmq linger)
    assert wait_for(lambda: not procs.alive(), timeout=3.0), f'left running: {procs.alive()}'
    assert not (tmp_path / 'must_not_run').exists()


@pytest.mark.timeout(30)
def test_fail_fast_stops_running_tasks(procs: Processes, tmp_path: Path, mode: tuple[str, ...]) -> None:
    # the reference's CI case, with the promise of its help text kept: the sleep is interrupted and recorded
    write_task_file(tmp_path / 'Tasks', 'sleep 100\nsleep 0.3; exit 1\ntouch A.txt\n')
    result = run_disbatch(procs, tmp_path, *mode, '-s', 'localhost:2', '--fail-fast', 'Tasks', timeout=20)
    assert result.returncode == 1, result.describe()
    assert result.seconds < 4, f'--fail-fast took {result.seconds:.2f} s'
    assert nothing_left(procs), f'left running: {procs.alive()}'
    assert not (tmp_path / 'A.txt').exists()
    status = read_status(status_path(tmp_path))
    records = by_task_id(status) | by_task_id(status, RecordKind.INTERRUPTED)
    assert set(records) == {0, 1}
    assert records[1].return_code == 1
    assert records[1].failed and not records[1].interrupted
    assert records[0].return_code < 0
    assert records[0].interrupted and not records[0].failed  # the innocent sleep was stopped by the run
    assert 'fail' in result.stderr.lower() and 'Traceback' not in result.stderr


@pytest.mark.timeout(30)
def test_fail_fast_without_a_failure_runs_everything(procs: Processes, tmp_path: Path, mode: tuple[str, ...]) -> None:
    write_task_file(tmp_path / 'Tasks', 'touch A.txt\ntouch B.txt\n')
    result = run_disbatch(procs, tmp_path, *mode, '-s', 'localhost:2', '--fail-fast', 'Tasks')
    assert result.returncode == 0, result.describe()
    assert (tmp_path / 'A.txt').exists() and (tmp_path / 'B.txt').exists()


@pytest.mark.timeout(30)
def test_normal_end_leaves_no_process(procs: Processes, tmp_path: Path, mode: tuple[str, ...]) -> None:
    write_task_file(tmp_path / 'Tasks', '#DISBATCH PERENGINE STOP true\n' + 'true\n' * 5)
    result = run_disbatch(procs, tmp_path, *mode, '-s', 'localhost:3', 'Tasks')
    assert result.returncode == 0, result.describe()
    assert nothing_left(procs), f'left running: {procs.alive()}'


@pytest.mark.timeout(30)
def test_background_child_of_a_task_does_not_hold_the_run(
    procs: Processes, tmp_path: Path, mode: tuple[str, ...]
) -> None:
    # a task that leaves a child holding its stdout must not keep the run (or the child) alive forever
    write_task_file(tmp_path / 'Tasks', '(sleep 100 &) ; echo done\n')
    result = run_disbatch(procs, tmp_path, *mode, '-s', 'localhost:2', 'Tasks', timeout=20)
    assert result.returncode == 0, result.describe()
    assert result.seconds < 5, f'took {result.seconds:.2f} s'
    (record,) = read_status(status_path(tmp_path))
    assert record.return_code == 0
