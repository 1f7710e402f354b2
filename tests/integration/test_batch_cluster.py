"""Grid Engine, PBS and LSF contexts on the test cluster of tests/cluster.

Grid Engine is real there (`start-sge.sh`: qmaster on this machine, sge_execd per node, PE `disbatch` with
$round_robin and control_slaves TRUE): a `qsub -pe disbatch 6` job runs one engine per node through `qrsh -inherit`,
a job running `<stem>_dbUtil.sh` adds a context to a live run, and a node that crashes mid-run loses only its
running tasks, which run again elsewhere. PBS and LSF are not installable here: their runs get the environment a
job of theirs gets (PBS_NODEFILE, LSB_MCPU_HOSTS / LSB_DJOB_HOSTFILE, written as their documentation describes)
and start their engines over the cluster's real ssh.

Run the crash test under the cluster fault lock (`flock LOCKFILE pytest …`: fault injection disturbs every user); it
brings the node, its sshd, slurmd and sge_execd back at teardown.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from disbatch.results.record import RecordKind

from ..conftest import Processes
from .helpers import (
    REPO_ROOT,
    check_ran_where_reported,
    no_traceback,
    read_status,
    run_disbatch,
    run_files,
    status_path,
    wait_for,
)
from .test_faults_cluster import (
    check_recovered,
    clear_stale_pyenv_lock,
    command_line,
    is_supervisor,
    kill_quietly,
    launchers_and_engines,
    run_ids,
    run_script,
)

pytestmark = pytest.mark.cluster

NODES = ('node1', 'node2', 'node3')
SGE_ENVIRONMENT = {'SGE_ROOT': '/var/lib/gridengine', 'SGE_CELL': 'default'}


@pytest.fixture
def netns(cluster: dict[str, str]) -> None:
    if cluster['CI_CLUSTER_MODE'] != 'netns':
        pytest.skip('needs per-node hostnames: the test cluster runs in loopback mode')


@pytest.fixture
def sge(netns: None, cluster: dict[str, str]) -> dict[str, str]:
    """The environment of a Grid Engine client, once the cluster's qmaster answers and every node's sge_execd
    reports (`start-sge.sh` restarts one a fault elsewhere left dead; 0.5 s when all are up)."""
    environment = dict(os.environ, **SGE_ENVIRONMENT)
    if shutil.which('sge_qmaster', path=f'{os.environ.get("PATH", "")}:/usr/sbin'):
        run_script('start-sge.sh')
    try:
        answer = subprocess.run(['qconf', '-sp', 'disbatch'], env=environment, capture_output=True, timeout=10)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        answer = None
    if answer is None or answer.returncode != 0:
        if os.environ.get('CI') in ('true', '1'):
            pytest.fail('CI=true: Grid Engine of the test cluster is not up (tests/cluster/start-sge.sh)')
        pytest.skip('Grid Engine of the test cluster is not up (tests/cluster/start-sge.sh)')
    return SGE_ENVIRONMENT


def qsub(procs: Processes, directory: Path, environment: dict[str, str], *args: str) -> str:
    """Submit a job (the job id) from `directory`, which is its working directory."""
    command = ['qsub', '-terse', '-wd', str(directory), '-j', 'y', '-o', 'job.out', *args]
    result = procs.run(command, cwd=directory, timeout=20, env=environment)
    assert result.returncode == 0, f'{shlex.join(command)}: {result.stderr}'
    return result.stdout.strip()


def job_running(procs: Processes, job: str, environment: dict[str, str]) -> bool:
    return procs.run(['qstat', '-j', job], cwd='/', timeout=20, env=environment).returncode == 0


def qdel(procs: Processes, job: str, environment: dict[str, str]) -> None:
    procs.run(['qdel', '-f', job], cwd='/', timeout=20, env=environment)


def disbatch_job(*args: str) -> list[str]:
    """`-b y` arguments: disbatch of this checkout, whatever the job's PYTHONPATH."""
    return ['-v', f'PYTHONPATH={REPO_ROOT}', '-b', 'y', sys.executable, '-m', 'disbatch', *args]


def engines(directory: Path) -> list[int]:
    """The engine processes (python; not the qrsh or ssh launching them, nor their supervisors) of the runs in
    `directory`."""
    runs = run_ids(directory)
    found = []
    for pid in launchers_and_engines(directory):
        words = command_line(pid)
        if (
            words
            and 'python' in os.path.basename(words[0])
            and any(f'--run={run}' in words for run in runs)
            and not is_supervisor(pid)
        ):
            found.append(pid)
    return found


def slave_tasks(procs: Processes, job: str, environment: dict[str, str]) -> list[str]:
    """The queue instances of `job`'s SLAVE tasks (the `qrsh -inherit` ones) in `qstat -g t`."""
    listing = procs.run(['qstat', '-g', 't'], cwd='/', timeout=20, env=environment).stdout
    slaves, current = [], ''
    for line in listing.splitlines():
        words = line.split()
        if words and words[0].isdigit():
            current = words[0]
        if current == job and words and words[-1] == 'SLAVE':
            slaves.append(next(word for word in words if word.startswith('all.q@')))
    return slaves


# ------------------------------------------------------------------------------------------------ Grid Engine


@pytest.mark.timeout(120)
def test_sge_pe_job_one_engine_per_node_through_qrsh_inherit(
    procs: Processes, sge: dict[str, str], tmp_path: Path
) -> None:
    count = 24
    (tmp_path / 'Tasks').write_text(
        '#DISBATCH PERENGINE START echo started on $(hostname)\n' + 'hostname; sleep 1\n' * count
    )
    job = qsub(procs, tmp_path, sge, '-pe', 'disbatch', '6', *disbatch_job('Tasks'))
    try:
        slaves_seen: set[str] = set()
        most_engines = 0
        deadline = time.monotonic() + 90
        while job_running(procs, job, sge) and time.monotonic() < deadline:
            slaves_seen.update(slave_tasks(procs, job, sge))
            most_engines = max(most_engines, len(engines(tmp_path)))
            time.sleep(0.3)
        output = (tmp_path / 'job.out').read_text(errors='replace')
        assert not job_running(procs, job, sge), f'the job did not end with its tasks\n{output}'
        assert no_traceback(output), output
        records = read_status(status_path(tmp_path))
        tasks = check_ran_where_reported(records, count)
        assert {record.host for record in tasks.values()} == set(NODES)
        per_engine = [record for record in records if record.kind is RecordKind.PER_ENGINE]
        assert sorted(record.host for record in per_engine) == sorted(NODES), per_engine
        assert slaves_seen == {f'all.q@{node}' for node in NODES}, slaves_seen
        assert most_engines <= 3, f'more than one engine per node: {most_engines}'
        logs = run_files(tmp_path, 'engine_wrap.log')
        assert len(logs) == 3, logs
        [driver_log] = run_files(tmp_path, 'driver.log')
        assert driver_log.read_text().count('qrsh -inherit') == 3
    finally:
        qdel(procs, job, sge)
        kill_quietly(launchers_and_engines(tmp_path))


@pytest.mark.timeout(120)
def test_the_readme_grid_engine_line_runs_as_written_after_the_readme_install(
    procs: Processes, sge: dict[str, str], tmp_path: Path
) -> None:
    # The job's login shell has not the submitter's PATH: the line must work with nothing but the install at the top
    # of the Readme (~/.venvs/disbatch, here this checkout's venv) and no PYTHONPATH or -V
    [line] = [line for line in (REPO_ROOT / 'Readme.md').read_text().splitlines() if line.startswith('qsub -pe ')]
    words = shlex.split(line.partition('#')[0])
    install = str(Path(sys.executable).parent) + '/'
    words = [word.replace('~/.venvs/disbatch/bin/', install) for word in words]
    (tmp_path / 'Tasks').write_text('hostname; sleep 0.5\n' * 12)
    result = procs.run(
        [*words[:1], '-terse', '-j', 'y', '-o', 'job.out', *words[1:]], cwd=tmp_path, timeout=20, env=sge
    )
    assert result.returncode == 0, result.stderr
    job = result.stdout.strip()
    try:
        assert wait_for(lambda: not job_running(procs, job, sge), 90), 'the job did not end'
        output = (tmp_path / 'job.out').read_text(errors='replace')
        assert 'command not found' not in output and no_traceback(output), output
        records = check_ran_where_reported(read_status(status_path(tmp_path)), 12)
        assert {record.host for record in records.values()} <= set(NODES), records
    finally:
        qdel(procs, job, sge)
        kill_quietly(launchers_and_engines(tmp_path))


@pytest.mark.timeout(120)
def test_sge_job_running_dbutil_adds_a_context(procs: Processes, sge: dict[str, str], tmp_path: Path) -> None:
    count = 20
    (tmp_path / 'Tasks').write_text('hostname; sleep 1\n' * count)
    driver = procs.spawn(
        [sys.executable, '-m', 'disbatch', '-s', 'node1:1', 'Tasks'],  # on a node: the driver listens beyond loopback
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    job = ''
    try:
        assert wait_for(lambda: bool(run_files(tmp_path, 'dbUtil.sh')) and bool(run_files(tmp_path, 'status.txt')), 20)
        [dbutil] = run_files(tmp_path, 'dbUtil.sh')
        job = qsub(procs, tmp_path, sge, '-pe', 'disbatch', '4', '-b', 'y', str(dbutil))
        _, stderr = driver.communicate(timeout=90)
        assert driver.returncode == 0, stderr
        tasks = check_ran_where_reported(read_status(status_path(tmp_path)), count)
        hosts = {record.host for record in tasks.values()}
        assert hosts & {'node2', 'node3'}, f"no task ran on the Grid Engine job's nodes: {hosts}"
        context_logs = [path.name for path in tmp_path.glob('*.context.log')]
        assert any(f'_J{job}.context.log' in name for name in context_logs), context_logs
        assert wait_for(lambda: not job_running(procs, job, sge), 20), 'the dbUtil job did not end with the run'
    finally:
        if job:
            qdel(procs, job, sge)
        kill_quietly(launchers_and_engines(tmp_path))


@pytest.mark.timeout(120)
def test_sge_engine_killed_mid_run_the_job_lives_on(procs: Processes, sge: dict[str, str], tmp_path: Path) -> None:
    # Tight integration: a `qrsh -inherit` task that dies of a signal makes qmaster kill the whole job. The engine's
    # supervisor is that task: it ends what the killed engine left and exits 64 + 9, and the job goes on.
    count = 24
    (tmp_path / 'Tasks').write_text(
        'echo start >> m.$DISBATCH_TASKID; sleep 2; echo done >> m.$DISBATCH_TASKID\n' * count
    )
    job = qsub(procs, tmp_path, sge, '-pe', 'disbatch', '6', '-masterq', 'all.q@node1', *disbatch_job('Tasks'))
    try:
        started = wait_for(lambda: len(engines(tmp_path)) == 3 and len(list(tmp_path.glob('m.*'))) >= 6, 40)
        assert started, f'the job did not get going: {(tmp_path / "job.out").read_text(errors="replace")}'
        [engine] = [
            pid
            for pid in engines(tmp_path)
            if '--hostname' in (words := command_line(pid)) and words[words.index('--hostname') + 1] == 'node2'
        ]
        killed_at = time.time()
        os.kill(engine, signal.SIGKILL)
        assert wait_for(lambda: not job_running(procs, job, sge), 60), 'the job did not end'
        output = (tmp_path / 'job.out').read_text(errors='replace')
        assert f'{count} tasks run in' in output, f'no summary: the job was killed\n{output}'
        assert no_traceback(output), output
        check_recovered(read_status(status_path(tmp_path)), count, 'node2', killed_at)
        done = {path.name: path.read_text().split().count('done') for path in tmp_path.glob('m.*')}
        assert len(done) == count and set(done.values()) == {1}, done
    finally:
        qdel(procs, job, sge)
        kill_quietly(launchers_and_engines(tmp_path))


@pytest.fixture
def crashed(procs: Processes, sge: dict[str, str]) -> Iterator[list[str]]:
    hosts: list[str] = []
    yield hosts
    if not hosts:
        return
    run_script('start-hosts.sh')
    run_script('start-sshd.sh')
    run_script('start-slurm.sh')
    run_script('start-sge.sh')
    for host in hosts:
        back = procs.run(['ssh', host, 'true'], cwd='/', timeout=20)
        assert back.returncode == 0, f'{host} did not come back: {back.stderr}'


@pytest.mark.timeout(180)
def test_sge_node_crash_mid_run(procs: Processes, sge: dict[str, str], crashed: list[str], tmp_path: Path) -> None:
    count = 24
    (tmp_path / 'Tasks').write_text('sleep 1\n' * count)
    job = qsub(procs, tmp_path, sge, '-pe', 'disbatch', '6', '-masterq', 'all.q@node1', *disbatch_job('Tasks'))
    try:
        started = wait_for(lambda: len(engines(tmp_path)) == 3 and len(run_files(tmp_path, 'status.txt')) == 1, 40)
        assert started, f'the job did not get going: {(tmp_path / "job.out").read_text(errors="replace")}'
        assert wait_for(lambda: status_path(tmp_path).read_bytes().count(b'\n') >= 3, 20)
        crashed.append('node2')
        crashed_at = time.time()
        run_script('kill-host.sh', 'node2', '--crash')

        def run_over() -> bool:
            clear_stale_pyenv_lock(crashed_at)
            [log] = run_files(tmp_path, 'driver.log')
            return 'run over' in log.read_text(errors='replace')

        over = wait_for(run_over, 60, 0.2)
        output = (tmp_path / 'job.out').read_text(errors='replace')
        [log] = run_files(tmp_path, 'driver.log')
        assert over, f'the run did not end\n{output}\n{log.read_text(errors="replace")}'
        assert no_traceback(output), output
        check_recovered(read_status(status_path(tmp_path)), count, 'node2', crashed_at)
        assert 'exit code 0' in log.read_text(errors='replace'), log.read_text(errors='replace')
    finally:
        qdel(procs, job, sge)
        kill_quietly(launchers_and_engines(tmp_path))


# ------------------------------------------------------------------------------------------------ PBS and LSF


def one_line_per_slot(slots: int) -> str:
    return ''.join(f'{node}\n' * slots for node in NODES)


@pytest.mark.timeout(90)
@pytest.mark.parametrize('scheduler', ['pbs', 'lsf-mcpu', 'lsf-hostfile'])
def test_pbs_and_lsf_jobs_use_every_node_over_ssh(
    procs: Processes, netns: None, scheduler: str, tmp_path: Path
) -> None:
    count = 18
    (tmp_path / 'Tasks').write_text('hostname; sleep 0.3\n' * count)
    (tmp_path / 'nodefile').write_text(one_line_per_slot(2))
    environment = {
        'pbs': {
            'PBS_NODEFILE': str(tmp_path / 'nodefile'),
            'PBS_JOBID': '123.pbsserver',
            'PBS_O_WORKDIR': str(tmp_path),
        },
        'lsf-mcpu': {'LSB_MCPU_HOSTS': 'node1 2 node2 2 node3 2', 'LSB_JOBID': '456'},
        'lsf-hostfile': {'LSB_DJOB_HOSTFILE': str(tmp_path / 'nodefile'), 'LSB_JOBID': '789'},
    }[scheduler]
    try:
        result = run_disbatch(procs, tmp_path, 'Tasks', timeout=60, env=environment)
        assert result.returncode == 0, result.describe()
        assert no_traceback(result.stderr), result.stderr
        tasks = check_ran_where_reported(read_status(status_path(tmp_path)), count)
        assert {record.host for record in tasks.values()} == set(NODES)
        [driver_log] = run_files(tmp_path, 'driver.log')
        text = driver_log.read_text()
        assert all(f'ssh -o BatchMode=yes -o ConnectTimeout=30 -- {node} ' in text for node in NODES), text
        job = environment.get('PBS_JOBID') or environment['LSB_JOBID']
        assert f'context J{job}:' in text, text
    finally:
        kill_quietly(launchers_and_engines(tmp_path))
