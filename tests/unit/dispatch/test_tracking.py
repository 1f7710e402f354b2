"""What a job's status records and its scheduler's word decide (pure)."""

from __future__ import annotations

from disbatch.dispatch.batch_systems import JobPhase
from disbatch.dispatch.tracking import (
    Attempt,
    JobView,
    Verdict,
    ended_tasks,
    job_ended_tasks,
    parse_status_text,
    verdict,
)
from disbatch.results.record import Outcome, RecordKind, StatusRecord
from disbatch.results.status_line import HEADER, format_line


def record(
    task_id: int, return_code: int = 0, kind: RecordKind = RecordKind.NORMAL, finish: float = 10.0
) -> StatusRecord:
    outcome = Outcome(100 + task_id, return_code, finish - 1, finish, 1.0)
    return StatusRecord(kind, task_id, task_id + 1, -1, f'task {task_id}', 'node1', outcome)


def test_ended_tasks_best_record_wins_and_interrupted_ones_have_not_ended() -> None:
    records = [
        record(0, return_code=1, finish=5),
        record(0, return_code=0, finish=4),  # success beats a later failure
        record(1, kind=RecordKind.INTERRUPTED),
        record(2, return_code=3),
        record(3, kind=RecordKind.SKIPPED),
        record(4, kind=RecordKind.TIMED_OUT, return_code=-15),
    ]
    ended = ended_tasks(records)
    assert sorted(ended) == [0, 2, 3, 4]
    assert ended[0].return_code == 0
    assert ended[2].failed and ended[4].failed


def test_verdicts() -> None:
    two_done = ended_tasks([record(0), record(1, return_code=1)])
    one_done = ended_tasks([record(0)])
    assert verdict(JobView(2, one_done, JobPhase.RUNNING, 1), 3) is Verdict.FOLLOW
    assert verdict(JobView(2, one_done, JobPhase.WAITING, 1), 3) is Verdict.FOLLOW
    assert verdict(JobView(2, two_done, JobPhase.ENDED, 1), 3) is Verdict.DONE  # a failed task: no resubmission
    assert verdict(JobView(2, one_done, JobPhase.ENDED, 1), 3) is Verdict.RESUBMIT
    assert verdict(JobView(2, one_done, JobPhase.ENDED, 4), 3) is Verdict.GIVE_UP
    assert verdict(JobView(2, one_done, JobPhase.ENDED, 1), 0) is Verdict.GIVE_UP


def test_parse_status_text_skips_header_and_a_line_cut_short() -> None:
    lines = [HEADER, format_line(record(0)), format_line(record(1))]
    text = '\n'.join(lines) + '\n'
    assert [item.task_id for item in parse_status_text(text)] == [0, 1]
    assert [item.task_id for item in parse_status_text(text + format_line(record(2))[:20])] == [0, 1]


def test_a_task_killed_by_the_end_of_a_cut_short_attempt_has_not_ended() -> None:
    killed = [record(0), record(1, return_code=-15), record(2, return_code=143), record(3, return_code=1)]
    cut_short = Attempt(killed, None)  # no exit code: the job was cancelled under its disbatch run
    assert sorted(job_ended_tasks([cut_short], job_ended=True)) == [0, 3]
    assert sorted(job_ended_tasks([cut_short], job_ended=False)) == [0, 1, 2, 3]  # still running: not judged yet
    assert sorted(job_ended_tasks([Attempt(killed, 0)], job_ended=True)) == [0, 1, 2, 3]  # its run returned: failures
    assert sorted(job_ended_tasks([Attempt(killed, 143)], job_ended=True)) == [0, 3]
    second = Attempt([record(1, finish=20), record(2, return_code=-9, finish=20)], 0)
    ended = job_ended_tasks([cut_short, second], job_ended=True)
    assert sorted(ended) == [0, 1, 2, 3] and ended[2].return_code == -9  # the second run returned: a task failure
