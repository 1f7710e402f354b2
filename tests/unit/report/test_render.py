"""`disbatch report`'s pure parts: slot lanes, the final snapshot, the summary, the HTML; and the snapshot's task
view (a failed task carries its stderr snippet)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from disbatch.report.history import RunHistory, load
from disbatch.report.render import html_report, lanes, snapshot, summary
from disbatch.results.record import (
    EMPTY_SNIPPET,
    LOST_RETURN_CODE,
    NO_PID,
    Outcome,
    RecordKind,
    ResourceUsage,
    StatusRecord,
)
from disbatch.results.status_line import format_line
from disbatch.results.views import task_view
from disbatch.taskfile.items import NO_REPEAT


def record(
    task_id: int, start: float, finish: float, rc: int = 0, host: str = 'n1', pid: int | None = None, **more: object
) -> StatusRecord:
    """A task's record; `more` changes fields of its outcome (usage, ...)."""
    outcome = Outcome(
        pid=100 + task_id if pid is None else pid, return_code=rc, start=start, finish=finish, elapsed=finish - start,
        err_bytes=5 if rc else 0, err_snippet="'boom\\n'" if rc else EMPTY_SNIPPET,
    )  # fmt: skip
    return StatusRecord(
        RecordKind.NORMAL, task_id, task_id + 1, NO_REPEAT, f'task {task_id}', host, replace(outcome, **more)
    )


def test_tasks_are_packed_onto_the_fewest_lanes_of_their_host() -> None:
    records = [record(0, 0, 2), record(1, 0, 1), record(2, 1, 3), record(3, 2, 4), record(4, 0, 5, host='n2')]
    packed = lanes(records)
    assert [(host, [r.task_id for r in lane]) for host, lane in packed] == [
        ('n1', [0, 3]), ('n1', [1, 2]), ('n2', [4])
    ]  # fmt: skip


def test_a_lost_attempt_takes_no_lane() -> None:
    assert lanes([record(0, 0, 0, rc=LOST_RETURN_CODE, pid=NO_PID)]) == []


def test_a_failed_task_view_carries_its_stderr_snippet() -> None:
    assert task_view(record(1, 0, 1, rc=2)).to_json()['stderr'] == 'boom\n'
    assert 'stderr' not in task_view(record(1, 0, 1)).to_json()


def test_a_status_file_becomes_a_summary_and_a_page(tmp_path: Path) -> None:
    retried = record(2, 0, 1, rc=1)
    lines = [record(0, 0, 2), record(1, 0.5, 1.5, rc=3), retried, record(2, 1, 3), record(3, 2, 4)]
    path = tmp_path / 'run_status.txt'
    path.write_text(''.join(format_line(line) + '\n' for line in lines))
    history = load(str(path))
    assert [final for _, final, _ in history.records] == [True, True, False, True, True]
    view = snapshot(history).to_json()
    assert (view['finished'], view['failed'], view['total'], view['slots']) == (4, 1, 4, 3)
    assert [task['task'] for task in view['failures']] == [1]
    text = summary(history)
    assert '4 tasks run' in text and '1 failed' in text and 'exit 3: 1 task' in text
    page = html_report(history)
    assert page.count('<svg') == 1 and '@EXTRA@' not in page and 'disbatch report' in page
    assert len(re.findall(r'<rect [^>]*fill="#c8372d"', page)) == 2  # both failed attempts are red
    assert len(re.findall(r'<rect ', page)) == 5


def test_the_report_rebuilds_the_usage_tables_from_the_records() -> None:
    big = record(0, 0, 2, usage=ResourceUsage(200_000_000, 1.5, 0.25))
    small = record(1, 0, 1, usage=ResourceUsage(30_000_000, 0.5, 0.0))
    history = RunHistory('events.jsonl', 'run', 'run_status.txt', [(big, True, None), (small, True, None)])
    usage = snapshot(history).to_json()['usage']
    assert [task['task'] for task in usage['biggest']] == [0, 1]
    assert usage['hosts']['n1']['max_rss'] == 200_000_000
