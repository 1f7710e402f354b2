"""Turning runs into figures (medians, spreads, rates, ratios, PASS/MISS) and printing them as text or Markdown.

Pure: no processes, no clock. Targets are printed, never asserted: a MISS does not change the exit code.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from bench.memory import MemoryFigures
from bench.suite import MemoryRun, Run
from bench.tools import OURS_KINDS, Tool, ToolKind
from bench.workloads import (
    DEFAULT_XARGS_BASH_SHARE,
    FORK_PARALLEL_TIMES,
    FORK_XARGS_SH_SHARE,
    TargetKind,
    Workload,
)


@dataclass(frozen=True)
class Summary:
    """All reps of one tool on one workload."""

    tool: Tool
    tasks: int
    runs: list[Run]

    @property
    def walls(self) -> list[float]:
        return [run.measurement.wall for run in self.runs]

    @property
    def median(self) -> float:
        return statistics.median(self.walls)

    @property
    def spread(self) -> str:
        return f'{min(self.walls):.3f}-{max(self.walls):.3f}'

    @property
    def rate(self) -> float:
        return self.tasks / self.median

    @property
    def tree_cpu_ms_per_task(self) -> float:
        return 1000 * statistics.median(run.measurement.tree_cpu for run in self.runs) / self.tasks

    @property
    def self_cpu_ms_per_task(self) -> float:
        return 1000 * statistics.median(run.measurement.self_cpu for run in self.runs) / self.tasks

    @property
    def failures(self) -> list[Run]:
        return [run for run in self.runs if not run.ok]

    @property
    def strays(self) -> int:
        return sum(run.measurement.strays for run in self.runs)


@dataclass(frozen=True)
class Comparison:
    """One workload: a summary per tool, ours against the others, and the target's verdict."""

    workload: Workload
    summaries: list[Summary]

    def of(self, kind: ToolKind) -> Summary | None:
        return next((summary for summary in self.summaries if summary.tool.kind is kind), None)

    def times(self, kind: ToolKind, ours_kind: ToolKind = ToolKind.OURS) -> float | None:
        """ours rate / that tool's rate (same task count, so its median / ours median); None if either is missing.
        `ours_kind`: which of our modes (the default, or --fork-tasks)."""
        ours, other = self.of(ours_kind), self.of(kind)
        return other.median / ours.median if ours and other else None

    def mode_targets(self) -> list[tuple[str, str]]:
        """Issue 27's targets of the `true` workloads, each with its verdict: the default at >= 90 % of xargs bash,
        --fork-tasks at >= 150 % of xargs sh and >= 6x GNU parallel."""
        if self.workload.target.kind is not TargetKind.SHARE_OF_XARGS_RATE:
            return []
        lines = []
        if self.of(ToolKind.OURS) is not None:
            share = self.times(ToolKind.XARGS)
            verdict = self._verdict(ToolKind.OURS, [(share, DEFAULT_XARGS_BASH_SHARE, 'xargs bash')])
            lines.append((f'ours >= {DEFAULT_XARGS_BASH_SHARE * 100:.0f} % of the xargs bash rate', verdict))
        if self.of(ToolKind.OURS_FORK) is not None:
            share = self.times(ToolKind.XARGS_SH, ToolKind.OURS_FORK)
            times = self.times(ToolKind.PARALLEL, ToolKind.OURS_FORK)
            verdict = self._verdict(
                ToolKind.OURS_FORK,
                [(share, FORK_XARGS_SH_SHARE, 'xargs sh'), (times, FORK_PARALLEL_TIMES, 'GNU parallel')],
            )
            text = f'ours --fork-tasks >= {FORK_XARGS_SH_SHARE * 100:.0f} % of the xargs sh rate and >= '
            lines.append((text + f'{FORK_PARALLEL_TIMES:g}x GNU parallel', verdict))
        return lines

    def _verdict(self, ours_kind: ToolKind, checks: list[tuple[float | None, float, str]]) -> str:
        ours = self.of(ours_kind)
        if ours is None or ours.failures:
            return 'n/a (some of our runs failed)'
        verdicts = [
            f'n/a ({name} did not run)' if ratio is None else 'PASS' if ratio >= threshold else 'MISS'
            for ratio, threshold, name in checks
        ]
        return verdicts[0] if len(set(verdicts)) == 1 else ' / '.join(verdicts)

    @property
    def verdict(self) -> str:
        target = self.workload.target
        ours = self.of(ToolKind.OURS)
        if ours is None:
            return 'n/a (ours did not run)'
        if ours.failures:
            return 'n/a (some of our runs failed)'
        if target.kind is TargetKind.SHARE_OF_XARGS_RATE:
            share = self.times(ToolKind.XARGS_SH)
            if share is None:
                return 'n/a (xargs sh did not run)'
            verdicts = ['PASS' if share >= target.threshold else 'MISS']
            if target.parallel_times is not None:
                times = self.times(ToolKind.PARALLEL)
                verdicts.append('n/a' if times is None else 'PASS' if times >= target.parallel_times else 'MISS')
            return verdicts[0] if len(set(verdicts)) == 1 else ' / '.join(verdicts)
        return 'PASS' if ours.median <= target.threshold else 'MISS'

    def correctness(self) -> str:
        """The correctness checks of each of our modes that ran, one after the other."""
        return '; '.join(text for kind in OURS_KINDS if (text := self._correctness(kind)))

    def _correctness(self, kind: ToolKind) -> str:
        ours = self.of(kind)
        if ours is None:
            return ''
        failures = ours.failures
        good = len(ours.runs) - len(failures)
        name = ours.tool.label
        text = f'{name} {good}/{len(ours.runs)} runs ok ({ours.tasks} task lines in the status file, all rc 0)'
        if failures:
            text = f'{name} {good}/{len(ours.runs)} runs ok; ' + '; '.join(
                f'rep {run.rep}: {run.problem()}' for run in failures
            )
        if ours.strays:
            text += f'; {ours.strays} run(s) left processes behind in their group (killed)'
        left = [
            f'rep {run.rep}: {run.measurement.leftovers.describe()}'
            for run in ours.runs
            if run.measurement.leftovers.found
        ]
        if left:
            text += '; processes left when the driver exited: ' + '; '.join(left)
        return text


def compare(runs: Sequence[Run], workloads: Sequence[Workload], tools: Sequence[Tool]) -> list[Comparison]:
    comparisons = []
    for workload in workloads:
        summaries = []
        for tool in tools:
            mine = [run for run in runs if run.workload is workload and run.tool is tool]
            if mine:
                summaries.append(Summary(tool, mine[0].tasks, mine))
        comparisons.append(Comparison(workload, summaries))
    return comparisons


RATIO_COLUMNS = (  # (tool, how a ratio against it reads): shares of the floors, multiples of the peers
    (ToolKind.XARGS_SH, 'xargs sh'),
    (ToolKind.XARGS, 'xargs bash'),
    (ToolKind.PARALLEL, 'GNU parallel'),
    (ToolKind.HYPERQUEUE, 'HyperQueue'),
    (ToolKind.HYPERSHELL, 'HyperShell'),
)
FLOORS = (ToolKind.XARGS_SH, ToolKind.XARGS)


def _ratio_text(kind: ToolKind, ratio: float) -> str:
    return f'{ratio * 100:.1f} %' if kind in FLOORS else f'{ratio:.2f}x'


def _ratios(comparison: Comparison, ours_kind: ToolKind) -> str:
    parts = []
    for kind, name in RATIO_COLUMNS:
        if (ratio := comparison.times(kind, ours_kind)) is not None:
            rate = 'of the rate of' if kind in FLOORS else 'the rate of'
            parts.append(f'{_ratio_text(kind, ratio)} {rate} {name}')
    ours = comparison.of(ours_kind)
    return f'{ours.tool.label} = ' + ', '.join(parts) if parts and ours else ''


def _tool_label(summary: Summary, workload: Workload) -> str:
    return summary.tool.label + ('*' if summary.tasks != workload.tasks else '')


def _other_failures(comparison: Comparison) -> list[str]:
    return [
        f'{summary.tool.label} rep {run.rep}: {run.problem()}'
        for summary in comparison.summaries
        if summary.tool.kind not in OURS_KINDS
        for run in summary.failures
    ]


def text_report(comparisons: Sequence[Comparison], reps: int) -> str:
    lines = []
    for comparison in comparisons:
        workload = comparison.workload
        ideal = f', ideal {workload.ideal_seconds:g} s' if workload.ideal_seconds is not None else ''
        lines.append(f'{workload.title} ({reps} rep{"s" if reps != 1 else ""}{ideal})')
        lines.append(f'  {"tool":<17} {"median s":>9}  {"min-max s":<15} {"tasks/s":>9}  {"CPU ms/task":>11}')
        for summary in comparison.summaries:
            label = _tool_label(summary, workload)
            lines.append(
                f'  {label:<17} {summary.median:>9.3f}  {summary.spread:<15} {summary.rate:>9.1f}'
                f'  {summary.tree_cpu_ms_per_task:>11.2f}'
                + (f'  ({summary.tasks} tasks)' if summary.tasks != workload.tasks else '')
            )
        for kind in OURS_KINDS:
            if ratios := _ratios(comparison, kind):
                lines.append(f'  {ratios}')
        ours = comparison.of(ToolKind.OURS)
        if workload.driver_cpu and ours:
            lines.append(f'  driver CPU (ours, driver process only): {ours.self_cpu_ms_per_task:.3f} ms/task')
        lines.append(f'  target: {workload.target.text}: {comparison.verdict}')
        lines.extend(f'  target: {text}: {verdict}' for text, verdict in comparison.mode_targets())
        if correctness := comparison.correctness():
            lines.append(f'  correctness: {correctness}')
        lines.extend(f'  failed: {failure}' for failure in _other_failures(comparison))
        lines.append('')
    return '\n'.join(lines)


FOOTNOTES = (
    'CPU ms/task: median over reps of the user+system time of the tool, every descendant it waited for (wait4 '
    'rusage) and every process it orphaned (we reap those as child subreaper), divided by the tasks; it includes the '
    'bash of every task.',
    'driver CPU: user+system time of the driver process alone, read from /proc/PID/stat after it exited and before '
    'it was reaped; it excludes the engines and the tasks.',
    'ours vs xargs sh / xargs bash: our rate as a share of that floor (xargs -P running each line with /bin/sh -c, '
    'dash here, or with /bin/bash -c as ours does); the share targets are judged against the sh floor. ours vs a '
    'peer: how many times its rate ours is.',
    '*: ran fewer tasks than the workload (the slow reference is capped); compare its tasks/s, not its wall time.',
    'Targets are SPEC §5, judged on medians; they are printed, never asserted.',
)


def markdown_table(comparisons: Sequence[Comparison], reps: int) -> str:
    lines = [
        '| workload | tool | reps | median s | min-max s | tasks/s | CPU ms/task | '
        + ' | '.join(f'ours vs {name}' for _, name in RATIO_COLUMNS)
        + ' | target |',
        '|---|---|---|---|---|---|---|' + '---|' * len(RATIO_COLUMNS) + '---|',
    ]
    for comparison in comparisons:
        workload = comparison.workload
        targets = [(workload.target.text, comparison.verdict), *comparison.mode_targets()]
        for index, summary in enumerate(comparison.summaries):
            first = index == 0
            ours_row = summary.tool.kind in OURS_KINDS
            ratios = [comparison.times(kind, summary.tool.kind) if ours_row else None for kind, _ in RATIO_COLUMNS]
            cells = [
                workload.title if first else '',
                _tool_label(summary, workload)
                + (f' ({summary.tasks} tasks)' if summary.tasks != workload.tasks else ''),
                str(len(summary.runs)),
                f'{summary.median:.3f}',
                summary.spread,
                f'{summary.rate:.1f}',
                f'{summary.tree_cpu_ms_per_task:.2f}',
                *(
                    _ratio_text(kind, ratio) if ratio is not None else ''
                    for (kind, _), ratio in zip(RATIO_COLUMNS, ratios, strict=True)
                ),
                '<br>'.join(f'{text}: **{verdict}**' for text, verdict in targets) if first else '',
            ]
            lines.append('| ' + ' | '.join(cells) + ' |')
    extra = []
    for comparison in comparisons:
        ours = comparison.of(ToolKind.OURS)
        if comparison.workload.driver_cpu and ours:
            extra.append(
                f'- driver CPU per task, {comparison.workload.title}: {ours.self_cpu_ms_per_task:.3f} ms '
                '(driver process only; engines and tasks excluded)'
            )
        if correctness := comparison.correctness():
            extra.append(f'- correctness, {comparison.workload.title}: {correctness}')
        extra.extend(f'- failed, {comparison.workload.title}: {failure}' for failure in _other_failures(comparison))
    return '\n'.join([*lines, '', *extra])


def memory_report(run: MemoryRun) -> str:
    figures: MemoryFigures = run.figures
    lines = [
        f'Driver memory, {figures.tasks:,} x true from a generated file, {run.slots} slots '
        f'(ours; VmRSS of the driver sampled every 0.2 s):'
    ]
    for threshold, sample in figures.points:
        if sample is None:
            lines.append(f'- at {threshold:,} tasks done: not sampled (the driver had exited, or too few samples)')
        else:
            lines.append(f'- at {threshold:,} tasks done (sampled at {sample.done:,}): {_mib(sample.rss_kib)}')
    if figures.last is not None:
        lines.append(f'- last sample before exit ({figures.last.done:,} tasks done): {_mib(figures.last.rss_kib)}')
    lines.append(f'- peak (VmHWM): {_mib(figures.peak_kib)}')
    middle, last, growth = figures.points[1][1], figures.last, figures.growth_kib
    if middle is not None and last is not None and growth is not None:
        lines.append(f'- growth {middle.done:,} -> {last.done:,} tasks done: {growth / 1024:+.1f} MiB')
    else:
        lines.append('- growth: n/a (too few samples: raise --memory-tasks)')
    measurement = run.measurement
    rate = f', {figures.tasks / measurement.wall:.0f} tasks/s' if measurement.wall else ''
    lines.append(f'- wall {measurement.wall:.1f} s{rate}; driver CPU {measurement.self_cpu:.1f} s')
    status = 'ok' if run.check.ok(figures.tasks) and measurement.exit_code == 0 else 'FAILED'
    lines.append(f'- correctness: {status}: {run.check.describe(figures.tasks)}, exit code {measurement.exit_code}')
    if measurement.leftovers.found:
        lines.append(f'- processes left when the driver exited: {measurement.leftovers.describe()}')
    return '\n'.join(lines)


def _mib(kib: int) -> str:
    return f'{kib / 1024:.1f} MiB'
