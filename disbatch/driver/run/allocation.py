"""When does the run's allocation end? `--walltime`, else the Slurm job's end time; and the follow-up job's script.

The end is read once, when the run starts: `--walltime` (from the start of the run, in any context, local too), else
under Slurm `SLURM_JOB_END_TIME` where Slurm sets it (23.02 and later), else `squeue -h -j $SLURM_JOB_ID -o %e`.
A job without a time limit ends a year after it started (Slurm's INFINITE): nothing is held before then.

`--resubmit [N]`: when the run stops for the end of its allocation with tasks left, the driver writes
`<stem>_resubmit.sh` (the same `disbatch` command line, run in the same directory, with `-r <this status file>` added
before the task file and `--resubmit N-1` at the end) and submits it with `sbatch --dependency=afterany:JOBID` and
the same nodes, tasks, CPUs, memory, partition, account, QOS, name and time limit as this job. Each follow-up adds its
predecessor's status file, so the last one reads them all (the newest alone would do: `results/resume.py`).
What Slurm is asked (squeue, sbatch, the job's variables) is `contexts/slurm.py`'s.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping, Sequence

from disbatch.contexts import slurm
from disbatch.driver.core.walltime import Allocation, default_margin
from disbatch.results.failures import resumed_arguments

# A Slurm job whose end is further than this from the start has no time limit: nothing to drain for.
UNLIMITED_SECONDS = 300 * 86400.0


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
    return slurm.job_end(environ)


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
