"""The fault campaign (issue 22): nothing lost, nothing run twice, whatever is killed, however often a run resumes.

One run of N marker-file tasks (default 500) is interrupted again and again: engines killed with SIGKILL at random
moments, the driver killed with SIGKILL at random moments, a few Ctrl-C (SIGINT); each stopped run is followed at once
by its resume command, so the runs form a chain (a resume of a resume of a resume ...) until one runs to its end. The
resume command is the one the run prints (after a Ctrl-C), or, after a SIGKILL, which prints nothing, the one it
would print (`disbatch.results.failures.rerun_command`, what the summary prints: the run's command with `-r` and its
own status file), as a user would type it.

Every task holds a lock on a file of its own while it runs (`flock`: the kernel drops it when the last process holding
it ends) and appends `start ID TIME` and, if it runs its course, `end ID TIME` to its marker file (a copy that finds
the lock taken appends `twice ID TIME`). At the end the campaign reports, from the markers and every run's status file:

* tasks lost: no run recorded the task done, or it never ran its course;
* finished tasks run again: a copy that started after a run had recorded the task done; by cause: the resume command
  left that record out (its status file lacked an earlier run's record: issue 22 item 1), the record was in the
  `-r` files given, or the run that recorded it ran it again itself;
* completed tasks run again before any run recorded them (killed between the task's end and its record: inherent,
  the task was not done yet; reported, not a failure);
* tasks ever running twice at once: a copy that started while another held the task's lock (the lock measures it
  exactly, a copy killed before its `end` included, where start and end times cannot);
* processes left: any process carrying the campaign's tag in its environment, 5 s after the last run.

Bounded (each run at most --run-seconds, the whole at most --seconds) and runnable by hand:

    python -m bench.faults                       # 500 tasks, 10 driver and 10 engine SIGKILLs, 2 Ctrl-C
    python -m bench.faults --tasks 100 --driver-kills 3 --engine-kills 3 --interrupts 1 --seed 7
    python -m bench.faults --hosts node1:2,node2:2,node3:2   # engines over ssh (the test cluster: one PID space)

Exit code 0 when all four counts are 0, 1 otherwise, 2 on bad flags.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from disbatch.results.failures import rerun_command
from disbatch.results.record import RecordKind, StatusRecord
from disbatch.results.status_file import read_status_file

TAG_VARIABLE = 'DISBATCH_FAULT_CAMPAIGN'
# start, maybe twice, end: one marker file per task id; the lock file keeps a copy's presence for as long as it runs
TASK = (
    't=$DISBATCH_TASKID; exec 9> locks/$t; flock -n 9 || echo "twice $t $EPOCHREALTIME" >> markers/$t; '
    'echo "start $t $EPOCHREALTIME" >> markers/$t; sleep {seconds}; echo "end $t $EPOCHREALTIME" >> markers/$t'
)
RESUME_PRINTED = re.compile(r'to run the (?:failed and interrupted|interrupted|failed) tasks again: (disbatch .*)$')
STATUS_PRINTED = re.compile(r'status file (\S+_status\.txt)')
JOINED = re.compile(r'engine \d+ joined from (\S+) \(pid (\d+),')


@dataclass
class Link:
    """One run of the chain: its command, how it was stopped, what it wrote."""

    number: int
    argv: list[str]  # disbatch's arguments
    started: float
    stop: str = ''  # 'driver SIGKILL', 'SIGINT', '' (ran to its end)
    exit_code: int | None = None
    status: str = ''
    engine_kills: list[tuple[float, str, int]] = field(default_factory=list)  # (time, host, pid)
    stopped_at: float = 0.0
    resumed_with: str = ''  # how the next command was made: 'printed' or 'rerun_command'

    @property
    def resume_files(self) -> list[str]:
        return [self.argv[index + 1] for index, word in enumerate(self.argv[:-1]) if word == '-r']


@dataclass
class Marker:
    kind: str  # start, end, twice
    task_id: int
    time: float


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m bench.faults', description=__doc__.split('\n\n')[0])
    parser.add_argument('--tasks', type=int, default=500)
    parser.add_argument('--driver-kills', type=int, default=10)
    parser.add_argument('--engine-kills', type=int, default=10)
    parser.add_argument('--interrupts', type=int, default=2, help='runs stopped with SIGINT (Ctrl-C)')
    parser.add_argument(
        '--hosts', default='127.0.0.1:2,127.0.0.2:2,127.0.0.3:2', help='the -s list (default: %(default)s)'
    )
    parser.add_argument('--seconds-per-task', default='0.2-2.0', help='task durations, uniform in this range')
    parser.add_argument('--seed', type=int, default=None)
    parser.add_argument('--run-seconds', type=float, default=600.0, help='the longest one run may take')
    parser.add_argument('--seconds', type=float, default=1800.0, help='the longest the whole campaign may take')
    parser.add_argument('--keep', action='store_true', help='keep the scratch directory')
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    low, _, high = args.seconds_per_task.partition('-')
    directory = Path(tempfile.mkdtemp(prefix='disbatch-faults-'))
    (directory / 'markers').mkdir()
    (directory / 'locks').mkdir()
    durations = [round(rng.uniform(float(low), float(high or low)), 2) for _ in range(args.tasks)]
    (directory / 'Tasks').write_text(''.join(TASK.format(seconds=seconds) + '\n' for seconds in durations))
    tag = uuid.uuid4().hex
    environment = {name: value for name, value in os.environ.items() if not name.startswith('DISBATCH_')}
    environment[TAG_VARIABLE] = tag
    hosts = len(args.hosts.split(','))
    print(f'fault campaign: {args.tasks} tasks on {args.hosts}, seed {seed}, in {directory}', flush=True)
    plan = make_plan(rng, args.driver_kills, args.engine_kills, args.interrupts, hosts)
    links = run_chain(directory, environment, ['-s', args.hosts, 'Tasks'], plan, rng, args.run_seconds, args.seconds)
    left = processes_left(tag)
    report = analyse(directory, links, args.tasks, left)
    print(report.text(links, seed, args), flush=True)
    if not args.keep and report.clean:
        subprocess.run(['rm', '-rf', str(directory)], check=False)
    return 0 if report.clean else 1


# ---------------------------------------------------------------------------------------------------- the chain


@dataclass(frozen=True)
class Stop:
    engine_kills: tuple[float, ...]  # seconds after the run's start
    how: str  # 'driver SIGKILL' or 'SIGINT'
    at: float


def make_plan(rng: random.Random, driver_kills: int, engine_kills: int, interrupts: int, hosts: int) -> list[Stop]:
    """The stopped runs of the chain, in order: each kills up to hosts - 1 engines, then is stopped."""
    hows = ['driver SIGKILL'] * driver_kills + ['SIGINT'] * interrupts
    rng.shuffle(hows)
    per_run = [0] * len(hows)
    for _ in range(engine_kills):
        open_runs = [index for index, count in enumerate(per_run) if count < hosts - 1] or [0]
        per_run[rng.choice(open_runs)] += 1
    plan = []
    for how, kills in zip(hows, per_run, strict=True):
        times = tuple(sorted(round(rng.uniform(0.5, 4.0), 2) for _ in range(kills)))
        at = round((times[-1] if times else 0.0) + rng.uniform(0.3, 3.0), 2)
        plan.append(Stop(times, how, at))
    return plan


def run_chain(
    directory: Path,
    environment: dict[str, str],
    first: list[str],
    plan: list[Stop],
    rng: random.Random,
    run_seconds: float,
    seconds: float,
) -> list[Link]:
    links: list[Link] = []
    argv = first
    deadline = time.monotonic() + seconds
    owed = 0  # engine kills a run ended too soon to make: made in the next one
    for number, planned in enumerate([*plan, None]):
        stop = planned or Stop((), '', 0.0)
        if owed:
            kills = sorted(stop.engine_kills + tuple(round(rng.uniform(0.5, 4.0), 2) for _ in range(owed)))
            stop = Stop(tuple(kills), stop.how, max(stop.at, kills[-1] + 0.3))
        link = Link(number, argv, time.time())
        links.append(link)
        stderr_path = directory / f'run{number:02d}.stderr'
        with open(stderr_path, 'wb') as stderr:
            driver = subprocess.Popen(
                [sys.executable, '-m', 'disbatch', *argv],
                cwd=directory,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        try:
            owed = interrupt(driver, link, stop, stderr_path, rng)
            limit = min(run_seconds, max(1.0, deadline - time.monotonic()))
            link.exit_code = driver.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(driver.pid, signal.SIGKILL)
            link.exit_code = driver.wait()
            link.stop = f'killed after {limit:.0f} s (too long)'
        text = stderr_path.read_text(errors='replace')
        link.status = status_of(text, directory)
        print(f'  run {number:2d}: {describe(link)}', flush=True)
        if planned is None or not link.stop:
            break
        argv, link.resumed_with = next_command(link, text)
        if time.monotonic() > deadline:
            print('  the campaign ran out of time', flush=True)
            break
    return links


def interrupt(driver: subprocess.Popen[bytes], link: Link, stop: Stop, stderr_path: Path, rng: random.Random) -> int:
    """Carry out `stop` on the running driver: its engine kills (each waits for an engine to have joined, and what
    follows waits as long), then its own stop (None: none, the run goes to its end). Returns the kills not made."""
    start = time.monotonic()
    for made, at in enumerate(stop.engine_kills):
        if not wait_until(driver, start + at):
            return len(stop.engine_kills) - made
        while not (engines := live_engines(stderr_path, link)):
            if not wait_until(driver, time.monotonic() + 0.05):
                return len(stop.engine_kills) - made
            start += 0.05
        host, pid = rng.choice(engines)
        os.kill(pid, signal.SIGKILL)
        link.engine_kills.append((time.time(), host, pid))
    if stop.how and wait_until(driver, start + stop.at):
        link.stop = stop.how
        link.stopped_at = time.time()
        os.kill(driver.pid, signal.SIGKILL if stop.how == 'driver SIGKILL' else signal.SIGINT)
    return 0


def wait_until(driver: subprocess.Popen[bytes], moment: float) -> bool:
    """Sleep until `moment` (time.monotonic()); False if the driver exited meanwhile."""
    while time.monotonic() < moment:
        if driver.poll() is not None:
            return False
        time.sleep(min(0.02, moment - time.monotonic()) if moment > time.monotonic() else 0)
    return driver.poll() is None


def live_engines(stderr_path: Path, link: Link) -> list[tuple[str, int]]:
    """(host, pid) of the run's engines that have joined and still run, from its driver log."""
    status = status_of(stderr_path.read_text(errors='replace'), stderr_path.parent)
    if not status:
        return []
    log = Path(status[: -len('_status.txt')] + '_driver.log')
    try:
        joined = JOINED.findall(log.read_text(errors='replace'))
    except OSError:
        return []
    killed = {pid for _, _, pid in link.engine_kills}
    return [(host, int(pid)) for host, pid in joined if int(pid) not in killed and alive(int(pid))]


def status_of(stderr: str, directory: Path) -> str:
    """The run's status file, from the line it starts with ('' when it did not get that far)."""
    match = STATUS_PRINTED.search(stderr)
    return str(directory / match.group(1)) if match else ''


def next_command(link: Link, stderr: str) -> tuple[list[str], str]:
    """The resume command: the one the run printed, else the one it would print (after a SIGKILL)."""
    for line in reversed(stderr.splitlines()):
        if match := RESUME_PRINTED.search(line):
            return shlex.split(match.group(1))[1:], 'printed'
    if not link.status:
        return link.argv, 'the same command (the run had not started)'
    return shlex.split(rerun_command(link.argv, 'Tasks', link.status, retry_failed=False))[1:], 'rerun_command'


def describe(link: Link) -> str:
    kills = ', '.join(f'{host} pid {pid}' for _, host, pid in link.engine_kills)
    what = link.stop or 'ran to its end'
    resumed = ' '.join(link.argv[:-1])
    return (
        f'disbatch {resumed} Tasks: {len(link.engine_kills)} engine(s) killed{f" ({kills})" if kills else ""}; '
        f'{what}; exit {link.exit_code}'
    )


def alive(pid: int) -> bool:
    try:
        with open(f'/proc/{pid}/stat') as handle:
            return handle.read().rpartition(')')[2].split()[0] != 'Z'
    except OSError:
        return False


def processes_left(tag: str, wait: float = 5.0) -> list[int]:
    """The processes carrying the campaign's tag `wait` seconds after the last run (then killed)."""
    deadline = time.monotonic() + wait
    while True:
        found = tagged(tag)
        if not found or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for pid in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
    return found


def tagged(tag: str) -> list[int]:
    needle = f'{TAG_VARIABLE}={tag}'.encode()
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f'/proc/{entry}/environ', 'rb') as handle:
                if needle in handle.read().split(b'\0') and alive(int(entry)):
                    found.append(int(entry))
        except OSError:
            continue
    return found


# ---------------------------------------------------------------------------------------------------- analysis


@dataclass
class Report:
    lost: list[int]
    again_item1: list[int]  # run again: the resume command's status file lacked the record (issue 22 item 1)
    again_given: list[int]  # run again although a -r file given recorded it done
    again_same_run: list[int]  # run again by the very run that recorded it done
    again_unrecorded: list[int]  # completed, not yet recorded, run again (inherent)
    twice: list[int]
    left: list[int]

    @property
    def again(self) -> list[int]:
        return sorted({*self.again_item1, *self.again_given, *self.again_same_run})

    @property
    def clean(self) -> bool:
        return not (self.lost or self.again or self.twice or self.left)

    def text(self, links: list[Link], seed: int, args: argparse.Namespace) -> str:
        driver_kills = sum(link.stop == 'driver SIGKILL' for link in links)
        engine_kills = sum(len(link.engine_kills) for link in links)
        interrupts = sum(link.stop == 'SIGINT' for link in links)
        ended = links[-1].exit_code == 0 and not links[-1].stop

        def ids(found: list[int]) -> str:
            return f'{len(found)}' + (
                f' (task {" ".join(map(str, found[:12]))}{" ..." if len(found) > 12 else ""})' if found else ''
            )

        return '\n'.join(
            [
                f'fault campaign, seed {seed}: {args.tasks} tasks, {len(links)} runs chained '
                f'({driver_kills} driver SIGKILLs, {engine_kills} engine SIGKILLs, {interrupts} SIGINTs); '
                f'the last run {"ran to its end" if ended else "did NOT end"}',
                f'  tasks lost:                          {ids(self.lost)}',
                f'  finished tasks run again:            {ids(self.again)}',
                f'    resume command lacked the record:  {ids(self.again_item1)}  (issue 22 item 1)',
                f'    the -r files given had it:         {ids(self.again_given)}',
                f'    the run that recorded it:          {ids(self.again_same_run)}',
                f'  tasks ever running twice at once:    {ids(self.twice)}',
                f'  processes left:                      {len(self.left)}',
                f'  (completed, unrecorded, run again:   {ids(self.again_unrecorded)}: killed between end and record)',
                f'  result: {"PASS" if self.clean and ended else "FAIL"}',
            ]
        )


def read_markers(directory: Path) -> dict[int, list[Marker]]:
    markers: dict[int, list[Marker]] = {}
    for path in (directory / 'markers').iterdir():
        for line in path.read_text(errors='replace').splitlines():
            words = line.split()
            if len(words) == 3:
                markers.setdefault(int(words[1]), []).append(Marker(words[0], int(words[1]), float(words[2])))
    return markers


def records_of(path: str) -> Iterator[StatusRecord]:
    if path and os.path.exists(path):
        yield from read_status_file(path)


def done(record: StatusRecord) -> bool:
    """What `-r` counts as done and successful."""
    return record.kind in (RecordKind.NORMAL, RecordKind.SKIPPED) and record.return_code == 0


def analyse(directory: Path, links: list[Link], count: int, left: list[int]) -> Report:
    markers = read_markers(directory)
    # per link: the tasks it recorded done by a run of its own (a normal line; S lines carry earlier runs' over)
    ran_done: list[dict[int, float]] = []
    recorded: list[set[int]] = []  # per link: every task its status file records done (normal or S)
    for link in links:
        own = {r.task_id: r.finish for r in records_of(link.status) if done(r) and r.kind is RecordKind.NORMAL}
        ran_done.append(own)
        recorded.append({r.task_id for r in records_of(link.status) if done(r)})
    first_done: dict[int, tuple[float, int]] = {}  # task -> (finish of its first done record, link)
    for number, own in enumerate(ran_done):
        for task_id, finish in own.items():
            if task_id not in first_done or finish < first_done[task_id][0]:
                first_done[task_id] = (finish, number)
    ever_recorded = set().union(*recorded) if recorded else set()
    ran_its_course = {task_id for task_id, found in markers.items() if any(m.kind == 'end' for m in found)}
    lost = sorted(set(range(count)) - (ever_recorded & ran_its_course))
    item1, given, same, unrecorded, twice = set(), set(), set(), set(), set()
    starts = [link.started for link in links]
    for task_id, found in markers.items():
        if any(marker.kind == 'twice' for marker in found):
            twice.add(task_id)
        first = first_done.get(task_id)
        ends = [marker.time for marker in found if marker.kind == 'end']
        for marker in found:
            if marker.kind != 'start':
                continue
            number = max(index for index, started in enumerate(starts) if started <= marker.time + 0.001)
            if first is not None and marker.time > first[0] + 0.001:
                if first[1] == number:
                    same.add(task_id)
                elif any(
                    task_id in recorded[links.index(earlier)]
                    for earlier in links[:number]
                    if earlier.status in links[number].resume_files
                ):
                    given.add(task_id)
                else:
                    item1.add(task_id)
            elif any(end < marker.time for end in ends):
                unrecorded.add(task_id)
    return Report(lost, sorted(item1), sorted(given), sorted(same), sorted(unrecorded), sorted(twice), left)


if __name__ == '__main__':
    raise SystemExit(main())
