"""The task file on disk: opening it, and checking every directive of it before the run starts."""

from __future__ import annotations

import os
import sys
from typing import BinaryIO

from disbatch.errors import TaskFileError, TaskFileErrors
from disbatch.taskfile.items import Barrier
from disbatch.taskfile.parser import TaskFileParser

MAX_REPORTED = 20
"""Bad task-file lines reported before the scan gives up (a file of garbage must not flood the terminal)."""


def open_task_file(path: str) -> tuple[BinaryIO, str]:
    """The binary stream and the name used in messages ('-' is stdin)."""
    if path == '-':
        return sys.stdin.buffer, '<stdin>'
    try:
        return open(path, 'rb'), path
    except OSError as error:
        raise TaskFileError(path, 0, f'cannot read the task file: {error.strerror}') from None


def validate(path: str) -> int | None:
    """Check every directive of a regular file before the run starts. Every bad line is reported, as a compiler
    would (up to MAX_REPORTED, then the scan stops): one bad line raises its TaskFileError, several a TaskFileErrors.
    Returns the number of tasks the file holds (barriers not counted), or None when it cannot be read twice (stdin).

    Only lines that start with `#` can be bad (plain lines are commands), so the scan stays fast on huge files.
    """
    if path == '-' or not os.path.isfile(path):
        return None
    parser = TaskFileParser(path)
    plain_tasks = barriers = 0
    errors: list[TaskFileError] = []
    with open(path, 'rb') as handle:
        for number, line in enumerate(handle, 1):
            try:
                if line[:1] == b'#':
                    for item in parser.feed_iter(line, number):
                        barriers += isinstance(item, Barrier)
                        break  # creating one item is enough to check it; REPEAT's ids are reserved without expanding
                elif line.strip() and not line.lstrip().startswith(b'#'):  # not blank, not an indented comment
                    if not plain_tasks or b'\0' in line:
                        parser.feed(line if b'\0' in line else b'true', number)  # NUL: the parser's error
                    plain_tasks += 1
            except TaskFileError as error:
                errors.append(error)
                if len(errors) > MAX_REPORTED:
                    raise TaskFileErrors(errors[:MAX_REPORTED], more=True) from None
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise TaskFileErrors(errors)
    return plain_tasks + parser.ids_given - min(plain_tasks, 1) - barriers
