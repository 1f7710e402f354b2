"""`python -m bench.scale`: one real driver, E simulated engines of S slots on the real wire, for each E and delay.

    python -m bench.scale                              # E = 1, 10, 100, 1000, 4000 x 16 slots; 0 s and 1 s tasks
    python -m bench.scale --engines 1,10,100 --delays 0 --no-append   # a quick look

Prints one row per run (tasks/s and driver CPU per task over the steady part, the wait from a slot freeing to its
next task, the join storm, the driver's peak RSS, the status file's check) and the targets of issue 24 as PASS or
MISS (never asserted); `--append` (the default) adds the entry to bench/RESULTS.md.

Exit codes: 0 done (whatever the targets say); 1 a run went wrong (exit code, status file); 2 bad flags.
"""

from __future__ import annotations

import argparse
import datetime
import math
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.scale.run import REPO_ROOT, Measurement, Workload, measure
from bench.tools import machine_parts

RESULTS = REPO_ROOT / 'bench' / 'RESULTS.md'

CPU_MS_PER_TASK = 0.1
CPU_GROWTH = 1.5  # at most this many times the 1-engine figure
RATE_ENGINES, RATE = 1000, 8000.0  # 0-s tasks per second with this many engines
JOIN_ENGINES, JOIN_SECONDS = 4000, 10.0
RSS_ENGINES, RSS_MIB = 4000, 200.0


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='python -m bench.scale', description=__doc__.split('\n')[0])
    parser.add_argument('--engines', default='1,10,100,1000,4000', help='engine counts, comma-separated')
    parser.add_argument('--slots', type=int, default=16, help='slots per engine (16)')
    parser.add_argument('--delays', default='0,1', help='seconds a task "runs", comma-separated (0,1)')
    parser.add_argument('--tasks-per-slot', type=int, default=4, help='tasks: this many per slot (4) ...')
    parser.add_argument('--min-tasks', type=int, default=20000, help='... at least this many 0-s tasks (20000) ...')
    parser.add_argument(
        '--min-seconds', type=float, default=20.0, help='... and of longer ones enough for this long a run (20)'
    )
    parser.add_argument('--max-tasks', type=int, default=256000, help='... but at most this many (256000)')
    parser.add_argument('--engines-per-process', type=int, default=500, help='simulated engines per process (500)')
    parser.add_argument('--limit', type=float, default=900.0, help='seconds one run may take (900)')
    parser.add_argument('--profile', action='store_true', help='record the driver with py-spy (pip install py-spy)')
    parser.add_argument('--keep', action='store_true', help='keep the scratch directory')
    parser.add_argument('--append', action=argparse.BooleanOptionalAction, default=True, help='add to RESULTS.md')
    arguments = parser.parse_args(argv)
    try:
        arguments.engine_counts = [int(part) for part in arguments.engines.split(',')]
        arguments.delay_values = [float(part) for part in arguments.delays.split(',')]
    except ValueError as error:
        parser.error(str(error))
    if min(arguments.engine_counts) < 1 or arguments.slots < 1 or min(arguments.delay_values) < 0:
        parser.error('engines and slots must be positive, delays not negative')
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    machine = machine_parts(REPO_ROOT)
    scratch = Path(tempfile.mkdtemp(prefix='disbatch-scale-'))
    measurements: list[Measurement] = []
    try:
        for delay in arguments.delay_values:
            for engines in arguments.engine_counts:
                tasks = task_count(arguments, engines, delay)
                workload = Workload(engines, arguments.slots, delay, tasks)
                print(f'running {workload.name}: {tasks:,} tasks ...', file=sys.stderr, flush=True)
                directory = scratch / f'E{engines}-d{delay:g}'
                result = measure(workload, directory, arguments.engines_per_process, arguments.limit, arguments.profile)
                measurements.append(result)
                print(row_text(result), *result.profile, sep='\n', flush=True)
    finally:
        if arguments.keep:
            print(f'kept {scratch}', file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    verdicts = targets(measurements)
    print('\n'.join(verdicts))
    if arguments.append:
        append_entry(' '.join(['python -m bench.scale', *(argv or sys.argv[1:])]), machine, measurements, verdicts)
    return 1 if any(result.problem for result in measurements) else 0


def task_count(arguments: argparse.Namespace, engines: int, delay: float) -> int:
    """Enough tasks for a steady part: rounds of every slot, a minimum of 0-s tasks or of seconds, a maximum."""
    slots = engines * arguments.slots
    if delay == 0:
        wanted = max(arguments.min_tasks, arguments.tasks_per_slot * slots)
    else:
        wanted = slots * max(arguments.tasks_per_slot, math.ceil(arguments.min_seconds / delay))
    return min(wanted, arguments.max_tasks)


# ---------------------------------------------------------------- the figures


def _figure(value: float | None, form: str) -> str:
    return '-' if value is None else format(value, form)


COLUMNS = (
    'engines x slots',
    'task s',
    'tasks',
    'tasks/s',
    'driver CPU ms/task',
    'whole run ms/task',
    'slot wait p50 ms',
    'p99 ms',
    'all joined s',
    'driver RSS MiB',
    'status file',
)


def cells(result: Measurement) -> list[str]:
    workload = result.workload
    p50, p99 = result.wait_quantile(0.5), result.wait_quantile(0.99)
    return [
        f'{workload.engines:,} x {workload.slots}',
        f'{workload.delay:g}',
        f'{workload.tasks:,}',
        _figure(result.rate, ',.0f'),
        _figure(result.cpu_ms_per_task, '.3f'),
        f'{result.whole_cpu_ms_per_task:.3f}',
        _figure(None if p50 is None else 1000 * p50, '.2f'),
        _figure(None if p99 is None else 1000 * p99, '.2f'),
        _figure(result.join_seconds, '.2f'),
        f'{result.max_rss / 2**20:.0f}',
        result.problem or 'complete, every task once, rc 0',
    ]


def row_text(result: Measurement) -> str:
    return '  '.join(f'{name}: {cell}' for name, cell in zip(COLUMNS, cells(result), strict=True))


def targets(measurements: list[Measurement]) -> list[str]:
    """Issue 24's targets, PASS or MISS (or not measured) each."""
    lines = []
    for delay in sorted({result.workload.delay for result in measurements}):
        runs = {result.workload.engines: result for result in measurements if result.workload.delay == delay}
        one = runs.get(1)
        base = one.cpu_ms_per_task if one is not None else None
        for engines, result in sorted(runs.items()):
            cpu = result.cpu_ms_per_task
            if cpu is None:
                lines.append(f'- {delay:g} s tasks, {engines:,} engines: driver CPU per task not measured (too short)')
                continue
            growth = f', {cpu / base:.2f}x the 1-engine figure' if base else ''
            ok = cpu <= CPU_MS_PER_TASK and (not base or cpu <= CPU_GROWTH * base)
            lines.append(
                f'- {delay:g} s tasks, {engines:,} engines: driver CPU {cpu:.3f} ms/task{growth} '
                f'(target <= {CPU_MS_PER_TASK} ms and <= {CPU_GROWTH}x): {_verdict(ok)}'
            )
    rate = next((r for r in measurements if r.workload.engines == RATE_ENGINES and r.workload.delay == 0), None)
    if rate is None or rate.rate is None:
        lines.append(f'- 0 s tasks at {RATE_ENGINES:,} engines: not measured')
    else:
        lines.append(
            f'- 0 s tasks at {RATE_ENGINES:,} engines: {rate.rate:,.0f} tasks/s '
            f'(target >= {RATE:,.0f}): {_verdict(rate.rate >= RATE)}'
        )
    big = [result for result in measurements if result.workload.engines == JOIN_ENGINES]
    joins = [result.join_seconds for result in big if result.join_seconds is not None]
    if joins:
        worst = max(joins)
        lines.append(
            f'- {JOIN_ENGINES:,} engines joined within {worst:.2f} s '
            f'(target <= {JOIN_SECONDS:g} s): {_verdict(worst <= JOIN_SECONDS)}'
        )
    else:
        lines.append(f'- {JOIN_ENGINES:,} engines joined: not measured')
    rss = [result.max_rss / 2**20 for result in measurements if result.workload.engines == RSS_ENGINES]
    if rss:
        lines.append(
            f'- driver RSS at {RSS_ENGINES:,} engines: {max(rss):.0f} MiB '
            f'(target <= {RSS_MIB:g} MiB): {_verdict(max(rss) <= RSS_MIB)}'
        )
    else:
        lines.append(f'- driver RSS at {RSS_ENGINES:,} engines: not measured')
    return lines


def _verdict(ok: bool) -> str:
    return '**PASS**' if ok else '**MISS**'


def append_entry(command: str, machine: list[str], measurements: list[Measurement], verdicts: list[str]) -> None:
    now = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    lines = [
        '',
        f'## {now}',
        '',
        f'Command: `{command}`',
        '',
        f'Machine: {"; ".join(machine)}',
        '',
        'Workload (g), driver scale: one real driver (`disbatch -S`), simulated engines on the real wire '
        '(bench/scale/engines.py); per-task figures over the steady part (every engine joined to the last task).',
        '',
        '| ' + ' | '.join(COLUMNS) + ' |',
        '|' + '---|' * len(COLUMNS),
        *('| ' + ' | '.join(cells(result)) + ' |' for result in measurements),
        '',
        *verdicts,
    ]
    for result in measurements:
        if result.profile:
            lines += ['', f"Where the driver's time goes, {result.workload.name} (py-spy):", '', '```']
            lines += [*result.profile, '```']
    with RESULTS.open('a', encoding='utf-8') as handle:
        handle.write('\n'.join(lines) + '\n')
