"""Contexts on the real test cluster of tests/cluster: engines on SSH hosts (`-s node1:2,...`) and inside a Slurm
allocation (`sbatch -N 3 -n 6 job.sh`: one `srun` step per node for the whole run, idle nodes given back at the
tail with `scontrol update`).

Processes started over ssh or srun do not carry the test marker, so each test removes what it started on the nodes
itself: the engines of an SSH run are found by their `--run=JOBID` argument, a Slurm job is `scancel`led.
The per-node hostnames these tests check exist only in the cluster's netns mode.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import Processes
from .helpers import (
    Finished,
    check_ran_where_reported,
    disbatch_job_script,
    no_traceback,
    read_status,
    run_disbatch,
    status_path,
    wait_for,
)

pytestmark = pytest.mark.cluster

NODES = ('node1', 'node2', 'node3')
ABSENT_IP = '10.250.0.99'  # on the cluster's subnet, no host behind it


@pytest.fixture
def netns(cluster: dict[str, str]) -> None:
    if cluster['CI_CLUSTER_MODE'] != 'netns':
        pytest.skip('needs per-node hostnames: the test cluster runs in loopback mode')


def processes_with(needle: str) -> list[int]:
    """PIDs (one PID space for every node) whose command line contains `needle`."""
    found = []
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / 'cmdline').read_bytes().replace(b'\0', b' ').decode(errors='replace')
        except OSError:
            continue
        if needle in command:
            found.append(int(entry.name))
    return found


def engines_of_run(directory: Path) -> list[int]:
    """The engine processes (and their ssh clients) of the run made in `directory`, found by the run id (its
    DISBATCH_JOBID) their command lines name."""
    runs = {log.name.removesuffix('_driver.log') for log in directory.glob('*_driver.log')}
    return [pid for run in runs for pid in processes_with(f'--run={run} ')]


@pytest.fixture
def remote_cleanup(tmp_path: Path) -> Iterator[None]:
    """After the test, kill whatever engine of the test's run is still up on a node."""
    yield
    for pid in engines_of_run(tmp_path):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


def hostname_tasks(count: int, seconds: float) -> str:
    return f'hostname; sleep {seconds}\n' * count


def run_on(procs: Processes, tmp_path: Path, hosts: str, tasks: str, timeout: float = 40) -> Finished:
    (tmp_path / 'Tasks').write_text(tasks)
    return run_disbatch(procs, tmp_path, '-s', hosts, 'Tasks', timeout=timeout)


# ------------------------------------------------------------------------------------------------------ SSH


@pytest.mark.timeout(60)
def test_ssh_hosts_share_the_tasks(procs: Processes, netns: None, remote_cleanup: None, tmp_path: Path) -> None:
    result = run_on(procs, tmp_path, 'node1:2,node2:2,node3:2', hostname_tasks(18, 0.3))
    assert result.returncode == 0, result.describe()
    assert no_traceback(result.stderr), result.stderr
    tasks = check_ran_where_reported(read_status(status_path(tmp_path)), 18)
    assert {record.host for record in tasks.values()} == set(NODES)
    assert wait_for(lambda: not engines_of_run(tmp_path), timeout=5), 'engines left running on the nodes'


@pytest.mark.timeout(60)
def test_ssh_host_with_an_unknown_name(procs: Processes, netns: None, remote_cleanup: None, tmp_path: Path) -> None:
    result = run_on(procs, tmp_path, 'node1:2,nohost:2', hostname_tasks(8, 0.3))
    assert result.returncode == 0, result.describe()
    assert no_traceback(result.stderr), result.stderr
    assert any('nohost' in line for line in result.stderr.splitlines()), result.stderr
    tasks = check_ran_where_reported(read_status(status_path(tmp_path)), 8)
    assert {record.host for record in tasks.values()} == {'node1'}


@pytest.mark.timeout(60)
def test_ssh_host_that_is_down(procs: Processes, netns: None, remote_cleanup: None, tmp_path: Path) -> None:
    # 6 s of work on node1: longer than ssh's ConnectTimeout (5 s), so the failed login ends before the run does
    result = run_on(procs, tmp_path, f'node1:2,{ABSENT_IP}:2', hostname_tasks(12, 1))
    assert result.returncode == 0, result.describe()
    assert no_traceback(result.stderr), result.stderr
    assert any(ABSENT_IP in line for line in result.stderr.splitlines()), result.stderr
    tasks = check_ran_where_reported(read_status(status_path(tmp_path)), 12)
    assert {record.host for record in tasks.values()} == {'node1'}


@pytest.mark.timeout(60)
def test_ssh_host_still_connecting_at_the_end_is_named(
    procs: Processes, netns: None, remote_cleanup: None, tmp_path: Path
) -> None:
    # How fast ssh gives up on a dead address depends on the kernel's neighbour cache (at once after an earlier
    # failure, after ~3 s otherwise): an `ssh` first on PATH that hangs for that address makes the race certain.
    real_ssh = shutil.which('ssh')
    assert real_ssh is not None
    bin_directory = tmp_path / 'bin'
    bin_directory.mkdir()
    (bin_directory / 'ssh').write_text(
        f'#!/bin/bash\nfor word in "$@"; do [ "$word" = {ABSENT_IP} ] && exec sleep 60; done\nexec {real_ssh} "$@"\n'
    )
    (bin_directory / 'ssh').chmod(0o755)
    (tmp_path / 'Tasks').write_text(hostname_tasks(6, 0.3))
    path = f'{bin_directory}:{os.environ["PATH"]}'
    result = run_disbatch(procs, tmp_path, '-s', f'node1:2,{ABSENT_IP}:2', 'Tasks', timeout=40, env={'PATH': path})
    assert result.returncode == 0, result.describe()
    check_ran_where_reported(read_status(status_path(tmp_path)), 6)
    assert any(ABSENT_IP in line for line in result.stderr.splitlines()), result.stderr


# ------------------------------------------------------------------------------------------------------ Slurm


def slurm_output(procs: Processes, tmp_path: Path, *args: str) -> str:
    result = procs.run(list(args), cwd=tmp_path, timeout=15)
    assert result.returncode == 0, f'{shlex.join(args)}: {result.stderr}'
    return result.stdout


def job_fields(text: str) -> dict[str, str]:
    """`scontrol show job` output as NAME -> value."""
    return dict(re.findall(r'(\w[\w/:]*)=(\S*)', text))


@pytest.mark.timeout(90)
def test_slurm_allocation_one_step_per_node_and_shrinks_at_the_tail(
    procs: Processes, netns: None, tmp_path: Path
) -> None:
    count = 30
    (tmp_path / 'Tasks').write_text(hostname_tasks(count - 1, 0.3) + 'hostname; sleep 8\n')
    job_script = disbatch_job_script(tmp_path, 'Tasks')
    submit = ['sbatch', '--parsable', '-N', '3', '-n', '6', '-D', str(tmp_path), '-o', 'job.out', str(job_script)]
    job = slurm_output(procs, tmp_path, *submit).strip().split(';')[0]
    assert job.isdigit(), job
    try:
        steps: dict[str, set[str]] = {}  # step id -> nodes it was seen on
        busy_nodes_seen: list[list[str]] = []  # per sample: the node of each engine step
        shrunk: dict[str, str] | None = None
        gone = False
        deadline = time.monotonic() + 70
        while time.monotonic() < deadline:
            state = job_fields(slurm_output(procs, tmp_path, 'scontrol', 'show', 'job', job))
            sample = []
            for line in slurm_output(procs, tmp_path, 'squeue', '-s', '-h', '-j', job, '-o', '%i %N').splitlines():
                if not line.strip():
                    continue
                step, node = line.split()
                if step.endswith(('.batch', '.extern')):
                    continue
                steps.setdefault(step, set()).add(node)
                sample.append(node)
            busy_nodes_seen.append(sample)
            if shrunk is None and state.get('JobState') == 'RUNNING' and state.get('NumNodes', '3') != '3':
                shrunk = state
            if state.get('JobState') not in ('PENDING', 'CONFIGURING', 'RUNNING', 'COMPLETING'):
                gone = True
                break
            time.sleep(0.25)
        assert gone, f'job {job} still there after 70 s: {state}'
        job_output = (tmp_path / 'job.out').read_text(errors='replace')
        assert state['JobState'] == 'COMPLETED' and state['ExitCode'] == '0:0', f'{state}\n{job_output}'
        # one engine step per node, for the whole run: not one step per task
        assert sorted(steps) == [f'{job}.{index}' for index in range(3)], steps
        assert sorted(node for nodes in steps.values() for node in nodes) == list(NODES), steps
        assert all(len(sample) == len(set(sample)) for sample in busy_nodes_seen), busy_nodes_seen
        # at the tail the idle nodes were given back while the long task still ran
        assert shrunk is not None, f'the job never shrank: {state}'
        kept = set(slurm_output(procs, tmp_path, 'scontrol', 'show', 'hostnames', shrunk['NodeList']).split())
        assert kept and kept < set(NODES), shrunk
        assert shrunk['BatchHost'] in kept, shrunk  # the driver's node is never released
        assert (tmp_path / f'slurm_job_{job}_resize.sh').is_file()
        tasks = check_ran_where_reported(read_status(status_path(tmp_path)), count)
        assert {record.host for record in tasks.values()} == set(NODES)
        assert tasks[count - 1].host in kept, (tasks[count - 1], shrunk)
        # ... and the job ended when its last task did
        ended = time.mktime(time.strptime(state['EndTime'], '%Y-%m-%dT%H:%M:%S'))
        last_finish = max(record.finish for record in tasks.values())
        assert last_finish - 1 <= ended <= last_finish + 10, (state['EndTime'], last_finish)
        assert no_traceback(job_output), job_output
    finally:
        procs.run(['scancel', job], cwd=tmp_path, timeout=15)
