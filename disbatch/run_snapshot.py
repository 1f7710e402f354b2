"""The run's snapshot, typed: what the driver publishes under `DisBatch status` and what every reader reads. Pure.

`Snapshot` holds the run's counts and its `EngineView`s, `TaskView`s (the recent tasks and the failed ones), a
`WalltimeView` (the allocation's end, for a run that has one) and a `UsageView` (peak memory and CPU). All are
frozen; values are rounded where they are made, so `to_json()` is the published JSON as it is, key for key and in
this order (the web page's JavaScript reads that JSON). `from_json()` reads one back tolerantly, since a newer or
older driver may publish: a missing key takes its default, an unknown key is ignored, a value of the wrong type
counts as missing (an engine without an integer rank is left out). A reader never crashes on a snapshot.

The driver builds one (its snapshot observer); the monitor, the web page, `disbatch report`, mail and the
progress line read one. This module is part of the run's contract (`contract.py`): it imports no driver code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

Json = dict[str, object]
COMMAND_CHARACTERS = 200  # a task's command is cut to this in the snapshot


# ---------------------------------------------------------------- tolerant reading


def _object(value: object) -> Mapping[str, object]:
    return value if isinstance(value, dict) else {}


def _objects(data: Mapping[str, object], key: str) -> list[Mapping[str, object]]:
    value = data.get(key)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _maybe_int(data: Mapping[str, object], key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _int(data: Mapping[str, object], key: str, default: int = 0) -> int:
    value = _maybe_int(data, key)
    return default if value is None else value


def _maybe_float(data: Mapping[str, object], key: str) -> float | None:
    """A number (an integer stays one, so what was published reads back the same)."""
    value = data.get(key)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _float(data: Mapping[str, object], key: str) -> float:
    value = _maybe_float(data, key)
    return 0.0 if value is None else value


def _maybe_str(data: Mapping[str, object], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def _str(data: Mapping[str, object], key: str) -> str:
    return _maybe_str(data, key) or ''


def _bool(data: Mapping[str, object], key: str) -> bool:
    value = data.get(key)
    return value if isinstance(value, bool) else False


# ---------------------------------------------------------------- the parts


@dataclass(frozen=True, slots=True)
class EngineView:
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
    stage: str = ''  # '' while in the run; 'left' or 'lost' once gone (then kept, greyed, in the views)
    why: str = ''  # why it is at that stage; both keys are in the JSON only when set

    def to_json(self) -> Json:
        view: Json = {
            'rank': self.rank,
            'context': self.context,
            'host': self.host,
            'pid': self.pid,
            'last_heard': self.last_heard,
            'slots': self.slots,
            'running': self.running,
            'free': self.free,
            'given': self.given,
            'finished': self.finished,
            'failed': self.failed,
            'retiring': self.retiring,
            'max_rss': self.max_rss,
            'cpu': self.cpu,
        }
        if self.stage:
            view['stage'] = self.stage
        if self.why:
            view['why'] = self.why
        return view

    @classmethod
    def from_json(cls, data: object) -> EngineView | None:
        """None for an entry without an integer rank (not an engine)."""
        view = _object(data)
        rank = _maybe_int(view, 'rank')
        if rank is None:
            return None
        return cls(
            rank=rank,
            context=_str(view, 'context'),
            host=_str(view, 'host'),
            pid=_maybe_int(view, 'pid'),
            last_heard=_maybe_float(view, 'last_heard'),
            slots=_int(view, 'slots'),
            running=_int(view, 'running'),
            free=_int(view, 'free'),
            given=_int(view, 'given'),
            finished=_int(view, 'finished'),
            failed=_int(view, 'failed'),
            retiring=_bool(view, 'retiring'),
            max_rss=_maybe_int(view, 'max_rss'),
            cpu=_maybe_float(view, 'cpu'),
            stage=_str(view, 'stage'),
            why=_str(view, 'why'),
        )


@dataclass(frozen=True, slots=True)
class TaskView:
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
    stderr: str | None = None  # failed tasks only (the key is left out of the JSON otherwise)

    def to_json(self) -> Json:
        view: Json = {
            'task': self.task,
            'line': self.line,
            'host': self.host,
            'return_code': self.return_code,
            'elapsed': self.elapsed,
            'finish': self.finish,
            'max_rss': self.max_rss,
            'cpu': self.cpu,
            'command': self.command,
        }
        if self.stderr is not None:
            view['stderr'] = self.stderr
        return view

    @classmethod
    def from_json(cls, data: object) -> TaskView:
        view = _object(data)
        return cls(
            task=_int(view, 'task'),
            line=_int(view, 'line'),
            host=_str(view, 'host'),
            return_code=_int(view, 'return_code'),
            elapsed=_float(view, 'elapsed'),
            finish=_float(view, 'finish'),
            max_rss=_maybe_int(view, 'max_rss'),
            cpu=_maybe_float(view, 'cpu'),
            command=_str(view, 'command'),
            stderr=_maybe_str(view, 'stderr'),
        )


@dataclass(frozen=True, slots=True)
class WalltimeView:
    """The allocation's end (seconds since the epoch), the seconds left, the drain state, the follow-up job."""

    end: float | None = None
    left: float | None = None
    state: str = ''  # 'running', 'draining', 'stopping'
    follow_up: str | None = None  # the id of the job that continues the run (--resubmit), once submitted

    def to_json(self) -> Json:
        return {'end': self.end, 'left': self.left, 'state': self.state, 'follow_up': self.follow_up}

    @classmethod
    def from_json(cls, data: object) -> WalltimeView:
        view = _object(data)
        return cls(
            end=_maybe_float(view, 'end'),
            left=_maybe_float(view, 'left'),
            state=_str(view, 'state'),
            follow_up=_maybe_str(view, 'follow_up'),
        )


@dataclass(frozen=True, slots=True)
class HostUsageView:
    tasks: int = 0
    max_rss: int = 0  # bytes: the largest task peak seen on the host
    cpu: float = 0.0  # user + system seconds, summed over its tasks

    def to_json(self) -> Json:
        return {'tasks': self.tasks, 'max_rss': self.max_rss, 'cpu': self.cpu}

    @classmethod
    def from_json(cls, data: object) -> HostUsageView:
        view = _object(data)
        return cls(tasks=_int(view, 'tasks'), max_rss=_int(view, 'max_rss'), cpu=_float(view, 'cpu'))


@dataclass(frozen=True, slots=True)
class UsageTaskView:
    """One of the biggest or slowest tasks."""

    task: int = 0
    line: int = 0
    host: str = ''
    max_rss: int = 0  # bytes
    cpu: float = 0.0
    elapsed: float = 0.0

    def to_json(self) -> Json:
        return {
            'task': self.task,
            'line': self.line,
            'host': self.host,
            'max_rss': self.max_rss,
            'cpu': self.cpu,
            'elapsed': self.elapsed,
        }

    @classmethod
    def from_json(cls, data: object) -> UsageTaskView:
        view = _object(data)
        return cls(
            task=_int(view, 'task'),
            line=_int(view, 'line'),
            host=_str(view, 'host'),
            max_rss=_int(view, 'max_rss'),
            cpu=_float(view, 'cpu'),
            elapsed=_float(view, 'elapsed'),
        )


@dataclass(frozen=True, slots=True)
class UsageView:
    """What the run's tasks used (`results/usage.py`'s `UsageBoard`): CPU seconds, per host, biggest, slowest."""

    user: float = 0.0
    system: float = 0.0
    hosts: Mapping[str, HostUsageView] = field(default_factory=dict)  # by host name, sorted
    biggest: tuple[UsageTaskView, ...] = ()  # by peak memory, biggest first
    slowest: tuple[UsageTaskView, ...] = ()  # by elapsed time, slowest first

    def to_json(self) -> Json:
        return {
            'user': self.user,
            'system': self.system,
            'hosts': {name: host.to_json() for name, host in self.hosts.items()},
            'biggest': [task.to_json() for task in self.biggest],
            'slowest': [task.to_json() for task in self.slowest],
        }

    @classmethod
    def from_json(cls, data: object) -> UsageView:
        view = _object(data)
        hosts = _object(view.get('hosts'))
        return cls(
            user=_float(view, 'user'),
            system=_float(view, 'system'),
            hosts={name: HostUsageView.from_json(host) for name, host in hosts.items() if isinstance(host, dict)},
            biggest=tuple(UsageTaskView.from_json(task) for task in _objects(view, 'biggest')),
            slowest=tuple(UsageTaskView.from_json(task) for task in _objects(view, 'slowest')),
        )


# ---------------------------------------------------------------- the snapshot


@dataclass(frozen=True, slots=True)
class Snapshot:
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
    usage: UsageView | None = None  # `{}` in the JSON when None
    rate: float | None = None  # tasks a second, over the last 20 s or so
    eta: float | None = None  # seconds until every task is done at that rate
    exit_code: int | None = None  # a finished run's, in its final view (the web page's, `disbatch report`'s)
    stopped: str = ''  # why the run stopped early ('' while it has not); in the JSON only when set

    def to_json(self) -> Json:
        view: Json = {
            'run': self.run,
            'status': self.status,
            'more': self.more,
            'started': self.started,
            'now': self.now,
            'finished': self.finished,
            'failed': self.failed,
            'skipped': self.skipped,
            'barriers': self.barriers,
            'lost': self.lost,
            'interrupted': self.interrupted,
            'running': self.running,
            'pending': self.pending,
            'total': self.total,
            'slots': self.slots,
            'engines': [engine.to_json() for engine in self.engines],
            'recent': [task.to_json() for task in self.recent],
            'failures': [task.to_json() for task in self.failures],
            'walltime': None if self.walltime is None else self.walltime.to_json(),
            'usage': {} if self.usage is None else self.usage.to_json(),
            'rate': self.rate,
            'eta': self.eta,
        }
        if self.exit_code is not None:
            view['exit_code'] = self.exit_code
        if self.stopped:
            view['stopped'] = self.stopped
        return view

    @classmethod
    def from_json(cls, data: object) -> Snapshot:
        view = _object(data)
        walltime, usage = view.get('walltime'), view.get('usage')
        engines = (EngineView.from_json(engine) for engine in _objects(view, 'engines'))
        return cls(
            run=_str(view, 'run'),
            status=_str(view, 'status'),
            more=_bool(view, 'more'),
            started=_maybe_float(view, 'started'),
            now=_maybe_float(view, 'now'),
            finished=_int(view, 'finished'),
            failed=_int(view, 'failed'),
            skipped=_int(view, 'skipped'),
            barriers=_int(view, 'barriers'),
            lost=_int(view, 'lost'),
            interrupted=_int(view, 'interrupted'),
            running=_maybe_int(view, 'running'),
            pending=_maybe_int(view, 'pending'),
            total=_maybe_int(view, 'total'),
            slots=_int(view, 'slots'),
            engines=tuple(engine for engine in engines if engine is not None),
            recent=tuple(TaskView.from_json(task) for task in _objects(view, 'recent')),
            failures=tuple(TaskView.from_json(task) for task in _objects(view, 'failures')),
            walltime=WalltimeView.from_json(walltime) if isinstance(walltime, dict) else None,
            usage=UsageView.from_json(usage) if isinstance(usage, dict) and usage else None,
            rate=_maybe_float(view, 'rate'),
            eta=_maybe_float(view, 'eta'),
            exit_code=_maybe_int(view, 'exit_code'),
            stopped=_str(view, 'stopped'),
        )
