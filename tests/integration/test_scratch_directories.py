"""What a run leaves in the temp directory: nothing, even after faults (issue 23, item 10).

An engine makes its scratch directory only for a command too long for the kernel's argument limit, a DisBatcher
makes none; a directory an engine killed by SIGKILL leaves behind is swept by the next engine on the machine that
makes one. `TMPDIR` points each test at a directory of its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from disbatch.engine.scratch import FRESH_SECONDS

from ..conftest import Processes, disbatch_cmd
from .helpers import run_disbatch, wait_for, write_task_file

pytestmark = pytest.mark.timeout(90)

LONG_PREFIX = ': ' + 'x' * 120_000 + '; '  # over the 100 KB a command may take as an argument: run from a file


def _temp(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    temp = tmp_path / 'tmp'
    temp.mkdir()
    return temp, {'TMPDIR': str(temp)}


def test_a_run_of_ordinary_commands_makes_nothing_in_the_temp_directory(procs: Processes, tmp_path: Path) -> None:
    temp, env = _temp(tmp_path)
    write_task_file(tmp_path / 'Tasks', 'ls -A "$TMPDIR" > seen_0.txt\nls -A "$TMPDIR" > seen_1.txt\n')
    finished = run_disbatch(procs, tmp_path, '-s', 'localhost:2', 'Tasks', env=env)
    assert finished.returncode == 0, finished.describe()
    assert [(tmp_path / f'seen_{n}.txt').read_text() for n in (0, 1)] == ['', '']  # nothing, even while it ran
    assert list(temp.iterdir()) == []


def test_a_disbatcher_makes_nothing_in_the_temp_directory(procs: Processes, tmp_path: Path) -> None:
    temp, env = _temp(tmp_path)
    script = write_task_file(
        tmp_path / 'use_api.py',
        'import os\nfrom disbatch import DisBatcher\n'
        "with DisBatcher(tasksname='api', args=['-s', 'localhost:1']) as batcher:\n"
        "    batcher.submit('echo hi')\n"
        '    batcher.wait_one_task()\n'
        "    print(sorted(os.listdir(os.environ['TMPDIR'])))\n",
    )
    result = procs.run([sys.executable, str(script)], cwd=tmp_path, env=env, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '[]'
    assert list(temp.iterdir()) == []


def test_the_scratch_directory_of_a_killed_engine_is_swept_by_the_next_one_made(
    procs: Processes, tmp_path: Path
) -> None:
    temp, env = _temp(tmp_path)
    write_task_file(tmp_path / 'Killed', LONG_PREFIX + 'touch started; sleep 300\n')
    quiet = {'stdout': subprocess.DEVNULL, 'stderr': subprocess.DEVNULL}
    driver = procs.spawn(disbatch_cmd('-s', 'localhost:1', 'Killed'), cwd=tmp_path, env=env, **quiet)
    assert wait_for(lambda: (tmp_path / 'started').exists(), timeout=20), 'the long task did not start'
    (left,) = temp.iterdir()
    assert left.name.startswith('disbatch-engine-')
    os.kill(int(left.name.split('-')[2]), signal.SIGKILL)  # the engine's pid is in the name
    driver.wait(timeout=30)
    assert left.exists()
    long_ago = time.time() - FRESH_SECONDS - 1
    os.utime(left, (long_ago, long_ago))

    write_task_file(tmp_path / 'Next', LONG_PREFIX + 'ls -A "$TMPDIR" > seen.txt\n')
    finished = run_disbatch(procs, tmp_path, '-s', 'localhost:1', 'Next', env=env)
    assert finished.returncode == 0, finished.describe()
    seen = (tmp_path / 'seen.txt').read_text().split()
    assert len(seen) == 1 and seen[0] != left.name  # the next engine's own, made after the sweep
    assert list(temp.iterdir()) == []  # the killed engine's swept, the next one's removed as it left
