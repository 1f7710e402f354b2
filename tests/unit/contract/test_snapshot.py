"""The typed snapshot (`disbatch/contract/snapshot.py`) read back tolerantly: missing keys take defaults, unknown keys
are ignored, wrongly typed values count as missing, and no reader crashes on what a newer or older driver publishes.
The exact published JSON is checked against the driver's builder in `tests/unit/driver/test_snapshot_builder.py`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from disbatch.contract.snapshot import (
    DrainState,
    EngineView,
    HostUsageView,
    Snapshot,
    TaskView,
    UsageTaskView,
    UsageView,
    WalltimeView,
)
from disbatch.monitor import model
from disbatch.notify.message import Batch, body
from disbatch.results.progress_text import Stats, format_progress, format_summary

PACKAGE = Path(__file__).resolve().parents[3] / 'disbatch'

ENGINE = {'rank': 0, 'context': 'SSH0', 'host': 'node0', 'pid': 11, 'last_heard': 0.5, 'slots': 2, 'running': 1,
          'free': 1, 'given': 4, 'finished': 3, 'failed': 1, 'retiring': False, 'max_rss': 2000,
          'cpu': 0.25}  # fmt: skip
TASK = {'task': 1, 'line': 2, 'host': 'node0', 'return_code': 3, 'elapsed': 0.5, 'finish': 1700000001.5,
        'max_rss': 2000, 'cpu': 0.25, 'command': 'exit 3', 'stderr': 'boom\n'}  # fmt: skip
USAGE_TASK = {'task': 1, 'line': 2, 'host': 'node0', 'max_rss': 2000, 'cpu': 0.25, 'elapsed': 0.5}
USAGE = {'user': 0.2, 'system': 0.05, 'hosts': {'node0': {'tasks': 1, 'max_rss': 2000, 'cpu': 0.25}},
         'biggest': [USAGE_TASK], 'slowest': [USAGE_TASK]}  # fmt: skip
WALLTIME = {'end': 1700000600.0, 'left': 558.5, 'state': 'running', 'follow_up': None}
FULL: dict[str, Any] = {
    'run': 'Tasks_disBatch_260101000000_001', 'status': 'running', 'more': True, 'started': 1700000000.0,
    'now': 1700000041.5, 'finished': 3, 'failed': 1, 'skipped': 2, 'barriers': 1, 'lost': 0, 'interrupted': 0,
    'running': 1, 'pending': 4, 'total': 10, 'slots': 2, 'engines': [ENGINE], 'recent': [TASK], 'failures': [TASK],
    'walltime': WALLTIME, 'usage': USAGE, 'rate': 0.075, 'eta': 66.7,
}  # fmt: skip


def test_a_full_snapshot_reads_back_field_by_field_and_gives_the_same_json() -> None:
    view = Snapshot.from_json(FULL)
    assert view.engines == (EngineView(0, 'SSH0', 'node0', 11, 0.5, 2, 1, 1, 4, 3, 1, False, 2000, 0.25),)
    task = TaskView(1, 2, 'node0', 3, 0.5, 1700000001.5, 2000, 0.25, 'exit 3', 'boom\n')
    assert view.recent == view.failures == (task,)
    assert view.walltime == WalltimeView(1700000600.0, 558.5, DrainState.RUNNING, None)
    top = UsageTaskView(1, 2, 'node0', 2000, 0.25, 0.5)
    assert view.usage == UsageView(0.2, 0.05, {'node0': HostUsageView(1, 2000, 0.25)}, (top,), (top,))
    assert (view.total, view.rate, view.eta, view.exit_code) == (10, 0.075, 66.7, None)
    assert json.dumps(view.to_json()) == json.dumps(FULL)


def test_missing_keys_take_their_defaults() -> None:
    assert Snapshot.from_json({}) == Snapshot()
    assert Snapshot().to_json()['usage'] == {} and Snapshot().to_json()['walltime'] is None
    assert 'exit_code' not in Snapshot().to_json()
    assert Snapshot.from_json({'engines': [{'rank': 3}], 'recent': [{}]}) == Snapshot(
        engines=(EngineView(rank=3),), recent=(TaskView(),)
    )
    assert Snapshot.from_json({'walltime': {}, 'usage': {'user': 1.0}}) == Snapshot(
        walltime=WalltimeView(), usage=UsageView(user=1.0)
    )


@pytest.mark.parametrize('data', [None, [], [FULL], 'DisBatch status', 42, True])
def test_what_is_not_an_object_reads_as_an_empty_snapshot(data: object) -> None:
    assert Snapshot.from_json(data) == Snapshot()


def test_unknown_keys_are_ignored_at_every_level() -> None:
    newer = {
        **FULL, 'future': {'x': 1},
        'engines': [{**ENGINE, 'gpus': [0, 1]}], 'recent': [{**TASK, 'attempt': 2}], 'failures': [{**TASK, 'x': None}],
        'walltime': {**WALLTIME, 'origin': 'squeue'},
        'usage': {**USAGE, 'gpu': 1.0, 'hosts': {'node0': {**USAGE['hosts']['node0'], 'swap': 0}},
                  'biggest': [{**USAGE_TASK, 'x': 1}], 'slowest': [{**USAGE_TASK, 'y': 2}]},
    }  # fmt: skip
    assert Snapshot.from_json(newer) == Snapshot.from_json(FULL)


@pytest.mark.parametrize(
    ('key', 'value', 'expected'),
    [
        ('finished', 'many', 0), ('finished', True, 0), ('finished', 2.5, 0), ('slots', None, 0),
        ('total', 'ten', None), ('running', [], None), ('pending', False, None),
        ('now', '1700000041', None), ('started', True, None), ('rate', 'fast', None), ('exit_code', 1.0, None),
        ('run', 5, ''), ('status', None, ''), ('more', 'yes', False),
        ('engines', 'junk', ()), ('recent', {'task': 1}, ()), ('failures', None, ()),
        ('walltime', 'soon', None), ('walltime', [WALLTIME], None), ('usage', [USAGE], None), ('usage', 'x', None),
    ],
)  # fmt: skip
def test_a_value_of_the_wrong_type_counts_as_missing(key: str, value: object, expected: object) -> None:
    assert getattr(Snapshot.from_json({**FULL, key: value}), key) == expected


def test_wrong_types_inside_the_parts_count_as_missing() -> None:
    odd = {'rank': 1, 'slots': 'two', 'host': 7, 'retiring': 'no', 'last_heard': '1s', 'pid': 1.5, 'cpu': 'x'}
    engines = ['junk', 7, {'rank': 'x'}, {'rank': True}, {'host': 'no rank'}, odd]
    view = Snapshot.from_json({'engines': engines, 'recent': [3, {'task': '1', 'command': None, 'stderr': 5}]})
    assert view.engines == (EngineView(rank=1),)
    assert view.recent == (TaskView(),)
    walltime = Snapshot.from_json({'walltime': {'end': '1', 'left': None, 'state': 3, 'follow_up': 12}}).walltime
    assert walltime == WalltimeView()
    usage = {'user': 'x', 'hosts': {'a': 'x', 'b': {'tasks': 'x', 'cpu': [1]}}, 'biggest': {}, 'slowest': [None, {}]}
    assert Snapshot.from_json({'usage': usage}).usage == UsageView(
        hosts={'b': HostUsageView(max_rss=None)}, slowest=(UsageTaskView(max_rss=None),)
    )  # a peak memory that is missing is unknown (as under --fork-tasks), not 0
    assert Snapshot.from_json({'usage': {'hosts': []}}).usage == UsageView()


def test_numbers_read_back_as_they_were_published() -> None:
    view = Snapshot.from_json({'now': 1700000042, 'started': 1700000000, 'walltime': {'left': 60}})
    assert view.now == 1700000042 and isinstance(view.now, int)  # an integer stays one: the same JSON again
    assert json.dumps(view.to_json()['walltime']) == '{"end": null, "left": 60, "state": null, "follow_up": null}'


def test_readers_show_a_sparse_snapshot() -> None:
    view = Snapshot.from_json({'finished': 2, 'failed': 1, 'now': 10.0, 'started': 4.0})
    assert model.header(view)[1] == 'Slots 0   Tasks: Finished 2  Failed 1  Barriers 0'
    assert format_progress(view, None, None) == 'disbatch: 2 done, 1 failed, 0 running'
    batch = Batch(completed=2, failed=1, records=(), left_out=0, skipped=0, progress=view, dropped=0)
    assert 'Running: ?   Pending: ?   Total: not known yet' in body('run', batch, 'status.txt')


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=12,
)
snapshot_keys = st.sampled_from([*FULL, 'exit_code', 'x'])
part_keys = st.sampled_from([*ENGINE, *TASK, *USAGE, *WALLTIME, 'tasks', 'x'])


def parts(children: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.lists(st.dictionaries(part_keys, children, max_size=6), max_size=3) | st.dictionaries(part_keys, children)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(snapshot_keys, json_values | parts(json_values) | parts(parts(json_values)), max_size=10))
def test_no_reader_crashes_on_what_another_driver_may_publish(data: dict[str, object]) -> None:
    view = Snapshot.from_json(data)
    json.dumps(view.to_json())
    assert Snapshot.from_json(json.loads(json.dumps(view.to_json()))) == view
    model.header(view, staleness=1.0)
    model.rows(view)
    model.ended_message(view, 'run')
    format_progress(view, 1.0, 2.0)
    stats = Stats()
    if view.now is not None and view.started is not None:
        stats.observe(view)
    format_summary(stats, 'status.txt')
    body('run', Batch(completed=0, failed=0, records=(), left_out=0, skipped=0, progress=view, dropped=0), 's')


@pytest.mark.parametrize(
    'reader', ['monitor', 'web', 'notify', 'results/progress_text.py', 'contract', 'run_vocabulary.py']
)
def test_readers_neither_import_nor_name_the_driver(reader: str) -> None:
    path = PACKAGE / reader
    for source in sorted(path.glob('*.py')) if path.is_dir() else [path]:
        text = source.read_text()
        assert 'disbatch.driver' not in text and 'driver/' not in text, source
