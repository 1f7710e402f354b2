"""What the end-of-run summary says about failed and interrupted tasks: which ones, and how to run them again. Pure.

`FailedTasks` keeps the first few failed tasks' records (memory does not grow with the run); `failure_lines`
renders them as `task 5 (line 6): exit 3: <first line of its stderr snippet>`; `rerun_command` builds the exact
command that runs the failed and interrupted tasks again (`disbatch … -r STATUS -R TASKFILE`) from the run's own
command line; `advice_lines` adds why the run stopped early, that command, and what the exit code is and why.
"""

from __future__ import annotations

import ast
import shlex
import signal
from collections.abc import Sequence

from disbatch.results.record import RecordKind, StatusRecord
from disbatch.results.snippet import readable

LISTED = 10  # failed tasks named one by one in the summary
# Flags of the run's own command line that the re-run command replaces (those taking a value take the next word).
_RESUME_FLAGS = {'-r': True, '--resume-from': True, '-R': False, '--retry': False, '--force-resume': False}


class FailedTasks:
    """The first `LISTED` failed tasks (their final records), in the order they failed."""

    def __init__(self, listed: int = LISTED) -> None:
        self.listed = listed
        self.records: list[StatusRecord] = []

    def add(self, record: StatusRecord) -> None:
        listed = record.failed and record.kind in (RecordKind.NORMAL, RecordKind.TIMED_OUT)
        if listed and len(self.records) < self.listed:
            self.records.append(record)


def describe_end(record: StatusRecord) -> str:
    """How a failed task ended: `exit 3`, `signal 9 (SIGKILL)`, `timed out (signal 15)`, `lost with its engine`."""
    code = record.return_code
    if record.unreported:
        return 'lost with its engine'
    if record.kind is RecordKind.TIMED_OUT:
        return f'timed out (signal {-code})' if code < 0 else f'timed out (exit {code})'
    if code >= 0:
        text = f'exit {code}'
    else:
        try:
            text = f'signal {-code} ({signal.Signals(-code).name})'
        except ValueError:
            text = f'signal {-code}'
    return text


def first_error_line(snippet: str, total_bytes: int = 0) -> str:
    """The first non-blank line of a status-file snippet (the Python repr of a str) of `total_bytes` bytes of output
    (`snippet.readable`: whole words, `[...]` where output was left out), '' when there is none."""
    try:
        value = ast.literal_eval(snippet)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return ''
    if not isinstance(value, str):
        return ''
    text = readable(snippet, total_bytes)
    return next((line.strip() for line in text.splitlines() if line.strip()), '')


def failure_lines(failed: FailedTasks, total_failed: int, width: int) -> list[str]:
    """`  failed tasks:` and one line a listed task, then how many more there are."""
    if not failed.records:
        return []
    lines = [
        '  failed tasks:' if total_failed <= len(failed.records) else f'  failed tasks (first {len(failed.records)}):'
    ]
    for record in failed.records:
        text = f'    task {record.task_id} (line {record.line_number}): {describe_end(record)}'
        error = first_error_line(record.err_snippet, record.err_bytes)
        if error:
            text += ': ' + error
        lines.append(_cut(text, width))
    if total_failed > len(failed.records):
        lines.append(f'    ... and {total_failed - len(failed.records)} more (see the status file)')
    return lines


def rerun_command(
    argv: Sequence[str],
    taskfile: str | None,
    status_path: str,
    retry_failed: bool = True,
    resume_paths: Sequence[str] = (),
) -> str:
    """The run's command line with its resume flags replaced by `-r STATUS` (and `-R`), just before the task file.

    `argv` is the run's arguments without the program name; `taskfile` is the task-file argument as given (None
    for a task stream: the flags go last); `resume_paths` are the run's own `-r` files (one `-r` may name several),
    all of which go: this run's status file alone is enough, as a resumed run carries every earlier record into it
    before it starts (`results/resume.py`).
    """
    arguments = resumed_arguments(argv, taskfile, status_path, resume_paths, keep=False)
    if retry_failed:
        arguments.insert(arguments.index(status_path) + 1, '-R')
    return shlex.join(['disbatch', *arguments])


def resumed_arguments(
    argv: Sequence[str], taskfile: str | None, status_path: str, resume_paths: Sequence[str], keep: bool
) -> list[str]:
    """`argv` with `-r STATUS` just before the task file (last for a task stream). Its own resume flags (`-r` with
    its files, which are `resume_paths`; `-R`, `--force-resume`) stay as given with `keep`, else go."""
    kept: list[str] = []
    dropped = list(resume_paths)
    position = 0
    while position < len(argv):
        word = argv[position]
        position += 1
        name, equals, _ = word.partition('=')
        if word.startswith('-r') and not word.startswith('--') and len(word) > 2:  # -rFILE
            flag = [word]
            value = word[2:]
        elif name not in _RESUME_FLAGS or not (name.startswith('--') or word == name):
            kept.append(word)
            continue
        elif not _RESUME_FLAGS[name]:  # -R, --force-resume
            kept += [word] if keep else []
            continue
        elif equals:
            flag, value = [word], word.partition('=')[2]
        else:
            value = argv[position] if position < len(argv) else ''
            flag = [word, value]
            position += 1
        if value in dropped:
            dropped.remove(value)
        while position < len(argv) and argv[position] in dropped:  # `-r A B C`: one flag, several files
            dropped.remove(argv[position])
            flag.append(argv[position])
            position += 1
        kept += flag if keep else []
    added = ['-r', status_path]
    if taskfile is not None and taskfile in kept:
        at = len(kept) - 1 - kept[::-1].index(taskfile)
        kept[at:at] = added
    else:
        kept += added
    return kept


def advice_lines(
    failed: int,
    interrupted: int,
    command: str | None,
    exit_code_flag: bool,
    width: int,
    exit_code: int | None = None,
    stopped: str = '',
) -> list[str]:
    """Why the run stopped early (`stopped`), the re-run command (when a task failed or was interrupted), and the
    exit code: what it is and why, when it is not what a reader would guess (`exit_code` None: not known, as in
    `disbatch report` of a status file; then only the note that -e was not given)."""
    lines = [f'  stopped early: {stopped}'] if stopped else []
    if command is not None and (failed or interrupted):
        what = (
            'the failed and interrupted tasks'
            if failed and interrupted
            else ('the failed tasks' if failed else 'the interrupted tasks')
        )
        lines.append(f'  to run {what} again: {command}')
    lines.extend(exit_code_lines(failed, exit_code_flag, exit_code, stopped))
    return lines


def exit_code_lines(failed: int, exit_code_flag: bool, exit_code: int | None, stopped: str) -> list[str]:
    """The line on the exit code, or none when it goes without saying (0 for a run with nothing wrong)."""
    if exit_code is None or exit_code == 0:
        if stopped and not exit_code_flag:
            return ['  the exit code stays 0 although the run stopped early (as in disBatch 3.0); -e makes it 1']
        if failed and not exit_code_flag:
            return ['  the exit code stays 0 although tasks failed (as in disBatch 3.0); -e makes it 1']
        return []
    if failed and exit_code_flag:
        return [f'  exit code {exit_code}: tasks failed (-e)']
    return [f'  exit code {exit_code}' + (': the run stopped early' if stopped else '')]


def _cut(text: str, width: int) -> str:
    """`text` on one line (its indent kept), cut after a whole word with ` ...` when wider than `width`."""
    indent = text[: len(text) - len(text.lstrip())]
    flat = indent + ' '.join(text.split())
    if len(flat) <= width:
        return flat
    room = flat[: max(0, width - 4)]
    cut = room.rfind(' ')
    return (room[:cut] if cut > len(indent) + width // 2 else room) + ' ...'
