"""Shared helpers of the CLI integration tests: run `disbatch` in a test's directory, find and read what it wrote.

* `run_disbatch(procs, cwd, *args, input=...)`: run the CLI to the end (new session, output captured); the result
  also carries the driver's PID (barrier lines show it).
* `run_files(directory)` / `status_path(directory)`: the files of the one run made in a directory.
* `read_status(path)`: the status file's records, parsed with `disbatch.results.status_line.parse_line`.
* `sort_records(records)`: a stable order for comparing a whole file (status lines come in completion order).
* `wait_for(predicate, timeout)`: poll until something is true (used while a spawned driver runs).
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from disbatch.results.record import RecordKind, StatusRecord
from disbatch.results.status_line import HEADER, parse_line

from ..conftest import Processes, disbatch_cmd

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / 'exampleTaskFiles'
# <Taskfile>_disBatch_<yyMMddHHmmss>_<NNN>
DEFAULT_STEM = re.compile(r'(?P<name>.+)_disBatch_(?P<when>[0-9]{12})_(?P<number>[0-9]{3})')
KIND_ORDER = {kind: position for position, kind in enumerate(RecordKind)}


@dataclass(frozen=True)
class Finished:
    """A finished `disbatch` process."""

    returncode: int
    stdout: str
    stderr: str
    pid: int
    seconds: float

    def describe(self) -> str:
        return f'rc={self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}'


def run_disbatch(
    procs: Processes,
    cwd: Path,
    *args: str,
    input: str | bytes | None = None,
    timeout: float = 30,
    env: dict[str, str] | None = None,
) -> Finished:
    """Run `disbatch ARGS` in `cwd` to its end; stdin is `input` (text or bytes) or /dev/null.

    Output is read as bytes and decoded as UTF-8 with U+FFFD, so a stray byte never breaks a test.
    """
    data = input.encode() if isinstance(input, str) else input
    started = time.monotonic()
    process = procs.spawn(
        disbatch_cmd(*args),
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=False,
    )
    stdout, stderr = cast('tuple[bytes, bytes]', process.communicate(cast(Any, data), timeout=timeout))
    seconds = time.monotonic() - started
    return Finished(
        process.returncode, stdout.decode(errors='replace'), stderr.decode(errors='replace'), process.pid, seconds
    )


def short_hostname() -> str:
    return socket.gethostname().split('.')[0]


def run_files(directory: Path, suffix: str) -> list[Path]:
    """Every `*_<suffix>` file in `directory` (e.g. suffix 'status.txt'), sorted."""
    return sorted(directory.glob(f'*_{suffix}'))


def status_path(directory: Path) -> Path:
    """The one status file in `directory`; fails the test if there is not exactly one."""
    found = run_files(directory, 'status.txt')
    assert len(found) == 1, f'expected one status file in {directory}, found {[p.name for p in found]}'
    return found[0]


def stem_of(status: Path) -> str:
    """The run's stem (path without `_status.txt`)."""
    return str(status)[: -len('_status.txt')]


def status_lines(path: Path) -> list[str]:
    """The lines of a status file as text (UTF-8, surrogateescape), without their newlines."""
    data = path.read_bytes()
    assert data == b'' or data.endswith(b'\n'), 'the status file does not end with a newline'
    return data.decode('utf-8', 'surrogateescape').split('\n')[:-1] if data else []


def read_status(path: Path, header: bool = False) -> list[StatusRecord]:
    """The records of a status file, in file order (the header line must be there iff `header`)."""
    lines = status_lines(path)
    if header:
        assert lines and lines[0] == HEADER, f'first line is not the header: {lines[:1]!r}'
        lines = lines[1:]
    return [parse_line(line) for line in lines]


def sort_records(records: Iterable[StatusRecord]) -> list[StatusRecord]:
    """Records by kind (normal, P, S, Z, B, C), then task id, then line."""
    return sorted(records, key=lambda r: (KIND_ORDER[r.kind], r.task_id, r.line_number))


def by_task_id(records: Iterable[StatusRecord], kind: RecordKind = RecordKind.NORMAL) -> dict[int, StatusRecord]:
    """The records of one kind by task id; fails the test if an id appears twice."""
    found: dict[int, StatusRecord] = {}
    for record in records:
        if record.kind is kind:
            assert record.task_id not in found, f'task {record.task_id} recorded twice ({kind.name})'
            found[record.task_id] = record
    return found


def write_task_file(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def counts(directory: Path, pattern: str = 'count_*') -> dict[str, int]:
    """Marker files that tasks append one line to: name -> number of executions."""
    return {path.name: len(path.read_text().splitlines()) for path in sorted(directory.glob(pattern))}


def dbutil_exports(directory: Path) -> dict[str, str]:
    """The variables the run's `<stem>_dbUtil.sh` exports (its KVS address and token, its secrets)."""
    [script] = run_files(directory, 'dbUtil.sh')
    exports = {}
    for line in script.read_text().splitlines():
        if line.startswith('export '):
            name, _, value = line[len('export ') :].partition('=')
            exports[name] = shlex.split(value)[0] if value else ''
    return exports


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll `predicate` until it is true (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


_LOG_START = re.compile(r'^disbatch: run \S+ started: ')
_LOG_PROGRESS = re.compile(r'^disbatch: (\[[#.]+\] )?\d+(/\d+)? done')
_LOG_SUMMARY = re.compile(r'^disbatch: \d+ tasks? run in ')


def messages(stderr: str) -> list[str]:
    """The driver's own lines on stderr: without what it prints for a batch log when stderr is not a terminal
    (the start line, the plain progress lines, the end-of-run summary and its indented lines)."""
    kept, in_summary = [], False
    for line in stderr.strip().splitlines():
        in_summary = bool(_LOG_SUMMARY.match(line)) or (in_summary and line.startswith('  '))
        if not (in_summary or _LOG_START.match(line) or _LOG_PROGRESS.match(line)):
            kept.append(line)
    return kept


def no_traceback(text: str) -> bool:
    return 'Traceback' not in text


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def disbatch_job_script(directory: Path, *arguments: str, prelude: str = '') -> Path:
    """`directory/job.sh`: a batch job that runs this checkout's disbatch with `arguments` (after `prelude`)."""
    script = directory / 'job.sh'
    script.write_text(
        '#!/bin/bash\n'
        + prelude
        + f'export PYTHONPATH={shlex.quote(str(REPO_ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}\n'
        + f'exec {shlex.quote(sys.executable)} -m disbatch {shlex.join(arguments)}\n'
    )
    return script


def check_ran_where_reported(records: list[StatusRecord], count: int) -> dict[int, StatusRecord]:
    """Every task 0..count-1 is recorded once, with rc 0, and its `hostname` output names its Node column."""
    tasks = by_task_id(records)
    assert sorted(tasks) == list(range(count)), f'status file incomplete: {sorted(tasks)}'
    for record in tasks.values():
        assert record.return_code == 0, record
        assert record.out_snippet == repr(f'{record.host}\n'), f'Node {record.host} but hostname said {record}'
    return tasks
