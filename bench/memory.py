"""Workload (d): the driver's resident memory while a very long task file streams through it.

A sampler thread reads the driver's VmRSS/VmHWM from /proc/PID/status every 0.2 s and counts the lines of the run's
status file at the same moment (read on from where it stopped, so each sample costs only the new bytes).
`memory_figures` turns the samples into RSS at 1 %, 10 % and 100 % of the tasks done, and the growth between the
last two.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.status import find_status_file

SAMPLE_INTERVAL = 0.2


@dataclass(frozen=True)
class MemorySample:
    seconds: float  # since sampling began
    done: int  # status-file lines at that moment
    rss_kib: int
    peak_kib: int  # VmHWM


@dataclass
class MemorySampler:
    """Callable as a `bench.measure.Sampler`; the samples are kept in `samples` (only its own thread appends)."""

    output_directory: Path
    interval: float = SAMPLE_INTERVAL
    samples: list[MemorySample] = field(default_factory=list)

    def __call__(self, pid: int, stop: threading.Event) -> None:
        start = time.monotonic()
        counter = _LineCounter(self.output_directory)
        while not stop.wait(self.interval):
            memory = _rss_and_peak(pid)
            if memory is None:  # exited (a zombie has no VmRSS)
                return
            self.samples.append(MemorySample(time.monotonic() - start, counter.count(), *memory))


@dataclass
class _LineCounter:
    output_directory: Path
    path: Path | None = None
    offset: int = 0
    lines: int = 0

    def count(self) -> int:
        if self.path is None:
            self.path = find_status_file(self.output_directory)
            if self.path is None:
                return 0
        with self.path.open('rb') as status:
            status.seek(self.offset)
            while chunk := status.read(1 << 20):
                self.lines += chunk.count(b'\n')
                self.offset += len(chunk)
        return self.lines


def _rss_and_peak(pid: int) -> tuple[int, int] | None:
    try:
        text = Path(f'/proc/{pid}/status').read_text(encoding='ascii', errors='replace')
    except OSError:
        return None
    values = {}
    for line in text.splitlines():
        name, _, rest = line.partition(':')
        if name in ('VmRSS', 'VmHWM'):
            values[name] = int(rest.split()[0])
    if 'VmRSS' not in values:
        return None
    return values['VmRSS'], values.get('VmHWM', values['VmRSS'])


@dataclass(frozen=True)
class MemoryFigures:
    tasks: int
    points: list[tuple[int, MemorySample | None]]  # (threshold, first sample with at least that many done)
    last: MemorySample | None  # the last sample while the driver was alive
    peak_kib: int

    @property
    def growth_kib(self) -> int | None:
        """RSS at the last sample minus RSS at the 10 % point: what 90 % of the tasks added."""
        middle = self.points[1][1] if len(self.points) > 1 else None
        if middle is None or self.last is None:
            return None
        return self.last.rss_kib - middle.rss_kib


def memory_figures(tasks: int, samples: list[MemorySample]) -> MemoryFigures:
    thresholds = [max(1, tasks // 100), max(1, tasks // 10), tasks]
    points = [(threshold, next((s for s in samples if s.done >= threshold), None)) for threshold in thresholds]
    last = samples[-1] if samples else None
    peak = max((s.peak_kib for s in samples), default=0)
    return MemoryFigures(tasks, points, last, peak)
