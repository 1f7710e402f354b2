"""The progress line and the summary: the pure text (`progress_text`) and the observer (`progress`) on fake streams."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from disbatch.contract.snapshot import Snapshot
from disbatch.driver.observers.progress import CLEAR_TO_END, PLAIN_INTERVAL_SECONDS, ProgressLine, wanted
from disbatch.results.progress_text import (
    RateMeter,
    Stats,
    eta_seconds,
    format_duration,
    format_failures,
    format_progress,
    format_rate,
    format_summary,
    shorten,
    wrap_items,
)
from disbatch.results.record import LOST_RETURN_CODE, NO_PID, Outcome, RecordKind, StatusRecord
from disbatch.taskfile.items import NO_REPEAT

pytestmark = pytest.mark.timeout(30)


def view(**changes: Any) -> Snapshot:
    base: dict[str, Any] = {
        'run': 'Tasks_disBatch_250101000000_001',
        'status': 'running',
        'more': True,
        'started': 1000.0,
        'now': 1010.0,
        'finished': 23,
        'failed': 2,
        'skipped': 3,
        'barriers': 0,
        'lost': 0,
        'running': 4,
        'pending': 0,
        'total': 40,
        'slots': 4,
        'engines': [],
        'recent': [],
        'failures': [],
    }
    base.update(changes)
    return Snapshot.from_json(base)


def record(
    task_id: int,
    return_code: int = 0,
    elapsed: float = 1.0,
    kind: RecordKind = RecordKind.NORMAL,
    pid: int = 4242,
    command: str = 'sleep 1',
) -> StatusRecord:
    outcome = Outcome(pid, return_code, 1000.0, 1000.0 + elapsed, elapsed)
    return StatusRecord(kind, task_id, task_id + 1, NO_REPEAT, command, 'node', outcome)


# ---------------------------------------------------------------- small formats


@pytest.mark.parametrize(
    ('seconds', 'text'),
    [
        (0.0012, '1ms'),
        (0.0994, '99ms'),
        (0.25, '0.2s'),
        (9.96, '10.0s'),
        (42.4, '42s'),
        (60, '1:00'),
        (725, '12:05'),
        (3600, '1:00:00'),
        (11045, '3:04:05'),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ('rate', 'text'),
    [(0.0, '0.0 tasks/s'), (7.83, '7.8 tasks/s'), (1234.5, '1234 tasks/s'), (0.5, '30.0 tasks/min'),
     (1 / 600, '6.0 tasks/h')],
)  # fmt: skip
def test_format_rate(rate: float, text: str) -> None:
    assert format_rate(rate) == text


def test_shorten_flattens_and_cuts() -> None:
    assert shorten('echo  a\n\tb', 40) == 'echo a b'
    assert shorten('x' * 50, 10) == 'xxxxxxx...'
    assert shorten('abcdef', 2) == 'ab'


def test_wrapped_items() -> None:
    assert wrap_items('  label:', ['aaaa', 'bbbb', 'cccc'], 80) == ['  label: aaaa, bbbb, cccc']
    assert wrap_items('  label:', ['aaaa', 'bbbb', 'cccc'], 20) == ['  label: aaaa, bbbb,', '         cccc']
    assert wrap_items('  label:', ['a' * 30, 'b'], 20) == ['  label: ' + 'a' * 30 + ',', '         b']


def test_failures_exits_first_then_signals_with_names() -> None:
    assert (
        format_failures({-15: 2, 13: 1, 1: 3})
        == 'exit 1: 3 tasks, exit 13: 1 task, killed by signal 15 (SIGTERM): 2 tasks'
    )
    assert format_failures({-99: 1}) == 'killed by signal 99: 1 task'


# ---------------------------------------------------------------- the progress line


def test_progress_line_with_a_known_total() -> None:
    line = format_progress(view(), 7.83, 2.3, 200)
    assert line == (
        'disbatch: [#############.......] 26/40 done (65%), 2 failed, 4 running, 3 skipped | 7.8 tasks/s, ETA 2.3s'
    )


def test_progress_line_while_the_total_is_not_known() -> None:
    line = format_progress(view(total=None, pending=12, skipped=0), 2.0, None, 200)
    assert line == 'disbatch: 23 done, 2 failed, 4 running, 12 waiting | 2.0 tasks/s'  # the monitor's word


def test_progress_line_says_stopping_and_omits_what_is_not_known() -> None:
    line = format_progress(view(status='stopping', skipped=0), None, None, 200)
    assert line == 'disbatch: [###########.........] 23/40 done (57%), 2 failed, 4 running, stopping'


def test_narrow_lines_keep_the_most_useful_parts() -> None:
    assert (
        format_progress(view(), 7.83, 2.3, 79)
        == 'disbatch: 26/40 done (65%), 2 failed, 4 running | 7.8 tasks/s, ETA 2.3s'
    )
    assert format_progress(view(), 7.83, 2.3, 50) == 'disbatch: 26/40 done (65%), 2 failed, 4 running'
    assert format_progress(view(), 7.83, 2.3, 25) == 'disbatch: 26/40 done'


def test_an_empty_total_is_complete() -> None:
    assert '0/0 done (100%)' in format_progress(view(total=0, finished=0, failed=0, skipped=0), None, None, 200)


@settings(max_examples=200, deadline=None)
@given(
    finished=st.integers(0, 10**7),
    skipped=st.integers(0, 10**7),
    running=st.integers(0, 10**4),
    pending=st.integers(0, 10**4),
    known=st.booleans(),
    rate=st.none() | st.floats(0, 1e6),
    eta=st.none() | st.floats(0, 1e8),
    width=st.integers(0, 300),
)
@example(finished=0, skipped=9_980_000, running=10_000, pending=10_000, known=True, rate=None, eta=None, width=30)
@example(finished=5_000_000, skipped=5_000_000, running=0, pending=0, known=True, rate=1.0, eta=2.0, width=31)
def test_the_line_always_fits(
    finished: int,
    skipped: int,
    running: int,
    pending: int,
    known: bool,
    rate: float | None,
    eta: float | None,
    width: int,
) -> None:
    total = finished + skipped + running + pending if known else None
    snapshot = view(finished=finished, failed=finished // 3, skipped=skipped, running=running, pending=pending,
                    total=total)  # fmt: skip
    line = format_progress(snapshot, rate, eta, width)
    assert len(line) <= width
    assert '\n' not in line and '\r' not in line
    if width >= 30:
        assert line.startswith('disbatch: ') and 'done' in line


def test_eta_needs_a_total_and_a_rate() -> None:
    assert eta_seconds(view(), 2.0) == pytest.approx((40 - 26) / 2.0)
    assert eta_seconds(view(total=None), 2.0) is None
    assert eta_seconds(view(), None) is None
    assert eta_seconds(view(), 0.0) is None


# ---------------------------------------------------------------- rate


def test_rate_is_none_until_two_samples() -> None:
    meter = RateMeter()
    assert meter.rate() is None
    meter.add(0.0, 0)
    assert meter.rate() is None
    meter.add(2.0, 10)
    assert meter.rate() == pytest.approx(5.0)


def test_rate_follows_the_recent_window() -> None:
    meter = RateMeter(window=10)
    for step in range(200):  # 10 tasks/s for 50 s, then 2 tasks/s
        now = step * 0.5
        meter.add(now, step * 5 if now <= 50 else 500 + int((now - 50) * 2))
    assert meter.rate() == pytest.approx(2.0, rel=0.1)


def test_rate_memory_is_bounded_and_sparse_samples_still_give_a_rate() -> None:
    meter = RateMeter(window=20)
    for step in range(100_000):
        meter.add(step * 0.5, step)
    assert len(meter._samples) <= 43
    meter.add(100_000.0, 200_000)  # a long quiet spell: the reference is the previous sample
    assert meter.rate() is not None and meter.rate() > 0


def test_rate_ignores_a_sample_at_the_same_time() -> None:
    meter = RateMeter()
    meter.add(1.0, 0)
    meter.add(3.0, 4)
    meter.add(3.0, 6)
    assert meter.rate() == pytest.approx(3.0)


# ---------------------------------------------------------------- stats


def test_stats_count_failures_by_code_and_keep_other_kinds_apart() -> None:
    stats = Stats()
    for task_id, code in enumerate([0, 1, 1, 1, 13, -15, -15, 0]):
        stats.add(record(task_id, code, elapsed=0.5))
    stats.add(record(20, LOST_RETURN_CODE, elapsed=0.0, pid=NO_PID))
    stats.add(record(21, 0, elapsed=9.0, kind=RecordKind.SKIPPED))
    stats.add(record(22, 0, elapsed=0.0, kind=RecordKind.BARRIER))
    stats.add(record(-1, 2, elapsed=0.1, kind=RecordKind.PER_ENGINE))
    stats.add(record(23, 1, elapsed=0.5, kind=RecordKind.ZOMBIE))
    assert dict(stats.failures) == {1: 3, 13: 1, -15: 2}
    assert stats.lost_attempts == 1
    assert (stats.per_engine, stats.per_engine_failed) == (1, 1)
    assert stats.busy_seconds == pytest.approx(9 * 0.5)  # 8 tasks and the zombie attempt


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1e5, allow_nan=False), max_size=60))
def test_stats_keep_the_three_slowest(elapsed: list[float]) -> None:
    stats = Stats()
    for task_id, seconds in enumerate(elapsed):
        stats.add(record(task_id, elapsed=seconds))
    assert [slow.elapsed for slow in stats.slowest()] == sorted(elapsed, reverse=True)[:3]
    assert len(stats._heap) <= 3


def test_slots_are_integrated_over_the_snapshots() -> None:
    stats = Stats()
    stats.observe(view(now=1000.0, slots=0))
    stats.observe(view(now=1001.0, slots=4))  # engines joined somewhere in this second: counted as 4
    stats.observe(view(now=1011.0, slots=4))
    stats.observe(view(now=1012.0, slots=0))  # they left somewhere in this one
    assert stats.slot_seconds == pytest.approx(4 + 40 + 4)
    assert stats.max_slots == 4
    assert stats.wall_seconds == pytest.approx(12.0)
    for task_id in range(24):
        stats.add(record(task_id, elapsed=1.5))
    assert stats.utilisation() == pytest.approx(36 / 48)


def test_utilisation_falls_back_to_the_largest_slot_count_and_never_exceeds_one() -> None:
    stats = Stats()
    assert stats.utilisation() is None
    stats.observe(view(started=1000.0, now=1000.0, slots=2))
    stats.view = view(started=1000.0, now=1010.0)
    stats.add(record(1, elapsed=5.0))
    assert stats.utilisation() == pytest.approx(5 / 20)
    stats.add(record(2, elapsed=500.0))
    assert stats.utilisation() == 1.0


def test_summary_text() -> None:
    stats = Stats()
    stats.observe(view(now=1000.0, slots=0, finished=0, failed=0, skipped=0))
    stats.observe(view(now=1000.5, slots=4, finished=0, failed=0, skipped=0))
    commands = {3: 'sleep 3', 7: 'python3 -c "import time;\ntime.sleep(4)"  ' + 'x' * 100, 9: 'exit 13'}
    for task_id in range(10):
        elapsed = {3: 3.0, 7: 4.0, 9: 2.5}.get(task_id, 1.0)
        code = {2: 1, 5: 1, 9: 13, 4: -15}.get(task_id, 0)
        stats.add(record(task_id, code, elapsed, command=commands.get(task_id, 'true')))
    stats.add(record(11, LOST_RETURN_CODE, 0.0, pid=NO_PID))
    stats.observe(view(now=1005.5, slots=4, finished=10, failed=4, skipped=2, pending=0, more=False, total=12))
    text = format_summary(stats, '/runs/Tasks_disBatch_250101000000_001_status.txt', width=80)
    assert text.splitlines() == [
        'disbatch: 10 tasks run in 5.5s, 4 failed, 2 skipped (done by an earlier run)',
        '  failures: exit 1: 2 tasks, exit 13: 1 task,',
        '            killed by signal 15 (SIGTERM): 1 task',
        '  lost with their engine: 1 attempt',
        '  slot use: 75% (16s of task time, 4 slots at most)',
        '  slowest:   4.0s  task 7 (line 8): python3 -c "import time; time.sleep(4)" x...',
        '             3.0s  task 3 (line 4): sleep 3',
        '             2.5s  task 9 (line 10): exit 13',
        '  failed tasks:',
        '    task 2 (line 3): exit 1',
        '    task 4 (line 5): signal 15 (SIGTERM)',
        '    task 5 (line 6): exit 1',
        '    task 9 (line 10): exit 13',
        '    task 11 (line 12): lost with its engine',
        '  status file: /runs/Tasks_disBatch_250101000000_001_status.txt',
    ]
    assert all(len(line) <= 80 for line in text.splitlines()[:-1])


def test_a_long_summary_head_wraps() -> None:
    stats = Stats()
    stats.observe(view(finished=5, failed=1, skipped=3, pending=0, running=0, total=15, more=True))
    assert format_summary(stats, 's', width=60).splitlines()[:3] == [
        'disbatch: 5 tasks run in 10s, 1 failed,',
        '          3 skipped (done by an earlier run),',
        '          7 not run (stopped)',
    ]


def test_a_plain_resume_says_how_many_skipped_tasks_had_failed() -> None:
    stats = Stats()
    for task_id in range(15):
        stats.add(record(task_id, 1 if task_id in (2, 5, 9) else 0, 1.0).as_skipped())
    stats.observe(view(finished=0, failed=0, skipped=15, pending=0, more=False, total=15))
    assert format_summary(stats, 's', width=200).splitlines()[0] == (
        'disbatch: 0 tasks run in 10s, 0 failed, '
        '15 skipped (done by an earlier run; 3 of them had failed: add -R to run them again)'
    )


def test_no_rate_is_shown_before_the_first_task_ends() -> None:
    stream, clock = Terminal(), Clock()
    progress = ProgressLine(stream, 'status.txt', enabled=True, clock=clock)
    for index in range(3):
        clock.now = index
        progress.on_snapshot(view(now=1000.0 + index, finished=0, failed=0, skipped=0))
    assert 'tasks/' not in stream.getvalue()


def test_summary_of_a_stopped_run() -> None:
    stats = Stats()
    stats.observe(view(finished=5, failed=1, skipped=0, pending=0, running=0, total=12, more=True))  # unread: 7
    assert format_summary(stats, 's').splitlines()[0] == 'disbatch: 5 tasks run in 10s, 1 failed, 7 not run (stopped)'
    stats.observe(view(finished=1, failed=1, skipped=0, pending=0, more=True, total=None))
    assert format_summary(stats, 's').splitlines()[0].endswith('stopped before the end of the tasks')


# ---------------------------------------------------------------- the observer


class Terminal(io.StringIO):
    """A StringIO that says it is a terminal (its size is unknown: 80 columns)."""

    def isatty(self) -> bool:
        return True


class BrokenTerminal(Terminal):
    def write(self, text: str) -> int:
        raise BrokenPipeError('gone')


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def snapshots(count: int, slots: int = 4) -> list[Snapshot]:
    return [view(now=1000.0 + 0.5 * index, finished=index, failed=0, skipped=0, running=min(slots, 40 - index),
                 pending=max(0, 40 - index - slots), slots=slots)
            for index in range(count)]  # fmt: skip


def test_wanted() -> None:
    assert wanted(Terminal()) is True
    assert wanted(io.StringIO()) is True  # a batch log gets its plain lines and the summary too
    assert wanted(io.StringIO(), progress=True) is True
    assert wanted(io.StringIO(), quiet=True) is False
    assert wanted(Terminal(), progress=True, quiet=True) is False


def test_disabled_writes_nothing_of_its_own() -> None:
    stream = Terminal()
    progress = ProgressLine(stream, 'status.txt', enabled=False)
    for snapshot in snapshots(5):
        progress.on_snapshot(snapshot)
    progress.on_record(record(1))
    progress.suspend()
    progress.resume()
    progress.close(view(), 0)
    assert stream.getvalue() == ''
    progress.message('disbatch: warning: something')
    assert stream.getvalue() == 'disbatch: warning: something\n'


def test_redrawn_in_place_on_a_terminal() -> None:
    stream, clock = Terminal(), Clock()
    progress = ProgressLine(stream, 'status.txt', enabled=True, clock=clock)
    for index, snapshot in enumerate(snapshots(3)):
        clock.now = index * 0.5
        progress.on_snapshot(snapshot)
    draws = stream.getvalue().split('\r')[1:]
    assert len(draws) == 3
    assert all(draw.startswith('disbatch: ') and draw.endswith(CLEAR_TO_END) for draw in draws)
    assert '\n' not in stream.getvalue()
    assert draws[-1].startswith('disbatch: 2/40 done (5%), 0 failed, 4 running | 2.0 tasks/s, ETA 19s')


def test_redraws_are_throttled() -> None:
    stream, clock = Terminal(), Clock()
    progress = ProgressLine(stream, 'status.txt', enabled=True, clock=clock)
    for snapshot in snapshots(10):
        progress.on_snapshot(snapshot)  # all at the same instant
    assert stream.getvalue().count('\r') == 1


def test_messages_appear_above_the_line() -> None:
    stream, clock = Terminal(), Clock()
    progress = ProgressLine(stream, 'status.txt', enabled=True, clock=clock)
    progress.on_snapshot(snapshots(1)[0])
    before = stream.getvalue()
    progress.message('disbatch: engine 1 was lost')
    after = stream.getvalue()[len(before) :]
    assert after.startswith(
        '\r' + CLEAR_TO_END + 'disbatch: engine 1 was lost\n\rdisbatch: [....................] 0/40 done'
    )
    assert after.endswith(CLEAR_TO_END)


def test_suspend_nests_and_nothing_is_drawn_while_suspended() -> None:
    stream, clock = Terminal(), Clock()
    progress = ProgressLine(stream, 'status.txt', enabled=True, clock=clock)
    first, second = snapshots(2)
    progress.on_snapshot(first)
    with progress.paused():
        progress.suspend()
        clock.now = 1.0
        progress.on_snapshot(second)
        progress.resume()
        assert stream.getvalue().endswith('\r' + CLEAR_TO_END)
    assert stream.getvalue().endswith(CLEAR_TO_END) and '1/40 done' in stream.getvalue().rsplit('\r', 1)[1]


def test_the_guarded_stream_takes_the_line_away_for_each_printed_line() -> None:
    stream, clock = Terminal(), Clock()
    progress = ProgressLine(stream, 'status.txt', enabled=True, clock=clock)
    progress.on_snapshot(snapshots(1)[0])
    with contextlib.redirect_stderr(progress.guarded_stream()):
        import sys

        print('disbatch: one', file=sys.stderr)
        print('disbatch: two', file=sys.stderr)
    lines = stream.getvalue().split('\n')
    assert lines[0].endswith('\r' + CLEAR_TO_END + 'disbatch: one')
    assert lines[1].endswith('\r' + CLEAR_TO_END + 'disbatch: two')
    assert lines[2].startswith('\rdisbatch: [....................] 0/40 done')


def test_close_leaves_the_last_line_and_prints_the_summary() -> None:
    stream, clock = Terminal(), Clock()
    progress = ProgressLine(stream, '/runs/x_status.txt', enabled=True, clock=clock)
    for index, snapshot in enumerate(snapshots(3)):
        clock.now = index * 0.5
        progress.on_snapshot(snapshot)
    for task_id in range(40):
        progress.on_record(record(task_id, 1 if task_id == 5 else 0, elapsed=0.2, command=f'sleep 0.2 # {task_id}'))
    final = view(now=1003.0, finished=40, failed=1, skipped=0, running=0, pending=0, total=40, more=False, slots=0)
    progress.close(final, 0)
    text = stream.getvalue()
    last_line, summary = text.rsplit('\r', 1)[1].split('\n', 1)
    assert last_line == 'disbatch: 40/40 done (100%), 1 failed, 0 running | 13.3 tasks/s' + CLEAR_TO_END
    assert summary.startswith('disbatch: 40 tasks run in 3.0s, 1 failed\n  failures: exit 1: 1 task\n')
    assert summary.endswith('  status file: /runs/x_status.txt\n')
    progress.on_snapshot(final)
    progress.message('after')
    assert stream.getvalue() == text + 'after\n'


def test_forced_on_a_pipe_prints_plain_lines_now_and_then() -> None:
    stream, clock = io.StringIO(), Clock()
    progress = ProgressLine(stream, 'status.txt', enabled=True, clock=clock)
    for index, snapshot in enumerate(snapshots(40)):
        clock.now = index * 0.5
        progress.on_snapshot(snapshot)
    progress.close(snapshots(40)[-1], 0)
    text = stream.getvalue()
    assert '\r' not in text and CLEAR_TO_END not in text
    plain = [line for line in text.splitlines() if ' done' in line]
    assert len(plain) == 1 + int(39 * 0.5 // PLAIN_INTERVAL_SECONDS) + 1  # first, every 10 s, the last
    assert 'status file: status.txt' in text


def test_a_broken_stream_or_a_strange_snapshot_never_raises() -> None:
    progress = ProgressLine(BrokenTerminal(), 'status.txt', enabled=True)
    progress.on_snapshot(snapshots(1)[0])
    progress.message('lost')
    progress.close(view(), 0)
    assert progress.enabled is False
    stream = Terminal()
    progress = ProgressLine(stream, 'status.txt', enabled=True)
    progress.on_snapshot(Snapshot.from_json({'now': 'soon'}))
    progress.close(Snapshot.from_json({}), 1)
    assert stream.getvalue() == ''


def test_an_expected_total_stands_in_until_the_snapshot_knows_it() -> None:
    stream, clock = Terminal(), Clock()
    progress = ProgressLine(stream, 'status.txt', enabled=True, clock=clock, expected_total=40)
    progress.on_snapshot(view(total=None, finished=10, failed=0, skipped=0, running=4, pending=8))
    assert '10/40 done (25%)' in stream.getvalue()
    clock.now = 1.0
    progress.on_snapshot(view(total=None, finished=40, failed=0, skipped=0, running=4, pending=8))
    assert '40/52 done' in stream.getvalue().rsplit('\r', 1)[1]  # a wrong guess never goes below what is known
    clock.now = 2.0
    progress.on_snapshot(view(total=45, finished=41, failed=0, skipped=0, running=4, pending=0))
    assert '41/45 done' in stream.getvalue().rsplit('\r', 1)[1]


def test_lines_printed_from_another_thread_stay_whole() -> None:
    import threading

    stream, clock = Terminal(), Clock()
    progress = ProgressLine(stream, 'status.txt', enabled=True, clock=clock)
    guarded = progress.guarded_stream()

    def chatter() -> None:
        for index in range(300):
            print(f'message {index} from a thread', file=guarded)

    thread = threading.Thread(target=chatter)
    thread.start()
    for index, snapshot in enumerate(snapshots(40) * 8):
        clock.now = index
        progress.on_snapshot(snapshot)
    thread.join(timeout=10)
    messages = [line.rsplit(CLEAR_TO_END, 1)[-1] for line in stream.getvalue().split('\n') if 'message' in line]
    assert messages == [f'message {index} from a thread' for index in range(300)]


def test_progress_line_shows_the_time_left_in_the_allocation_and_the_drain() -> None:
    walltime = {'end': 2000.0, 'left': 83.0, 'state': 'draining', 'follow_up': None}
    line = format_progress(view(skipped=0, walltime=walltime), None, None, 200)
    assert line == 'disbatch: [###########.........] 23/40 done (57%), 2 failed, 4 running | 1:23 left (draining)'
    running = format_progress(view(skipped=0, walltime={**walltime, 'state': 'running'}), None, None, 200)
    assert running.endswith('4 running | 1:23 left')
