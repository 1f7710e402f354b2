"""Resume chains through the real CLI (issue 22 item 1, issue 23 items 3 and 6): whatever stops a resumed run
(Ctrl-C, SIGKILL, the walltime), the command it prints, or its newest status file alone, runs no finished task again;
one `-r` takes every status file of the chain (the Readme's `-r Tasks_disBatch_*_status.txt Tasks`).

300 tasks; every third one fails while the file `FAIL` exists. A task that succeeds appends its id to `markers`, so
a line twice there is a finished task run again.
"""

from __future__ import annotations

import shlex
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from disbatch.driver.core.walltime import EXIT_WALLTIME
from disbatch.results.record import RecordKind

from ..conftest import Processes, disbatch_cmd
from .helpers import messages, no_traceback, read_status, run_disbatch, run_files, wait_for, write_task_file

TASKS = 300
SLOTS = '4'
RERUN_PREFIX = 'again: disbatch '


def task_file(directory: Path) -> None:
    lines = []
    for task in range(TASKS):
        if task % 3 == 2:
            lines.append(f'sleep 0.2; [ -e FAIL ] && exit 1; echo {task} >> markers')
        else:
            lines.append(f'echo {task} >> markers')
    write_task_file(directory / 'Tasks', '\n'.join(lines) + '\n')


def markers(directory: Path) -> Counter[int]:
    path = directory / 'markers'
    return Counter(int(line) for line in path.read_text().split()) if path.exists() else Counter()


def first_run(procs: Processes, directory: Path) -> Path:
    """Run 1, with FAIL: 100 tasks fail; then FAIL is removed."""
    task_file(directory)
    (directory / 'FAIL').touch()
    result = run_disbatch(procs, directory, '-s', f'localhost:{SLOTS}', 'Tasks', timeout=60)
    assert result.returncode == 0, result.describe()
    (directory / 'FAIL').unlink()
    assert sum(markers(directory).values()) == 200
    return run_files(directory, 'status.txt')[0]


def stopped(procs: Processes, directory: Path, argv: list[str], signum: signal.Signals) -> str:
    """Run `disbatch ARGV` and stop it with `signum` once 12 more tasks have finished; its stderr."""
    before = sum(markers(directory).values())
    driver = procs.spawn(disbatch_cmd(*argv), cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    progressed = wait_for(lambda: sum(markers(directory).values()) >= before + 12 or driver.poll() is not None, 30)
    assert progressed and driver.poll() is None, driver.communicate(timeout=5)
    driver.send_signal(signum)
    _, stderr = driver.communicate(timeout=20)
    assert driver.returncode == (-signum if signum == signal.SIGKILL else 128 + signum), stderr
    assert sum(markers(directory).values()) < TASKS, 'the run was not stopped before the end'
    return stderr


def printed_command(stderr: str) -> list[str]:
    """The re-run command the summary printed, as arguments of `disbatch`."""
    line = next((line for line in stderr.splitlines() if RERUN_PREFIX in line), None)
    assert line is not None, stderr
    return shlex.split(line.split(RERUN_PREFIX, 1)[1])


def newest_status(directory: Path, known: set[Path]) -> Path:
    new = [path for path in run_files(directory, 'status.txt') if path not in known]
    assert len(new) == 1, new
    known.add(new[0])
    return new[0]


@pytest.mark.timeout(150)
def test_the_printed_command_of_a_stopped_resume_of_a_resume_runs_no_finished_task_again(
    procs: Processes, tmp_path: Path
) -> None:
    known = {first_run(procs, tmp_path)}
    argv = ['-s', f'localhost:{SLOTS}', '-r', str(next(iter(known))), '-R', 'Tasks']
    for _ in range(3):  # a resume, a resume of it, and a resume of that, each stopped by Ctrl-C
        stderr = stopped(procs, tmp_path, argv, signal.SIGINT)
        argv = printed_command(stderr)
        status = newest_status(tmp_path, known)
        assert argv[argv.index('-r') + 1] == str(status), argv  # this run's file alone: it holds the earlier ones
        assert [name for name, seen in markers(tmp_path).items() if seen > 1] == []
    result = run_disbatch(procs, tmp_path, *argv, timeout=60)
    assert result.returncode == 0, result.describe()
    assert markers(tmp_path) == Counter(range(TASKS)), 'a task finished twice, or never'


def recorded_done(status: Path) -> set[int]:
    """The tasks `status` says succeeded, in this run or an earlier one."""
    kinds = (RecordKind.NORMAL, RecordKind.SKIPPED)
    return {record.task_id for record in read_status(status) if record.kind in kinds and record.return_code == 0}


@pytest.mark.timeout(150)
def test_a_resume_killed_by_sigkill_leaves_a_status_file_that_alone_accounts_for_every_finished_task(
    procs: Processes, tmp_path: Path
) -> None:
    known = {first_run(procs, tmp_path)}
    resume_from = next(iter(known))
    for retry in (['-R'], [], [], []):  # SIGKILLed three times; each resume names only the newest status file
        done, before = recorded_done(resume_from), markers(tmp_path)
        argv = ['-s', f'localhost:{SLOTS}', '-r', str(resume_from), *retry, 'Tasks']
        if len(known) < 4:
            stopped(procs, tmp_path, argv, signal.SIGKILL)
        else:
            result = run_disbatch(procs, tmp_path, *argv, timeout=60)
            assert result.returncode == 0, result.describe()
        resume_from = newest_status(tmp_path, known)
        # A task may end unrecorded while the driver dies (its result on the way): it runs again, rightly. A task
        # the status file said had finished must not.
        again = {
            task: markers(tmp_path)[task] - before[task] for task in done if markers(tmp_path)[task] > before[task]
        }
        assert again == {}, f'finished tasks run again: {again}'
        assert done <= recorded_done(resume_from), 'the new status file forgot finished tasks'
    assert recorded_done(resume_from) == set(range(TASKS))
    assert set(markers(tmp_path)) == set(range(TASKS))


@pytest.mark.timeout(150)
def test_one_dash_r_takes_every_status_file_of_the_chain_as_the_readme_globs_them(
    procs: Processes, tmp_path: Path
) -> None:
    known = {first_run(procs, tmp_path)}
    stopped(procs, tmp_path, ['-s', f'localhost:{SLOTS}', '-r', *map(str, known), '-R', 'Tasks'], signal.SIGINT)
    newest_status(tmp_path, known)
    # `-r Tasks_disBatch_*_status.txt Tasks` after two runs: two files after one -r, then the task file
    files = sorted(str(path.name) for path in known)
    stopped(procs, tmp_path, ['-s', f'localhost:{SLOTS}', '-R', '-r', *files, 'Tasks'], signal.SIGINT)
    newest_status(tmp_path, known)
    files = sorted(str(path.name) for path in known)
    result = run_disbatch(procs, tmp_path, '-s', f'localhost:{SLOTS}', '-R', '-r', *files, 'Tasks', timeout=60)
    assert result.returncode == 0, result.describe()
    assert markers(tmp_path) == Counter(range(TASKS))


@pytest.mark.timeout(60)
def test_a_plain_resume_says_how_many_skipped_tasks_had_failed_and_how_to_run_them(
    procs: Processes, tmp_path: Path
) -> None:
    write_task_file(tmp_path / 'Tasks', 'true\nexit 1\ntrue\nexit 2\ntrue\n')
    (tmp_path / 'run1').mkdir()
    assert run_disbatch(procs, tmp_path, '-s', 'localhost:2', '-p', 'run1/', 'Tasks').returncode == 0
    status = run_files(tmp_path / 'run1', 'status.txt')[0]
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '-r', str(status), 'Tasks')
    assert result.returncode == 0, result.describe()
    assert '5 skipped (done by an earlier run; 2 of them had failed: add -R to run them again)' in ' '.join(
        result.stderr.split()
    ), result.stderr


@pytest.mark.timeout(60)
def test_the_walltime_hint_gives_the_whole_command(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'sleep 30\n' * 3)
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '--walltime', '3s', 'Tasks')
    assert result.returncode == EXIT_WALLTIME, result.describe()
    assert no_traceback(result.stderr)
    status = run_files(tmp_path, 'status.txt')[0]
    hint = next(line for line in messages(result.stderr) if 'left for the end of the allocation' in line)
    assert hint.endswith(f'resume with disbatch -s localhost:2 --walltime 3s -r {status} Tasks'), hint
