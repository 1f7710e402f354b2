"""UsageBoard: per-host figures, the biggest and slowest tasks, the summary lines; byte formats."""

from __future__ import annotations

from dataclasses import replace

from disbatch.results.record import Outcome, RecordKind, ResourceUsage, StatusRecord
from disbatch.results.usage import UsageBoard, format_bytes, short_bytes

BASE = StatusRecord(
    RecordKind.NORMAL, 0, 1, -1, 'true', 'node1',
    Outcome(100, 0, 10.0, 11.0, 1.0, usage=ResourceUsage(1 << 20, 0.5, 0.25)),
)  # fmt: skip


def task(task_id: int, rss: int, elapsed: float, host: str = 'node1', **changes: object) -> StatusRecord:
    """A task's record; `changes` are fields of its outcome."""
    outcome = replace(BASE.outcome, elapsed=elapsed, usage=ResourceUsage(rss, 1.0, 0.5), **changes)
    return replace(BASE, task_id=task_id, line_number=task_id + 1, host=host, outcome=outcome)


def test_format_bytes() -> None:
    assert format_bytes(0) == '0 B'
    assert format_bytes(1023) == '1023 B'
    assert format_bytes(2048) == '2.0 KiB'
    assert format_bytes(213_778_432) == '203.9 MiB'
    assert format_bytes(2_040_109_466) == '1.9 GiB'
    assert format_bytes(5 << 40) == '5120.0 GiB'
    assert [short_bytes(n) for n in (512, 5000, 213_778_432, 2_040_109_466)] == ['512B', '4.9K', '204M', '1.9G']


def test_the_board_keeps_the_biggest_and_slowest_and_sums_per_host() -> None:
    board = UsageBoard(kept=2)
    for record in (
        task(0, 100, 5.0),
        task(1, 900, 1.0, host='node2'),
        task(2, 500, 9.0),
        task(3, 300, 0.5, host='node2'),
    ):
        board.add(record)
    assert [t.task_id for t in board.biggest()] == [1, 2]
    assert [t.task_id for t in board.slowest()] == [2, 0]
    view = board.to_json()
    assert view['hosts'] == {
        'node1': {'tasks': 2, 'max_rss': 500, 'cpu': 3.0},
        'node2': {'tasks': 2, 'max_rss': 900, 'cpu': 3.0},
    }
    assert view['biggest'][0] == {'task': 1, 'line': 2, 'host': 'node2', 'max_rss': 900, 'cpu': 1.5, 'elapsed': 1.0}
    assert (view['user'], view['system']) == (4.0, 2.0)


def test_records_without_a_process_or_per_engine_are_left_out() -> None:
    board = UsageBoard()
    board.add(replace(BASE, outcome=replace(BASE.outcome, usage=None)))
    board.add(replace(BASE, kind=RecordKind.PER_ENGINE))
    board.add(replace(BASE, kind=RecordKind.SKIPPED))
    assert board.to_json()['biggest'] == [] and board.summary_lines() == []


def test_summary_lines_name_the_biggest_task() -> None:
    board = UsageBoard()
    board.add(task(41, 2_040_109_466, 3.0))
    board.add(task(7, 1000, 30.0))
    assert board.summary_lines() == [
        '  peak memory: 1.9 GiB task 41 (line 42)',
        '  CPU time: 2.0 s user, 1.0 s system',
    ]
