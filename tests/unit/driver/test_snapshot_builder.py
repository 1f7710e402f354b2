"""The run's snapshot as the driver builds and publishes it: the exact JSON of before the snapshot was typed (keys,
values, rounding, order), the published key sets written out, and the round trip through `Snapshot.from_json`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from disbatch.contract import STATUS_KEY
from disbatch.contract.snapshot import Snapshot
from disbatch.driver.core.events import (
    Action,
    EngineGone,
    EngineJoined,
    ItemRead,
    RetireEngines,
    SendTask,
    TaskFinished,
    WriteRecord,
)
from disbatch.driver.core.scheduler import Scheduler, SchedulerConfig
from disbatch.driver.core.walltime import Allocation
from disbatch.driver.observers.publisher import Publisher
from disbatch.driver.observers.snapshot_builder import EngineFacts, build
from disbatch.kvsstcp.outside import WatchCallback
from disbatch.results.record import EMPTY_SNIPPET, Outcome, ResourceUsage, StatusRecord
from disbatch.results.usage import UsageBoard
from disbatch.taskfile.items import NO_REPEAT, Task

STARTED, NOW = 1_700_000_000.123456, 1_700_000_042.987654
LONG = 'echo ' + 'x' * 200
COMMANDS = ['echo ok', 'echo bad \udcff >&2; exit 3', LONG, 'sleep 9']

# The keys of the published snapshot, as the driver published them before it was typed (in this order).
SNAPSHOT_KEYS = [
    'run', 'status', 'more', 'started', 'now', 'finished', 'failed', 'skipped', 'barriers', 'lost', 'interrupted',
    'running', 'pending', 'total', 'slots', 'engines', 'recent', 'failures', 'walltime', 'usage', 'rate', 'eta',
]  # fmt: skip
ENGINE_KEYS = [
    'rank', 'context', 'host', 'pid', 'last_heard', 'slots', 'running', 'free', 'given', 'finished', 'failed',
    'retiring', 'max_rss', 'cpu',
]  # fmt: skip
TASK_KEYS = ['task', 'line', 'host', 'return_code', 'elapsed', 'finish', 'max_rss', 'cpu', 'command']
FAILED_TASK_KEYS = [*TASK_KEYS, 'stderr']
WALLTIME_KEYS = ['end', 'left', 'state', 'follow_up']
USAGE_KEYS = ['user', 'system', 'hosts', 'biggest', 'slowest']
HOST_USAGE_KEYS = ['tasks', 'max_rss', 'cpu']
USAGE_TASK_KEYS = ['task', 'line', 'host', 'max_rss', 'cpu', 'elapsed']

# What `build()` returned for `scenario()` before the snapshot was typed (made by that code), with the rate and the
# ETA the publisher adds (None here): the JSON must stay this, byte for byte.
# fmt: off
EXPECTED = {
    'run': 'Tasks_disBatch_260101000000_001', 'status': 'running', 'more': True, 'started': 1700000000.123,
    'now': 1700000042.988, 'finished': 3, 'failed': 1, 'skipped': 0, 'barriers': 0, 'lost': 0, 'interrupted': 0,
    'running': 1, 'pending': 0, 'total': 7, 'slots': 4,
    'engines': [
        {'rank': 0, 'context': 'SSH0', 'host': 'node0', 'pid': 111, 'last_heard': 0.5, 'slots': 2, 'running': 0,
         'free': 2, 'given': 2, 'finished': 2, 'failed': 1, 'retiring': False, 'max_rss': 2000000, 'cpu': 0.267},
        {'rank': 1, 'context': 'SLURM1', 'host': 'node1', 'pid': 222, 'last_heard': 12.3, 'slots': 1, 'running': 0,
         'free': 1, 'given': 1, 'finished': 1, 'failed': 0, 'retiring': False, 'max_rss': None, 'cpu': None},
        {'rank': 2, 'context': 'SLURM1', 'host': 'node2', 'pid': -1, 'last_heard': None, 'slots': 1, 'running': 1,
         'free': 0, 'given': 1, 'finished': 0, 'failed': 0, 'retiring': True, 'max_rss': None, 'cpu': None},
    ],
    'recent': [
        {'task': 0, 'line': 1, 'host': 'node0', 'return_code': 0, 'elapsed': 1.235, 'finish': 1700000002.235,
         'max_rss': 1000000, 'cpu': 0.134, 'command': 'echo ok'},
        {'task': 1, 'line': 2, 'host': 'node0', 'return_code': 3, 'elapsed': 2.235, 'finish': 1700000003.235,
         'max_rss': 2000000, 'cpu': 0.134, 'command': 'echo bad \ufffd >&2; exit 3', 'stderr': 'boom\n'},
        {'task': 2, 'line': 3, 'host': 'node1', 'return_code': 0, 'elapsed': 3.235, 'finish': 1700000004.235,
         'max_rss': None, 'cpu': None, 'command': LONG[:200]},
    ],
    'failures': [
        {'task': 1, 'line': 2, 'host': 'node0', 'return_code': 3, 'elapsed': 2.235, 'finish': 1700000003.235,
         'max_rss': 2000000, 'cpu': 0.134, 'command': 'echo bad \ufffd >&2; exit 3', 'stderr': 'boom\n'},
    ],
    'walltime': {'end': 1700000100.556, 'left': 57.6, 'state': 'running', 'follow_up': None},
    'usage': {
        'user': 0.247, 'system': 0.02, 'hosts': {'node0': {'tasks': 2, 'max_rss': 2000000, 'cpu': 0.267}},
        'biggest': [
            {'task': 1, 'line': 2, 'host': 'node0', 'max_rss': 2000000, 'cpu': 0.134, 'elapsed': 2.235},
            {'task': 0, 'line': 1, 'host': 'node0', 'max_rss': 1000000, 'cpu': 0.134, 'elapsed': 1.235},
        ],
        'slowest': [
            {'task': 1, 'line': 2, 'host': 'node0', 'max_rss': 2000000, 'cpu': 0.134, 'elapsed': 2.235},
            {'task': 0, 'line': 1, 'host': 'node0', 'max_rss': 1000000, 'cpu': 0.134, 'elapsed': 1.235},
        ],
    },
    'rate': None, 'eta': None,
}
# fmt: on


@dataclass
class Run:
    scheduler: Scheduler
    records: list[StatusRecord]
    board: UsageBoard
    facts: dict[int, EngineFacts] = field(default_factory=dict)


def scenario(walltime: bool = True) -> Run:
    """Three engines (the loop knows nothing yet of the third, which is retiring); three tasks ended (one failed, one
    not measured), one still runs; the task file held 7 tasks."""
    allocation = Allocation(end=1_700_000_100.55555, margin=30.0) if walltime else None
    scheduler = Scheduler(SchedulerConfig(driver_host='head', driver_pid=1, allocation=allocation))
    actions: list[Action] = []
    for rank, host, slots in ((0, 'node0', 2), (1, 'node1', 1), (2, 'node2', 1)):
        actions += scheduler.handle(EngineJoined(rank, host, slots, 'SSH0' if rank == 0 else 'SLURM1'))
    for task_id, command in enumerate(COMMANDS):
        if scheduler.wants_item():
            actions += scheduler.handle(ItemRead(Task(task_id, task_id + 1, NO_REPEAT, command), 100.0 + task_id))
    sent = [action for action in actions if isinstance(action, SendTask)][:3]
    board, records = UsageBoard(), []
    for send, return_code, measured in zip(sent, (0, 3, 0), (True, True, False), strict=True):
        task = send.task
        outcome = Outcome(
            pid=4000 + task.task_id, return_code=return_code, start=1_700_000_001.0001,
            finish=1_700_000_002.2346 + task.task_id, elapsed=1.23456 + task.task_id, out_bytes=3,
            out_snippet="'ok\\n'", err_bytes=5 if return_code else 0,
            err_snippet="'boom\\n'" if return_code else EMPTY_SNIPPET,
            usage=ResourceUsage(1_000_000 * (task.task_id + 1), 0.123456, 0.0101) if measured else None,
        )  # fmt: skip
        record = StatusRecord.of_task(task, scheduler.engines[send.engine_rank].hostname, outcome)
        assert scheduler.handle(TaskFinished(send.engine_rank, task.task_id, outcome))[0] == WriteRecord(record)
        board.add(record)
        records.append(record)
    scheduler.handle(RetireEngines(engine_ranks=(2,)))
    facts = {0: EngineFacts(pid=111, last_heard=0.4567), 1: EngineFacts(pid=222, last_heard=12.345)}
    return Run(scheduler, records, board, facts)


def built(run: Run, usage: bool = True) -> Snapshot:
    failures = [record for record in run.records if record.failed]
    return build('Tasks_disBatch_260101000000_001', run.scheduler, run.facts, STARTED, NOW, run.records, failures, 7,
                 run.board.view() if usage else None)  # fmt: skip


def test_the_json_is_what_the_driver_published_before_the_snapshot_was_typed() -> None:
    view = built(scenario()).to_json()
    assert json.dumps(view) == json.dumps(EXPECTED)  # keys, values, rounding and order, at every level
    bare = built(scenario(walltime=False), usage=False).to_json()
    assert bare['walltime'] is None and bare['usage'] == {}
    assert list(bare) == SNAPSHOT_KEYS


def test_the_keys_are_exactly_the_published_ones() -> None:
    view = json.loads(json.dumps(built(scenario()).to_json()))
    assert list(view) == SNAPSHOT_KEYS
    assert [list(engine) for engine in view['engines']] == [ENGINE_KEYS] * 3
    assert [list(task) for task in view['recent']] == [TASK_KEYS, FAILED_TASK_KEYS, TASK_KEYS]
    assert [list(task) for task in view['failures']] == [FAILED_TASK_KEYS]
    assert list(view['walltime']) == WALLTIME_KEYS
    usage = view['usage']
    assert list(usage) == USAGE_KEYS
    assert [list(host) for host in usage['hosts'].values()] == [HOST_USAGE_KEYS]
    assert [list(task) for task in usage['biggest'] + usage['slowest']] == [USAGE_TASK_KEYS] * 4


def test_build_to_json_from_json_to_json_is_the_same() -> None:
    for view in (built(scenario()), built(scenario(walltime=False), usage=False)):
        published = view.to_json()
        again = Snapshot.from_json(json.loads(json.dumps(published)))
        assert again == view
        assert json.dumps(again.to_json()) == json.dumps(published)


class FakeKVS:
    """What the publisher uses of a KVS, keeping what is put under each key."""

    def __init__(self) -> None:
        self.values: dict[bytes, tuple[bytes, bytes]] = {}

    def put(self, key: bytes, value: bytes, encoding: bytes = b'ASTR') -> None:
        self.values[key] = (encoding, value)

    def replace(self, key: bytes, value: bytes, encoding: bytes = b'ASTR') -> None:
        self.values[key] = (encoding, value)

    def get_nowait(self, key: bytes) -> tuple[bytes, bytes] | None:
        return None

    def watch(self, key: bytes, callback: WatchCallback) -> None:
        pass

    def unwatch(self, key: bytes, callback: WatchCallback) -> None:
        pass


class Observer:
    def __init__(self) -> None:
        self.seen: list[Snapshot] = []
        self.closed: list[tuple[Snapshot, int]] = []

    def on_record(self, record: StatusRecord) -> None:
        pass

    def on_snapshot(self, view: Snapshot) -> None:
        self.seen.append(view)

    def close(self, view: Snapshot, exit_code: int) -> None:
        self.closed.append((view, exit_code))


def test_the_publisher_puts_the_snapshot_json_and_hands_observers_the_same_snapshot() -> None:
    run, kvs, observer = scenario(), FakeKVS(), Observer()
    publisher = Publisher('Tasks_disBatch_260101000000_001', kvs, [observer], lambda: run.facts, expected_total=7)
    for record in run.records:
        publisher.record(record)
    publisher.tick(run.scheduler)
    encoding, value = kvs.values[STATUS_KEY.encode()]
    published = json.loads(value)
    assert encoding == b'JSON' and list(published) == SNAPSHOT_KEYS
    assert [list(engine) for engine in published['engines']] == [ENGINE_KEYS] * 3
    assert list(published['usage']) == USAGE_KEYS and published['rate'] is None  # one sample: no rate yet
    assert observer.seen == [Snapshot.from_json(published)]
    publisher.close(run.scheduler, 0)
    final = json.loads(kvs.values[STATUS_KEY.encode()][1])
    assert list(final) == SNAPSHOT_KEYS and observer.closed == [(Snapshot.from_json(final), 0)]


def test_an_engine_that_left_stays_in_the_snapshot_with_how_and_why() -> None:
    run = scenario()
    run.scheduler.handle(EngineGone(1, lost=True, now=NOW))  # rank 1 holds the running task: lost with it
    run.scheduler.handle(EngineGone(2, lost=False, now=NOW))  # rank 2 was retired
    view = built(run)
    by_rank = {engine.rank: engine for engine in view.engines}
    assert [engine.rank for engine in view.engines] == [0, 1, 2]
    assert (by_rank[1].stage, by_rank[1].why) == ('lost', 'silent, or its process or connection ended')
    assert by_rank[2].stage == 'left' and by_rank[2].running == by_rank[2].free == 0
    assert by_rank[0].stage == '' and 'stage' not in view.to_json()['engines'][0]  # (the published keys unchanged)
    assert view.slots == 2
