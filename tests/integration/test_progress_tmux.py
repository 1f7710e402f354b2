"""The progress line and the end-of-run summary of the real CLI: on a real terminal (a tmux pane), and in a pipe.

Each tmux test uses a private tmux server (`-L`), which carries the test's marker (it inherits the environment of
the client that starts it), so the `procs` fixture kills it with everything else; it is also killed explicitly.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import Processes, disbatch_cmd
from .helpers import run_disbatch, status_path, write_task_file

pytestmark = pytest.mark.timeout(60)

needs_tmux = pytest.mark.skipif(shutil.which('tmux') is None, reason='needs tmux')
# The total is known only once the whole task file was read (flow control reads it as slots free up).
PROGRESS = re.compile(r'^disbatch: (\[[#.]+\] )?\d+(/40)? done')
END = 'DISBATCH-TEST-EXIT='


class Pane:
    """One tmux session on a private server, running a shell command in a 120x40 pane."""

    def __init__(self, procs: Processes, cwd: Path, command: str) -> None:
        self.server = f'disbatch-test-{uuid.uuid4().hex[:12]}'
        shell = f'{command}; echo "{END}$?"; sleep 120'
        procs.run(
            ['tmux', '-L', self.server, '-f', '/dev/null', 'new-session', '-d', '-x', '120', '-y', '40', '-c',
             str(cwd), shell],
            cwd=cwd,
            timeout=10,
        )  # fmt: skip

    def capture(self) -> list[str]:
        result = subprocess.run(
            ['tmux', '-L', self.server, 'capture-pane', '-p'], capture_output=True, text=True, timeout=10, check=False
        )
        return result.stdout.splitlines()

    def watch(self, timeout: float) -> Iterator[list[str]]:
        """The pane's lines, every 50 ms, until the command has ended (the last capture shows its end)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.capture()
            yield lines
            if any(line.startswith(END) for line in lines):
                return
            time.sleep(0.05)
        raise AssertionError('the command did not end in time:\n' + '\n'.join(self.capture()))

    def close(self) -> None:
        subprocess.run(['tmux', '-L', self.server, 'kill-server'], capture_output=True, timeout=10, check=False)


@pytest.fixture
def tasks(tmp_path: Path) -> Path:
    return write_task_file(tmp_path / 'Tasks', 'sleep 0.2\n' * 40)


@needs_tmux
def test_a_terminal_shows_a_changing_progress_line_then_the_summary(
    procs: Processes, tmp_path: Path, tasks: Path
) -> None:
    pane = Pane(procs, tmp_path, shlex.join(disbatch_cmd('-s', 'localhost:4', tasks.name)))
    try:
        seen: list[str] = []
        last: list[str] = []
        for lines in pane.watch(timeout=40):
            last = lines
            if any(line.startswith(END) for line in lines):
                break
            shown = [line for line in lines if PROGRESS.match(line)]
            assert len(shown) <= 1, 'the progress line must be redrawn in place:\n' + '\n'.join(lines)
            if shown and shown[0] not in seen:
                seen.append(shown[0])
    finally:
        pane.close()
    screen = '\n'.join(last)
    assert len(seen) >= 2, f'the progress line did not change during the run: {seen}\n{screen}'
    assert f'{END}0' in screen
    assert '[K' not in screen and '\r' not in screen
    final = [line for line in last if PROGRESS.match(line)]
    assert len(final) == 1 and '40/40 done (100%), 0 failed, 0 running' in final[0], screen
    assert 'disbatch: 40 tasks run in ' in screen and ', 0 failed' in screen, screen
    assert '  slot use: ' in screen and '  slowest: ' in screen and 'sleep 0.2' in screen, screen
    assert any(line.startswith('  status file: ') and line.endswith(status_path(tmp_path).name) for line in last), (
        screen
    )


@needs_tmux
def test_quiet_shows_nothing_on_a_terminal(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'sleep 0.1\n' * 8)
    pane = Pane(procs, tmp_path, shlex.join(disbatch_cmd('-s', 'localhost:4', '--quiet', 'Tasks')))
    try:
        captures = list(pane.watch(timeout=30))
    finally:
        pane.close()
    screen = '\n'.join(captures[-1])
    assert f'{END}0' in screen, screen
    assert not any('done' in line for lines in captures for line in lines), screen
    assert 'tasks run in' not in screen and 'status file' not in screen, screen


def test_a_pipe_gets_what_a_batch_log_wants(procs: Processes, tmp_path: Path, tasks: Path) -> None:
    # A start line, plain progress lines, the summary: no control characters (a Slurm job's slurm-N.out).
    finished = run_disbatch(procs, tmp_path, '-s', 'localhost:4', '--progress-every', '0.5', tasks.name)
    assert finished.returncode == 0, finished.describe()
    assert finished.stdout == '', finished.describe()
    assert '\r' not in finished.stderr and '\x1b' not in finished.stderr, finished.describe()
    lines = finished.stderr.splitlines()
    assert lines[0].startswith('disbatch: run ') and ' started: 40 tasks from Tasks, engines on ' in lines[0], lines
    assert '; status file ' in lines[0] and lines[0].endswith(status_path(tmp_path).name), lines
    assert len([line for line in lines if PROGRESS.match(line)]) >= 3, finished.describe()  # ~2 s run, every 0.5 s
    assert any(line.startswith('disbatch: 40 tasks run in ') for line in lines), finished.describe()


def test_quiet_in_a_pipe_shows_nothing(procs: Processes, tmp_path: Path, tasks: Path) -> None:
    finished = run_disbatch(procs, tmp_path, '-s', 'localhost:4', '--quiet', tasks.name)
    assert finished.returncode == 0, finished.describe()
    assert finished.stderr == '', finished.describe()
    assert finished.stdout == '', finished.describe()


def test_progress_forced_in_a_pipe_prints_plain_lines_and_the_summary(
    procs: Processes, tmp_path: Path, tasks: Path
) -> None:
    finished = run_disbatch(procs, tmp_path, '-s', 'localhost:4', '--progress', tasks.name)
    assert finished.returncode == 0, finished.describe()
    assert '\r' not in finished.stderr and '\x1b' not in finished.stderr, finished.describe()
    lines = finished.stderr.splitlines()
    assert any(PROGRESS.match(line) for line in lines), finished.describe()
    assert any(line.startswith('disbatch: 40 tasks run in ') for line in lines), finished.describe()
    assert any(line.startswith('  status file: ') and line.endswith(status_path(tmp_path).name) for line in lines), (
        finished.describe()
    )
