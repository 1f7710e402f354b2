"""Running the workloads with every tool, interleaved: rep 1 (each workload: ours, xargs, parallel, …), rep 2, ….

Interleaving spreads any drift of the machine (other load, caches, thermal) over all tools alike. Each run gets a fresh
directory under the scratch directory; a run that went well has its directory removed at once.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from bench.measure import Measurement, run_measured
from bench.memory import MemoryFigures, MemorySampler, memory_figures
from bench.status import StatusCheck, check_status
from bench.tools import Tool
from bench.workloads import Workload, write_task_file


@dataclass(frozen=True)
class Run:
    tool: Tool
    workload: Workload  # as planned; the tool may have run fewer tasks (see `tasks`)
    tasks: int  # tasks this run was given
    rep: int
    measurement: Measurement
    check: StatusCheck | None  # None for tools that write no status file

    @property
    def ok(self) -> bool:
        measurement = self.measurement
        if measurement.timed_out or measurement.exit_code != 0:
            return False
        return self.check is None or self.check.ok(self.tasks)

    def problem(self) -> str:
        """Why the run is not ok ('' if it is)."""
        measurement = self.measurement
        if measurement.timed_out:
            return f'killed after the time limit ({measurement.wall:.0f} s)'
        parts = []
        if measurement.exit_code != 0:
            parts.append(f'exit code {measurement.exit_code}')
        if self.check is not None and not self.check.ok(self.tasks):
            parts.append(self.check.describe(self.tasks))
        if parts and measurement.stderr_tail:
            parts.append('stderr: ' + measurement.stderr_tail.replace('\n', ' | '))
        return '; '.join(parts)


@dataclass(frozen=True)
class Settings:
    scratch: Path
    timeout: float
    keep: bool


def run_once(
    settings: Settings,
    tool: Tool,
    workload: Workload,
    rep: int,
) -> tuple[Run, Path]:
    """One run of `tool` on `workload` (capped to the tool's task cap); returns the run and its output directory."""
    actual = workload.capped(tool.task_cap) if tool.task_cap else workload
    task_file = write_task_file(settings.scratch, actual)
    run_directory = settings.scratch / f'rep{rep}' / f'{actual.key}-s{actual.slots}' / tool.kind.value
    output_directory = run_directory / 'out'
    output_directory.mkdir(parents=True)
    invocation = tool.invocation(task_file, actual.slots, output_directory)
    measurement = run_measured(
        invocation, cwd=run_directory, stderr_path=run_directory / 'stderr.txt', timeout=settings.timeout
    )
    check = check_status(output_directory) if tool.writes_status else None
    run = Run(tool, workload, actual.tasks, rep, measurement, check)
    return run, output_directory


def run_suite(
    settings: Settings,
    tools: Sequence[Tool],
    workloads: Sequence[Workload],
    reps: int,
    progress: TextIO,
) -> list[Run]:
    runs: list[Run] = []
    for rep in range(1, reps + 1):
        for workload in workloads:
            parts = []
            for tool in tools:
                run, output_directory = run_once(settings, tool, workload, rep)
                runs.append(run)
                parts.append(f'{tool.kind.value} {run.measurement.wall:.3f} s{"" if run.ok else " FAILED"}')
                if run.ok and not settings.keep:
                    shutil.rmtree(output_directory.parent)
            print(f'[rep {rep}/{reps}] {workload.title}: ' + ', '.join(parts), file=progress, flush=True)
    return runs


@dataclass(frozen=True)
class MemoryRun:
    tool: Tool
    slots: int
    measurement: Measurement
    check: StatusCheck
    figures: MemoryFigures


def run_memory(settings: Settings, tool: Tool, tasks: int, slots: int) -> MemoryRun:
    """Workload (d): one run of `tasks` x true from a generated file, sampling the driver's memory."""
    task_file = settings.scratch / f'memory{tasks}.txt'
    task_file.write_text('true\n' * tasks, encoding='utf-8')
    run_directory = settings.scratch / 'memory'
    output_directory = run_directory / 'out'
    output_directory.mkdir(parents=True)
    sampler = MemorySampler(output_directory)
    invocation = tool.invocation(task_file, slots, output_directory)
    measurement = run_measured(
        invocation,
        cwd=run_directory,
        stderr_path=run_directory / 'stderr.txt',
        timeout=settings.timeout,
        sampler=sampler,
    )
    check = check_status(output_directory)
    run = MemoryRun(tool, slots, measurement, check, memory_figures(tasks, sampler.samples))
    if not settings.keep:
        task_file.unlink()
        shutil.rmtree(run_directory)
    return run
