"""`disbatch.dispatch` over SSH on the test cluster of tests/cluster: real Slurm and Grid Engine jobs submitted on
node1 through the system ssh, files staged into a remote_root other than local_root (the nodes share this machine's
file system, so staging really copies), the submitter killed and re-attached, a job scancel'led mid-way and
resubmitted with -r, and the errors that leave nothing in the queue.

Each test cancels (scancel / qdel) every job its submission saved, whatever happened.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from disbatch.dispatch import Submission

from ..conftest import Processes
from .helpers import read_status
from .submit_helpers import (
    TASKS,
    check_all_fetched,
    make_project,
    runs,
    saved_job_ids,
    saved_states,
    spawn_submit,
    submission_data,
    submit,
    task_command,
    wait_until,
    write_submission,
)
from .test_batch_cluster import SGE_ENVIRONMENT

pytestmark = pytest.mark.cluster

API_SCRIPT = """
import sys
from disbatch.dispatch import Machine, Resources, Submission, Task

batch_type, local_root, remote_root, markers, path = sys.argv[1:6]
machine = Machine(batch_type=batch_type, context_type='SSH', local_root=local_root, remote_root=remote_root,
                  remote_profile={{'hostname': 'node1', 'timeout': 10}}, retry_count=1)
resources = Resources(number_node=1, cpu_per_node=2, para_deg=2, group_size=3, queue_name={queue!r},
                      kwargs={kwargs!r}, prepend_script=[path])
tasks = [Task(command=f'echo run >> {{markers}}/runs.{{i}}; cat conf ../graph.pb; hostname > result; '
                      f'echo made-by-{{i}} >> result; echo to-stderr >&2',
              task_work_path=f'run{{i}}/', forward_files=['conf'], backward_files=['result'],
              outlog='log', errlog='err')
         for i in range(6)]
submission = Submission(work_base='md/', machine=machine, resources=resources, task_list=tasks,
                        forward_common_files=['graph.pb'], backward_common_files=[])
for result in submission.run_submission(check_interval=2):
    print(result.index, result.state, result.job, ','.join(result.job_ids))
"""


class Queue:
    """The scheduler of a test: its jobs, and cancelling them."""

    def __init__(self, procs: Processes, batch_type: str) -> None:
        self.procs = procs
        self.batch_type = batch_type
        self.environment = dict(SGE_ENVIRONMENT) if batch_type == 'SGE' else {}

    def listed(self) -> str:
        command = ['qstat'] if self.batch_type == 'SGE' else ['squeue', '--noheader', '--format=%i %j %T']
        return self.procs.run(command, cwd='/', env=self.environment, timeout=30).stdout

    def slurm_jobs_named(self, suffix: str) -> list[str]:
        """The ids of the Slurm jobs whose name ends with `suffix`, ended ones too (kept for MinJobAge, 300 s)."""
        command = ['squeue', '--noheader', '--states=all', '--format=%i %j']
        listing = self.procs.run(command, cwd='/', timeout=30).stdout
        return sorted(line.split()[0] for line in listing.splitlines() if line.split()[-1].endswith(suffix))

    def cancel(self, job_ids: list[str]) -> None:
        if job_ids:
            command = ['qdel', '-f'] if self.batch_type == 'SGE' else ['scancel']
            self.procs.run([*command, *job_ids], cwd='/', env=self.environment, timeout=30)


@pytest.fixture
def remote_root(tmp_path: Path) -> Path:
    """Under /tmp but apart from the test's local_root: staging copies for real."""
    return tmp_path / 'remote'


@pytest.fixture
def slurm(procs: Processes, tmp_path: Path) -> Iterator[Queue]:
    queue = Queue(procs, 'Slurm')
    yield queue
    queue.cancel([job_id for ids in saved_job_ids(tmp_path / 'state') for job_id in ids])


@pytest.fixture
def sge(procs: Processes, tmp_path: Path, cluster: dict[str, str]) -> Iterator[Queue]:
    queue = Queue(procs, 'SGE')
    if procs.run(['qconf', '-sp', 'disbatch'], cwd='/', env=queue.environment, timeout=20).returncode != 0:
        pytest.skip('Grid Engine of the test cluster is not up (tests/cluster/start-sge.sh)')
    yield queue
    queue.cancel([job_id for ids in saved_job_ids(tmp_path / 'state') for job_id in ids])


def run_api_script(
    procs: Processes, tmp_path: Path, remote_root: Path, batch_type: str, kwargs: dict[str, Any], queue: str = ''
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    local_root = make_project(tmp_path)
    script = tmp_path / 'submit.py'
    script.write_text(API_SCRIPT.format(kwargs=kwargs, queue=queue))
    this_disbatch = submission_data(local_root, tmp_path / 'markers', {})['resources']['prepend_script'][0]
    arguments = [
        *(sys.executable, str(script), batch_type, str(local_root), str(remote_root)),
        *(str(tmp_path / 'markers'), this_disbatch),
    ]
    done = procs.run(arguments, cwd=tmp_path, env={'XDG_STATE_HOME': str(tmp_path / 'state')}, timeout=400)
    return local_root / 'md', done


def check_fetched_from_nodes(work: Path) -> None:
    for index in range(TASKS):
        directory = work / f'run{index}'
        assert (directory / 'log').read_text() == f'conf {index}\ngraph\n', index
        assert (directory / 'err').read_text() == 'to-stderr\n', index
        host, made = (directory / 'result').read_text().splitlines()
        assert host.startswith('node') and made == f'made-by-{index}', (index, host, made)


@pytest.mark.timeout(450)
def test_slurm_over_ssh_two_jobs_every_file_back(
    procs: Processes, slurm: Queue, tmp_path: Path, remote_root: Path
) -> None:
    work, done = run_api_script(procs, tmp_path, remote_root, 'Slurm', {})
    assert done.returncode == 0, done.stderr
    lines = [line.split() for line in done.stdout.splitlines()]
    assert [(line[0], line[1], line[2]) for line in lines] == [(str(i), 'succeeded', str(i // 3)) for i in range(6)]
    job_ids = {line[3] for line in lines}
    assert len(job_ids) == 2 and all(job_id.isdigit() for job_id in job_ids), job_ids
    assert [f'Slurm job {job_id}' in done.stderr for job_id in sorted(job_ids)] == [True, True], done.stderr
    check_fetched_from_nodes(work)
    assert [runs(tmp_path / 'markers', i) for i in range(TASKS)] == [1] * TASKS
    assert list(remote_root.iterdir()) == [], 'the run directory stays on the machine after success'


@pytest.mark.timeout(450)
def test_sge_over_ssh_two_jobs_every_file_back(procs: Processes, sge: Queue, tmp_path: Path, remote_root: Path) -> None:
    work, done = run_api_script(procs, tmp_path, remote_root, 'SGE', {'pe_name': 'disbatch'})
    assert done.returncode == 0, done.stderr
    lines = [line.split() for line in done.stdout.splitlines()]
    assert [(line[1], line[2]) for line in lines] == [('succeeded', str(i // 3)) for i in range(6)]
    assert len({line[3] for line in lines}) == 2
    assert done.stderr.count('submitted: SGE job ') == 2, done.stderr
    check_fetched_from_nodes(work)
    assert [runs(tmp_path / 'markers', i) for i in range(TASKS)] == [1] * TASKS


def ssh_machine(remote_root: Path | str, **profile: Any) -> dict[str, Any]:
    return {
        'batch_type': 'Slurm',
        'context_type': 'SSHContext',
        'remote_root': str(remote_root),
        'remote_profile': {'hostname': 'node1', **profile},
    }


@pytest.mark.timeout(450)
def test_slurm_submitter_killed_then_run_again_reattaches(
    procs: Processes, slurm: Queue, tmp_path: Path, remote_root: Path
) -> None:
    local_root = make_project(tmp_path)
    markers, state = tmp_path / 'markers', tmp_path / 'state'
    path = write_submission(tmp_path, submission_data(local_root, markers, ssh_machine(remote_root), seconds=6))
    first = spawn_submit(procs, tmp_path, state, str(path), '--check-interval', '2')
    assert wait_until(lambda: len([ids for ids in saved_job_ids(state) if ids]) == 2, 120)
    jobs = [ids[0] for ids in saved_job_ids(state)]
    first.kill()
    first.communicate(timeout=10)
    listed = slurm.listed()
    assert all(job_id in listed for job_id in jobs), (jobs, listed)
    done = submit(procs, tmp_path, state, str(path), '--check-interval', '2', timeout=400)
    assert done.returncode == 0, done.stderr
    assert f'jobs live: {" ".join(jobs)}' in done.stderr and 'submitted' not in done.stderr, done.stderr
    named = slurm.slurm_jobs_named(f'-{Submission.load_from_json(path).hash[:8]}')
    since = [job_id for job_id in named if int(job_id) >= min(map(int, jobs))]  # ids grow; older runs of the same
    assert sorted(since) == sorted(jobs), f'a job was added: {since}'  # directory (--basetemp) may still be listed
    check_all_fetched(local_root / 'md')
    assert [runs(markers, i) for i in range(TASKS)] == [1] * TASKS


@pytest.mark.timeout(450)
def test_slurm_job_cancelled_midway_is_resubmitted_with_r_failed_task_is_not(
    procs: Processes, slurm: Queue, tmp_path: Path, remote_root: Path
) -> None:
    local_root = make_project(tmp_path)
    markers, state = tmp_path / 'markers', tmp_path / 'state'
    data = submission_data(local_root, markers, ssh_machine(remote_root), resources={'para_deg': 1, 'cpu_per_node': 1})
    data['task_list'][1]['command'] = task_command(1, markers, 8)  # job 0: quick, slow (cancelled), quick
    data['task_list'][4]['command'] = task_command(4, markers) + '; exit 1'  # job 1: a task that fails
    path = write_submission(tmp_path, data)
    submitter = spawn_submit(procs, tmp_path, state, str(path), '--check-interval', '2')
    assert wait_until(lambda: runs(markers, 1) == 1, 180), 'the slow task of job 0 never started'
    job0 = saved_job_ids(state)[0][0]
    slurm.cancel([job0])
    _, stderr = submitter.communicate(timeout=400)
    assert submitter.returncode == 1, stderr
    assert f'job 0 (Slurm job {job0}) ended with 2 tasks left: resubmitted with -r as job ' in stderr, stderr
    assert 'disbatch submit: 1 of 6 tasks did not succeed' in stderr, stderr
    assert 'task 4 (run4/' in stderr and 'failed with exit code 1' in stderr
    assert [runs(markers, i) for i in range(TASKS)] == [1, 2, 1, 1, 1, 1]
    assert [len(ids) for ids in saved_job_ids(state)] == [2, 1], 'the failed task caused a resubmission'
    check_all_fetched(local_root / 'md')
    [saved] = saved_states(state)
    [jobs] = Path(saved['run_directory']).glob('.disbatch_*')
    assert f'-r {jobs}/job0.a2.carried_status.txt ' in (jobs / 'job0.a2.sh').read_text()
    carried = [record.task_id for record in read_status(jobs / 'job0.a2.carried_status.txt')]
    assert carried == [0], 'the second attempt resumes from the task that ended, and only from it'


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    for connection in accepted:
        connection.close()
    listener.close()


def nothing_queued(slurm: Queue, path: Path) -> None:
    """No job of the submission at `path` in the queue (job names end with the hash's first characters)."""
    name = f'-{Submission.load_from_json(path).hash[:8]}'
    assert name not in slurm.listed()


@pytest.mark.timeout(120)
def test_unreachable_host_one_line_nothing_submitted(
    procs: Processes, slurm: Queue, tmp_path: Path, remote_root: Path, silent_port: int
) -> None:
    local_root = make_project(tmp_path)
    machine = ssh_machine(remote_root, hostname='127.0.0.1', port=silent_port, timeout=3)
    path = write_submission(tmp_path, submission_data(local_root, tmp_path / 'markers', machine))
    done = submit(procs, tmp_path, tmp_path / 'state', str(path), timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith('disbatch submit: ssh 127.0.0.1: '), done.stderr
    assert done.stderr.count('\n') == 1, done.stderr
    assert saved_states(tmp_path / 'state') == []
    nothing_queued(slurm, path)


@pytest.mark.timeout(120)
def test_read_only_remote_root_over_ssh_one_line_nothing_submitted(
    procs: Processes, slurm: Queue, tmp_path: Path
) -> None:
    local_root = make_project(tmp_path)
    path = write_submission(tmp_path, submission_data(local_root, tmp_path / 'markers', ssh_machine('/proc/x')))
    done = submit(procs, tmp_path, tmp_path / 'state', str(path), timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith('disbatch submit: remote_root /proc/x on node1 cannot be written: mkdir: '), (
        done.stderr
    )
    assert done.stderr.count('\n') == 1
    assert saved_states(tmp_path / 'state') == []
    nothing_queued(slurm, path)


@pytest.mark.timeout(120)
def test_scheduler_refusing_the_job_is_quoted_nothing_submitted(
    procs: Processes, slurm: Queue, tmp_path: Path, remote_root: Path
) -> None:
    local_root = make_project(tmp_path)
    data = submission_data(local_root, tmp_path / 'markers', ssh_machine(remote_root), resources={'queue_name': 'nope'})
    path = write_submission(tmp_path, data)
    done = submit(procs, tmp_path, tmp_path / 'state', str(path), timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith('disbatch submit: Slurm refused job 0 ('), done.stderr
    assert 'sbatch: error: invalid partition specified: nope' in done.stderr
    assert done.stderr.count('\n') == 1
    assert saved_job_ids(tmp_path / 'state') == [[], []]
    nothing_queued(slurm, path)


@pytest.mark.timeout(450)
def test_sge_job_deleted_midway_is_resubmitted_with_r(
    procs: Processes, sge: Queue, tmp_path: Path, remote_root: Path
) -> None:
    local_root = make_project(tmp_path)
    markers, state = tmp_path / 'markers', tmp_path / 'state'
    machine = {**ssh_machine(remote_root), 'batch_type': 'SGE'}
    resources = {'para_deg': 1, 'cpu_per_node': 1, 'kwargs': {'pe_name': 'disbatch'}}
    data = submission_data(local_root, markers, machine, resources=resources)
    data['task_list'][1]['command'] = task_command(1, markers, 8)
    path = write_submission(tmp_path, data)
    submitter = spawn_submit(procs, tmp_path, state, str(path), '--check-interval', '2')
    assert wait_until(lambda: runs(markers, 1) == 1, 180), 'the slow task of job 0 never started'
    job0 = saved_job_ids(state)[0][0]
    sge.cancel([job0])
    _, stderr = submitter.communicate(timeout=400)
    assert submitter.returncode == 0, stderr
    assert f'job 0 (SGE job {job0}) ended with 2 tasks left: resubmitted with -r as job ' in stderr, stderr
    assert [runs(markers, i) for i in range(TASKS)] == [1, 2, 1, 1, 1, 1]
    check_all_fetched(local_root / 'md')
