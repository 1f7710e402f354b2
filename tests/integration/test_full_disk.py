"""Full disks lose nothing silently (issue 22 item 6): on a real tiny tmpfs, and on /dev/full.

A write that fails for lack of space is told in one line (what, where, what was lost, how to resume), with no
traceback, and the exit code is not 0; a task whose `--results` output could not all be written is recorded failed
(its return code the errno, 28, its error snippet naming the file), so `-r` runs it again.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from disbatch.results.record import RecordKind

from ..conftest import Processes
from .helpers import by_task_id, messages, no_traceback, read_status, run_disbatch

ENOSPC = 28

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='mounting a tmpfs needs root')


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: a file system that fills up after a few dozen small files."""
    mount_point = tmp_path / 'tiny'
    mount_point.mkdir()
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(['umount', '-l', str(mount_point)], check=False)


def fill(directory: Path) -> None:
    """Fill the file system of `directory` to the last byte."""
    subprocess.run(['dd', 'if=/dev/zero', f'of={directory / "filler"}', 'bs=4k'], capture_output=True, check=False)


@pytest.mark.timeout(90)
def test_results_that_cannot_be_written_fail_their_tasks(procs: Processes, tmp_path: Path, tiny_disk: Path) -> None:
    # 40 tasks of 8 kB each into 64 kB: most outputs cannot be kept; before, every task was a clean success
    (tmp_path / 'Tasks').write_text('head -c 8000 /dev/zero | tr "\\0" x\n' * 40)
    result = run_disbatch(procs, tmp_path, '-p', str(tmp_path / 'run'), '-s', 'localhost:2', '--results',
                          str(tiny_disk / 'results'), '-e', 'Tasks', timeout=60)  # fmt: skip
    assert result.returncode != 0, result.describe()
    assert no_traceback(result.stderr), result.stderr
    tasks = by_task_id(read_status(tmp_path / 'run_status.txt'))
    assert sorted(tasks) == list(range(40))
    failed = {task_id for task_id, record in tasks.items() if record.return_code != 0}
    assert failed, 'no task was recorded failed'
    for task_id, record in tasks.items():
        out = tiny_disk / 'results' / f'{task_id:06d}.1.out'
        if task_id in failed:
            assert record.return_code == ENOSPC, record
            assert 'No space left on device' in record.err_snippet and str(out) in record.err_snippet, record
        else:
            assert out.stat().st_size == 8000, (task_id, out.stat().st_size)  # a success kept all its output


@pytest.mark.timeout(60)
@pytest.mark.parametrize('where', ['dev_full', 'tiny_disk'])
def test_an_events_file_that_cannot_be_written_is_told_and_fails_the_run(
    procs: Processes, tmp_path: Path, tiny_disk: Path, where: str
) -> None:
    # /dev/full refuses the first line: the run does not start; the tiny disk fills mid-run: the run ends != 0
    events = '/dev/full' if where == 'dev_full' else str(tiny_disk / 'events.jsonl')
    (tmp_path / 'Tasks').write_text('true\n' * 300)
    result = run_disbatch(procs, tmp_path, '-p', str(tmp_path / 'run'), '-s', 'localhost:2', '--json', events,
                          'Tasks', timeout=60)  # fmt: skip
    assert result.returncode != 0, result.describe()
    assert no_traceback(result.stderr), result.stderr
    told = [line for line in messages(result.stderr) if '--json' in line]
    assert len(told) == 1 and events in told[0] and 'No space left on device' in told[0], result.stderr


@pytest.mark.timeout(90)
def test_a_status_file_on_a_full_disk_stops_the_run_in_one_line(
    procs: Processes, tmp_path: Path, tiny_disk: Path
) -> None:
    # 2,000 records do not fit in 64 kB: the first that does not is told, the run stops; a resume finishes it
    (tmp_path / 'Tasks').write_text('true\n' * 2000)
    status = tiny_disk / 'run_status.txt'
    result = run_disbatch(procs, tmp_path, '-p', str(tiny_disk / 'run'), '--logfile', str(tmp_path / 'log'),
                          '-s', 'localhost:2', 'Tasks', timeout=60)  # fmt: skip
    assert result.returncode != 0, result.describe()
    assert no_traceback(result.stderr), result.stderr
    told = [line for line in messages(result.stderr) if 'status file' in line]
    assert len(told) == 1, result.stderr
    assert str(status) in told[0] and 'No space left on device' in told[0] and f'-r {status}' in told[0], told
    recorded = by_task_id(read_status(status))
    assert 0 < len(recorded) < 2000

    moved = tmp_path / 'first_status.txt'
    moved.write_bytes(status.read_bytes())
    for path in tiny_disk.iterdir():
        path.unlink()
    again = run_disbatch(procs, tmp_path, '-p', str(tmp_path / 'again'), '-r', str(moved), '-s', 'localhost:2',
                         'Tasks', timeout=60)  # fmt: skip
    assert again.returncode == 0, again.describe()
    rerun = by_task_id(read_status(tmp_path / 'again_status.txt'))
    ran_again = {task_id for task_id, record in rerun.items() if record.kind is RecordKind.NORMAL}
    assert ran_again == set(range(2000)) - set(recorded)  # every task once: none lost, none run twice


@pytest.mark.timeout(60)
def test_starting_on_a_full_disk_is_one_line(procs: Processes, tmp_path: Path, tiny_disk: Path) -> None:
    fill(tiny_disk)
    (tmp_path / 'Tasks').write_text(f'touch {tmp_path}/ran\n')
    result = run_disbatch(procs, tmp_path, '-p', str(tiny_disk / 'run'), '-s', 'localhost:1', 'Tasks')
    assert result.returncode != 0, result.describe()
    assert no_traceback(result.stderr), result.stderr
    lines = messages(result.stderr)
    assert len(lines) == 1 and 'No space left on device' in lines[0] and str(tiny_disk) in lines[0], result.stderr
    assert not (tmp_path / 'ran').exists()
