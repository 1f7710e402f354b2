"""The task-file grammar: stream items (bytes) in, typed items (`Task`, `Barrier`, `PerEngineTask`) out.

Owns comments, blank lines and every `#DISBATCH` directive (PREFIX, SUFFIX, PERENGINE, REPEAT, BARRIER), the task-id
counters and the line numbers. Pure and incremental: `TaskFileParser.feed_iter` takes one stream item at a time (a
file line, or one KVS item that may hold several lines) and never reads ahead, so a producer on stdin or the KVS is
never waited for; `parse_stream` drives it over any iterable of bytes in constant memory, REPEAT included.

Differences from disBatch 3.0 (SPEC §3 "Grammar traps"): every keyword, BARRIER included, is case-insensitive (the
`#DISBATCH` marker itself stays capitals only, as in the reference, so `#disbatch …` comments stay comments, with a
warning); a bare `#DISBATCH PREFIX` / `#DISBATCH SUFFIX` clears the value; an unknown directive, a
malformed one, `#DISBATCHFOO` and a PERENGINE line after other tasks raise `TaskFileError` (file and line) instead of
being logged and dropped (or, for `#DISBATCHFOO`, run as a task).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Iterator

from disbatch.errors import TaskFileError
from disbatch.taskfile.items import NO_REPEAT, Barrier, Item, PerEngineTask, Phase, Task

MARKER = '#DISBATCH'

_ENCODING = 'utf-8'
_DECODE_ERRORS = 'surrogateescape'

# re.ASCII: `\s` and `\d` mean what they meant to the reference's bytes regexes ([ \t\n\r\f\v] and [0-9]).
_FLAGS = re.ASCII | re.DOTALL
_IGNORED = re.compile(r'\s*(?:#|$)', _FLAGS)
_KEYWORD = re.compile(r'\s+(?P<keyword>\S+)(?P<rest>.*)', _FLAGS)
_PERENGINE = re.compile(r'\s+(?P<phase>START|STOP)(?:\s+(?P<command>.*))?', _FLAGS | re.IGNORECASE)
_REPEAT = re.compile(
    r'\s+(?P<count>\d+)(?:\s+start\s+(?P<start>\d+))?(?:\s+step\s+(?P<step>\d+))?(?:\s+(?P<command>.*))?',
    _FLAGS | re.IGNORECASE,
)
_REPEAT_OPTION_WORDS = ('start', 'step')
_MAX_DIGITS = 15
_BARRIER_CHECK = 'CHECK'

_LATE_PERENGINE = 'PERENGINE tasks must come before all other tasks'
_INDENTED_DIRECTIVE = 'looks like a directive but is indented; treated as a comment'
_LOWERCASE_MARKER = f'looks like a directive but the marker is not {MARKER} in capitals; treated as a comment'


def printable(text: str) -> str:
    """`text` with any undecodable byte shown as `\\xNN`, safe to print in a message."""
    return text.encode(_ENCODING, _DECODE_ERRORS).decode(_ENCODING, 'backslashreplace')


def _verbatim_argument(rest: str) -> str:
    """PREFIX/SUFFIX text: all after exactly one separator, verbatim; nothing at all means empty (clears the value).

    `rest` is empty or starts with the whitespace character that ended the keyword.
    """
    return rest[1:]


def _first_word(line: str) -> str:
    return line.split(maxsplit=1)[0]


class TaskFileParser:
    """Pure, incremental: feed one stream item (a file line, or one KVS item) at a time.

    `warnings` collects `SOURCE:LINE: message` strings; the caller drains it (clears it) when it likes.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.warnings: list[str] = []
        self._prefix = ''
        self._suffix = ''
        self._next_task_id = 0
        self._next_perengine_id = dict.fromkeys(Phase, 0)
        self._perengine_closed = False
        self._directives: dict[str, Callable[[str, str, int], Iterator[Item]]] = {
            'PREFIX': self._prefix_directive,
            'SUFFIX': self._suffix_directive,
            'PERENGINE': self._perengine_directive,
            'REPEAT': self._repeat_directive,
            'BARRIER': self._barrier_directive,
        }

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def suffix(self) -> str:
        return self._suffix

    @property
    def ids_given(self) -> int:
        """How many task ids (tasks, REPEAT expansions, barriers) the lines fed so far take."""
        return self._next_task_id

    def feed(self, raw: bytes, line_number: int) -> list[Item]:
        """Every item of one stream item, as a list (beware of a large REPEAT: prefer `feed_iter`)."""
        return list(self.feed_iter(raw, line_number))

    def feed_iter(self, raw: bytes, line_number: int) -> Iterator[Item]:
        """The items of one stream item; every line of it is numbered `line_number`.

        The lines are parsed at once (errors are raised and ids taken by this call); only the tasks of a REPEAT are
        made lazily as the iterator is consumed, so `REPEAT 1000000` costs constant memory.
        """
        parts = [self._parse_line(line.decode(_ENCODING, _DECODE_ERRORS), line_number) for line in raw.splitlines()]
        return parts[0] if len(parts) == 1 else itertools.chain.from_iterable(parts)

    def _parse_line(self, line: str, line_number: int) -> Iterator[Item]:
        if '\x00' in line and (line.startswith(MARKER) or not _IGNORED.match(line)):
            raise self._error(line_number, 'a NUL byte: a command cannot hold one (bash would never see it)')
        if line.startswith(MARKER):
            return self._parse_directive(line, line_number)
        if _IGNORED.match(line):
            if line[: len(MARKER)].upper() == MARKER:
                self._warn(line_number, _LOWERCASE_MARKER)
            elif line.lstrip()[: len(MARKER)].upper() == MARKER:
                self._warn(line_number, _INDENTED_DIRECTIVE)
            return iter(())
        self._perengine_closed = True
        return iter((self._task(line_number, NO_REPEAT, line),))

    def _parse_directive(self, line: str, line_number: int) -> Iterator[Item]:
        after_marker = line[len(MARKER) :]
        match = _KEYWORD.fullmatch(after_marker)
        if match is None:
            if _IGNORED.fullmatch(after_marker):
                raise self._error(line_number, f'missing directive keyword after {MARKER}')
            raise self._error(line_number, f'unknown directive {printable(_first_word(line))}')
        keyword = match['keyword']
        handler = self._directives.get(keyword.upper())
        if handler is None:
            raise self._error(line_number, f'unknown directive {MARKER} {printable(keyword)}')
        return handler(line, match['rest'], line_number)

    def _prefix_directive(self, line: str, rest: str, line_number: int) -> Iterator[Item]:
        self._prefix = _verbatim_argument(rest)
        return iter(())

    def _suffix_directive(self, line: str, rest: str, line_number: int) -> Iterator[Item]:
        self._suffix = _verbatim_argument(rest)
        return iter(())

    def _perengine_directive(self, line: str, rest: str, line_number: int) -> Iterator[Item]:
        match = _PERENGINE.fullmatch(rest)
        if match is None or not (match['command'] or '').strip():
            raise self._error(line_number, 'malformed PERENGINE: expected PERENGINE START|STOP <command>')
        if self._perengine_closed:
            raise self._error(line_number, _LATE_PERENGINE)
        phase = Phase(match['phase'].upper())
        task_id = self._next_perengine_id[phase]
        self._next_perengine_id[phase] = task_id + 1
        command = self._prefix + match['command'] + self._suffix
        return iter((PerEngineTask(phase=phase, task_id=task_id, line_number=line_number, command=command),))

    def _repeat_directive(self, line: str, rest: str, line_number: int) -> Iterator[Item]:
        match = _REPEAT.fullmatch(rest)
        if match is None:
            raise self._error(
                line_number,
                f'malformed REPEAT: expected REPEAT <n> [start <s>] [step <k>] [<command>], got {printable(line)!r}',
            )
        self._perengine_closed = True
        command = match['command'] or ''
        first_word = command.split(maxsplit=1)[0].lower() if command.strip() else ''
        if first_word in _REPEAT_OPTION_WORDS:
            self._warn(
                line_number,
                f'REPEAT command starts with {first_word!r}: not read as an option (options need a non-negative '
                f'integer and come in the order start, step), so it is part of the command',
            )
        numbers = (match['count'], match['start'] or '0', match['step'] or '1')
        if any(len(number) > _MAX_DIGITS for number in numbers):
            raise self._error(line_number, f'REPEAT number too large (more than {_MAX_DIGITS} digits)')
        count, start, step = (int(number) for number in numbers)
        first_id = self._next_task_id
        self._next_task_id += count
        return _repeat_tasks(first_id, line_number, count, start, step, self._prefix + command + self._suffix)

    def _barrier_directive(self, line: str, rest: str, line_number: int) -> Iterator[Item]:
        words = rest.split()
        check = bool(words) and words[0].upper() == _BARRIER_CHECK
        if check:
            words = words[1:]
        if len(words) > 1:
            raise self._error(
                line_number,
                f'malformed BARRIER: expected BARRIER [CHECK] [<key>], got {printable(line)!r}',
            )
        self._perengine_closed = True
        task_id = self._take_task_id()
        key = words[0] if words else None
        return iter((Barrier(task_id=task_id, line_number=line_number, check=check, key=key, text=line),))

    def _task(self, line_number: int, repeat_index: int, command: str) -> Task:
        return Task(
            task_id=self._take_task_id(),
            line_number=line_number,
            repeat_index=repeat_index,
            command=self._prefix + command + self._suffix,
        )

    def _take_task_id(self) -> int:
        task_id = self._next_task_id
        self._next_task_id += 1
        return task_id

    def _warn(self, line_number: int, message: str) -> None:
        self.warnings.append(f'{self.source}:{line_number}: {message}')

    def _error(self, line_number: int, message: str) -> TaskFileError:
        return TaskFileError(self.source, line_number, message)


def _repeat_tasks(first_id: int, line_number: int, count: int, start: int, step: int, command: str) -> Iterator[Task]:
    for offset in range(count):
        yield Task(
            task_id=first_id + offset, line_number=line_number, repeat_index=start + offset * step, command=command
        )


def parse_stream(
    lines: Iterable[bytes], source: str, on_warning: Callable[[str], None] | None = None
) -> Iterator[Item]:
    """Every item of `lines` (stream items numbered from 1), lazily: item k is yielded before item k+1 is read.

    Raises `TaskFileError` at the first bad line. Warnings go to `on_warning` as soon as they arise (dropped if None).
    """
    parser = TaskFileParser(source)
    for line_number, raw in enumerate(lines, start=1):
        items = parser.feed_iter(raw, line_number)
        _drain_warnings(parser, on_warning)
        yield from items


def _drain_warnings(parser: TaskFileParser, on_warning: Callable[[str], None] | None) -> None:
    if on_warning is not None:
        for warning in parser.warnings:
            on_warning(warning)
    parser.warnings.clear()
