"""What a Slurm user finds in `slurm-N.out` (stderr is not a terminal): a start line, plain progress lines, and the
summary with the failed tasks and the exact command that runs them again (issue: results people can use)."""

from __future__ import annotations

import re
import shlex
import sys
import time
from pathlib import Path

import pytest

from ..conftest import Processes
from .helpers import REPO_ROOT, no_traceback, status_path
from .test_contexts_cluster import job_fields, slurm_output

pytestmark = pytest.mark.cluster

PROGRESS = re.compile(r'^disbatch: (\[[#.]+\] )?\d+/24 done \(\d+%\), \d+ failed, \d+ running')


def tasks() -> str:
    """24 tasks on 4 slots, about 6 s in all; every fifth (3, 8, 13, 18, 23) fails with a line on its stderr."""
    return ''.join(
        f'echo "task {task}: bad input" >&2; sleep 0.5; exit {task % 7 + 1}\n'
        if task % 5 == 3
        else f'hostname; sleep {0.5 + task % 3 * 0.5}\n'
        for task in range(24)
    )


@pytest.mark.timeout(120)
def test_a_slurm_job_log_has_the_start_line_progress_lines_and_the_summary(
    procs: Processes, cluster: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / 'Tasks').write_text(tasks())
    disbatch = (
        f'PYTHONPATH={shlex.quote(str(REPO_ROOT))} {shlex.quote(sys.executable)} -m disbatch --progress-every 1 Tasks'
    )
    submit = ['sbatch', '--parsable', '-N', '2', '-n', '4', '-D', str(tmp_path), '--wrap', disbatch]
    job = slurm_output(procs, tmp_path, *submit).strip().split(';')[0]
    assert job.isdigit(), job
    try:
        deadline, state = time.monotonic() + 100, {}
        while time.monotonic() < deadline:
            state = job_fields(slurm_output(procs, tmp_path, 'scontrol', 'show', 'job', job))
            if state.get('JobState') not in ('PENDING', 'CONFIGURING', 'RUNNING', 'COMPLETING'):
                break
            time.sleep(0.5)
        log = (tmp_path / f'slurm-{job}.out').read_text(errors='replace')
        assert state.get('JobState') == 'COMPLETED', f'{state}\n{log}'
        assert '\r' not in log and '\x1b' not in log, log
        lines = log.splitlines()
        status = status_path(tmp_path)
        assert lines[0].startswith('disbatch: run ') and ' started: 24 tasks from Tasks, engines on node' in lines[0]
        assert lines[0].endswith(f'; status file {status}'), log
        assert len([line for line in lines if PROGRESS.match(line)]) >= 3, log
        assert 'disbatch: 24 tasks run in ' in log and ', 5 failed' in log, log
        assert '  failed tasks:' in lines, log
        for task in (3, 8, 13, 18, 23):
            assert f'    task {task} (line {task + 1}): exit {task % 7 + 1}: task {task}: bad input' in lines, log
        rerun = f'  to run the failed tasks again: disbatch --progress-every 1 -r {status} -R Tasks'
        assert rerun in lines, log
        assert lines[-1] == '  the exit code stays 0 although tasks failed (as in disBatch 3.0); -e makes it 1'
        assert no_traceback(log), log
    finally:
        procs.run(['scancel', job], cwd=tmp_path, timeout=15)
