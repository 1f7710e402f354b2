"""Faults in the middle of a run on the test cluster of tests/cluster (SPEC §3, §6): an engine killed with SIGKILL,
a host that crashes (`kill-host.sh --crash`: every process of the node dies at once), a node of a Slurm allocation
that crashes, and a driver killed with SIGKILL and then resumed with `-r`.

What must hold: the lost engine's running tasks are recorded (PID -1, return code -100, the lost node) within
10 s of the fault, they are run again elsewhere, every task ends with exactly one successful record, and the run
exits 0. A killed driver loses nothing that finished: its resume runs no finished task twice.

Clean-up: processes started over ssh or srun do not carry the test marker, so each test kills what is left of its
own run on the nodes (engines found by their `--run=JOBID` argument), `scancel`s its job, and brings a crashed
host back (`start-sshd.sh`, `start-slurm.sh` restart only what is missing) and checks `ssh HOST true` again.

One hazard of this machine, not of disbatch: tasks on SSH hosts source root's ~/.bashrc (bash does so when it sees
SSH_CLIENT at shell level 1), which runs `pyenv rehash`; a crash that SIGKILLs a task inside it leaves pyenv's lock
file behind, and every later bash on the machine then waits 60 s for it. The tests remove such a lock when it
predates the fault they caused (its holder is dead).
"""

from __future__ import annotations

import itertools
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from disbatch.protocol.messages import LOST_TASKS_END_SECONDS, SUPERVISOR_NAME
from disbatch.results.record import StatusRecord

from ..conftest import MARKER_VARIABLE, Processes, disbatch_cmd
from .helpers import REPO_ROOT, disbatch_job_script, no_traceback, pid_alive, read_status, run_files, wait_for

pytestmark = pytest.mark.cluster

LOST_RETURN_CODE = -100
DETECTION_SECONDS = 10.0
CLUSTER_SCRIPTS = REPO_ROOT / 'tests' / 'cluster'
PYENV_LOCK = Path.home() / '.pyenv' / 'shims' / '.pyenv-shim'


# ------------------------------------------------------------------------------------------- processes


def command_line(pid: int) -> list[str]:
    try:
        data = Path(f'/proc/{pid}/cmdline').read_bytes()
    except OSError:
        return []
    return data.decode(errors='replace').split('\0')[:-1]


def all_pids() -> list[int]:
    return [int(entry.name) for entry in Path('/proc').iterdir() if entry.name.isdigit()]


def run_ids(directory: Path) -> set[str]:
    """The DISBATCH_JOBID of each run in `directory`: its engines carry it as `--run=JOBID`."""
    return {log.name.removesuffix('_driver.log') for log in run_files(directory, 'driver.log')}


def is_supervisor(pid: int) -> bool:
    """Whether `pid` is an engine's supervisor (`disbatch/engine/supervisor.py`): the same command line as its engine,
    another name (`/proc/PID/comm`)."""
    try:
        return Path(f'/proc/{pid}/comm').read_bytes().strip() == SUPERVISOR_NAME
    except OSError:
        return False


def engine_processes(directory: Path, host: str | None = None) -> list[int]:
    """The engine processes (python, not their ssh/srun launchers or supervisors) of the run in `directory`, on
    `host` or all. One PID space for every node: they are all in /proc."""
    runs = run_ids(directory)
    found = []
    for pid in all_pids():
        words = command_line(pid)
        if 'disbatch.engine' not in words or os.path.basename(words[0]) in ('ssh', 'srun') or is_supervisor(pid):
            continue
        options = dict(itertools.pairwise(words))
        if any(f'--run={run}' in words for run in runs) and (host is None or options.get('--hostname') == host):
            found.append(pid)
    # A task the engine has forked but not yet exec'd still shows the engine's command line: drop children.
    return [pid for pid in found if parent(pid) not in found]


def launchers_and_engines(directory: Path) -> list[int]:
    """Everything of the run that names its run id: engines, ssh clients, srun steps."""
    needles = [f'--run={run} ' for run in run_ids(directory)]
    return [pid for pid in all_pids() if any(needle in ' '.join(command_line(pid)) + ' ' for needle in needles)]


def parent(pid: int) -> int:
    try:
        return int(Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[1])
    except (OSError, IndexError):
        return 0


def children(pid: int) -> list[int]:
    found = []
    for child in all_pids():
        try:
            fields = Path(f'/proc/{child}/stat').read_text().rsplit(')', 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(child)
    return found


def kill_quietly(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


def clear_stale_pyenv_lock(fault_time: float) -> None:
    """Remove pyenv's rehash lock if it was taken before `fault_time` (see the module docstring): its holder was
    killed by the fault; a live rehash holds it well under a second."""
    try:
        taken = PYENV_LOCK.stat().st_mtime
    except FileNotFoundError:
        return
    if taken <= fault_time and time.time() > fault_time + 1.5:
        PYENV_LOCK.unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def stale_pyenv_lock_removed() -> Iterator[None]:
    clear_stale_pyenv_lock(time.time() - 30)
    yield
    clear_stale_pyenv_lock(time.time() - 30)


@pytest.fixture
def netns(cluster: dict[str, str]) -> None:
    if cluster['CI_CLUSTER_MODE'] != 'netns':
        pytest.skip('fault injection needs the netns mode of the test cluster')


@pytest.fixture
def remote_cleanup(tmp_path: Path) -> Iterator[None]:
    yield
    kill_quietly(launchers_and_engines(tmp_path))


def run_script(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """A script of tests/cluster, without the test marker: the daemons it restarts must outlive the test."""
    environment = {name: value for name, value in os.environ.items() if name != MARKER_VARIABLE}
    result = subprocess.run(
        ['bash', *args],
        cwd=CLUSTER_SCRIPTS,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        start_new_session=True,
        check=False,
    )
    assert result.returncode == 0, f'{shlex.join(args)}: {result.stdout}{result.stderr}'
    return result


@pytest.fixture
def crash(procs: Processes, netns: None) -> Iterator[list[str]]:
    """The hosts `crash_host` crashed in the test; every one is brought back at teardown."""
    crashed: list[str] = []
    yield crashed
    if not crashed:
        return
    run_script('start-sshd.sh')
    run_script('start-slurm.sh')
    if Path('/usr/sbin/sge_execd').exists():
        run_script('start-sge.sh')  # the crashed node's sge_execd, for the Grid Engine tests after this one
    for host in crashed:
        back = procs.run(['ssh', host, 'true'], cwd='/', timeout=20)
        assert back.returncode == 0, f'{host} did not come back: {back.stderr}'


def crash_host(crashed: list[str], host: str) -> float:
    """`kill-host.sh HOST --crash`, at a moment when none of its tasks is inside `pyenv rehash`; the time of it."""
    wait_for(lambda: not any('pyenv' in ' '.join(command_line(pid)) for pid in netns_pids(host)), 3, 0.005)
    crashed.append(host)
    moment = time.time()
    run_script('kill-host.sh', host, '--crash')
    return moment


def netns_pids(host: str) -> list[int]:
    result = subprocess.run(['ip', 'netns', 'pids', f'ci-{host}'], capture_output=True, text=True, check=False)
    return [int(word) for word in result.stdout.split()]


# ------------------------------------------------------------------------------------------- checks


def status_count(directory: Path) -> int:
    found = run_files(directory, 'status.txt')
    return found[0].read_bytes().count(b'\n') if found else 0


# Each task holds a lock on a file of its own while it runs (the kernel drops it when the last process holding it
# ends): a copy that starts while another still runs finds it taken and says so.
MARKED = (
    'exec 9> lock.$DISBATCH_TASKID; flock -n 9 || echo twice >> m.$DISBATCH_TASKID; '
    'echo start >> m.$DISBATCH_TASKID; sleep 1; echo "done $EPOCHREALTIME" >> m.$DISBATCH_TASKID'
)


def check_never_twice_at_once(directory: Path, count: int, fault_time: float) -> None:
    """No task ran beside a copy of itself; each ran its course, and one that did so twice had done it the first
    time by the moment its engine died (it ended before its engine could report it: not done for the run, which
    runs it again, as the status file says)."""
    marks = {int(path.name[2:]): path.read_text().split('\n') for path in directory.glob('m.*')}
    assert sorted(marks) == list(range(count)), sorted(marks)
    for task_id, lines in marks.items():
        assert 'twice' not in lines, f'task {task_id} ran beside a copy of itself: {lines}'
        done = [float(line.split()[1]) for line in lines if line.startswith('done ')]
        assert 1 <= len(done) <= 2, f'task {task_id}: {lines}'
        if len(done) == 2:
            assert done[0] <= fault_time + 0.5, f'task {task_id} finished twice after the fault: {lines}'


def check_recovered(records: list[StatusRecord], count: int, host: str, fault_time: float) -> list[StatusRecord]:
    """Every task 0..count-1 has exactly one successful record, its last; the lost attempts are recorded on `host`
    within DETECTION_SECONDS of the fault. Returns the lost records."""
    by_task: dict[int, list[StatusRecord]] = {}
    for record in records:
        by_task.setdefault(record.task_id, []).append(record)
    assert sorted(by_task) == list(range(count)), f'tasks recorded: {sorted(by_task)}'
    lost = [record for record in records if record.return_code == LOST_RETURN_CODE]
    assert lost, f'no lost attempt recorded: {records}'
    for task_id, attempts in by_task.items():
        successes = [record for record in attempts if record.return_code == 0]
        assert len(successes) == 1 and attempts[-1] is successes[0], f'task {task_id}: {attempts}'
        assert all(record.return_code in (0, LOST_RETURN_CODE) for record in attempts), attempts
    for record in lost:
        assert record.pid == -1 and record.host == host, record
        assert fault_time - 0.5 <= record.finish <= fault_time + DETECTION_SECONDS, (
            f'lost {record.finish - fault_time:.1f} s after the fault: {record}'
        )
        [success] = [attempt for attempt in by_task[record.task_id] if attempt.return_code == 0]
        assert success.host != host and success.start >= record.finish - 0.5, (record, success)
    return lost


def start_ssh_run(procs: Processes, directory: Path, count: int, task: str = 'sleep 1') -> subprocess.Popen[str]:
    (directory / 'Tasks').write_text(f'{task}\n' * count)
    driver = procs.spawn(
        disbatch_cmd('-s', 'node1:2,node2:2,node3:2', 'Tasks'),
        cwd=directory,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    joined = wait_for(
        lambda: driver.poll() is not None or (len(engine_processes(directory)) == 3 and status_count(directory) >= 4),
        30,
    )
    assert joined and driver.poll() is None, 'the run did not get going on the three hosts'
    return driver


def running_engine_on(directory: Path, host: str) -> int:
    """The engine on `host`, once it has a task running."""
    engines = engine_processes(directory, host)
    assert len(engines) == 1, [(pid, command_line(pid), parent(pid)) for pid in engines]
    engine = engines[0]
    assert wait_for(lambda: bool(children(engine)), 5), f'the engine on {host} runs no task'
    return engine


def finish(driver: subprocess.Popen[str], fault_time: float, timeout: float = 60) -> tuple[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return driver.communicate(timeout=0.5)
        except subprocess.TimeoutExpired:
            clear_stale_pyenv_lock(fault_time)
            if time.monotonic() > deadline:
                raise


# ------------------------------------------------------------------------------------------- SSH hosts


@pytest.mark.timeout(90)
def test_engine_killed_mid_run(procs: Processes, netns: None, remote_cleanup: None, tmp_path: Path) -> None:
    # its tasks end with it (its supervisor ends them): none finishes beside the copy run elsewhere
    count = 30
    driver = start_ssh_run(procs, tmp_path, count, MARKED)
    engine = running_engine_on(tmp_path, 'node2')
    killed_at = time.time()
    os.kill(engine, signal.SIGKILL)
    stdout, stderr = finish(driver, killed_at)
    assert driver.returncode == 0, f'{stdout}\n{stderr}'
    assert no_traceback(stderr), stderr
    assert any('node2' in line and 'lost' in line for line in stderr.splitlines()), stderr
    [status] = run_files(tmp_path, 'status.txt')
    check_recovered(read_status(status), count, 'node2', killed_at)
    check_never_twice_at_once(tmp_path, count, killed_at)
    assert wait_for(lambda: not launchers_and_engines(tmp_path), 5), 'engines left running on the nodes'


@pytest.mark.timeout(120)
def test_host_crash_mid_run(procs: Processes, crash: list[str], remote_cleanup: None, tmp_path: Path) -> None:
    count = 30
    driver = start_ssh_run(procs, tmp_path, count)
    running_engine_on(tmp_path, 'node2')
    crashed_at = crash_host(crash, 'node2')
    stdout, stderr = finish(driver, crashed_at)
    assert driver.returncode == 0, f'{stdout}\n{stderr}'
    assert no_traceback(stderr), stderr
    [status] = run_files(tmp_path, 'status.txt')
    check_recovered(read_status(status), count, 'node2', crashed_at)
    assert wait_for(lambda: not launchers_and_engines(tmp_path), 5), 'engines left running on the nodes'


@pytest.fixture
def unplugged(netns: None) -> Iterator[list[str]]:
    """The hosts a test unplugged (`kill-host.sh HOST --unplug`); each is plugged back at teardown."""
    hosts: list[str] = []
    yield hosts
    for host in hosts:
        run_script('kill-host.sh', host, '--plug')


def ssh_launcher_on(directory: Path, host: str) -> list[int]:
    """The ssh client that started the run's engine on `host`."""
    return [
        pid
        for pid in launchers_and_engines(directory)
        if command_line(pid)[:1] == ['ssh'] and host in command_line(pid)
    ]


@pytest.mark.timeout(120)
def test_an_unplugged_hosts_ssh_launcher_is_ended(
    procs: Processes, unplugged: list[str], remote_cleanup: None, tmp_path: Path
) -> None:
    # nothing reaches node2: its ssh would hang for minutes; the engine is given up after 8 s and its ssh killed
    count = 120  # 20 s of work on 6 slots: the run outlasts the detection
    driver = start_ssh_run(procs, tmp_path, count)
    running_engine_on(tmp_path, 'node2')
    assert ssh_launcher_on(tmp_path, 'node2')
    unplugged.append('node2')
    cut_at = time.time()
    run_script('kill-host.sh', 'node2', '--unplug')
    assert wait_for(lambda: not ssh_launcher_on(tmp_path, 'node2'), DETECTION_SECONDS + 2), 'ssh to node2 still runs'
    assert driver.poll() is None, 'the run ended before the loss was found'
    stdout, stderr = finish(driver, cut_at)
    assert driver.returncode == 0, f'{stdout}\n{stderr}'
    [status] = run_files(tmp_path, 'status.txt')
    check_recovered(read_status(status), count, 'node2', cut_at)
    [log] = run_files(tmp_path, 'driver.log')
    assert 'lost engine on node2: killed its launcher' in log.read_text(errors='replace')


# ------------------------------------------------------------------------------------------- Slurm


def slurm(procs: Processes, directory: Path, *args: str) -> str:
    result = procs.run(list(args), cwd=directory, timeout=20)
    assert result.returncode == 0, f'{shlex.join(args)}: {result.stderr}'
    return result.stdout


@pytest.mark.timeout(150)
def test_slurm_node_crash_mid_run(procs: Processes, crash: list[str], tmp_path: Path) -> None:
    count = 21
    (tmp_path / 'Tasks').write_text('sleep 1\n' * count)
    job_script = disbatch_job_script(tmp_path, 'Tasks')
    submit = ['sbatch', '--parsable', '-N', '3', '-n', '3', '-D', str(tmp_path), '-o', 'job.out', str(job_script)]
    job = slurm(procs, tmp_path, *submit).strip().split(';')[0]
    assert job.isdigit(), job
    try:
        started = wait_for(lambda: len(engine_processes(tmp_path)) == 3 and status_count(tmp_path) >= 3, 40)
        assert started, f'the job did not get going: {(tmp_path / "job.out").read_text(errors="replace")}'
        running_engine_on(tmp_path, 'node3')
        crashed_at = crash_host(crash, 'node3')

        def run_over() -> bool:
            clear_stale_pyenv_lock(crashed_at)
            logs = run_files(tmp_path, 'driver.log')
            return bool(logs) and 'run over' in logs[0].read_text(errors='replace')

        over = wait_for(run_over, 45, 0.2)
        job_output = (tmp_path / 'job.out').read_text(errors='replace')
        [log] = run_files(tmp_path, 'driver.log')
        assert over, f'the run did not end\n{job_output}\n{log.read_text(errors="replace")}'
        assert no_traceback(job_output), job_output
        [status] = run_files(tmp_path, 'status.txt')
        check_recovered(read_status(status), count, 'node3', crashed_at)
        assert 'exit code 0' in log.read_text(errors='replace'), log.read_text(errors='replace')
    finally:
        procs.run(['scancel', job], cwd=tmp_path, timeout=20)
        kill_quietly(launchers_and_engines(tmp_path))


@pytest.mark.timeout(150)
def test_slurm_engine_killed_mid_run(procs: Processes, netns: None, tmp_path: Path) -> None:
    # the engine's srun step ends with it, but its tasks are its supervisor's to end (proctrack/linuxproc here does
    # not follow a process re-parented away from the step): none finishes beside the copy run elsewhere
    count = 21
    (tmp_path / 'Tasks').write_text(f'{MARKED}\n' * count)
    job_script = disbatch_job_script(tmp_path, 'Tasks')
    submit = ['sbatch', '--parsable', '-N', '3', '-n', '6', '-D', str(tmp_path), '-o', 'job.out', str(job_script)]
    job = slurm(procs, tmp_path, *submit).strip().split(';')[0]
    assert job.isdigit(), job
    try:
        assert wait_for(lambda: job_field(procs, tmp_path, job, 'JobState') != 'PENDING', 90, 0.5), 'still pending'
        started = wait_for(lambda: len(engine_processes(tmp_path)) == 3 and status_count(tmp_path) >= 3, 40)
        assert started, f'the job did not get going: {(tmp_path / "job.out").read_text(errors="replace")}'
        engine = running_engine_on(tmp_path, 'node2')
        killed_at = time.time()
        os.kill(engine, signal.SIGKILL)

        def run_over() -> bool:
            logs = run_files(tmp_path, 'driver.log')
            return bool(logs) and 'run over' in logs[0].read_text(errors='replace')

        assert wait_for(run_over, 60, 0.2), (tmp_path / 'job.out').read_text(errors='replace')
        [status] = run_files(tmp_path, 'status.txt')
        check_recovered(read_status(status), count, 'node2', killed_at)
        check_never_twice_at_once(tmp_path, count, killed_at)
    finally:
        procs.run(['scancel', job], cwd=tmp_path, timeout=20)
        kill_quietly(launchers_and_engines(tmp_path))


def job_field(procs: Processes, directory: Path, job: str, field: str) -> str:
    """One `Field=value` of `scontrol show job` ('' once the job is gone from slurmctld's memory)."""
    result = procs.run(['scontrol', '-o', 'show', 'job', job], cwd=directory, timeout=20)
    for word in result.stdout.split():
        if word.startswith(f'{field}='):
            return word.partition('=')[2]
    return ''


def steps_on(procs: Processes, directory: Path, job: str, host: str) -> list[str]:
    """The job's srun steps running on `host` (`squeue -s`: "JOBID.STEP NODELIST")."""
    listed = slurm(procs, directory, 'squeue', '-h', '-s', '-j', job, '-o', '%i %N')
    return [line.split()[0] for line in listed.splitlines() if line.split()[1:] == [host] and '.batch' not in line]


@pytest.mark.timeout(240)
def test_a_crashed_slurm_node_is_given_back(procs: Processes, crash: list[str], tmp_path: Path) -> None:
    # the lost engine's srun step is cancelled and the node retired: the job shrinks and ends COMPLETED, not CG.
    # Enough tasks that no other engine runs out of work before the crash: this cluster keeps no accounting, and
    # Slurm then refuses every resize of a job after the first ("the DB index is being set").
    count = 60
    (tmp_path / 'Tasks').write_text('sleep 1\n' * count)
    job_script = disbatch_job_script(tmp_path, 'Tasks')
    submit = ['sbatch', '--parsable', '-N', '3', '-n', '6', '-D', str(tmp_path), '-o', 'job.out', str(job_script)]
    job = slurm(procs, tmp_path, *submit).strip().split(';')[0]
    assert job.isdigit(), job
    try:
        # the shared cluster may be busy with other jobs: wait for this one's turn
        assert wait_for(lambda: job_field(procs, tmp_path, job, 'JobState') != 'PENDING', 90, 0.5), 'still pending'
        started = wait_for(lambda: len(engine_processes(tmp_path)) == 3 and status_count(tmp_path) >= 3, 40)
        assert started, f'the job did not get going: {(tmp_path / "job.out").read_text(errors="replace")}'
        assert steps_on(procs, tmp_path, job, 'node3'), 'no step on node3'
        running_engine_on(tmp_path, 'node3')
        crashed_at = crash_host(crash, 'node3')

        def given_back() -> bool:
            clear_stale_pyenv_lock(crashed_at)
            return not steps_on(procs, tmp_path, job, 'node3') and 'node3' not in job_field(
                procs, tmp_path, job, 'NodeList'
            )

        # the lost engine's task runs again LOST_TASKS_END_SECONDS after the loss: the job runs on that long at least
        assert wait_for(given_back, DETECTION_SECONDS + LOST_TASKS_END_SECONDS + 10, 0.2), (
            f'{time.time() - crashed_at:.1f} s after the crash: node3 steps {steps_on(procs, tmp_path, job, "node3")},'
            f' NodeList={job_field(procs, tmp_path, job, "NodeList")}'
        )
        assert int(job_field(procs, tmp_path, job, 'NumNodes')) < 3  # node2 may have finished and gone too

        def job_over() -> bool:
            clear_stale_pyenv_lock(crashed_at)
            return job_field(procs, tmp_path, job, 'JobState') not in ('RUNNING', 'PENDING', 'COMPLETING')

        assert wait_for(job_over, 60, 0.5), f'job state {job_field(procs, tmp_path, job, "JobState")}'
        assert job_field(procs, tmp_path, job, 'JobState') in ('COMPLETED', ''), job_field(
            procs, tmp_path, job, 'JobState'
        )
        [status] = run_files(tmp_path, 'status.txt')
        check_recovered(read_status(status), count, 'node3', crashed_at)
        [log] = run_files(tmp_path, 'driver.log')
        text = log.read_text(errors='replace')
        assert 'exit code 0' in text, text
        assert 'lost engine on node3: killed its launcher' in text and 'retiring node3' in text, text
    finally:
        procs.run(['scancel', job], cwd=tmp_path, timeout=20)
        kill_quietly(launchers_and_engines(tmp_path))


# ------------------------------------------------------------------------------------------- the driver


@pytest.mark.timeout(60)
def test_driver_killed_then_resumed(procs: Processes, tmp_path: Path) -> None:
    count = 16
    (tmp_path / 'Tasks').write_text('echo $DISBATCH_TASKID >> started; sleep 0.5\n' * count)
    (tmp_path / 'first').mkdir()
    (tmp_path / 'second').mkdir()
    driver = procs.spawn(
        disbatch_cmd('-s', 'localhost:2', '-p', 'first/', 'Tasks'),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert wait_for(lambda: status_count(tmp_path / 'first') >= 4 or driver.poll() is not None, 20)
    engines = engine_processes(tmp_path / 'first')
    assert engines and driver.poll() is None
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=5)
    # the engines see their driver gone and stop their tasks
    assert wait_for(lambda: not any(pid_alive(pid) for pid in engines), 5), 'engines outlived their driver'
    [first_status] = run_files(tmp_path / 'first', 'status.txt')
    finished_first = {record.task_id for record in read_status(first_status) if record.return_code == 0}
    assert 4 <= len(finished_first) < count, finished_first
    resumed = procs.run(
        disbatch_cmd('-s', 'localhost:2', '-p', 'second/', '-r', str(first_status), 'Tasks'), cwd=tmp_path, timeout=30
    )
    assert resumed.returncode == 0, resumed.stderr
    assert no_traceback(resumed.stderr), resumed.stderr
    [second_status] = run_files(tmp_path / 'second', 'status.txt')
    second = read_status(second_status)
    skipped = {record.task_id for record in second if record.kind.value == 'S'}
    ran_again = [record.task_id for record in second if record.kind.value == ' ']
    assert skipped == finished_first, (skipped, finished_first)
    assert sorted(ran_again) == sorted(set(range(count)) - finished_first), ran_again
    assert all(record.return_code == 0 for record in second), second
    starts: dict[int, int] = {}
    for line in (tmp_path / 'started').read_text().split():
        starts[int(line)] = starts.get(int(line), 0) + 1
    assert sorted(starts) == list(range(count)), starts
    for task_id in finished_first:
        assert starts[task_id] == 1, f'task {task_id} finished in the first run and ran again: {starts}'
    for task_id in set(range(count)) - finished_first:
        assert starts[task_id] <= 2, starts  # at most once cut off by the kill, then once to the end
