"""Walltime-aware runs: when may a task still start, and when must the run stop? Pure.

A batch job has an end (the allocation's time limit, or `--walltime` given by hand). Near it the scheduler holds
every task that is not expected to finish before the end minus a margin (`--drain-margin`), lets the running ones
finish, and at the end minus a short lead (`STOP_LEAD_SECONDS`) stops what still runs, so the job ends by itself,
its tasks recorded, rather than being killed by the batch system half way through them.

How long a task takes is learnt from the tasks that finished: the longest duration seen on the task's own line (a
REPEAT line's tasks are alike), else a high quantile of the recent durations of all lines; before any task has
finished nothing is known, and a task starts as long as the end minus the margin has not come.

Time arrives as arguments (seconds since the epoch): nothing here reads a clock.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from dataclasses import dataclass, field, replace

from disbatch.contract.snapshot import DrainState

# The run's exit code when it stopped for the end of its allocation with tasks left (documented in cli.py).
EXIT_WALLTIME = 3
# --resubmit without N: follow-up jobs in a chain at most.
DEFAULT_RESUBMITS = 10
# At the end minus this many seconds, what still runs is stopped: TERM, the stop grace, KILL, the records, the
# follow-up job's submission and the driver's exit all fit in it.
STOP_LEAD_SECONDS = 4.0
# The default margin: this much, or a tenth of the allocation when that is shorter (never under the stop lead).
DEFAULT_MARGIN_SECONDS = 120.0
MARGIN_FRACTION = 0.1
# The overall estimate is this quantile of the last RECENT_DURATIONS durations of any line.
OVERALL_QUANTILE = 0.9
RECENT_DURATIONS = 200


def clock(epoch: float) -> str:
    """A time of day for messages (local time; formatting a given time reads no clock)."""
    return time.strftime('%H:%M:%S', time.localtime(epoch))


def default_margin(length: float) -> float:
    """The drain margin when none is given: `DEFAULT_MARGIN_SECONDS`, or a tenth of an allocation of `length`
    seconds when that is shorter; never under `STOP_LEAD_SECONDS`."""
    return max(STOP_LEAD_SECONDS, min(DEFAULT_MARGIN_SECONDS, MARGIN_FRACTION * length))


class Decision(enum.Enum):
    START = 'start'
    HOLD = 'hold'


@dataclass(frozen=True, slots=True)
class Allocation:
    """The end of the run's allocation (seconds since the epoch), where it came from, and the drain margin."""

    end: float
    margin: float
    origin: str = '--walltime'  # for messages: '--walltime', 'SLURM_JOB_END_TIME', 'squeue', ...

    @property
    def last_start(self) -> float:
        """No task expected to end after this time starts."""
        return self.end - max(self.margin, STOP_LEAD_SECONDS)

    @property
    def stop_at(self) -> float:
        """What still runs at this time is stopped."""
        return self.end - STOP_LEAD_SECONDS

    def decide(self, now: float, estimate: float | None) -> Decision:
        """Start a task now, or hold it: it must be expected to finish by `last_start`; a task of unknown
        duration may start until then."""
        if now >= self.last_start:
            return Decision.HOLD
        if estimate is not None and now + estimate > self.last_start:
            return Decision.HOLD
        return Decision.START


@dataclass(slots=True)
class Durations:
    """How long tasks took: the longest per task-file line, and the recent durations of every line."""

    longest_by_line: dict[int, float] = field(default_factory=dict)
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_DURATIONS))
    longest: float = 0.0  # the longest of all: when even it fits, no estimate needs computing

    def add(self, line_number: int, elapsed: float) -> None:
        elapsed = max(0.0, elapsed)
        if elapsed > self.longest_by_line.get(line_number, -1.0):
            self.longest_by_line[line_number] = elapsed
        self.recent.append(elapsed)
        self.longest = max(self.longest, elapsed)

    def estimate(self, line_number: int) -> float | None:
        """Expected seconds for a task of `line_number`; None when no task has finished yet."""
        if line_number in self.longest_by_line:
            return self.longest_by_line[line_number]
        if not self.recent:
            return None
        ordered = sorted(self.recent)
        return ordered[min(len(ordered) - 1, int(OVERALL_QUANTILE * len(ordered)))]


class DrainGate:
    """The scheduler's walltime state: estimates, the start-or-hold decision, and whether it is draining."""

    def __init__(self, allocation: Allocation) -> None:
        self.allocation = allocation
        self.durations = Durations()
        self.holding = False  # a task was held: from now on nothing starts

    def move_end(self, end: float) -> None:
        """The allocation's time limit was changed (`scontrol update`): decide again from now on."""
        self.allocation = replace(self.allocation, end=end)
        self.holding = False

    def observe(self, line_number: int, elapsed: float) -> None:
        self.durations.add(line_number, elapsed)

    def may_start(self, line_number: int, now: float) -> bool:
        """Whether a task of `line_number` may start at `now`; once one is held, none starts any more (tasks
        keep their order, and a held task stays held: time only moves on)."""
        if self.holding:
            return False
        if now + self.durations.longest < self.allocation.last_start:
            return True  # the common case, far from the end: no quantile to compute
        decision = self.allocation.decide(now, self.durations.estimate(line_number))
        self.holding = decision is Decision.HOLD
        return not self.holding

    def must_stop(self, now: float) -> bool:
        return now >= self.allocation.stop_at

    def stop_reason(self, running: int) -> str:
        allocation = self.allocation
        return (
            f'the allocation ends at {clock(allocation.end)} ({allocation.origin}): stopping {running} running '
            'task(s); they are recorded as interrupted, and a -r run re-runs them'
        )

    def drain_reason(self) -> str:
        allocation = self.allocation
        return (
            f'the allocation ends at {clock(allocation.end)} ({allocation.origin}) and no task left is expected to '
            f'finish {allocation.end - allocation.last_start:.0f} s before it: the run stops here, and -r resumes it'
        )

    def state(self, now: float) -> DrainState:
        """Running, draining (tasks held, running ones finishing) or stopping (past the stop time)."""
        if self.must_stop(now):
            return DrainState.STOPPING
        return DrainState.DRAINING if self.holding else DrainState.RUNNING
