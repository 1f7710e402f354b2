"""A status record as the run's snapshot shows it: one task of the `recent` and `failures` lists. Pure.

Here rather than in `contract/snapshot.py`, so that the snapshot's types stand on nothing of the results and the
results' readers (usage, progress text) can use them.
"""

from __future__ import annotations

from disbatch.contract.snapshot import COMMAND_CHARACTERS, TaskView
from disbatch.results.record import StatusRecord
from disbatch.results.snippet import snippet_text


def task_view(record: StatusRecord) -> TaskView:
    """The task, where and how it ended, its usage; a failed one also carries the text of its stderr snippet."""
    usage = record.usage
    return TaskView(
        task=record.task_id,
        line=record.line_number,
        host=record.host,
        return_code=record.return_code,
        elapsed=round(record.elapsed, 3),
        finish=round(record.finish, 3),
        max_rss=usage.max_rss_bytes if usage else None,
        cpu=round(usage.user_seconds + usage.system_seconds, 3) if usage else None,
        command=record.command.encode('utf-8', 'surrogateescape').decode('utf-8', 'replace')[:COMMAND_CHARACTERS],
        stderr=snippet_text(record.err_snippet) if record.failed else None,
    )
