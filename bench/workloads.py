"""The workloads the suite runs, the SPEC §5 target each one checks, and writing their task files.

Pure: no processes, no clock. A workload is a number of identical one-line tasks run at a number of slots.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from pathlib import Path

SLEEP_SECONDS = 0.1
SLEEP_TOLERANCE = 0.15  # SPEC §5: within 15 % of the ideal wall time
XARGS_SHARE = 0.60  # SPEC §5: at least 60 % of the xargs -P rate (the `sh -c` floor)
PARALLEL_TIMES = 3.0  # SPEC §5: at least 3x the GNU parallel rate
ONE_TASK_LIMIT = 0.3  # SPEC §5: a one-task run, start to exit, under 0.3 s
# Issue 27, for the `true` workloads: --fork-tasks beats xargs, and the default stays at the floor of exec per task.
FORK_XARGS_SH_SHARE = 1.50  # ours --fork-tasks: at least 150 % of the xargs sh rate
FORK_PARALLEL_TIMES = 6.0  # ours --fork-tasks: at least 6x the GNU parallel rate
DEFAULT_XARGS_BASH_SHARE = 0.90  # ours (default): at least 90 % of the xargs bash rate


class TargetKind(enum.Enum):
    """How a target is judged from the measured medians."""

    SHARE_OF_XARGS_RATE = 'share of the xargs rate'  # ours rate / xargs sh rate >= threshold (and parallel_times)
    MAX_WALL = 'maximum wall time'  # ours median wall <= threshold seconds


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    threshold: float
    text: str  # how the table prints it, e.g. 'ours >= 60 % of the xargs sh rate'
    parallel_times: float | None = None  # also: ours rate >= this many times GNU parallel's


@dataclass(frozen=True)
class Workload:
    key: str  # names the task file, e.g. 'true2000' (several workloads may share one file)
    command: str
    tasks: int
    slots: int
    target: Target
    driver_cpu: bool = False  # report our driver's CPU time per task (workload f rides on a)

    @property
    def title(self) -> str:
        plural = 'slot' if self.slots == 1 else 'slots'
        return f'{self.tasks:,} x {self.command}, {self.slots} {plural}'

    @property
    def ideal_seconds(self) -> float | None:
        """The wall time of a run with no overhead, for sleep workloads; None for the others."""
        if not self.command.startswith('sleep '):
            return None
        return math.ceil(self.tasks / self.slots) * float(self.command.split()[1])

    def capped(self, tasks: int) -> Workload:
        """The same workload with at most `tasks` tasks (for the slow reference)."""
        if self.tasks <= tasks:
            return self
        return Workload(f'{self.key}cap{tasks}', self.command, tasks, self.slots, self.target, self.driver_cpu)


def true_workload(tasks: int, slots: int) -> Workload:
    text = f'ours >= {XARGS_SHARE * 100:.0f} % of the xargs sh rate and >= {PARALLEL_TIMES:g}x GNU parallel'
    target = Target(TargetKind.SHARE_OF_XARGS_RATE, XARGS_SHARE, text, parallel_times=PARALLEL_TIMES)
    return Workload(f'true{tasks}', 'true', tasks, slots, target, driver_cpu=True)


def sleep_workload(tasks: int, slots: int) -> Workload:
    ideal = math.ceil(tasks / slots) * SLEEP_SECONDS
    limit = round(ideal * (1 + SLEEP_TOLERANCE), 3)
    target = Target(TargetKind.MAX_WALL, limit, f'ours <= {limit:g} s (ideal {ideal:g} s + 15 %)')
    return Workload(f'sleep{tasks}', f'sleep {SLEEP_SECONDS:g}', tasks, slots, target)


def one_task_workload() -> Workload:
    target = Target(TargetKind.MAX_WALL, ONE_TASK_LIMIT, f'ours <= {ONE_TASK_LIMIT:g} s start to exit')
    return Workload('one', 'true', 1, 1, target)


def full_suite() -> list[Workload]:
    """SPEC §5 sizes: (a) 2,000 x true at 2 and 8 slots, (b) 200 x sleep 0.1 at 10, (c) one task."""
    return [true_workload(2000, 2), true_workload(2000, 8), sleep_workload(200, 10), one_task_workload()]


def smoke_suite() -> list[Workload]:
    """CI-sized: the same shapes, a few seconds in all. Targets still print but mean little at this size."""
    return [true_workload(50, 2), true_workload(50, 8), sleep_workload(10, 10), one_task_workload()]


def write_task_file(directory: Path, workload: Workload) -> Path:
    """Write `<key>.txt` (one command a line) unless it exists; return its path."""
    path = directory / f'{workload.key}.txt'
    if not path.exists():
        path.write_text(f'{workload.command}\n' * workload.tasks, encoding='utf-8')
    return path
