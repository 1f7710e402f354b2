"""One driver-scale measurement: a real `disbatch` run, its engines simulated (`bench/scale/engines.py`).

The driver is started as a user starts one that takes its engines from contexts added later: `disbatch -S -p DIR/
TASKS` (no engine of its own). The simulated engines join it the way a context process does: with the run's
credentials and address as its `<stem>_dbUtil.sh` exports them. Nothing of the driver is changed or bypassed.

What is measured, of the driver process alone (it has no child: -S launches no engine):
* its CPU (user + system, `/proc/PID/stat` sampled every SAMPLE_SECONDS) and the tasks finished (by their finish
  time in the status file) over the steady part of the run: from the moment every engine has been welcomed to the
  last task's finish; so start-up, the join storm and the goodbyes are left out of the per-task figures (the
  whole run's CPU per task is given too);
* its peak RSS (`VmHWM` in `/proc/PID/status`, sampled with the CPU);
* the join storm: from the moment the simulated engines' processes are started to the last engine's Welcome;
* from the simulated engines: every wait from a slot freeing to its next task starting;
* the status file: every task exactly once, return code 0.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.scale import profile
from disbatch.results.status_file import read_status_file

SAMPLE_SECONDS = 0.1
ENGINES_GONE_SECONDS = 10.0
REPO_ROOT = Path(__file__).resolve().parent.parent.parent
TICKS = os.sysconf('SC_CLK_TCK')


@dataclass(frozen=True)
class Workload:
    engines: int
    slots: int
    delay: float  # seconds a simulated task "runs"
    tasks: int

    @property
    def name(self) -> str:
        return f'{self.engines:,} x {self.slots} slots, {self.delay:g} s tasks'


@dataclass(frozen=True)
class Measurement:
    workload: Workload
    problem: str  # '' when the run ended 0 and its status file is complete and correct
    wall: float  # the driver's start to its exit, seconds
    cpu_total: float  # the driver's user + system seconds, whole run
    max_rss: int  # bytes
    steady_tasks: int
    steady_seconds: float
    steady_cpu: float
    join_seconds: float | None  # the engines' start to the last Welcome
    waits: list[float]  # slot freed -> next task started, seconds
    profile: list[str]  # where the driver's time went (profile.summary), when asked

    @property
    def rate(self) -> float | None:
        """Tasks per second over the steady part."""
        return self.steady_tasks / self.steady_seconds if self.steady_seconds > 0 and self.steady_tasks else None

    @property
    def cpu_ms_per_task(self) -> float | None:
        """Driver CPU milliseconds per task over the steady part."""
        return 1000 * self.steady_cpu / self.steady_tasks if self.steady_tasks else None

    @property
    def whole_cpu_ms_per_task(self) -> float:
        return 1000 * self.cpu_total / self.workload.tasks

    def wait_quantile(self, fraction: float) -> float | None:
        if not self.waits:
            return None
        ordered = sorted(self.waits)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(workload: Workload, directory: Path, per_process: int, limit: float, profiled: bool = False) -> Measurement:
    """Run `workload` under `directory`; give up (and say so) after `limit` seconds. `profiled`: py-spy records the
    driver (`profile.py`)."""
    directory.mkdir(parents=True)
    task_file = directory / 'tasks.txt'
    task_file.write_text('true\n' * workload.tasks)
    output = directory / 'out'
    output.mkdir()
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith('DISBATCH_') and key != 'PYTHONSTARTUP'
    }
    environment['PYTHONPATH'] = str(REPO_ROOT)
    started = time.time()
    with open(directory / 'driver.stderr', 'wb') as stderr:
        driver = subprocess.Popen(
            [sys.executable, '-m', 'disbatch', '-S', '-p', f'{output}/', str(task_file)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=environment,
            cwd=directory,
        )
    recorder = profile.start(driver.pid, directory / 'profile.txt') if profiled else None
    engines: list[subprocess.Popen[bytes]] = []
    samples: list[tuple[float, float]] = []
    peaks: list[int] = [0]
    try:
        exports = _run_exports(output, driver, limit)
        engines_started = time.time()
        for number in range(math.ceil(workload.engines / per_process)):
            first = number * per_process
            count = min(per_process, workload.engines - first)
            with open(directory / f'engines{number}.stderr', 'wb') as stderr:
                engines.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            '-m',
                            'bench.scale.engines',
                            '--engines',
                            str(count),
                            '--first',
                            str(first),
                            '--slots',
                            str(workload.slots),
                            '--delay',
                            str(workload.delay),
                            '--out',
                            str(directory / f'engines{number}.json'),
                        ],
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=stderr,
                        env={**environment, **exports},
                        cwd=REPO_ROOT,
                    )
                )
        exit_code, usage = _sample_until_exit(driver.pid, samples, peaks, started + limit, engines)
        driver.returncode = exit_code
        for engine in engines:
            try:
                engine.wait(timeout=30)
            except subprocess.TimeoutExpired:
                engine.kill()
                engine.wait()
        if recorder is not None:
            recorder.wait(timeout=30)  # it ends with the driver
    finally:
        for process in [driver, *engines, *([recorder] if recorder else [])]:
            if process.returncode is None:
                process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=10)
    wall = time.time() - started
    welcomed, waits, engine_problem = _engine_measurements(directory, len(engines))
    finishes, status_problem = _check_status(output, workload.tasks)
    problem = '; '.join(
        part
        for part in (
            f'driver exited {exit_code}: {_tail(directory / "driver.stderr")}' if exit_code else '',
            engine_problem,
            status_problem,
        )
        if part
    )
    profile_lines = profile.summary(directory / 'profile.txt') if profiled else []
    joined = max(welcomed) if welcomed and len(welcomed) == workload.engines else None
    steady_tasks, steady_seconds, steady_cpu = _steady(samples, finishes, joined)
    return Measurement(
        workload=workload,
        problem=problem,
        wall=wall,
        cpu_total=usage.ru_utime + usage.ru_stime,
        max_rss=max(peaks),
        steady_tasks=steady_tasks,
        steady_seconds=steady_seconds,
        steady_cpu=steady_cpu,
        join_seconds=None if joined is None else joined - engines_started,
        waits=waits,
        profile=profile_lines,
    )


def _run_exports(output: Path, driver: subprocess.Popen[bytes], limit: float) -> dict[str, str]:
    """What the run's `<stem>_dbUtil.sh` exports (credentials, addresses), once the driver has written it."""
    deadline = time.monotonic() + min(limit, 60.0)
    while time.monotonic() < deadline:
        scripts = sorted(output.glob('*_dbUtil.sh'))
        if scripts and driver.poll() is None:
            text = scripts[0].read_text()
            if 'esac' in text:  # written whole
                exports = {}
                for line in text.splitlines():
                    if line.startswith('export '):
                        key, _, value = shlex.split(line)[1].partition('=')
                        exports[key] = value
                return exports
        if driver.poll() is not None:
            raise RuntimeError(f'the driver exited {driver.returncode} before writing its dbUtil.sh')
        time.sleep(0.02)
    raise RuntimeError('the driver did not write its dbUtil.sh in time')


def _sample_until_exit(
    pid: int,
    samples: list[tuple[float, float]],
    peaks: list[int],
    deadline: float,
    engines: list[subprocess.Popen[bytes]],
) -> tuple[int, os.struct_rusage]:
    """Sample the driver's CPU until it exits; its exit code and rusage. Killed at `deadline`, and stopped
    (SIGTERM) when every simulated engine has been gone for ENGINES_GONE_SECONDS: a -S driver whose engines were all
    lost waits for a context that will not come."""
    engines_gone: float | None = None
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), usage
        cpu, peak = _cpu_seconds(pid), _peak_rss(pid)
        if cpu is not None:
            samples.append((time.time(), cpu))
        if peak is not None:
            peaks.append(peak)
        if time.time() > deadline:
            os.kill(pid, signal.SIGKILL)
        if engines_gone is None and all(engine.poll() is not None for engine in engines):
            engines_gone = time.time()
        if engines_gone is not None and time.time() > engines_gone + ENGINES_GONE_SECONDS:
            os.kill(pid, signal.SIGTERM)
            engines_gone = deadline  # once
        time.sleep(SAMPLE_SECONDS)


def _peak_rss(pid: int) -> int | None:
    """The driver's peak RSS so far, bytes (VmHWM: its own address space's; `wait4`'s ru_maxrss would start from
    this process's RSS at the fork)."""
    try:
        for line in Path(f'/proc/{pid}/status').read_text().splitlines():
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f'/proc/{pid}/stat').read_text().rpartition(')')[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15 of the whole line)


def _engine_measurements(directory: Path, processes: int) -> tuple[list[float], list[float], str]:
    welcomed: list[float] = []
    waits: list[float] = []
    missing = []
    for number in range(processes):
        path = directory / f'engines{number}.json'
        if not path.exists():
            missing.append(f'engines{number}: {_tail(directory / f"engines{number}.stderr")}')
            continue
        data = json.loads(path.read_text())
        welcomed += [time for time in data['welcomed'] if time is not None]
        waits += data['waits']
    return welcomed, waits, '; '.join(missing)


def _check_status(output: Path, tasks: int) -> tuple[list[float], str]:
    """The finish times of the task records; '' or what is wrong (a task missing, twice, or failed)."""
    files = sorted(output.glob('*_status.txt'))
    if len(files) != 1:
        return [], f'expected one status file, found {len(files)}'
    records = list(read_status_file(str(files[0])))
    seen = Counter(record.task_id for record in records)
    failed = sum(1 for record in records if record.return_code != 0)
    missing = sum(1 for task_id in range(tasks) if task_id not in seen)
    twice = sum(1 for count in seen.values() if count > 1)
    if missing or twice or failed or len(seen) != tasks:
        return [], f'status file: {missing} task(s) missing, {twice} twice, {failed} failed, {len(seen)} ids'
    return [record.finish for record in records], ''


def _steady(
    samples: list[tuple[float, float]], finishes: list[float], joined: float | None
) -> tuple[int, float, float]:
    """Tasks finished, seconds and driver CPU seconds between the first sample after every engine joined and the
    last sample before the last task finished; zeros when that is too short to say."""
    if joined is None or not finishes:
        return 0, 0.0, 0.0
    last = max(finishes)
    inside = [sample for sample in samples if joined <= sample[0] <= last]
    if len(inside) < 2:
        return 0, 0.0, 0.0
    (begin, cpu_begin), (end, cpu_end) = inside[0], inside[-1]
    tasks = sum(1 for finish in finishes if begin < finish <= end)
    return tasks, end - begin, cpu_end - cpu_begin


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors='replace').strip().splitlines()
    except OSError:
        return '(no output)'
    return ' | '.join(lines[-3:]) or '(no output)'
