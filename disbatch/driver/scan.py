"""The task file on disk: opening it, and checking every directive of it before the run starts."""

from __future__ import annotations

import os
import sys
from typing import BinaryIO

from disbatch.errors import TaskFileError
from disbatch.taskfile.items import Barrier
from disbatch.taskfile.parser import TaskFileParser


def open_task_file(path: str) -> tuple[BinaryIO, str]:
    """The binary stream and the name used in messages ('-' is stdin)."""
    if path == '-':
        return sys.stdin.buffer, '<stdin>'
    try:
        return open(path, 'rb'), path
    except OSError as error:
        raise TaskFileError(path, 0, f'cannot read the task file: {error.strerror}') from None


def validate(path: str) -> int | None:
    """Check every directive of a regular file before the run starts; raises TaskFileError at the first bad one.
    Returns the number of tasks the file holds (barriers not counted), or None when it cannot be read twice (stdin).

    Only lines that start with `#` can be bad (plain lines are commands), so the scan stays fast on huge files.
    """
    if path == '-' or not os.path.isfile(path):
        return None
    parser = TaskFileParser(path)
    plain_tasks = barriers = 0
    with open(path, 'rb') as handle:
        for number, line in enumerate(handle, 1):
            if line[:1] == b'#':
                for item in parser.feed_iter(line, number):
                    barriers += isinstance(item, Barrier)
                    break  # creating one item is enough to check it; REPEAT's ids are reserved without expanding
            elif line.strip() and not line.lstrip().startswith(b'#'):  # not blank, not an indented comment
                if not plain_tasks or b'\0' in line:
                    parser.feed(line if b'\0' in line else b'true', number)  # NUL: the parser's error
                plain_tasks += 1
    return plain_tasks + parser.ids_given - min(plain_tasks, 1) - barriers
