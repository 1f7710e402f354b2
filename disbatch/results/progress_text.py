"""The text of the progress line and of the end-of-run summary, and the numbers behind them. Pure.

`RateMeter` turns (time, tasks done) samples from the snapshots into a rate; `format_progress` renders one
snapshot as a single line that fits a terminal width; `Stats` accumulates what the summary needs from the status
records and the snapshots in memory that does not grow with the number of tasks (counters by exit code, a heap of
the slowest tasks, slot-seconds integrated over the snapshots); `format_summary` renders it. Time arrives in the
snapshots (`now`, `started`): nothing here reads a clock.
"""

from __future__ import annotations

import heapq
import signal
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass

from disbatch.contract.snapshot import DrainState, Snapshot
from disbatch.results.failures import FailedTasks, advice_lines, failure_lines
from disbatch.results.record import RecordKind, StatusRecord
from disbatch.results.usage import UsageBoard
from disbatch.run_vocabulary import waiting

_RAN = (RecordKind.NORMAL, RecordKind.TIMED_OUT, RecordKind.ZOMBIE, RecordKind.INTERRUPTED)
RATE_WINDOW_SECONDS = 20.0
SLOWEST = 3
BAR_WIDTH = 20


# ---------------------------------------------------------------- rate and ETA


class RateMeter:
    """Tasks per second over roughly the last `window` seconds of snapshots (longer when snapshots are sparse)."""

    def __init__(self, window: float = RATE_WINDOW_SECONDS) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, done: int) -> None:
        if self._samples and now <= self._samples[-1][0]:
            self._samples[-1] = (self._samples[-1][0], done)
            return
        self._samples.append((now, done))
        # Keep one sample at least `window` old (the reference point) and the ones after it: at most a few dozen
        # at two snapshots a second.
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()

    def rate(self) -> float | None:
        """Tasks per second, or None before two samples."""
        if len(self._samples) < 2:
            return None
        (first_time, first_done), (last_time, last_done) = self._samples[0], self._samples[-1]
        return max(0, last_done - first_done) / (last_time - first_time)


def done_count(view: Snapshot) -> int:
    """Tasks with a final record: finished in this run (failed ones too) or skipped (done by an earlier run)."""
    return view.finished + view.skipped


def eta_seconds(view: Snapshot, rate: float | None) -> float | None:
    """Seconds until every task is done at `rate`; None when done, or when the total or the rate is not known."""
    if view.total is None or not rate or rate <= 0:
        return None
    remaining = view.total - done_count(view)
    return remaining / rate if remaining > 0 else None


# ---------------------------------------------------------------- small formats


def format_duration(seconds: float) -> str:
    """`35ms` under 0.1 s, `4.2s` under 10 s, `42s` under a minute, `12:05` under an hour, `3:04:05` beyond."""
    if seconds < 0.1:
        return f'{max(0.0, seconds) * 1000:.0f}ms'
    if seconds < 60:
        return f'{seconds:.1f}s' if seconds < 10 else f'{seconds:.0f}s'
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f'{hours}:{minutes:02d}:{secs:02d}' if hours else f'{minutes}:{secs:02d}'


def format_rate(rate: float) -> str:
    """Tasks per second; per minute or per hour when a task takes longer than that."""
    if rate >= 1 or rate == 0:
        return f'{rate:.0f} tasks/s' if rate >= 100 else f'{rate:.1f} tasks/s'
    if rate * 60 >= 1:
        return f'{rate * 60:.1f} tasks/min'
    return f'{rate * 3600:.1f} tasks/h'


def shorten(text: str, width: int) -> str:
    """`text` on one line (runs of white space made one space), cut to `width` characters with `...`."""
    flat = ' '.join(text.split())
    if len(flat) <= width:
        return flat
    if width <= 3:
        return flat[:width]
    return flat[: width - 3] + '...'


def plural(count: int, noun: str) -> str:
    return f'{count} {noun}' if count == 1 else f'{count} {noun}s'


# ---------------------------------------------------------------- the progress line


def format_progress(view: Snapshot, rate: float | None, eta: float | None, width: int = 80) -> str:
    """One line, at most `width` characters: what is done, failed, running (and of how many), the rate, the ETA.

    `disbatch: [#####...] 26/40 done (65%), 2 failed, 4 running, 3 skipped | 7.8 tasks/s, ETA 2.3s`. When the
    line is too long, the least useful part goes first (bar, queue, skipped, ETA, rate, ...): a part with a shorter
    form takes that form before it goes (`26/40 done` becomes `65% done`); what is left is then cut.
    """
    done, total = done_count(view), view.total
    # (separator before it, its forms from the longest, priority): the higher the priority, the longer a part
    # survives a narrow screen.
    parts: list[tuple[str, tuple[str, ...], int]] = [('', ('disbatch:',), 9)]

    def add(separator: str, text: str, priority: int, *shorter: str) -> None:
        parts.append((separator, (text, *shorter), priority))

    if total is not None:
        fraction = done / total if total else 1.0
        filled = int(fraction * BAR_WIDTH)
        percent = int(fraction * 100)
        add(' ', '[' + '#' * filled + '.' * (BAR_WIDTH - filled) + ']', 1)
        add(' ', f'{done}/{total} done', 8, f'{percent}% done')
        add(' ', f'({percent}%)', 5)
    else:
        add(' ', f'{done} done', 8)
    add(', ', f'{view.failed} failed', 7)
    add(', ', f'{view.running or 0} running', 6)
    if total is None and view.pending:  # the monitor's Waiting, which is the queue while the total is not known
        add(', ', f'{waiting(view)} waiting', 2)
    if view.skipped:
        add(', ', f'{view.skipped} skipped', 2)
    if view.interrupted:
        add(', ', f'{view.interrupted} interrupted', 6)
    if view.status == 'stopping':
        add(', ', 'stopping', 7)
    walltime = view.walltime
    if walltime is not None and walltime.left is not None:
        draining = ' (draining)' if walltime.state is DrainState.DRAINING else ''
        add(' | ', f'{format_duration(walltime.left)} left{draining}', 5)
    if rate is not None:
        add(' | ', format_rate(rate), 4)
    if eta is not None:
        add(', ' if rate is not None else ' | ', f'ETA {format_duration(eta)}', 3)
    while len(_join(parts)) > width:
        index = min(range(len(parts)), key=lambda index: (parts[index][2], -index))
        separator, forms, priority = parts[index]
        if len(forms) > 1:
            parts[index] = (separator, forms[1:], priority)
        elif len(parts) > 1:
            del parts[index]
        else:
            break
    return _join(parts)[: max(0, width)]


def _join(parts: list[tuple[str, tuple[str, ...], int]]) -> str:
    return ''.join(separator + forms[0] for separator, forms, _ in parts)


# ---------------------------------------------------------------- the summary


@dataclass(frozen=True, slots=True, order=True)
class SlowTask:
    elapsed: float
    task_id: int
    line_number: int
    command: str


class Stats:
    """What the end-of-run summary needs, in memory that does not grow with the number of tasks."""

    def __init__(self, slowest: int = SLOWEST) -> None:
        self.slowest_kept = slowest
        self.busy_seconds = 0.0  # sum of the elapsed times of the tasks (not per-engine commands)
        self.slot_seconds = 0.0  # slots integrated over the run's time, from the snapshots
        self.max_slots = 0
        self.failures: Counter[int] = Counter()  # return code -> tasks
        self.lost_attempts = 0
        self.skipped_failed = 0  # tasks skipped by -r whose earlier record is a failure (-R runs them)
        self.per_engine = 0
        self.per_engine_failed = 0
        self.view: Snapshot | None = None  # the latest snapshot
        self.failed = FailedTasks()
        self._heap: list[SlowTask] = []
        self._last_time: float | None = None
        self._last_slots = 0
        self.usage = UsageBoard()

    def add(self, record: StatusRecord) -> None:
        """One status record, as the driver writes it."""
        self.usage.add(record)
        if record.kind is RecordKind.PER_ENGINE:
            self.per_engine += 1
            self.per_engine_failed += record.failed
            return
        if record.kind is RecordKind.SKIPPED:
            self.skipped_failed += record.failed
        if record.kind not in _RAN:
            return  # skipped (done by an earlier run) and barriers took no slot time
        self.failed.add(record)
        if record.unreported:
            self.lost_attempts += record.is_lost  # an interrupted one never started, or went with its engine
            return
        self.busy_seconds += max(0.0, record.elapsed)
        if record.kind in (RecordKind.NORMAL, RecordKind.TIMED_OUT) and record.failed:
            self.failures[record.return_code] += 1
        if len(self._heap) < self.slowest_kept:  # the entry is made only when kept: this runs for every task
            heapq.heappush(self._heap, SlowTask(record.elapsed, record.task_id, record.line_number, record.command))
        elif self._heap and record.elapsed > self._heap[0].elapsed:
            slow = SlowTask(record.elapsed, record.task_id, record.line_number, record.command)
            heapq.heapreplace(self._heap, slow)

    def observe(self, view: Snapshot) -> None:
        """One snapshot: the counts to report, and slots x time since the last one (ValueError without its time).

        Slots change when engines join or leave, somewhere between two snapshots; the larger of the two counts is
        taken for the interval, so utilisation is never overstated.
        """
        if view.now is None or view.started is None:
            raise ValueError('a snapshot without its time')
        now, slots = view.now, view.slots
        if self._last_time is None:
            self._last_time = view.started
        if now > self._last_time:
            self.slot_seconds += max(slots, self._last_slots) * (now - self._last_time)
            self._last_time = now
        self._last_slots = slots
        self.max_slots = max(self.max_slots, slots)
        self.view = view

    def slowest(self) -> list[SlowTask]:
        return sorted(self._heap, reverse=True)

    @property
    def wall_seconds(self) -> float:
        if self.view is None or self.view.now is None or self.view.started is None:
            return 0.0
        return max(0.0, self.view.now - self.view.started)

    def utilisation(self) -> float | None:
        """Task time over slot time (0..1), or None when no slot time is known."""
        capacity = self.slot_seconds or self.max_slots * self.wall_seconds
        if capacity <= 0:
            return None
        return min(1.0, self.busy_seconds / capacity)


def format_failures(failures: Mapping[int, int]) -> str:
    """`exit 1: 3 tasks, exit 13: 1 task, killed by signal 15 (SIGTERM): 2 tasks` (exits first, then signals)."""
    return ', '.join(failure_items(failures))


def failure_items(failures: Mapping[int, int]) -> list[str]:
    ordered = sorted(failures, key=lambda code: (code < 0, abs(code)))
    return [f'{_describe_code(code)}: {plural(failures[code], "task")}' for code in ordered]


def wrap_items(label: str, items: list[str], width: int) -> list[str]:
    """`label` and the items joined by `, `, continued on lines indented like the first item when too wide."""
    indent, lines, current = label + ' ', [], ''
    for index, item in enumerate(items):
        text = item + (',' if index < len(items) - 1 else '')
        candidate = f'{current} {text}' if current else text
        if current and len(indent) + len(candidate) > width:
            lines.append(indent + current)
            indent, candidate = ' ' * len(indent), text
        current = candidate
    lines.append(indent + current)
    return lines


def _describe_code(code: int) -> str:
    if code >= 0:
        return f'exit {code}'
    try:
        name = signal.Signals(-code).name
    except ValueError:
        return f'killed by signal {-code}'
    return f'killed by signal {-code} ({name})'


def format_summary(
    stats: Stats, status_path: str, width: int = 80, rerun: str | None = None, exit_code_flag: bool = True
) -> str:
    """The end-of-run summary: several lines, no final newline.

    `rerun` is the command that runs the failed and interrupted tasks again (None when there is none, as for a task
    stream); `exit_code_flag` is -e. The last lines say why the run stopped early (the final snapshot's `stopped`)
    and what its exit code is (the final snapshot's `exit_code`) and why, when it needs saying.
    """
    view = stats.view or Snapshot()
    finished, failed, skipped = view.finished, view.failed, view.skipped
    not_run = waiting(view) or 0  # the monitor's Waiting: unread tasks too, not only the driver's queue
    head = [f'{plural(finished, "task")} run in {format_duration(stats.wall_seconds)}', f'{failed} failed']
    interrupted = view.interrupted
    if interrupted:
        head.append(f'{interrupted} interrupted (a plain -r runs them again)')
    if skipped:
        failed_before = min(stats.skipped_failed, skipped)
        why = f'; {failed_before} of them had failed: add -R to run them again' if failed_before else ''
        head.append(f'{skipped} skipped (done by an earlier run{why})')
    if not_run:
        head.append(f'{not_run} not run (stopped)')
    elif view.more:
        head.append('stopped before the end of the tasks')
    lines = wrap_items('disbatch:', head, width)
    if stats.failures:
        lines.extend(wrap_items('  failures:', failure_items(stats.failures), width))
    if stats.lost_attempts:
        lines.append(f'  lost with their engine: {plural(stats.lost_attempts, "attempt")}')
    if stats.per_engine:
        lines.append(f'  per-engine commands: {stats.per_engine} run, {stats.per_engine_failed} failed')
    utilisation = stats.utilisation()
    if utilisation is not None and finished:
        lines.append(
            f'  slot use: {utilisation:.0%} ({format_duration(stats.busy_seconds)} of task time, '
            f'{plural(stats.max_slots, "slot")} at most)'
        )
    for position, slow in enumerate(stats.slowest()):
        label = '  slowest: ' if position == 0 else '           '
        text = f'{label}{format_duration(slow.elapsed):>6}  task {slow.task_id} (line {slow.line_number}): '
        lines.append(text + shorten(slow.command, max(10, width - len(text))))
    if view.walltime is not None and view.walltime.follow_up:
        lines.append(f'  follow-up job: {view.walltime.follow_up} (it resumes the run from this status file)')
    lines.extend(stats.usage.summary_lines())
    lines.extend(failure_lines(stats.failed, failed, width))
    lines.append(f'  status file: {status_path}')
    lines.extend(advice_lines(failed, interrupted, rerun, exit_code_flag, width, view.exit_code, view.stopped))
    return '\n'.join(lines)
