"""Workload (e): ours through real SSH hosts and real Slurm, side by side with ours locally at the same slots.

Three ways to run the same task file, interleaved per rep (local, SSH, Slurm):

* local: `python -m disbatch -s localhost:N -p OUT/ TASKS`, timed like every other run (spawn to exit).
* SSH: `python -m disbatch -s host1:S,host2:S,... -p OUT/ TASKS` from this machine: engines over `ssh`, the
  tasks on the hosts; timed spawn to exit. Needs a shared file system (the test cluster of tests/cluster has one).
* Slurm: `sbatch -N NODES -n NODES*S job.sh`, where job.sh runs `PYTHON -m disbatch -p OUT/ TASKS` (one engine per
  node through srun). The compared time is measured **inside the job script** around the disbatch call (bash's
  `$EPOCHREALTIME`, written to a file), so it leaves out Slurm's queueing; the time from `sbatch` until the job has
  left `squeue -h -j JOB` (polled every 0.2 s) is reported next to it. A job still queued at the end is `scancel`led.

Also measured once per run, for context: a plain `ssh HOST true`, and the cost of one `/bin/bash -c true` started
from Python here and on the first SSH host through ssh (where sshd's environment may make bash read start-up files).
"""

from __future__ import annotations

import enum
import shlex
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from bench.leftovers import Leftovers
from bench.measure import Invocation, run_measured
from bench.status import StatusCheck, check_status
from bench.tools import Tool, base_environment, ours_environment

CLUSTER_SETTINGS = Path('/tmp/ci-cluster/settings.env')
SQUEUE_POLL_SECONDS = 0.2
SECONDS_PER_TASK_LIMIT = 0.25  # a remote run's time limit is at least this per task (SSH tasks may be slow to start)
SSH_OPTIONS = ('-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10')
SSH_TRUE_CALLS = 5
BASH_PROBE_CALLS = 20
REMOTE_SHARE_LIMIT = 2.0  # SPEC §5: remote per-task overhead within 2x of local
PYENV_SHIM_LOCK = Path('.pyenv') / 'shims' / '.pyenv-shim'
STALE_LOCK_SECONDS = 60.0


class Mode(enum.Enum):
    LOCAL = 'local'
    SSH = 'ssh'
    SLURM = 'slurm'


@dataclass(frozen=True)
class RemotePlan:
    tasks: int
    ssh_hosts: tuple[str, ...]  # empty: no SSH runs
    slurm_nodes: int  # 0: no Slurm runs
    slots_per_host: int

    @property
    def hosts(self) -> int:
        return len(self.ssh_hosts) or self.slurm_nodes

    @property
    def local_slots(self) -> int:
        return self.hosts * self.slots_per_host

    @property
    def modes(self) -> list[Mode]:
        modes = [Mode.LOCAL]
        if self.ssh_hosts:
            modes.append(Mode.SSH)
        if self.slurm_nodes:
            modes.append(Mode.SLURM)
        return modes

    @property
    def ssh_spec(self) -> str:
        return ','.join(f'{host}:{self.slots_per_host}' for host in self.ssh_hosts)

    def label(self, mode: Mode) -> str:
        if mode is Mode.LOCAL:
            return f'local: -s localhost:{self.local_slots}'
        if mode is Mode.SSH:
            return f'SSH: -s {self.ssh_spec}'
        return f'Slurm: sbatch -N {self.slurm_nodes} -n {self.slurm_nodes * self.slots_per_host}'

    @property
    def title(self) -> str:
        return f'{self.tasks:,} x true, {self.local_slots} slots: local vs SSH hosts vs Slurm (ours)'


@dataclass(frozen=True)
class RemoteRun:
    mode: Mode
    rep: int
    tasks: int
    wall: float  # the compared time: spawn to exit (local, SSH); around the disbatch call inside the job (Slurm)
    queue_wall: float | None  # Slurm: from sbatch until the job left squeue (0.2 s polls); None otherwise
    driver_cpu: float | None  # user + system seconds of the driver process alone; None for Slurm
    exit_code: int | None  # of disbatch; None when unknown (the job never wrote its timing file)
    timed_out: bool
    check: StatusCheck
    leftovers: Leftovers | None
    output_tail: str  # the last lines of the driver's stderr (local, SSH) or the job's output (Slurm)

    @property
    def ok(self) -> bool:
        return not self.timed_out and self.exit_code == 0 and self.check.ok(self.tasks)

    def problem(self) -> str:
        """Why the run is not ok ('' if it is)."""
        if self.timed_out:
            return f'killed after the time limit ({self.wall:.0f} s)'
        parts = []
        if self.exit_code != 0:
            parts.append(
                'exit code unknown (no timing file)' if self.exit_code is None else f'exit code {self.exit_code}'
            )
        if not self.check.ok(self.tasks):
            parts.append(self.check.describe(self.tasks))
        if parts and self.output_tail:
            parts.append('output: ' + self.output_tail.replace('\n', ' | '))
        return '; '.join(parts)


@dataclass(frozen=True)
class Context:
    """Costs that are the environment's, not ours: measured once per bench run."""

    ssh_host: str
    ssh_true: list[float]  # seconds of each `ssh HOST true`
    local_bash_ms: float | None  # one `/bin/bash -c true` from Python on this machine
    remote_bash_ms: float | None  # the same on the SSH host, inside an ssh session (as an engine runs its tasks)


def cluster_hosts(settings: Path = CLUSTER_SETTINGS) -> tuple[str, ...] | None:
    """The node names of the test cluster (tests/cluster) when its settings file exists; None when it does not."""
    try:
        text = settings.read_text(encoding='utf-8')
    except OSError:
        return None
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == 'export' and words[1].startswith('CI_CLUSTER_NODES='):
            return tuple(words[1].split('=', 1)[1].split())
    return ()


def stale_shim_lock(home: Path) -> str:
    """A note when pyenv's shim lock file is older than a minute (every `pyenv rehash` in a bash then waits 60 s)."""
    path = home / PYENV_SHIM_LOCK
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        return ''
    if age <= STALE_LOCK_SECONDS:
        return ''
    return (
        f'{path} is {age:.0f} s old: a stale pyenv lock; every bash that runs `pyenv rehash` (e.g. from ~/.bashrc '
        'on an SSH host) waits 60 s for it. Remote figures of this run are not meaningful.'
    )


def run_remote_suite(
    plan: RemotePlan,
    ours: Tool,
    scratch: Path,
    timeout: float,
    reps: int,
    keep: bool,
    progress: TextIO,
) -> list[RemoteRun]:
    """Every rep: ours locally, through SSH, through Slurm (those planned), in that order."""
    task_file = scratch / f'remote-true{plan.tasks}.txt'
    task_file.write_text('true\n' * plan.tasks, encoding='utf-8')
    limit = max(timeout, plan.tasks * SECONDS_PER_TASK_LIMIT)
    runs: list[RemoteRun] = []
    for rep in range(1, reps + 1):
        parts = []
        for mode in plan.modes:
            run_directory = scratch / f'rep{rep}' / 'remote' / mode.value
            run_directory.mkdir(parents=True)
            if mode is Mode.SLURM:
                run = run_slurm(plan, ours, task_file, run_directory, rep, limit)
            else:
                spec = plan.ssh_spec if mode is Mode.SSH else f'localhost:{plan.local_slots}'
                run = run_driver(mode, spec, plan.tasks, ours, task_file, run_directory, rep, limit)
            runs.append(run)
            queue = f' (sbatch to gone {run.queue_wall:.3f} s)' if run.queue_wall is not None else ''
            parts.append(f'{mode.value} {run.wall:.3f} s{queue}{"" if run.ok else " FAILED"}')
            if run.ok and not keep:
                shutil.rmtree(run_directory)
        print(f'[rep {rep}/{reps}] {plan.title}: ' + ', '.join(parts), file=progress, flush=True)
    return runs


def run_driver(
    mode: Mode,
    spec: str,
    tasks: int,
    ours: Tool,
    task_file: Path,
    run_directory: Path,
    rep: int,
    timeout: float,
) -> RemoteRun:
    """Ours with `-s SPEC` started here (local, or engines over ssh), timed spawn to exit."""
    output_directory = run_directory / 'out'
    output_directory.mkdir()
    argv = (ours.python, '-m', 'disbatch', '-s', spec, '-p', f'{output_directory}/', str(task_file))
    measurement = run_measured(
        Invocation(argv, ours_environment(ours)),
        cwd=run_directory,
        stderr_path=run_directory / 'stderr.txt',
        timeout=timeout,
    )
    return RemoteRun(
        mode=mode,
        rep=rep,
        tasks=tasks,
        wall=measurement.wall,
        queue_wall=None,
        driver_cpu=measurement.self_cpu,
        exit_code=measurement.exit_code,
        timed_out=measurement.timed_out,
        check=check_status(output_directory),
        leftovers=measurement.leftovers,
        output_tail=measurement.stderr_tail,
    )


def job_script(ours: Tool, task_file: Path, output_directory: Path, timing: Path) -> str:
    """The batch script: time the disbatch call with bash's clock (no extra process) and write it to `timing`."""
    command = shlex.join([ours.python, '-m', 'disbatch', '-p', f'{output_directory}/', str(task_file)])
    return (
        '#!/bin/bash\n'
        + (f'export PYTHONPATH={shlex.quote(ours.pythonpath)}\n' if ours.pythonpath else 'unset PYTHONPATH\n')
        + 'start=$EPOCHREALTIME\n'
        f'{command}\n'
        'code=$?\n'
        'end=$EPOCHREALTIME\n'
        f'echo "$start $end $code" > {shlex.quote(str(timing))}\n'
        'exit $code\n'
    )


def run_slurm(
    plan: RemotePlan,
    ours: Tool,
    task_file: Path,
    run_directory: Path,
    rep: int,
    timeout: float,
) -> RemoteRun:
    """Ours inside `sbatch -N NODES -n NODES*S`; the job is scancelled if it is still queued when we leave."""
    output_directory = run_directory / 'out'
    output_directory.mkdir()
    timing = run_directory / 'timing.txt'
    script = run_directory / 'job.sh'
    script.write_text(job_script(ours, task_file, output_directory, timing), encoding='utf-8')
    job_output = run_directory / 'job.out'
    tasks_total = plan.slurm_nodes * plan.slots_per_host
    submit = ['sbatch', '--parsable', '-J', 'disbatch-bench', '-N', str(plan.slurm_nodes), '-n', str(tasks_total)]
    submit += ['-D', str(run_directory), '-o', str(job_output), str(script)]
    environment = base_environment()
    job = ''
    timed_out = False
    start = time.perf_counter()
    try:
        done = subprocess.run(submit, env=environment, capture_output=True, text=True, timeout=60)
        job = done.stdout.strip().split(';')[0]
        if done.returncode != 0 or not job.isdigit():
            problem = (done.stdout + done.stderr).strip() or f'sbatch exit code {done.returncode}'
            return _failed_slurm(plan, rep, time.perf_counter() - start, f'sbatch: {problem}')
        timed_out = not _wait_gone(job, environment, start + timeout)
        queue_wall = time.perf_counter() - start
    finally:
        if job.isdigit() and (timed_out or _in_queue(job, environment)):
            subprocess.run(['scancel', job], env=environment, capture_output=True, timeout=60)
    inside, exit_code = _read_timing(timing)
    return RemoteRun(
        mode=Mode.SLURM,
        rep=rep,
        tasks=plan.tasks,
        wall=queue_wall if inside is None or timed_out else inside,
        queue_wall=queue_wall,
        driver_cpu=None,
        exit_code=None if timed_out else exit_code,
        timed_out=timed_out,
        check=check_status(output_directory),
        leftovers=None,
        output_tail=_tail(job_output),
    )


def _failed_slurm(plan: RemotePlan, rep: int, wall: float, problem: str) -> RemoteRun:
    check = StatusCheck(0, 0, problem)
    return RemoteRun(Mode.SLURM, rep, plan.tasks, wall, None, None, None, False, check, None, '')


def _in_queue(job: str, environment: dict[str, str]) -> bool:
    """Whether squeue still lists the job (pending, running, completing). A job squeue no longer knows is gone."""
    try:
        done = subprocess.run(
            ['squeue', '-h', '-j', job, '-o', '%T'], env=environment, capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        return True
    return done.returncode == 0 and bool(done.stdout.strip())


def _wait_gone(job: str, environment: dict[str, str], deadline: float) -> bool:
    """Poll squeue every 0.2 s until the job has left it (True) or the deadline passed (False)."""
    while _in_queue(job, environment):
        if time.perf_counter() >= deadline:
            return False
        time.sleep(SQUEUE_POLL_SECONDS)
    return True


def _read_timing(path: Path) -> tuple[float | None, int | None]:
    try:
        words = path.read_text(encoding='utf-8').split()
        return float(words[1]) - float(words[0]), int(words[2])
    except (OSError, IndexError, ValueError):
        return None, None


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding='utf-8', errors='replace')
    except OSError:
        return ''
    return '\n'.join(text.splitlines()[-lines:])


BASH_PROBE = (
    'import subprocess, time\n'
    'start = time.perf_counter()\n'
    'for _ in range({calls}):\n'
    '    subprocess.run(["/bin/bash", "-c", "true"], check=True)\n'
    'print((time.perf_counter() - start) / {calls} * 1000)\n'
)


def measure_context(host: str, python: str, scratch: Path) -> Context:
    """`ssh HOST true` a few times, and the cost of one `/bin/bash -c true` from Python here and on HOST via ssh."""
    environment = base_environment()
    walls = []
    for _ in range(SSH_TRUE_CALLS):
        start = time.perf_counter()
        done = subprocess.run(['ssh', *SSH_OPTIONS, host, 'true'], env=environment, capture_output=True, timeout=60)
        if done.returncode == 0:
            walls.append(time.perf_counter() - start)
    probe = [python, '-c', BASH_PROBE.format(calls=BASH_PROBE_CALLS)]
    local = _probe_milliseconds(probe, environment, scratch)
    remote = _probe_milliseconds(['ssh', *SSH_OPTIONS, host, shlex.join(probe)], environment, scratch)
    return Context(host, walls, local, remote)


def _probe_milliseconds(argv: Sequence[str], environment: dict[str, str], cwd: Path) -> float | None:
    try:
        done = subprocess.run(list(argv), env=environment, cwd=cwd, capture_output=True, text=True, timeout=300)
        return float(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return None
