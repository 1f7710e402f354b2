"""The embedded API, `DisBatcher`: how results are handed out, and the run's lifetime bound to its owner's.

Each test runs a real Python script that uses the API (which starts the real `disbatch --taskserver`), with real
bash tasks.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from disbatch.results.record import RecordKind

from ..conftest import Processes
from .helpers import read_status, status_path, wait_for, write_task_file

# The bound: once the program that made the DisBatcher is dead, nothing of its run is left this much later.
GONE_WITHIN_SECONDS = 15.0
# One quick task the script collects, then two long ones that say when they have started (so the test knows the
# run is in full swing), then the script waits for what the test does to it.
TWO_SLEEPS = """\
batcher.submit('echo quick')
batcher.wait_one_task()
for n in (1, 2):
    batcher.submit(f'touch started_{n}; sleep 300')
while not all(os.path.exists(f'started_{n}') for n in (1, 2)):
    time.sleep(0.05)
"""

pytestmark = pytest.mark.timeout(60)


def _script(path: Path, body: str) -> Path:
    header = 'import glob\nimport json\nimport os\nimport sys\nimport time\nfrom disbatch import DisBatcher\n'
    return write_task_file(path, header + textwrap.dedent(body))


def _make(name: str) -> str:
    return f"batcher = DisBatcher(tasksname='{name}', args=['-s', 'localhost:2'])\n"


def _what_finished(directory: Path) -> list[tuple[int, RecordKind]]:
    return sorted((record.task_id, record.kind) for record in read_status(status_path(directory)))


THE_QUICK_ONE_DONE_THE_SLEEPS_INTERRUPTED = [
    (0, RecordKind.NORMAL),
    (1, RecordKind.INTERRUPTED),
    (2, RecordKind.INTERRUPTED),
]


def test_the_reference_dbertest_flow_sync_then_wait_one_task_gets_the_new_ids(procs: Processes, tmp_path: Path) -> None:
    """The reference's dberTest.py flow: syncTasks collects the first tasks, so wait_one_task hands out only the ones
    submitted after (each finished task is handed out once, by one or the other)."""
    script = _script(
        tmp_path / 'dber.py',
        """
        batcher = DisBatcher(tasksname='dber', args=['-s', 'localhost:2'])
        squares = [batcher.submit(f'echo $(({n} * {n}))') for n in range(4)]
        synced = batcher.syncTasks(squares)
        batcher.submit('#DISBATCH REPEAT 4 start 100 step 3 echo $((DISBATCH_REPEAT_INDEX ** 3))')
        later = [batcher.wait_one_task() for _ in range(4)]
        again = batcher.syncTasks([1, 5])  # a result already handed out is still there to sync on
        print(json.dumps({
            'squares': squares,
            'synced': {task_id: report['OutData'].strip() for task_id, report in synced.items()},
            'later': sorted((report['TaskId'], report['OutData'].strip()) for report in later),
            'again': sorted(again),
        }))
        sys.exit(batcher.done())
        """,
    )
    result = procs.run([sys.executable, str(script)], cwd=tmp_path, timeout=45)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out['squares'] == [0, 1, 2, 3]
    assert out['synced'] == {'0': '0', '1': '1', '2': '4', '3': '9'}
    assert out['later'] == [[4, '1000000'], [5, '1092727'], [6, '1191016'], [7, '1295029']]
    assert out['again'] == [1, 5]


def test_a_sigkilled_owner_leaves_nothing_of_its_run_behind(procs: Processes, tmp_path: Path) -> None:
    script = _script(
        tmp_path / 'killed.py', _make('killed') + TWO_SLEEPS + "print('running', flush=True)\ntime.sleep(300)\n"
    )
    owner = procs.spawn([sys.executable, str(script)], cwd=tmp_path, stdout=subprocess.PIPE)
    assert owner.stdout is not None and owner.stdout.readline() == 'running\n'
    assert len(procs.alive()) >= 5  # the owner, the driver, its engine, the two tasks
    owner.send_signal(signal.SIGKILL)
    owner.wait(timeout=5)
    assert wait_for(lambda: not procs.alive(), timeout=GONE_WITHIN_SECONDS), f'left running: {procs.alive()}'
    assert _what_finished(tmp_path) == THE_QUICK_ONE_DONE_THE_SLEEPS_INTERRUPTED


def test_an_owner_that_raises_without_done_ends_its_run_and_its_pipe(procs: Processes, tmp_path: Path) -> None:
    """`python x.py | tail` returns: nothing of the run holds the script's stdout or stderr after it died."""
    script = _script(
        tmp_path / 'raises.py', _make('raises') + TWO_SLEEPS + "raise RuntimeError('the program failed')\n"
    )
    started = time.monotonic()
    result = procs.run(['/bin/bash', '-c', f'{sys.executable} {script} 2>&1 | tail -n 40'], cwd=tmp_path, timeout=40)
    assert time.monotonic() - started < 10 + GONE_WITHIN_SECONDS, result.stdout  # tasks start within 10 s
    assert 'RuntimeError: the program failed' in result.stdout
    assert wait_for(lambda: not procs.alive(), timeout=2), f'left running: {procs.alive()}'
    assert _what_finished(tmp_path) == THE_QUICK_ONE_DONE_THE_SLEEPS_INTERRUPTED


def test_an_exception_that_leaves_the_with_block_stops_the_run_first(procs: Processes, tmp_path: Path) -> None:
    script = _script(
        tmp_path / 'with.py',
        "try:\n    with DisBatcher(tasksname='with', args=['-s', 'localhost:2']) as batcher:\n"
        + textwrap.indent(TWO_SLEEPS, '        ')
        + """        raise RuntimeError('the program failed')
except RuntimeError as error:
    print(f'{error}; the run is over: {not glob.glob("*_kvsinfo.txt")}')  # the file is there while the run lives
""",
    )
    result = procs.run([sys.executable, str(script)], cwd=tmp_path, timeout=40)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'the program failed; the run is over: True'
    assert _what_finished(tmp_path) == THE_QUICK_ONE_DONE_THE_SLEEPS_INTERRUPTED
