"""`python -m bench.spawners`: ways to start N x `true` at P slots, side by side in one run (bench/README.md).

Every spawner runs in this process, so its wall time has no interpreter start-up; CPU is this process's own plus
that of every descendant it reaped (getrusage SELF + CHILDREN deltas). Each spawner is first verified (its tasks
really run, each status lands on its own task, and, for those that claim it, a kill of the task's process group
spares everything else); the timed reps are interleaved, their order rotated every rep.

Exit codes: 0 every verification and run was right; 1 one was not (printed); 2 bad flags.
"""

from __future__ import annotations

import argparse
import datetime
import resource
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.spawn_base import Batch, RunFailed, Spawner
from bench.spawn_catalog import catalog
from bench.spawn_verify import sigpipe_in_tasks, verify
from bench.tools import machine_parts, run_quietly

REPO_ROOT = Path(__file__).resolve().parent.parent
MAX_TASKS = 100_000
MAX_REPS = 30


@dataclass(frozen=True)
class Sample:
    wall: float
    cpu: float  # seconds: this process + reaped descendants
    parent_cpu: float  # seconds: this process alone (the spawning side)


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='python -m bench.spawners',
        description='N x true at P slots through several spawners (exec per task vs a forking bash per slot), '
        'interleaved reps, medians, ratios to the xargs -P sh / bash floors.',
    )
    parser.add_argument('--tasks', type=int, default=2000, help=f'tasks per run (default 2000, at most {MAX_TASKS})')
    parser.add_argument('--slots', default='2,8', help='comma-separated slot counts (default 2,8)')
    parser.add_argument('--reps', type=int, default=5, help=f'interleaved reps (default 5, at most {MAX_REPS})')
    parser.add_argument('--command', default='true', help='the command of every timed task (default true)')
    parser.add_argument(
        '--pad',
        type=int,
        default=0,
        help='make every timed command this many bytes longer (a leading `: xxx…;`): what a long command costs',
    )
    parser.add_argument('--spawners', help='comma-separated subset of the keys in the table (default: all)')
    parser.add_argument('--no-parallel', action='store_true', help='leave GNU parallel out (it is the slowest)')
    parser.add_argument('--timeout', type=float, default=120, help='seconds before one run is abandoned (default 120)')
    parser.add_argument('--append', action='store_true', help='append the table to bench/RESULTS.md')
    parser.add_argument('--results', type=Path, default=REPO_ROOT / 'bench' / 'RESULTS.md', help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    try:
        arguments.slot_counts = [int(part) for part in arguments.slots.split(',')]
    except ValueError:
        parser.error(f'--slots: not a list of numbers: {arguments.slots!r}')
    if not 1 <= arguments.tasks <= MAX_TASKS:
        parser.error(f'--tasks must be 1..{MAX_TASKS}')
    if not 0 <= arguments.pad <= 1_000_000:
        parser.error('--pad must be 0..1000000')
    if not 1 <= arguments.reps <= MAX_REPS:
        parser.error(f'--reps must be 1..{MAX_REPS}')
    if any(not 1 <= slots <= 256 for slots in arguments.slot_counts):
        parser.error('--slots: each must be 1..256')
    return arguments


def measure(spawner: Spawner, batch: Batch) -> Sample:
    """Run `batch` once; RunFailed unless every task reported exit status 0 (or the tool exited 0)."""
    self_before = resource.getrusage(resource.RUSAGE_SELF)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    collected = spawner.run(batch)
    wall = time.perf_counter() - start
    self_after = resource.getrusage(resource.RUSAGE_SELF)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if len(collected.statuses) != len(batch.commands):
        raise RunFailed(f'{len(collected.statuses)} statuses for {len(batch.commands)} tasks')
    if spawner.per_task_status:
        wrong = [status for status in collected.statuses if status != 0]
        if wrong:
            raise RunFailed(f'{len(wrong)} of {len(batch.commands)} tasks without exit status 0: {wrong[:5]}')
    elif collected.exit_code != 0:
        raise RunFailed(f'exit code {collected.exit_code}')
    parent = self_after.ru_utime + self_after.ru_stime - self_before.ru_utime - self_before.ru_stime
    children = children_after.ru_utime + children_after.ru_stime - children_before.ru_utime - children_before.ru_stime
    return Sample(wall, parent + children, parent)


def machine_line() -> str:
    parts = machine_parts(REPO_ROOT)
    for name, argv in (('bash', ['/bin/bash', '--version']), ('xargs', ['xargs', '--version'])):
        version = run_quietly(argv, REPO_ROOT).splitlines()
        parts.append(f'{name}: {version[0] if version else "?"}')
    if shutil.which('parallel'):
        version = run_quietly(['parallel', '--version'], REPO_ROOT).splitlines()
        parts.append(f'GNU parallel: {version[0] if version else "?"}')
    return '; '.join(parts)


def table(
    spawners: Sequence[Spawner], samples: dict[tuple[int, str], list[Sample]], slot_counts: Sequence[int], tasks: int
) -> str:
    header = (
        '| slots | spawner | reps | median s | min-max s | tasks/s | CPU ms/task | parent CPU ms/task '
        '| % of xargs sh | % of xargs bash | x parallel | >= 60 % sh and >= 3x parallel |'
    )
    lines = [header, '|' + '---|' * 12]
    for slots in slot_counts:

        def median(key: str, at: int = slots) -> float | None:
            walls = [sample.wall for sample in samples.get((at, key), [])]
            return statistics.median(walls) if walls else None

        floors = {key: median(key) for key in ('xargs-sh', 'xargs-bash', 'parallel')}
        for spawner in spawners:
            runs = samples.get((slots, spawner.key), [])
            if not runs:
                lines.append(f'| {slots} | {spawner.key} | 0 | failed |' + ' |' * 8)
                continue
            walls = [run.wall for run in runs]
            wall = statistics.median(walls)
            cpu = statistics.median(run.cpu for run in runs) / tasks * 1000
            parent = statistics.median(run.parent_cpu for run in runs) / tasks * 1000
            share_sh = _ratio(floors['xargs-sh'], wall)
            share_bash = _ratio(floors['xargs-bash'], wall)
            versus_parallel = _ratio(floors['parallel'], wall)
            verdict = ''
            if share_sh is not None and spawner.key not in floors:
                parts = [f'{"PASS" if share_sh >= 0.6 else "MISS"}']
                if versus_parallel is not None:
                    parts.append(f'{"PASS" if versus_parallel >= 3 else "MISS"}')
                verdict = ' / '.join(parts)
            lines.append(
                f'| {slots} | {spawner.key} | {len(runs)} | {wall:.3f} | {min(walls):.3f}-{max(walls):.3f} '
                f'| {tasks / wall:.0f} | {cpu:.3f} | {parent:.3f} | {_percent(share_sh)} | {_percent(share_bash)} '
                f'| {"" if versus_parallel is None else f"{versus_parallel:.2f}x"} | {verdict} |'
            )
    return '\n'.join(lines)


def _ratio(floor: float | None, wall: float) -> float | None:
    return None if floor is None else floor / wall


def _percent(ratio: float | None) -> str:
    return '' if ratio is None else f'{ratio * 100:.1f} %'


def legend(spawners: Sequence[Spawner], sigpipe: dict[str, str]) -> str:
    return '\n'.join(
        f'- `{spawner.key}` (SIGPIPE in tasks: {sigpipe.get(spawner.key, "?")}): {spawner.description}'
        for spawner in spawners
    )


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    command = shlex.join(['python', '-m', 'bench.spawners', *(sys.argv[1:] if argv is None else argv)])
    spawners, notes = catalog(arguments.spawners, parallel=not arguments.no_parallel)
    for note in notes:
        print(f'note: {note}', file=sys.stderr)
    machine = machine_line()
    scratch = Path(tempfile.mkdtemp(prefix='disbatch-spawners-'))
    failures: list[str] = []
    samples: dict[tuple[int, str], list[Sample]] = {}
    sigpipe: dict[str, str] = {}
    try:
        working = []
        for spawner in spawners:
            problems = [problem for slots in arguments.slot_counts for problem in verify(spawner, slots, scratch)]
            if problems:
                failures.extend(f'{spawner.key}: verification: {problem}' for problem in problems)
            else:
                working.append(spawner)
            sigpipe[spawner.key] = sigpipe_in_tasks(spawner, scratch)
        padding = f': {"x" * (arguments.pad - 3)};' if arguments.pad >= 3 else ''
        commands = (padding + arguments.command,) * arguments.tasks
        for rep in range(arguments.reps):
            order = working[rep % len(working) :] + working[: rep % len(working)] if working else []
            for slots in arguments.slot_counts:
                for spawner in order:
                    print(f'[rep {rep + 1}/{arguments.reps}] {slots} slots: {spawner.key}', file=sys.stderr)
                    batch = Batch(commands, slots, time.monotonic() + arguments.timeout, scratch)
                    try:
                        samples.setdefault((slots, spawner.key), []).append(measure(spawner, batch))
                    except (RunFailed, OSError) as error:
                        failures.append(f'{spawner.key}, {slots} slots, rep {rep + 1}: {error}')
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    padded = f' (padded by {arguments.pad:,} bytes)' if arguments.pad else ''
    title = (
        f'{arguments.tasks:,} x `{arguments.command}`{padded}, spawners side by side, {arguments.reps} interleaved reps'
    )
    blocks = [
        f'Command: `{command}`',
        '',
        f'Machine: {machine}',
        '',
        title,
        '',
        table(spawners, samples, arguments.slot_counts, arguments.tasks),
        '',
        legend(spawners, sigpipe),
        '- verification: '
        + ('every spawner ran its check tasks right' if not failures else f'{len(failures)} problem(s), below'),
        *(f'- FAILED: {failure}' for failure in failures),
        *(f'- note: {note}' for note in notes),
        '- CPU: getrusage SELF + CHILDREN deltas over the run (this process and every descendant it reaped), '
        'median over reps; parent CPU: this process alone. Ratios on median walls; % of a floor = its wall / ours.',
        '- SIGPIPE in tasks: what `seq 100000 | head -1` does to seq in a task: dies of SIGPIPE (default, as under a '
        'shell) or gets EPIPE and exits 1 (ignored: Python ignores SIGPIPE, and os.posix_spawn without setsigdef '
        'leaves it so in the child); ?: not told (sh has no PIPESTATUS)',
    ]
    print('\n'.join(blocks))
    if arguments.append:
        when = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
        with arguments.results.open('a', encoding='utf-8') as results:
            results.write('\n' + '\n'.join([f'## {when} — spawners (`python -m bench.spawners`)', '', *blocks]) + '\n')
        print(f'\nappended to {arguments.results}')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
