"""When does the run's allocation end? `--walltime`, else the Slurm job's end time; and the follow-up job.

The end is read once, when the run starts: `--walltime` (from the start of the run, in any context, local too), else
under Slurm `SLURM_JOB_END_TIME` where Slurm sets it (23.02 and later), else `squeue -h -j $SLURM_JOB_ID -o %e`.
A job without a time limit ends a year after it started (Slurm's INFINITE): nothing is held before then.

`--resubmit [N]`: when the run stops for the end of its allocation with tasks left, the driver writes
`<stem>_resubmit.sh` (the same `disbatch` command line, run in the same directory, with `-r <this status file>` added
before the task file and `--resubmit N-1` at the end) and submits it with `sbatch --dependency=afterany:JOBID` and
the same nodes, tasks, CPUs, memory, partition, account, QOS, name and time limit as this job. Each follow-up adds its
predecessor's status file, so the last one reads them all (the newest alone would do: `results/resume.py`).
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

from disbatch.driver.core.walltime import Allocation, default_margin
from disbatch.errors import ContextError, OutputLostError, RunFileError
from disbatch.privacy import SCRIPT_MODE, write_file
from disbatch.results.failures import resumed_arguments

log = logging.getLogger('disbatch.driver')

SQUEUE_SECONDS = 10.0
# Options of the follow-up job, from the variables Slurm sets in this one.
_SAME_AS_THIS_JOB = (
    ('SLURM_JOB_NUM_NODES', '--nodes'),
    ('SLURM_NTASKS', '--ntasks'),
    ('SLURM_NTASKS_PER_NODE', '--ntasks-per-node'),
    ('SLURM_CPUS_PER_TASK', '--cpus-per-task'),
    ('SLURM_MEM_PER_NODE', '--mem'),
    ('SLURM_MEM_PER_CPU', '--mem-per-cpu'),
    ('SLURM_JOB_PARTITION', '--partition'),
    ('SLURM_JOB_ACCOUNT', '--account'),
    ('SLURM_JOB_QOS', '--qos'),
    ('SLURM_JOB_NAME', '--job-name'),
)


# A Slurm job whose end is further than this from the start has no time limit: nothing to drain for.
UNLIMITED_SECONDS = 300 * 86400.0


def slurm_job(environ: Mapping[str, str]) -> str | None:
    return environ.get('SLURM_JOB_ID') or environ.get('SLURM_JOBID') or None


def find_allocation(
    walltime: float | None, margin: float | None, environ: Mapping[str, str], started: float
) -> Allocation | None:
    """The run's allocation: its end, where it came from, and the drain margin; None when it has no end."""
    found = _end(walltime, environ, started)
    if found is None:
        return None
    end, origin = found
    if origin != '--walltime' and end - started > UNLIMITED_SECONDS:
        return None  # Slurm gives a job without a time limit (UNLIMITED) an end a year after its start
    return Allocation(end, default_margin(end - started) if margin is None else margin, origin)


def _end(walltime: float | None, environ: Mapping[str, str], started: float) -> tuple[float, str] | None:
    if walltime is not None:
        return started + walltime, '--walltime'
    job = slurm_job(environ)
    if job is None:
        return None
    given = environ.get('SLURM_JOB_END_TIME', '')
    if given.isdigit() and int(given) > 0:
        return float(given), 'SLURM_JOB_END_TIME'
    text = _squeue(job, '%e')
    end = parse_slurm_time(text) if text else None
    return (end, 'squeue') if end is not None else None


def slurm_end() -> float | None:
    """The end of the Slurm job this runs in, as squeue says now (a time limit may be changed while it runs)."""
    job = slurm_job(os.environ)
    text = _squeue(job, '%e') if job is not None else None
    return parse_slurm_time(text) if text else None


def parse_slurm_time(text: str) -> float | None:
    """Seconds since the epoch of Slurm's `2026-12-02T17:30:00` (local time); None for `N/A`, `Unknown`, ..."""
    try:
        return time.mktime(time.strptime(text.strip(), '%Y-%m-%dT%H:%M:%S'))
    except ValueError:
        return None


def _squeue(job: str, field: str) -> str | None:
    try:
        done = subprocess.run(
            ['squeue', '-h', '-j', job, '-o', field], capture_output=True, text=True, timeout=SQUEUE_SECONDS
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        log.warning('squeue -j %s: %s', job, error)
        return None
    if done.returncode != 0:
        log.warning('squeue -j %s: %s', job, done.stderr.strip())
        return None
    return done.stdout.strip() or None


# ---------------------------------------------------------------- the follow-up job


def follow_up_script(
    argv: Sequence[str],
    taskfile: str | None,
    resume_paths: Sequence[str],
    cwd: str,
    status_path: str,
    resubmits_left: int,
) -> str:
    """The follow-up job's script: this run's command line, with this status file added to its `-r` files just
    before the task file (every earlier file stays: this one alone would do, see `results/resume.py`)."""
    arguments = resumed_arguments(argv, taskfile, os.path.abspath(status_path), resume_paths, keep=True)
    command = [sys.executable, '-m', 'disbatch', *arguments, '--resubmit', str(resubmits_left)]
    return (
        '#!/bin/bash\n'
        '# written by disbatch --resubmit: continues the run whose status file is named below\n'
        f'cd {shlex.quote(cwd)} || exit 1\n'
        f'exec {shlex.join(command)}\n'
    )


def sbatch_command(environ: Mapping[str, str], job: str, script: str) -> list[str]:
    command = ['sbatch', '--parsable', f'--dependency=afterany:{job}']
    for variable, option in _SAME_AS_THIS_JOB:
        if environ.get(variable):
            command.append(f'{option}={environ[variable]}')
    limit = _squeue(job, '%l')
    if limit and limit not in ('UNLIMITED', 'NOT_SET', 'INVALID'):
        command.append(f'--time={limit}')
    return [*command, script]


def submit_follow_up(environ: Mapping[str, str], job: str, script_path: str, script: str) -> str:
    """Write the script and submit it after this job; the new job's id. ContextError when the script cannot be
    written (`privacy.create_file`) or sbatch fails."""
    try:
        write_file(script_path, script, SCRIPT_MODE)
    except (RunFileError, OutputLostError) as error:  # planted, or a full disk
        raise ContextError(f'--resubmit: {error}') from None
    command = sbatch_command(environ, job, script_path)
    # The follow-up gets this environment (sbatch's default), less this job's own Slurm variables.
    clean = {key: value for key, value in environ.items() if not key.startswith('SLURM_') or key == 'SLURM_CONF'}
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=clean, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ContextError(f'--resubmit: {shlex.join(command)}: {error}') from None
    if done.returncode != 0:
        raise ContextError(f'--resubmit: {shlex.join(command)}: {done.stderr.strip() or done.returncode}')
    log.info('follow-up job: %s', shlex.join(command))
    return done.stdout.strip().split(';')[0]
