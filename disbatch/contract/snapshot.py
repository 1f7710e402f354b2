"""The run's snapshot, typed: what the driver publishes under `DisBatch status` and what every reader reads. Pure.

`Snapshot` holds the run's counts and its `EngineView`s, `TaskView`s (the recent tasks and the failed ones), a
`WalltimeView` (the allocation's end, for a run that has one) and a `UsageView` (peak memory and CPU). All are
frozen; values are rounded where they are made, so `to_json()` is the published JSON as it is, key for key and in
this order (the web page's JavaScript reads that JSON). `from_json()` reads one back tolerantly (`json_fields`), since
a newer or older driver may publish: a missing key takes its default, an unknown key is ignored, a value of the
wrong type counts as missing (an engine without an integer rank is left out). A reader never crashes on a snapshot.

The driver builds one (its snapshot observer); the monitor, the web page, `disbatch report`, mail and the
progress line read one. It is part of the run's contract: it imports no driver code.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from disbatch.contract.json_fields import EMPTY_WHEN_NONE, OMITTED_WHEN_DEFAULT, JsonFields

COMMAND_CHARACTERS = 200  # a task's command is cut to this in the snapshot


# ---------------------------------------------------------------- the parts


@dataclass(frozen=True, slots=True)
class EngineView(JsonFields):
    """One engine: what the scheduler and the loop know of it, and its host's usage."""

    rank: int
    context: str = ''
    host: str = ''
    pid: int | None = None  # -1 while the driver does not know it; None in `disbatch report`'s
    last_heard: float | None = None  # seconds ago
    slots: int = 0
    running: int = 0
    free: int = 0
    given: int = 0  # tasks sent to it so far
    finished: int = 0
    failed: int = 0
    retiring: bool = False
    max_rss: int | None = None  # bytes: the biggest task peak on its host (None: none measured)
    cpu: float | None = None  # user + system seconds of the tasks on its host
    # '' while in the run; 'left' or 'lost' once gone (then kept, greyed, in the views)
    stage: str = field(default='', metadata=OMITTED_WHEN_DEFAULT)
    why: str = field(default='', metadata=OMITTED_WHEN_DEFAULT)  # why it is at that stage; both only when set


@dataclass(frozen=True, slots=True)
class TaskView(JsonFields):
    """One task of the `recent` and `failures` lists; a failed one also carries the snippet of its stderr."""

    task: int = 0
    line: int = 0
    host: str = ''
    return_code: int = 0
    elapsed: float = 0.0
    finish: float = 0.0
    max_rss: int | None = None  # bytes
    cpu: float | None = None  # user + system seconds
    command: str = ''  # at most COMMAND_CHARACTERS, valid UTF-8
    stderr: str | None = field(default=None, metadata=OMITTED_WHEN_DEFAULT)  # failed tasks only (else no key)


class DrainState(enum.Enum):
    """Where a run with an allocation end stands: tasks start, or are held while the running ones finish, or the
    stop time is past."""

    RUNNING = 'running'
    DRAINING = 'draining'
    STOPPING = 'stopping'


@dataclass(frozen=True, slots=True)
class WalltimeView(JsonFields):
    """The allocation's end (seconds since the epoch), the seconds left, the drain state, the follow-up job."""

    end: float | None = None
    left: float | None = None
    state: DrainState | None = None  # None: not said (a reader of an older or newer driver's snapshot)
    follow_up: str | None = None  # the id of the job that continues the run (--resubmit), once submitted


@dataclass(frozen=True, slots=True)
class HostUsageView(JsonFields):
    tasks: int = 0
    max_rss: int | None = None  # bytes: the largest task peak seen on the host (None: unknown, --fork-tasks)
    cpu: float = 0.0  # user + system seconds, summed over its tasks


@dataclass(frozen=True, slots=True)
class UsageTaskView(JsonFields):
    """One of the biggest or slowest tasks."""

    task: int = 0
    line: int = 0
    host: str = ''
    max_rss: int | None = None  # bytes (None: unknown, --fork-tasks)
    cpu: float = 0.0
    elapsed: float = 0.0


@dataclass(frozen=True, slots=True)
class UsageView(JsonFields):
    """What the run's tasks used (`results/usage.py`'s `UsageBoard`): CPU seconds, per host, biggest, slowest."""

    user: float = 0.0
    system: float = 0.0
    hosts: Mapping[str, HostUsageView] = field(default_factory=dict)  # by host name, sorted
    biggest: tuple[UsageTaskView, ...] = ()  # by peak memory, biggest first
    slowest: tuple[UsageTaskView, ...] = ()  # by elapsed time, slowest first


# ---------------------------------------------------------------- the snapshot


@dataclass(frozen=True, slots=True)
class Snapshot(JsonFields):
    """The run at one moment. None: not known (no total before the whole stream is read, no rate before two
    snapshots); in a snapshot read back, also what it did not say."""

    run: str = ''  # the run's label (its stem's last component)
    status: str = ''  # 'running', 'draining', 'stopping', 'finished'
    more: bool = False  # tasks are left to read or to start
    started: float | None = None  # seconds since the epoch
    now: float | None = None  # when the snapshot was built
    finished: int = 0  # tasks with a final record of this run, failed ones too
    failed: int = 0
    skipped: int = 0  # done by an earlier run (-r)
    barriers: int = 0
    lost: int = 0  # attempts lost with their engine
    interrupted: int = 0  # tasks the run stopped itself (not in `finished`)
    running: int | None = None
    pending: int | None = None  # read, not sent to an engine yet
    total: int | None = None
    slots: int = 0
    engines: tuple[EngineView, ...] = ()  # by rank
    recent: tuple[TaskView, ...] = ()  # the last tasks to end, oldest first
    failures: tuple[TaskView, ...] = ()  # the last failed ones, oldest first
    walltime: WalltimeView | None = None  # None: a run without an end
    usage: UsageView | None = field(default=None, metadata=EMPTY_WHEN_NONE)  # `{}` in the JSON when None
    rate: float | None = None  # tasks a second, over the last 20 s or so
    eta: float | None = None  # seconds until every task is done at that rate
    # a finished run's, in its final view (the web page's, `disbatch report`'s); in the JSON only when set
    exit_code: int | None = field(default=None, metadata=OMITTED_WHEN_DEFAULT)
    # why the run stopped early ('' while it has not); in the JSON only when set
    stopped: str = field(default='', metadata=OMITTED_WHEN_DEFAULT)
