"""An engine that dies (SIGKILL, the OOM killer, a crash) mid-run: its tasks end with it, before the driver runs them
again elsewhere, so no task ever runs twice at once; and none of its processes is left behind (issue 22, item 2).

Each task holds a lock on a file of its own while it runs (`flock`, which the kernel drops when the last process
holding it ends): a copy that starts while another still runs notes it in its marker file.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from disbatch.results.record import RecordKind

from ..conftest import Processes, disbatch_cmd
from .helpers import pid_alive, read_status, run_files, status_path, wait_for

# started, ran its course, finished; 'twice' if another copy of it still held its lock
MARKED_TASK = (
    'exec 9> lock.$DISBATCH_TASKID; flock -n 9 || echo twice >> m.$DISBATCH_TASKID; '
    'echo start >> m.$DISBATCH_TASKID; sleep {seconds}; echo done >> m.$DISBATCH_TASKID\n'
)


def markers(directory: Path) -> dict[int, list[str]]:
    return {int(path.name[2:]): path.read_text().split() for path in sorted(directory.glob('m.*'))}


def engine_pids(directory: Path) -> dict[str, int]:
    """Host → the pid of the engine there, as the driver log says it joined."""
    logs = run_files(directory, 'driver.log')
    text = logs[0].read_text(errors='replace') if logs else ''
    return {host: int(pid) for host, pid in re.findall(r'engine \d+ joined from (\S+) \(pid (\d+),', text)}


@pytest.mark.timeout(60)
def test_a_killed_engines_tasks_end_with_it_and_run_again_once(procs: Processes, tmp_path: Path) -> None:
    count, seconds = 4, 5
    (tmp_path / 'Tasks').write_text(MARKED_TASK.format(seconds=seconds) * count)
    driver = procs.spawn(
        disbatch_cmd('-s', '127.0.0.1:2,127.0.0.2:2', 'Tasks'),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    running = wait_for(lambda: len(markers(tmp_path)) == count and len(engine_pids(tmp_path)) == 2, 20)
    assert running and driver.poll() is None, driver.communicate(timeout=5)
    engine = engine_pids(tmp_path)['127.0.0.1']
    os.kill(engine, signal.SIGKILL)
    killed_at = time.time()
    _, stderr = driver.communicate(timeout=40)
    assert driver.returncode == 0, stderr
    assert re.search(r'engine \d on 127.0.0.1 was lost with 2 task', stderr), stderr
    ran = markers(tmp_path)
    assert sorted(ran) == list(range(count)), ran
    assert all('twice' not in lines and lines.count('done') == 1 for lines in ran.values()), ran
    records = read_status(status_path(tmp_path))
    lost = [record for record in records if record.return_code == -100]
    assert len(lost) == 2 and all(record.finish >= killed_at - 0.5 for record in lost), records
    assert wait_for(lambda: not procs.alive(), 3), f'processes left: {procs.alive()}'
    assert not pid_alive(engine)


@pytest.mark.timeout(90)
def test_a_frozen_engines_tasks_end_before_they_run_again(procs: Processes, tmp_path: Path) -> None:
    # SIGSTOP: the engine goes silent while its task runs on; the driver takes it for lost after 8 s, and the task
    # must have ended before its copy starts in the other engine's free slot. Four tasks fill both engines whichever
    # joins first: the one on 127.0.0.1 gets task 0 or 3, both long; the other frees a slot at 4 s.
    durations = [16, 4, 4, 16]
    (tmp_path / 'Tasks').write_text(''.join(MARKED_TASK.format(seconds=seconds) for seconds in durations))
    driver = procs.spawn(
        disbatch_cmd('-s', '127.0.0.1:1,127.0.0.2:3', 'Tasks'),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    running = wait_for(lambda: len(markers(tmp_path)) == len(durations) and len(engine_pids(tmp_path)) == 2, 20)
    assert running and driver.poll() is None, driver.communicate(timeout=5)
    engine = engine_pids(tmp_path)['127.0.0.1']
    os.kill(engine, signal.SIGSTOP)
    _, stderr = driver.communicate(timeout=70)
    assert driver.returncode == 0, stderr
    assert re.search(r'engine \d on 127.0.0.1 has not been heard from for \d+ s: taken for lost', stderr), stderr
    ran = markers(tmp_path)
    assert sorted(ran) == list(range(len(durations))), ran
    assert all('twice' not in lines and lines.count('done') == 1 for lines in ran.values()), ran
    assert wait_for(lambda: not procs.alive(), 3), f'processes left: {procs.alive()}'


def _tasks_of(engine: int) -> list[int]:
    """The pids of the engine's running `sleep` tasks (its children: the launcher is one too)."""
    found = []
    for entry in Path('/proc').iterdir():
        if entry.name.isdigit():
            try:
                command, _, rest = (entry / 'stat').read_text().partition(') ')
            except OSError:
                continue
            if int(rest.split()[1]) == engine and command.endswith(('(sleep', '(bash')):
                found.append(int(entry.name))
    return found


@pytest.mark.timeout(60)
def test_a_task_killed_by_the_jobs_end_just_before_its_engine_is_interrupted_not_failed(
    procs: Processes, tmp_path: Path
) -> None:
    # A batch system ending a job (`scancel`, `qdel`) sends SIGTERM to every process of it, tasks and engines alike,
    # in no set order: a task that dies of it first is one the job's end stopped, so a plain -r runs it again.
    (tmp_path / 'Tasks').write_text('sleep 30\nsleep 30\n')
    driver = procs.spawn(
        disbatch_cmd('-s', 'localhost:2', 'Tasks'), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert wait_for(
        lambda: engine_pids(tmp_path) and len(_tasks_of(next(iter(engine_pids(tmp_path).values())))) == 2, 20
    )
    engine = next(iter(engine_pids(tmp_path).values()))
    first, _ = _tasks_of(engine)
    os.kill(first, signal.SIGTERM)
    time.sleep(0.1)  # the engine sees that task's death before its own signal
    os.kill(engine, signal.SIGTERM)
    # No engine is left: the run waits for one to be added (the job's end would have stopped the driver too).
    assert wait_for(lambda: len(read_status(status_path(tmp_path))) >= 2, 10)
    time.sleep(1)  # nothing more is recorded: no task was given to the leaving engine
    records = read_status(status_path(tmp_path))
    assert sorted(record.task_id for record in records) == [0, 1], records
    assert all(record.kind is RecordKind.INTERRUPTED for record in records), records
    driver.send_signal(signal.SIGTERM)
    driver.communicate(timeout=20)
