"""Where the allocation's end comes from, and the follow-up job's script and sbatch command (no Slurm needed)."""

from __future__ import annotations

import shlex
import sys
import time

import pytest

from disbatch.cli import parse_arguments
from disbatch.contexts import slurm
from disbatch.contexts.slurm import parse_slurm_time, sbatch_command
from disbatch.driver.core.walltime import DEFAULT_MARGIN_SECONDS
from disbatch.driver.run.allocation import find_allocation, follow_up_script


def test_walltime_counts_from_the_start_of_the_run_anywhere() -> None:
    found = find_allocation(20.0, None, {}, started=1000.0)
    assert found is not None and (found.end, found.origin, found.margin) == (1020.0, '--walltime', 4.0)


def test_walltime_wins_over_the_slurm_job() -> None:
    found = find_allocation(60.0, 5.0, {'SLURM_JOB_ID': '7', 'SLURM_JOB_END_TIME': '99999'}, started=0.0)
    assert found is not None and (found.end, found.margin) == (60.0, 5.0)


def test_outside_slurm_and_without_walltime_there_is_no_end() -> None:
    assert find_allocation(None, None, {}, started=0.0) is None


def test_slurm_job_end_time_is_used_where_slurm_sets_it() -> None:
    found = find_allocation(None, None, {'SLURM_JOB_ID': '7', 'SLURM_JOB_END_TIME': '86400'}, started=0.0)
    assert found is not None and (found.end, found.origin, found.margin) == (
        86400.0, 'SLURM_JOB_END_TIME', DEFAULT_MARGIN_SECONDS
    )  # fmt: skip


def test_else_squeue_says_when_the_job_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, str]] = []

    def squeue(job: str, field: str) -> str:
        asked.append((job, field))
        return '2026-12-02T17:30:00'

    monkeypatch.setattr(slurm, '_squeue', squeue)
    an_hour_before = time.mktime((2026, 12, 2, 16, 30, 0, 0, 0, -1))
    found = find_allocation(None, None, {'SLURM_JOBID': '42'}, started=an_hour_before)
    assert asked == [('42', '%e')]
    assert found is not None and found.origin == 'squeue'
    assert found.end == time.mktime((2026, 12, 2, 17, 30, 0, 0, 0, -1))


def test_a_slurm_job_without_a_time_limit_has_no_end() -> None:
    # Slurm dates the end of an UNLIMITED job a year after its start: no drain, and no poll timeout a year long.
    year = str(365 * 86400)
    assert find_allocation(None, None, {'SLURM_JOB_ID': '7', 'SLURM_JOB_END_TIME': year}, started=0.0) is None
    assert find_allocation(365 * 86400.0, None, {}, started=0.0) is not None  # --walltime means what it says


def test_a_job_squeue_knows_no_end_of_has_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slurm, '_squeue', lambda job, field: None)
    assert find_allocation(None, None, {'SLURM_JOB_ID': '42'}, started=0.0) is None


@pytest.mark.parametrize('text', ['N/A', 'Unknown', 'NONE', ''])
def test_slurm_times_that_are_not_times(text: str) -> None:
    assert parse_slurm_time(text) is None


def test_the_follow_up_runs_the_same_command_resuming_from_this_status_file(tmp_path: object) -> None:
    script = follow_up_script(['-e', 'My Tasks'], 'My Tasks', (), '/work/dir one', 'run/x_status.txt', 2)
    lines = script.splitlines()
    assert lines[0] == '#!/bin/bash'
    assert "cd '/work/dir one' || exit 1" in lines
    command = shlex.split(lines[-1].removeprefix('exec '))
    assert command[:3] == [sys.executable, '-m', 'disbatch']
    assert command[3] == '-e'
    assert command[4] == '-r' and command[5].endswith('/run/x_status.txt') and command[5].startswith('/')
    assert command[6:] == ['My Tasks', '--resubmit', '2']


def test_a_follow_up_of_a_follow_up_keeps_every_status_file_and_the_task_file_last() -> None:
    argv = ['--resubmit', 'Tasks', '-r', '/a_status.txt', '-R', '--resubmit', '3']
    script = follow_up_script(argv, 'Tasks', ('/a_status.txt',), '/w', '/b_status.txt', 2)
    command = shlex.split(script.splitlines()[-1].removeprefix('exec '))[3:]
    assert command == ['--resubmit', '-r', '/b_status.txt', 'Tasks', '-r', '/a_status.txt', '-R', '--resubmit', '3',
                       '--resubmit', '2']  # fmt: skip
    arguments = parse_arguments(command)
    assert (arguments.taskfile, arguments.resume_from, arguments.resubmit) == (
        'Tasks', ['/b_status.txt', '/a_status.txt'], 2
    )  # fmt: skip


def test_the_follow_up_asks_for_what_this_job_has(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slurm, '_squeue', lambda job, field: '2:00' if field == '%l' else None)
    environ = {'SLURM_JOB_NUM_NODES': '2', 'SLURM_NTASKS': '8', 'SLURM_JOB_PARTITION': 'debug', 'HOME': '/root'}
    assert sbatch_command(environ, '12', 'next.sh') == [
        'sbatch', '--parsable', '--dependency=afterany:12', '--nodes=2', '--ntasks=8', '--partition=debug',
        '--time=2:00', 'next.sh',
    ]  # fmt: skip
