"""Walltime on the real test cluster: a Slurm job with a short time limit drains before it, submits its follow-up
(`--resubmit`), and the chain of jobs does every task exactly once.

The cluster keeps no accounting (CI_SLURM_ACCOUNTING=0: no `sacct`), so the jobs' ends are read from `scontrol show
job` (JobState, ExitCode), which keeps a finished job for MinJobAge (300 s). Slurm keeps time limits in whole
minutes: `-t 0:01:30` is a limit of 2 minutes.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from ..conftest import Processes
from .helpers import disbatch_job_script, no_traceback

pytestmark = pytest.mark.cluster

TASKS = 28
SECONDS = 20  # 4 slots, a 2-minute limit, a 12 s margin: 5 rounds of 4 tasks fit in a job, so 2 jobs do 28 tasks
RUNNING = ('PENDING', 'CONFIGURING', 'RUNNING', 'COMPLETING')


def runs(directory: Path, what: str, job: str | None = None) -> dict[int, int]:
    """Task number -> how many times it `started` or `ended` (marker files: a line with the Slurm job id each), in
    `job` only when given (the follow-up may already be running its first tasks when the first job is read)."""
    found = {}
    for path in sorted(directory.glob(f'{what}_*')):
        lines = path.read_text().split()
        count = len(lines) if job is None else lines.count(job)
        if count:
            found[int(path.name.split('_')[1])] = count
    return found


def job_fields(procs: Processes, cwd: Path, job: str) -> dict[str, str]:
    result = procs.run(['scontrol', 'show', 'job', job], cwd=cwd, timeout=15)
    assert result.returncode == 0, result.stderr
    return dict(re.findall(r'(\w[\w/:]*)=(\S*)', result.stdout))


def wait_until_over(procs: Processes, cwd: Path, job: str, seconds: float) -> dict[str, str]:
    deadline = time.monotonic() + seconds
    while True:
        state = job_fields(procs, cwd, job)
        if state.get('JobState') not in RUNNING or time.monotonic() > deadline:
            return state
        time.sleep(1)


@pytest.mark.timeout(660)
def test_a_short_job_drains_and_its_follow_up_finishes_every_task_once(procs: Processes, tmp_path: Path) -> None:
    lines = [
        f'echo $SLURM_JOB_ID >> started_{n}; sleep {SECONDS}; echo $SLURM_JOB_ID >> ended_{n}' for n in range(TASKS)
    ]
    (tmp_path / 'Tasks').write_text('\n'.join(lines) + '\n')
    job_script = disbatch_job_script(tmp_path, '--resubmit', '3', 'Tasks')
    submit = ['sbatch', '--parsable', '-t', '0:01:30', '-N', '1', '-n', '4', '-D', str(tmp_path), str(job_script)]
    result = procs.run(submit, cwd=tmp_path, timeout=15)
    assert result.returncode == 0, result.stderr
    jobs = [result.stdout.strip().split(';')[0]]
    try:
        first = wait_until_over(procs, tmp_path, jobs[0], 200)
        output = (tmp_path / f'slurm-{jobs[0]}.out').read_text(errors='replace')
        assert first['JobState'] == 'COMPLETED' and first['ExitCode'] == '0:0', f'{first}\n{output}'
        assert first['TimeLimit'] == '00:02:00', first
        found = re.search(r'follow-up job (\d+)', output)
        assert found, output
        jobs.append(found[1])
        assert 0 < len(runs(tmp_path, 'ended', jobs[0])) < TASKS, output  # the first job could not do them all ...
        assert runs(tmp_path, 'started', jobs[0]) == runs(tmp_path, 'ended', jobs[0]), output  # ... cut none short
        second = wait_until_over(procs, tmp_path, jobs[1], 400)  # it may queue behind other jobs
        follow_output = (tmp_path / f'slurm-{jobs[1]}.out').read_text(errors='replace')
        assert second['JobState'] == 'COMPLETED' and second['ExitCode'] == '0:0', f'{second}\n{follow_output}'
        assert second['TimeLimit'] == '00:02:00' and second['NumCPUs'] == first['NumCPUs'], second
        assert 'follow-up job' not in follow_output, follow_output  # the chain ends with the tasks: two jobs
        every = dict.fromkeys(range(TASKS), 1)
        assert runs(tmp_path, 'started') == runs(tmp_path, 'ended') == every, follow_output  # each ran once
        assert no_traceback(output) and no_traceback(follow_output)
        print(f'--- job {jobs[0]}: {first}\n{output}--- job {jobs[1]}: {second}\n{follow_output}')
    finally:
        for job in jobs:
            procs.run(['scancel', job], cwd=tmp_path, timeout=15)
