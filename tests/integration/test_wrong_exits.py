"""Exits that used to be wrong (issue 10): a failed --taskcommand, a context that left on purpose, several bad
directives. Each test fails on the code before the fix."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ..conftest import Processes, disbatch_cmd
from .helpers import messages, read_status, run_disbatch, run_files, status_path, wait_for, write_task_file

pytestmark = pytest.mark.timeout(60)


def test_a_taskcommand_that_exits_non_zero_fails_the_run_with_one_line(procs: Processes, tmp_path: Path) -> None:
    finished = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '--taskcommand', 'exit 3', timeout=20)
    assert finished.returncode != 0, finished.describe()
    lines = messages(finished.stderr)
    assert len(lines) == 1, finished.describe()
    assert "'exit 3'" in lines[0] and 'status 3' in lines[0], finished.describe()


def test_a_context_at_its_task_limit_makes_the_run_wait_for_another(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', ''.join(f'echo {n} > done_{n}\n' for n in range(5)))
    driver = procs.spawn(
        disbatch_cmd('-s', 'localhost:2', '-C', '2', '-p', 'run', 'Tasks'),
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert wait_for(lambda: len(list(tmp_path.glob('done_*'))) >= 2, timeout=20), 'the first context ran nothing'
    log = tmp_path / 'run_driver.log'
    assert wait_for(lambda: 'waiting for a context' in log.read_text(), timeout=15), log.read_text()
    assert driver.poll() is None, 'the run ended instead of waiting for a context'
    assert 'run_dbUtil.sh -s HOST:N' in log.read_text()
    added = procs.run([str(tmp_path / 'run_dbUtil.sh'), '-s', 'localhost:2'], cwd=tmp_path, timeout=30)
    assert added.returncode == 0, added.stderr
    assert driver.wait(timeout=30) == 0
    _, stderr = driver.communicate(timeout=5)
    assert 'waiting for a context to be added' in stderr
    assert sorted(record.task_id for record in read_status(status_path(tmp_path))) == [0, 1, 2, 3, 4]


def test_every_bad_directive_is_reported_before_anything_runs(procs: Processes, tmp_path: Path) -> None:
    write_task_file(
        tmp_path / 'Tasks', 'touch marker\n#DISBATCH FOO\necho ok\n#DISBATCH REPEAT x y\n#DISBATCH BARRIER a b\n'
    )
    finished = run_disbatch(procs, tmp_path, '-s', 'localhost:2', 'Tasks')
    assert finished.returncode != 0, finished.describe()
    lines = messages(finished.stderr)
    assert [line.split(': ')[1] for line in lines] == ['Tasks:2', 'Tasks:4', 'Tasks:5'], finished.describe()
    assert not (tmp_path / 'marker').exists()
    assert run_files(tmp_path, 'status.txt') == []


def test_bad_directives_past_the_cap_are_summed_up(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', '#DISBATCH FOO\n' * 100)
    finished = run_disbatch(procs, tmp_path, '-s', 'localhost:2', 'Tasks')
    assert finished.returncode != 0, finished.describe()
    lines = messages(finished.stderr)
    assert len(lines) == 21 and 'only the first 20' in lines[-1], finished.describe()
