"""Figures of workload (e) (medians, wall per task, remote/local ratios, PASS/MISS) as text or Markdown.

Pure: no processes, no clock. The SPEC §5 target "the same per-task overhead as local, within 2x" is judged on the
median wall time per task (for `true` the ideal wall is ~0, so wall per task is the per-task overhead).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from bench.remote import REMOTE_SHARE_LIMIT, Context, Mode, RemotePlan, RemoteRun


@dataclass(frozen=True)
class ModeSummary:
    """All reps of one way of running (local, SSH, Slurm)."""

    mode: Mode
    runs: list[RemoteRun]

    @property
    def median(self) -> float:
        return statistics.median(run.wall for run in self.runs)

    @property
    def spread(self) -> str:
        walls = [run.wall for run in self.runs]
        return f'{min(walls):.3f}-{max(walls):.3f}'

    @property
    def ms_per_task(self) -> float:
        return 1000 * self.median / self.runs[0].tasks

    @property
    def rate(self) -> float:
        return self.runs[0].tasks / self.median

    @property
    def queue_median(self) -> float | None:
        walls = [run.queue_wall for run in self.runs if run.queue_wall is not None]
        return statistics.median(walls) if walls else None

    @property
    def driver_cpu_ms_per_task(self) -> float | None:
        values = [run.driver_cpu for run in self.runs if run.driver_cpu is not None]
        return 1000 * statistics.median(values) / self.runs[0].tasks if values else None

    @property
    def failures(self) -> list[RemoteRun]:
        return [run for run in self.runs if not run.ok]


def summarize(plan: RemotePlan, runs: Sequence[RemoteRun]) -> list[ModeSummary]:
    summaries = []
    for mode in plan.modes:
        mine = [run for run in runs if run.mode is mode]
        if mine:
            summaries.append(ModeSummary(mode, mine))
    return summaries


def _local(summaries: Sequence[ModeSummary]) -> ModeSummary | None:
    return next((summary for summary in summaries if summary.mode is Mode.LOCAL), None)


def ratio(summary: ModeSummary, summaries: Sequence[ModeSummary]) -> float | None:
    """Median wall per task of this mode / that of the local run (same tasks, same slots)."""
    local = _local(summaries)
    return summary.median / local.median if local else None


def verdict(summary: ModeSummary, summaries: Sequence[ModeSummary]) -> str:
    if summary.mode is Mode.LOCAL:
        return ''
    local = _local(summaries)
    if summary.failures or local is None or local.failures:
        return 'n/a (some runs failed)'
    times = ratio(summary, summaries)
    return 'PASS' if times is not None and times <= REMOTE_SHARE_LIMIT else 'MISS'


def correctness(summary: ModeSummary) -> str:
    good = len(summary.runs) - len(summary.failures)
    tasks = summary.runs[0].tasks
    text = f'{good}/{len(summary.runs)} runs ok ({tasks} task lines in the status file, all rc 0, exit code 0)'
    if summary.failures:
        text = f'{good}/{len(summary.runs)} runs ok; ' + '; '.join(
            f'rep {run.rep}: {run.problem()}' for run in summary.failures
        )
    left = [
        f'rep {run.rep}: {run.leftovers.describe()}'
        for run in summary.runs
        if run.leftovers is not None and run.leftovers.found
    ]
    if left:
        text += '; processes left when the driver exited: ' + '; '.join(left)
    return text


def context_lines(context: Context | None) -> list[str]:
    if context is None:
        return []
    lines = []
    if context.ssh_true:
        walls = context.ssh_true
        lines.append(
            f'`ssh {context.ssh_host} true`: median {statistics.median(walls) * 1000:.0f} ms '
            f'({min(walls) * 1000:.0f}-{max(walls) * 1000:.0f} ms, {len(walls)} calls)'
        )
    else:
        lines.append(f'`ssh {context.ssh_host} true`: failed')
    local = f'{context.local_bash_ms:.1f} ms' if context.local_bash_ms is not None else 'failed'
    remote = f'{context.remote_bash_ms:.1f} ms' if context.remote_bash_ms is not None else 'failed'
    lines.append(
        f'one `/bin/bash -c true` started from Python (as an engine starts a task): {local} here, {remote} on '
        f"{context.ssh_host} inside an ssh session; the difference is the environment's (e.g. bash reading "
        "~/.bashrc when sshd's SSH_CLIENT is set), paid by every task run through SSH"
    )
    return lines


FOOTNOTES = (
    'wall: local and SSH from the spawn of the driver to its exit; Slurm inside the job script around the disbatch '
    'call ($EPOCHREALTIME), so without queueing; "sbatch to gone" is from sbatch until the job left '
    '`squeue -h -j JOB` (polled every 0.2 s).',
    f'x local: median wall (= wall per task, same tasks and slots) over that of the local run; SPEC §5 target: '
    f'remote within {REMOTE_SHARE_LIMIT:g}x of local.',
)


def _row_cells(summary: ModeSummary, summaries: Sequence[ModeSummary], plan: RemotePlan) -> list[str]:
    times = ratio(summary, summaries)
    queue = summary.queue_median
    cpu = summary.driver_cpu_ms_per_task
    return [
        plan.label(summary.mode),
        str(len(summary.runs)),
        f'{summary.median:.3f}',
        summary.spread,
        f'{summary.rate:.1f}',
        f'{summary.ms_per_task:.2f}',
        f'{times:.2f}x' if times is not None else '',
        f'{queue:.3f}' if queue is not None else '',
        f'{cpu:.3f}' if cpu is not None else '',
    ]


def remote_text(plan: RemotePlan, runs: Sequence[RemoteRun], context: Context | None, reps: int) -> str:
    summaries = summarize(plan, runs)
    lines = [f'(e) {plan.title} ({reps} rep{"s" if reps != 1 else ""})']
    header = [
        'run',
        'reps',
        'median s',
        'min-max s',
        'tasks/s',
        'ms/task',
        'x local',
        'sbatch to gone s',
        'driver CPU ms/task',
    ]
    rows = [header] + [_row_cells(summary, summaries, plan) for summary in summaries]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    for row in rows:
        lines.append('  ' + '  '.join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    for summary in summaries:
        if summary.mode is not Mode.LOCAL:
            lines.append(
                f'  target ({summary.mode.value}): wall per task within {REMOTE_SHARE_LIMIT:g}x of local: '
                f'{verdict(summary, summaries)}'
            )
    for summary in summaries:
        lines.append(f'  correctness ({summary.mode.value}): {correctness(summary)}')
    lines.extend(f'  context: {line}' for line in context_lines(context))
    lines.extend(f'  {note}' for note in FOOTNOTES)
    return '\n'.join(lines)


def remote_markdown(plan: RemotePlan, runs: Sequence[RemoteRun], context: Context | None, reps: int) -> str:
    summaries = summarize(plan, runs)
    lines = [
        f'Workload (e): {plan.title}',
        '',
        '| run | reps | median s | min-max s | tasks/s | ms/task | x local | sbatch to gone s | driver CPU ms/task '
        '| target (within 2x of local) |',
        '|---|---|---|---|---|---|---|---|---|---|',
    ]
    for summary in summaries:
        cells = _row_cells(summary, summaries, plan)
        target = verdict(summary, summaries)
        lines.append('| ' + ' | '.join([*cells, f'**{target}**' if target else '']) + ' |')
    lines.append('')
    lines.extend(f'- correctness, {summary.mode.value}: {correctness(summary)}' for summary in summaries)
    lines.extend(f'- context: {line}' for line in context_lines(context))
    lines.extend(f'- {note}' for note in FOOTNOTES)
    return '\n'.join(lines)
