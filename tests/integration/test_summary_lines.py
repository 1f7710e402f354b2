"""Lines of the end-of-run summary and of other messages that used to say the wrong thing (issue 23, item 6): the
exit-code line under -f, a BARRIER CHECK stop, a stderr snippet cut mid-word, the no-GPU error with a log prefix,
`disbatch report` of a missing file. Each test fails on the code before the fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ..conftest import Processes, disbatch_cmd
from .helpers import run_disbatch, write_task_file

pytestmark = pytest.mark.timeout(60)


def _summary(stderr: str) -> list[str]:
    lines = stderr.splitlines()
    start = max(index for index, line in enumerate(lines) if re.match(r'disbatch: \d+ tasks? run in', line))
    return lines[start:]


def test_fail_fast_says_why_it_stopped_and_the_exit_code_it_has(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'true\nexit 3\nsleep 5\n')
    finished = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '-f', 'Tasks')
    assert finished.returncode == 1, finished.describe()
    summary = _summary(finished.stderr)
    assert '  stopped early: task 1 (line 2) failed with return code 3; --fail-fast stops the run' in summary
    assert summary[-1] == '  exit code 1: the run stopped early', finished.describe()
    assert not any('stays 0' in line for line in summary), finished.describe()


def test_a_barrier_check_stop_says_why_and_that_the_exit_code_stays_0(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'true\nexit 3\n#DISBATCH BARRIER CHECK\ntouch not_run\n')
    finished = run_disbatch(procs, tmp_path, '-s', 'localhost:2', 'Tasks')
    assert finished.returncode == 0, finished.describe()
    summary = _summary(finished.stderr)
    assert summary[0].endswith(', 1 failed, 1 not run (stopped)'), summary  # the task after the barrier
    why = (
        '  stopped early: BARRIER CHECK at line 3: a task since the previous barrier failed; '
        'the rest of the run is skipped'
    )
    assert why in summary, finished.describe()
    last = '  the exit code stays 0 although the run stopped early (as in disBatch 3.0); -e makes it 1'
    assert summary[-1] == last, finished.describe()
    assert not (tmp_path / 'not_run').exists()
    with_e = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '-e', 'Tasks')
    assert with_e.returncode == 1, with_e.describe()
    assert '  exit code 1: tasks failed (-e)' in _summary(with_e.stderr), with_e.describe()


def test_the_stderr_snippet_of_a_failed_task_is_cut_between_words(procs: Processes, tmp_path: Path) -> None:
    message = 'No such file or directory: the configuration file /etc/some/where/quite/deep.conf was not found'
    write_task_file(
        tmp_path / 'Tasks', f'echo "{message}" >&2; exit 2\necho "short one here and then: done" >&2; exit 4\n'
    )
    finished = run_disbatch(procs, tmp_path, '-s', 'localhost:1', 'Tasks')
    summary = _summary(finished.stderr)
    assert '    task 0 (line 1): exit 2: No such file or directory: the [...] was not found' in summary, summary
    assert '    task 1 (line 2): exit 4: short one here and then: done' in summary, summary


def test_the_no_gpu_error_is_one_plain_line(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'true\n')
    finished = run_disbatch(
        procs, tmp_path, '-s', 'localhost:1', '--gpus-per-task', '1', 'Tasks',
        env={'CUDA_VISIBLE_DEVICES': '', 'PATH': '/usr/bin:/bin'},
    )  # fmt: skip
    line = next(line for line in finished.stderr.splitlines() if 'no GPU to share' in line)
    assert line.endswith(
        'before joining the run: --gpus-per-task 1: CUDA_VISIBLE_DEVICES is empty here: no GPU to share'
    )
    assert 'ERROR' not in line and not re.search(r'\d\d:\d\d:\d\d', line), line


def test_report_of_a_missing_file_says_so_in_words(procs: Processes, tmp_path: Path) -> None:
    missing = procs.run(disbatch_cmd('report', 'nope.jsonl'), cwd=tmp_path, timeout=30)
    assert missing.returncode == 1
    assert missing.stderr == 'disbatch report: cannot read nope.jsonl: No such file or directory\n'
