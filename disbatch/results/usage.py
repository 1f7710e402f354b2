"""What the tasks of a run used: peak memory and CPU seconds, per host and for the biggest and slowest tasks. Pure.

The engine measures each task with `wait4` (`ResourceUsage` on the record); `UsageBoard` keeps, in memory that does
not grow with the number of tasks, what the snapshot shows (the web page, the monitor) and what the end-of-run
summary says ("peak memory: 1.9 GiB task 41 (line 42)").
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from disbatch.contract.snapshot import HostUsageView, UsageTaskView, UsageView
from disbatch.results.record import RecordKind, StatusRecord

KEPT = 5  # biggest and slowest tasks shown
_COUNTED = (RecordKind.NORMAL, RecordKind.TIMED_OUT, RecordKind.ZOMBIE, RecordKind.INTERRUPTED)


def format_bytes(count: int) -> str:
    """`2_000_000_000` → '1.9 GiB' (binary units, as `free -h` shows them)."""
    value = float(count)
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if value < 1024 or unit == 'GiB':
            return f'{value:.0f} {unit}' if unit == 'B' else f'{value:.1f} {unit}'
        value /= 1024
    raise AssertionError('unreachable')


def short_bytes(count: int) -> str:
    """`213_800_000` → '204M': the same in at most 5 characters, for narrow table columns."""
    value = float(count)
    for unit in ('B', 'K', 'M', 'G', 'T'):
        if value < 1024 or unit == 'T':
            return f'{value:.1f}{unit}' if value < 10 and unit != 'B' else f'{value:.0f}{unit}'
        value /= 1024
    raise AssertionError('unreachable')


@dataclass(frozen=True, slots=True, order=True)
class TaskUsage:
    """One task's usage, ordered by what it is ranked by (`measure`) first."""

    measure: float
    task_id: int
    line_number: int
    host: str
    max_rss_bytes: int | None  # None: unknown (--fork-tasks)
    cpu_seconds: float
    elapsed: float

    def view(self) -> UsageTaskView:
        return UsageTaskView(
            task=self.task_id,
            line=self.line_number,
            host=self.host,
            max_rss=self.max_rss_bytes,
            cpu=round(self.cpu_seconds, 3),
            elapsed=round(self.elapsed, 3),
        )


@dataclass(slots=True)
class HostUsage:
    tasks: int = 0
    max_rss_bytes: int | None = None  # the largest task peak seen on the host (None: none known, --fork-tasks)
    cpu_seconds: float = 0.0  # user + system, summed over its tasks


class UsageBoard:
    """Usage of the finished tasks of a run (per-engine commands and records without a process are left out)."""

    def __init__(self, kept: int = KEPT) -> None:
        self.kept = kept
        self.hosts: dict[str, HostUsage] = {}
        self.user_seconds = 0.0
        self.system_seconds = 0.0
        self._biggest: list[TaskUsage] = []  # min-heaps of the `kept` largest
        self._slowest: list[TaskUsage] = []

    def add(self, record: StatusRecord) -> None:
        usage = record.usage
        if usage is None or record.kind not in _COUNTED:
            return
        cpu = usage.user_seconds + usage.system_seconds
        self.user_seconds += usage.user_seconds
        self.system_seconds += usage.system_seconds
        host = self.hosts.setdefault(record.host, HostUsage())
        host.tasks += 1
        if usage.max_rss_bytes is not None:
            host.max_rss_bytes = max(host.max_rss_bytes or 0, usage.max_rss_bytes)
        host.cpu_seconds += cpu
        facts = (record.task_id, record.line_number, record.host, usage.max_rss_bytes, cpu, record.elapsed)
        if usage.max_rss_bytes is not None:  # a task of unknown peak (--fork-tasks) is not ranked by it
            self._keep(self._biggest, float(usage.max_rss_bytes), facts)
        self._keep(self._slowest, record.elapsed, facts)

    def _keep(
        self, heap: list[TaskUsage], measure: float, facts: tuple[int, int, str, int | None, float, float]
    ) -> None:
        """Keep the task in `heap` if it is among the `kept` largest by `measure` (the entry is made only then: this
        runs for every task)."""
        if len(heap) < self.kept:
            heapq.heappush(heap, TaskUsage(measure, *facts))
        elif measure >= heap[0].measure and (entry := TaskUsage(measure, *facts)) > heap[0]:
            heapq.heapreplace(heap, entry)

    def biggest(self) -> list[TaskUsage]:
        return sorted(self._biggest, reverse=True)

    def slowest(self) -> list[TaskUsage]:
        return sorted(self._slowest, reverse=True)

    def view(self) -> UsageView:
        """The snapshot's `usage`."""
        return UsageView(
            user=round(self.user_seconds, 3),
            system=round(self.system_seconds, 3),
            hosts={
                name: HostUsageView(tasks=host.tasks, max_rss=host.max_rss_bytes, cpu=round(host.cpu_seconds, 3))
                for name, host in sorted(self.hosts.items())
            },
            biggest=tuple(task.view() for task in self.biggest()),
            slowest=tuple(task.view() for task in self.slowest()),
        )

    def to_json(self) -> dict[str, object]:
        """The snapshot's `usage` key."""
        return self.view().to_json()

    def summary_lines(self) -> list[str]:
        """The usage lines of the end-of-run summary (none when no task was measured)."""
        if not self._slowest:
            return []
        biggest = self.biggest()
        peak = 'unknown (tasks forked by --fork-tasks)'
        top = biggest[0] if biggest else None
        if top is not None and (size := top.max_rss_bytes) is not None:
            peak = f'{format_bytes(size)} task {top.task_id} (line {top.line_number})'
        return [
            f'  peak memory: {peak}',
            f'  CPU time: {self.user_seconds:.1f} s user, {self.system_seconds:.1f} s system',
        ]
