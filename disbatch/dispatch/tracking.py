"""PURE: what a job's status files and its scheduler say about its tasks, and what to do next with the job.

A task has ended when one of its job's status files holds a record `-r` would skip it for (a normal line, an `S`
line carried over, a timed-out line; a task the run stopped, flag `I`, has not): the best such record across the
attempts is its result (success first, then the later finish), as `disbatch -r` itself chooses. A job the
scheduler no longer runs is done when every task has ended; otherwise it is resubmitted with `-r` on its status
files (so no ended task runs again) while attempts remain, and its unended tasks are given up after that.
A task that ran and failed has ended: it is reported, and never the reason for a resubmission.

A job's end kills the tasks it was running: when the scheduler cancels a job (scancel, qdel, the walltime) it
signals every process of it, the tasks too, and a task may report its death (return code -15, or 143 from its
shell) before its run could record it as stopped. So an attempt that was cut short (its disbatch run did not exit 0:
the job script writes the exit code to `<stem>.exit` only when disbatch returns) has not ended its tasks that a
signal killed: they run again in the next attempt, like the ones it never started. The next attempt resumes from
one status file the submitter writes (`job<N>.a<K>.carried_status.txt`): the records of the tasks that have ended,
nothing else.
"""

from __future__ import annotations

import enum
import re
import signal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from disbatch.contract import STATUS_SUFFIX
from disbatch.dispatch.batch_systems import JobPhase
from disbatch.results.record import RecordKind, StatusRecord
from disbatch.results.status_line import is_header, parse_line

_ENDED_KINDS = (RecordKind.NORMAL, RecordKind.SKIPPED, RecordKind.TIMED_OUT)
# The signals a job's end sends its processes (as a return code: minus the signal, or 128 + it from a shell).
_JOB_END_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGKILL, signal.SIGTERM)
# The status file of a job's attempt (`JobFiles.stem`), not the carried one an attempt resumes from.
STATUS_NAME = re.compile(r'job(?P<job>\d+)\.a(?P<attempt>\d+)' + re.escape(STATUS_SUFFIX) + '$')
EXIT_NAME = re.compile(r'job(?P<job>\d+)\.a(?P<attempt>\d+)\.exit$')


class Verdict(enum.Enum):
    FOLLOW = 'follow'  # the job is queued or running: look again later
    DONE = 'done'  # every task has ended: fetch the files
    RESUBMIT = 'resubmit'  # the job ended with tasks left: submit it again with -r
    GIVE_UP = 'give up'  # the job ended with tasks left and no attempt remains


def parse_status_text(text: str) -> list[StatusRecord]:
    """The records in a status file's text (a last line cut short by a killed writer is left out, as `-r` does)."""
    records = []
    lines = text.split('\n')
    for line in lines[:-1]:  # the piece after the last newline is empty, or a line still being written
        line = line.removesuffix('\r')
        if not line.strip() or is_header(line):
            continue
        try:
            records.append(parse_line(line))
        except ValueError:
            continue  # not a status line (a file being rewritten): the next look reads it whole
    return records


def ended_tasks(records: Iterable[StatusRecord]) -> dict[int, StatusRecord]:
    """The best record of each task id that has ended."""
    best: dict[int, StatusRecord] = {}
    for record in records:
        if record.kind not in _ENDED_KINDS:
            continue
        old = best.get(record.task_id)
        if old is None or (old.failed, -old.finish) >= (record.failed, -record.finish):
            best[record.task_id] = record
    return best


def killed_by_job_end(record: StatusRecord) -> bool:
    """Whether a normal record says its task died of a signal a job's end sends."""
    code = record.return_code
    return record.kind is RecordKind.NORMAL and any(code in (-number, 128 + number) for number in _JOB_END_SIGNALS)


@dataclass(frozen=True)
class Attempt:
    """One attempt of a job: the records of its status file, and its disbatch run's exit code (None: no `.exit`
    file, the run has not returned, or never will)."""

    records: Sequence[StatusRecord]
    exit_code: int | None


def job_ended_tasks(attempts: Sequence[Attempt], job_ended: bool) -> dict[int, StatusRecord]:
    """The ended tasks of a job over its attempts (in order). Every attempt but the last was cut short unless its
    run exited 0; so was the last once the job has ended. A cut-short attempt's tasks killed by a signal have not
    ended."""
    kept: list[StatusRecord] = []
    for position, attempt in enumerate(attempts):
        over = position < len(attempts) - 1 or job_ended
        cut_short = over and attempt.exit_code != 0
        kept += [record for record in attempt.records if not (cut_short and killed_by_job_end(record))]
    return ended_tasks(kept)


@dataclass(frozen=True)
class JobView:
    """What is known of one job at a look: how many tasks, their ended records, the scheduler's phase."""

    task_count: int
    ended: Mapping[int, StatusRecord]
    phase: JobPhase
    attempts: int  # attempts submitted so far (1 for the first submission)


def verdict(job: JobView, retry_count: int) -> Verdict:
    """What to do with a job (`retry_count`: how many resubmissions are allowed after the first attempt)."""
    if job.phase is not JobPhase.ENDED:
        return Verdict.FOLLOW
    if all(index in job.ended for index in range(job.task_count)):
        return Verdict.DONE
    return Verdict.RESUBMIT if job.attempts <= retry_count else Verdict.GIVE_UP
