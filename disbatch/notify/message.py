"""The text of a mail about a run, and the `--mail-server` value. Pure: no sockets, no clock.

`subject` and `body` turn a `Batch` (what `MailNotifier` collected since its last message) into the message's
subject and plain-text body; `parse_server` reads `--mail-server HOST[:PORT]`.
"""

from __future__ import annotations

from dataclasses import dataclass

from disbatch.contract.snapshot import Snapshot
from disbatch.errors import UsageError
from disbatch.results.record import StatusRecord
from disbatch.results.status_line import format_line

DEFAULT_HOST = 'localhost'
DEFAULT_PORT = 25


def parse_server(text: str) -> tuple[str, int]:
    """`HOST`, `HOST:PORT`, `[IPV6]`, `[IPV6]:PORT` (or a bare IPv6 address) → (host, port); UsageError if not."""
    problem = UsageError(f'--mail-server {text!r}: expected HOST or HOST:PORT')
    port_text = ''
    if text.startswith('['):
        end = text.find(']')
        if end < 0:
            raise problem
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(':'):
                raise problem
            port_text = rest[1:]
            if not port_text:
                raise problem
    elif text.count(':') == 1:
        host, port_text = text.split(':')
        if not port_text:
            raise problem
    else:
        host = text  # a name, or a bare IPv6 address
    if not host or any(character.isspace() for character in host):
        raise problem
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise problem
    return host, int(port_text)


@dataclass(frozen=True, slots=True)
class Batch:
    """One message to send, as the driver hands it to the worker (the worker formats it)."""

    completed: int  # completions so far (see the module docstring)
    failed: int  # of which failed
    records: tuple[StatusRecord, ...]  # status lines since the last message, at most max_lines
    left_out: int  # status lines since the last message not in `records`
    skipped: int  # lines skipped by -r since the last message (not shown)
    progress: Snapshot  # the latest snapshot (its counts; running, pending, total may be None)
    dropped: int  # earlier messages dropped because the queue was full
    exit_code: int | None = None  # set on the final message


def subject(run: str, batch: Batch) -> str:
    text = f'{run} has completed {batch.completed} tasks ({batch.failed} failed)'
    if batch.exit_code is not None:
        text += f': the run is over, exit code {batch.exit_code}'
    return text


def body(run: str, batch: Batch, status_path: str, unsent: int = 0) -> str:
    """The text of a message: counts, then the status lines. `unsent`: earlier messages that could not be sent."""
    progress = batch.progress
    if batch.exit_code is None:
        lines = [f'{subject(run, batch)}.', '']
        lines.append(f'Finished: {batch.completed}   Failed: {batch.failed}')
        lines.append(
            f'Running: {_number(progress.running)}   Pending: {_number(progress.pending)}   '
            f'Total: {_total(progress.total)}'
        )
    else:
        lines = [f'The run {run} is over: exit code {batch.exit_code}.', '']
        lines.append(f'Finished: {progress.finished}   Failed: {progress.failed}')
        lines.append(
            f'Skipped (done by an earlier run): {progress.skipped}   Barriers: {progress.barriers}   '
            f'Lost attempts: {progress.lost}   Total: {_total(progress.total)}'
        )
    lines.append(f'Status file: {status_path}')
    if batch.dropped or unsent:
        missing = batch.dropped + unsent
        lines.append(f'Note: {missing} earlier message(s) could not be sent (mail server too slow or unreachable).')
    lines.append('')
    shown = len(batch.records) + batch.left_out
    lines.append(f'Status lines since the last message ({shown}):')
    lines.extend(_format(record) for record in batch.records)
    if batch.left_out:
        lines.append(f'... {batch.left_out} more line(s) left out: see the status file.')
    if batch.skipped:
        lines.append(f'({batch.skipped} task(s) skipped as done by an earlier run are not shown.)')
    return '\n'.join(lines) + '\n'


def _format(record: StatusRecord) -> str:
    try:
        return format_line(record)
    except ValueError:  # a field that would break the line: show the essentials
        return f'task {record.task_id} (line {record.line_number}): return code {record.return_code}'


def _number(value: int | None) -> str:
    return '?' if value is None else str(value)


def _total(value: int | None) -> str:
    return 'not known yet' if value is None else str(value)
