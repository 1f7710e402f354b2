"""Contexts added to a live run on this machine: `disbatch -S` starts a driver with no engines, `<stem>_dbUtil.sh
-s localhost:N` adds one (it runs until its engines have exited), `-C N` retires a context after N tasks were given
to it, PERENGINE START/STOP run once on every engine, late ones included.

Engines of a context all report this machine's name, so tasks tell their engine apart by echoing
DISBATCH_ENGINE_RANK (the engine of the first context added is rank 0, the next one rank 1, ...).
"""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pytest

from disbatch.results.record import RecordKind, StatusRecord

from ..conftest import Processes, disbatch_cmd
from .helpers import by_task_id, no_traceback, read_status, run_disbatch, run_files, status_path, wait_for

RANK_TASK = 'echo $DISBATCH_ENGINE_RANK; sleep {seconds}\n'


class LiveRun:
    """A `disbatch -S` driver spawned in a test's directory, its stderr in a file that can be read while it runs."""

    def __init__(self, procs: Processes, directory: Path, tasks: str, *flags: str) -> None:
        self.procs = procs
        self.directory = directory
        (directory / 'Tasks').write_text(tasks)
        self.stderr_path = directory / 'driver.stderr'
        with self.stderr_path.open('wb') as stderr:
            self.driver = procs.spawn(
                disbatch_cmd('-S', *flags, 'Tasks'), cwd=directory, stdout=subprocess.DEVNULL, stderr=stderr
            )
        ready = wait_for(lambda: bool(run_files(directory, 'kvsinfo.txt')) or self.driver.poll() is not None, 15)
        assert ready and self.driver.poll() is None, f'the driver did not start: {self.stderr}'
        self.dbutil = run_files(directory, 'dbUtil.sh')[0]

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors='replace')

    def add_context(self, *flags: str) -> subprocess.Popen[str]:
        """Start `<stem>_dbUtil.sh FLAGS`: it runs until the engines it started have exited."""
        return self.procs.spawn(
            [str(self.dbutil), *flags], cwd=self.directory, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )

    def records(self) -> list[StatusRecord]:
        return read_status(status_path(self.directory))

    def finished_tasks(self) -> int:
        return sum(record.kind is RecordKind.NORMAL for record in self.records())

    def wait(self, timeout: float) -> int:
        try:
            return self.driver.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f'the driver still runs after {timeout} s; stderr:\n{self.stderr}')


def finish_context(context: subprocess.Popen[str], timeout: float = 10) -> tuple[int, str]:
    """Wait for a context process; its exit code and stderr."""
    try:
        _, stderr = context.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f'the context process still runs after {timeout} s')
    return context.returncode, stderr


def engine_rank(record: StatusRecord) -> int:
    """The rank a RANK_TASK echoed (its output snippet is the repr of 'N\\n')."""
    return int(record.out_snippet.strip('\'"').removesuffix('\\n'))


def max_running(intervals: Iterable[tuple[float, float]]) -> int:
    """The most intervals (start, finish) open at one instant."""
    events = sorted([(start, 1) for start, _ in intervals] + [(finish, -1) for _, finish in intervals])
    running = peak = 0
    for _, change in events:  # at equal times a finish (-1) sorts before a start (+1)
        running += change
        peak = max(peak, running)
    return peak


def check_complete(records: list[StatusRecord], count: int) -> dict[int, StatusRecord]:
    tasks = by_task_id(records)
    assert sorted(tasks) == list(range(count)), f'status file incomplete: {sorted(tasks)}'
    assert all(record.return_code == 0 for record in tasks.values()), records
    return tasks


@pytest.mark.timeout(60)
def test_a_context_added_through_dbutil_completes_the_run(procs: Processes, tmp_path: Path) -> None:
    run = LiveRun(procs, tmp_path, 'sleep 0.2\n' * 6)
    assert wait_for(lambda: 'dbUtil.sh' in run.stderr, 5), run.stderr  # it says how to add engines
    assert run.driver.poll() is None and run.finished_tasks() == 0  # nothing runs without a context
    context = run.add_context('-s', 'localhost:2')
    assert run.wait(30) == 0, run.stderr
    code, stderr = finish_context(context)
    assert code == 0, stderr
    check_complete(run.records(), 6)
    assert no_traceback(run.stderr + stderr), run.stderr + stderr
    assert not run_files(tmp_path, 'kvsinfo.txt')


@pytest.mark.timeout(60)
def test_a_second_context_raises_the_concurrency(procs: Processes, tmp_path: Path) -> None:
    count = 40
    run = LiveRun(procs, tmp_path, RANK_TASK.format(seconds=0.5) * count)
    first = run.add_context('-s', 'localhost:1')
    assert wait_for(lambda: run.finished_tasks() >= 3, 15), run.stderr
    added_at = max(record.finish for record in run.records())  # the status file's clock, not ours
    second = run.add_context('-s', 'localhost:3')
    assert run.wait(40) == 0, run.stderr
    for context in (first, second):
        code, stderr = finish_context(context)
        assert code == 0, stderr
    tasks = check_complete(run.records(), count)
    intervals = [(record.start, record.finish) for record in tasks.values()]
    before = [(start, min(finish, added_at)) for start, finish in intervals if start < added_at]
    assert max_running(before) == 1, sorted(before)
    assert max_running(intervals) >= 3, sorted(intervals)
    by_rank = Counter(engine_rank(record) for record in tasks.values())
    assert set(by_rank) == {0, 1} and by_rank[1] > by_rank[0], by_rank  # 3 slots against 1


@pytest.mark.timeout(60)
def test_task_limit_retires_a_context_and_another_finishes(procs: Processes, tmp_path: Path) -> None:
    count = 10
    run = LiveRun(procs, tmp_path, RANK_TASK.format(seconds=0.3) * count)
    limited = run.add_context('-s', 'localhost:2', '-C', '3')
    code, stderr = finish_context(limited, timeout=20)  # its engines stop once they ran their 3 tasks
    assert code == 0, stderr
    assert wait_for(lambda: 'SSH0' in run.stderr and '3 tasks' in run.stderr, 5), run.stderr
    assert run.driver.poll() is None, 'the run ended with tasks left and no engine'
    assert wait_for(lambda: run.finished_tasks() >= 3, 5) and run.finished_tasks() == 3, run.records()
    second = run.add_context('-s', 'localhost:2')
    assert run.wait(30) == 0, run.stderr
    code, stderr = finish_context(second)
    assert code == 0, stderr
    tasks = check_complete(run.records(), count)
    assert Counter(engine_rank(record) for record in tasks.values()) == {0: 3, 1: count - 3}


@pytest.mark.timeout(60)
def test_dbutil_help_and_dbutil_after_the_run(procs: Processes, tmp_path: Path) -> None:
    (tmp_path / 'Tasks').write_text('true\n')
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:1', 'Tasks')
    assert result.returncode == 0, result.describe()
    dbutil = str(run_files(tmp_path, 'dbUtil.sh')[0])
    helped = procs.run([dbutil, '--help'], cwd=tmp_path, timeout=20)
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith('usage:') and '-s' in helped.stdout and '-C' in helped.stdout, helped.stdout
    late = procs.run([dbutil, '-s', 'localhost:1'], cwd=tmp_path, timeout=20)
    assert late.returncode == 1, late
    assert 'over' in late.stderr and no_traceback(late.stderr), late.stderr


@pytest.mark.timeout(60)
def test_per_engine_tasks_run_once_on_every_engine_late_ones_too(procs: Processes, tmp_path: Path) -> None:
    count = 12
    tasks_file = (
        '#DISBATCH PERENGINE START echo start $DISBATCH_ENGINE_RANK >> pe.txt\n'
        '#DISBATCH PERENGINE STOP echo stop $DISBATCH_ENGINE_RANK >> pe.txt\n' + RANK_TASK.format(seconds=0.5) * count
    )
    run = LiveRun(procs, tmp_path, tasks_file)
    first = run.add_context('-s', 'localhost:1')
    assert wait_for(lambda: run.finished_tasks() >= 2, 15), run.stderr
    late = run.add_context('-s', 'localhost:2')
    assert run.wait(40) == 0, run.stderr
    for context in (first, late):
        code, stderr = finish_context(context)
        assert code == 0, stderr
    assert Counter((tmp_path / 'pe.txt').read_text().splitlines()) == {
        'start 0': 1,
        'start 1': 1,
        'stop 0': 1,
        'stop 1': 1,
    }
    records = run.records()
    tasks = check_complete(records, count)
    per_engine = [record for record in records if record.kind is RecordKind.PER_ENGINE]
    assert Counter(record.command.split()[0] for record in per_engine) == {'echo': 4}, per_engine
    assert all(record.return_code == 0 for record in per_engine), per_engine
    starts = sorted((record for record in per_engine if ' start ' in record.command), key=lambda r: r.start)
    assert len(starts) == 2
    # the late engine joined after tasks had finished, and ran its START before any of its tasks
    first_finish = min(record.finish for record in tasks.values())
    late_tasks = [record for record in tasks.values() if engine_rank(record) == 1]
    assert late_tasks and starts[1].start >= first_finish, (starts, first_finish)
    assert starts[1].finish <= min(record.start for record in late_tasks)
