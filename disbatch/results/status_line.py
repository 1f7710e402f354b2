"""The status-file line: the one place that knows its format (`format_line`, `parse_line`, `HEADER`).

A line is 15 tab-separated fields, the command last so it may hold tabs (reference §4):

    flags  TaskID  LineNum  RepeatIndex  Node  PID  ReturnCode  Elapsed  Start  Finish
    BytesOfLeakedOutput  OutputSnippet  BytesOfLeakedError  ErrorSnippet  Command

Flags are 4 characters `[R ][O ][E ][ PSZTI]` (rc != 0, stdout bytes > 0, stderr bytes > 0, kind), or `B`/`C` and
four spaces for a barrier. `T` (timed out, --timeout) and `I` (interrupted: stopped by the run itself) are new in
disbatch 4; the header keeps the reference's name.
Times are `%.3f`. Snippets are stored as they are given (already Python reprs of a str).

The command is written as its text, except in three cases where it is written as the Python repr of its UTF-8
bytes (`b'...'`), which `parse_line` turns back into the same text:

* it holds bytes that are not UTF-8 (lone surrogates from `surrogateescape`), as the reference does;
* it holds a newline or carriage return, so that a line always stays one line (task commands never hold one,
  since the task file is split into lines, but a caller's command could);
* its text is itself exactly the repr of some bytes (a command such as `b'x'`), so that the round trip holds.

`parse_line(format_line(record)) == record` for every record whose times are already rounded to 3 decimals and
whose command is text decoded from bytes with `surrogateescape`.
"""

from __future__ import annotations

import ast
import re

from disbatch.results.record import Outcome, RecordKind, StatusRecord

COLUMNS = (
    'ROE[ PSZ]',
    'TaskID',
    'LineNum',
    'RepeatIndex',
    'Node',
    'PID',
    'ReturnCode',
    'Elapsed',
    'Start',
    'Finish',
    'BytesOfLeakedOutput',
    'OutputSnippet',
    'BytesOfLeakedError',
    'ErrorSnippet',
    'Command',
)
HEADER = '\t'.join(COLUMNS)
FIELD_COUNT = len(COLUMNS)

_BARRIER_KINDS = (RecordKind.BARRIER, RecordKind.BARRIER_CHECK)
_TASK_KINDS = {kind.value: kind for kind in RecordKind if kind not in _BARRIER_KINDS}
_BARRIER_FLAGS = {kind.value + '    ': kind for kind in _BARRIER_KINDS}
_INTEGER = re.compile(r'-?[0-9]+')
_DECIMAL = re.compile(r'-?(?:[0-9]+(?:\.[0-9]*)?|inf|nan)')
_FIELD_BREAK = re.compile('[\t\n\r]')
_BYTES_REPR = re.compile(
    r'b\'(?:[ -&(-\[\]-~]|\\[\\\'tnr]|\\x[0-9a-f]{2})*\'|b"(?:[ -!#-\[\]-~]|\\[\\tnr]|\\x[0-9a-f]{2})*"'
)


def is_header(text: str) -> bool:
    """Whether `text` (one line, without its newline) is the `--status-header` line."""
    return text.startswith(COLUMNS[0])


def flags(record: StatusRecord) -> str:
    """The first field: `[R ][O ][E ][ PSZTI]`, or `B    ` / `C    ` for a barrier."""
    if record.kind in _BARRIER_KINDS:
        return record.kind.value + '    '
    return (
        ('R' if record.return_code != 0 else ' ')
        + ('O' if record.out_bytes > 0 else ' ')
        + ('E' if record.err_bytes > 0 else ' ')
        + record.kind.value
    )


def format_line(record: StatusRecord) -> str:
    """The status line of `record`, without its newline. ValueError if a middle field would break the line."""
    for text in (record.host, record.out_snippet, record.err_snippet):
        if _FIELD_BREAK.search(text):
            raise ValueError(f'status field {text!r} holds a tab or a line break')
    return '\t'.join(
        (
            flags(record),
            str(record.task_id),
            str(record.line_number),
            str(record.repeat_index),
            record.host,
            str(record.pid),
            str(record.return_code),
            f'{record.elapsed:.3f}',
            f'{record.start:.3f}',
            f'{record.finish:.3f}',
            str(record.out_bytes),
            record.out_snippet,
            str(record.err_bytes),
            record.err_snippet,
            format_command(record.command),
        )
    )


def parse_line(text: str) -> StatusRecord:
    """The record of one status line (without its newline); ValueError saying why if it is not one."""
    fields = text.split('\t', FIELD_COUNT - 1)
    if len(fields) != FIELD_COUNT:
        raise ValueError(f'{len(fields)} tab-separated fields, expected {FIELD_COUNT}')
    kind = _parse_kind(fields[0])
    for index in (11, 13):
        _check_snippet(COLUMNS[index], fields[index])
    # Fields are read in their order, so a line with several bad fields is refused for its first.
    task_id, line_number, repeat_index = _integer(fields, 1), _integer(fields, 2), _integer(fields, 3)
    outcome = Outcome(
        pid=_integer(fields, 5),
        return_code=_integer(fields, 6),
        elapsed=_decimal(fields, 7),
        start=_decimal(fields, 8),
        finish=_decimal(fields, 9),
        out_bytes=_integer(fields, 10),
        out_snippet=fields[11],
        err_bytes=_integer(fields, 12),
        err_snippet=fields[13],
    )
    return StatusRecord(kind, task_id, line_number, repeat_index, parse_command(fields[14]), fields[4], outcome)


def format_command(command: str) -> str:
    """The Command field for `command` (see the module docstring for when it is a bytes repr)."""
    try:
        command.encode('utf-8')
    except UnicodeEncodeError:
        return repr(_command_bytes(command))
    if '\n' in command or '\r' in command or _bytes_literal(command) is not None:
        return repr(command.encode('utf-8'))
    return command


def parse_command(field: str) -> str:
    """The command text of a Command field: a `b'...'` repr becomes its bytes decoded with surrogateescape."""
    data = _bytes_literal(field)
    if data is None:
        return field
    return data.decode('utf-8', 'surrogateescape')


def _command_bytes(command: str) -> bytes:
    try:
        return command.encode('utf-8', 'surrogateescape')
    except UnicodeEncodeError:  # a surrogate no byte decodes to: keep it visible rather than fail
        return command.encode('utf-8', 'surrogatepass')


def _bytes_literal(text: str) -> bytes | None:
    """The bytes `text` is the exact Python repr of, or None (checked first, so `literal_eval` never warns)."""
    if not text.startswith(("b'", 'b"')) or not _BYTES_REPR.fullmatch(text):
        return None
    value = ast.literal_eval(text)
    return value if isinstance(value, bytes) and repr(value) == text else None


def _parse_kind(flag_text: str) -> RecordKind:
    barrier = _BARRIER_FLAGS.get(flag_text)
    if barrier is not None:
        return barrier
    if (
        len(flag_text) == 4
        and flag_text[0] in 'R '
        and flag_text[1] in 'O '
        and flag_text[2] in 'E '
        and flag_text[3] in _TASK_KINDS
    ):
        return _TASK_KINDS[flag_text[3]]
    raise ValueError(f'bad flags {flag_text[:20]!r}, expected [R ][O ][E ][ PSZTI] or a barrier flag')


def _integer(fields: list[str], index: int) -> int:
    text = fields[index]
    if not _INTEGER.fullmatch(text):
        raise ValueError(f'{COLUMNS[index]} {text[:40]!r} is not an integer')
    return int(text)


def _decimal(fields: list[str], index: int) -> float:
    text = fields[index]
    if not _DECIMAL.fullmatch(text):
        raise ValueError(f'{COLUMNS[index]} {text[:40]!r} is not a decimal number')
    return float(text)


def _check_snippet(name: str, text: str) -> None:
    if len(text) < 2 or text[0] not in '\'"' or text[-1] != text[0]:
        raise ValueError(f'{name} {text[:60]!r} is not a quoted snippet')
