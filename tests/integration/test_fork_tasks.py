"""`--fork-tasks` through the real CLI: tasks forked by a long-lived bash per slot behave as the Readme says.

The task environment and the stops (Ctrl-C, SIGTERM, --fail-fast, no process left) run in both modes in
test_environment.py and test_stop.py; here: the task file's directives, resume, --timeout, --results, a command too
long to fork, a task stopped then continued, a task that kills its own slot shell, and what is measured.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from disbatch.results.record import LOST_RETURN_CODE, NO_PID, RecordKind

from ..conftest import Processes, disbatch_cmd
from .helpers import (
    by_task_id,
    no_traceback,
    read_status,
    run_disbatch,
    run_files,
    status_path,
    wait_for,
    write_task_file,
)

FORK = '--fork-tasks'


def forked_by_slot_shell(out_snippet: str) -> bool:
    """A task that printed `$$ $BASHPID` ran in a subshell (forked) when the two differ."""
    shell, own = out_snippet.strip("'").removesuffix('\\n').split()
    return shell != own


@pytest.mark.timeout(30)
def test_directives_prefix_suffix_repeat_barrier(procs: Processes, tmp_path: Path) -> None:
    write_task_file(
        tmp_path / 'Tasks',
        '#DISBATCH PREFIX echo "$$ $BASHPID" > pid_$DISBATCH_TASKID; echo pre \n'
        '#DISBATCH SUFFIX  post\n'
        'one\n'
        '#DISBATCH BARRIER\n'
        '#DISBATCH REPEAT 3 start 5 step 2 r$DISBATCH_REPEAT_INDEX\n',
    )
    result = run_disbatch(procs, tmp_path, FORK, '-s', 'localhost:2', 'Tasks')
    assert result.returncode == 0, result.describe()
    records = by_task_id(read_status(status_path(tmp_path)))
    assert {task_id: record.out_snippet for task_id, record in records.items()} == {
        0: "'pre one post\\n'",
        2: "'pre r5 post\\n'",
        3: "'pre r7 post\\n'",
        4: "'pre r9 post\\n'",
    }
    barrier = by_task_id(read_status(status_path(tmp_path)), RecordKind.BARRIER)
    assert set(barrier) == {1}
    assert records[2].start >= records[0].finish  # the barrier held the repeats until task 0 was done
    for task_id in records:
        assert forked_by_slot_shell(repr((tmp_path / f'pid_{task_id}').read_text())), task_id


@pytest.mark.timeout(60)
def test_resume_runs_the_failed_tasks_again(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'echo A >> count_A\necho B >> count_B; exit 1\necho C >> count_C\n')
    (tmp_path / 'run1').mkdir()
    first = run_disbatch(procs, tmp_path, FORK, '-s', 'localhost:2', '-p', 'run1/', 'Tasks')
    assert first.returncode == 0, first.describe()
    (tmp_path / 'run2').mkdir()
    first_status = str(status_path(tmp_path / 'run1'))
    again = run_disbatch(procs, tmp_path, FORK, '-s', 'localhost:2', '-p', 'run2/', '-r', first_status, '-R', 'Tasks')
    assert again.returncode == 0, again.describe()
    counts = {name: len((tmp_path / name).read_text().splitlines()) for name in ('count_A', 'count_B', 'count_C')}
    assert counts == {'count_A': 1, 'count_B': 2, 'count_C': 1}
    records = read_status(run_files(tmp_path / 'run2', 'status.txt')[0])
    assert by_task_id(records)[1].return_code == 1
    assert set(by_task_id(records, RecordKind.SKIPPED)) == {0, 2}


@pytest.mark.timeout(30)
def test_timeout_is_recorded_with_the_signal_the_engine_sent(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'sleep 100\necho fast\ntrap "" TERM; sleep 100\n')
    result = run_disbatch(procs, tmp_path, FORK, '-s', 'localhost:3', '--timeout', '1', 'Tasks')
    assert result.returncode == 0, result.describe()
    records = by_task_id(read_status(status_path(tmp_path)), RecordKind.TIMED_OUT)
    assert records[0].return_code == -signal.SIGTERM, records[0]  # as today, not 128 + 15
    assert records[2].return_code == -signal.SIGKILL, records[2]  # it ignored SIGTERM: KILL after the grace
    assert 1.0 <= records[0].elapsed < 2.5, records[0]
    assert by_task_id(read_status(status_path(tmp_path)))[1].out_snippet == "'fast\\n'"


@pytest.mark.timeout(30)
def test_results_files_and_the_task_own_signal(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'echo out; echo err >&2\nkill -USR1 $BASHPID\n')
    result = run_disbatch(procs, tmp_path, FORK, '-s', 'localhost:2', '--results', 'kept', 'Tasks')
    assert result.returncode == 0, result.describe()
    assert (tmp_path / 'kept' / '000000.1.out').read_text() == 'out\n'
    assert (tmp_path / 'kept' / '000000.1.err').read_text() == 'err\n'
    records = by_task_id(read_status(status_path(tmp_path)))
    assert records[1].return_code == 128 + signal.SIGUSR1  # its own death by a signal: bash's status (Readme)


@pytest.mark.timeout(30)
def test_a_10_kb_command_is_executed_as_usual(procs: Processes, tmp_path: Path) -> None:
    long_command = 'echo "$$ $BASHPID" # ' + 'x' * 10_000
    write_task_file(tmp_path / 'Tasks', f'{long_command}\necho "$$ $BASHPID"\n')
    result = run_disbatch(procs, tmp_path, FORK, '-s', 'localhost:1', 'Tasks')
    assert result.returncode == 0, result.describe()
    records = by_task_id(read_status(status_path(tmp_path)))
    assert not forked_by_slot_shell(records[0].out_snippet), records[0]  # over ~2 KB: bash -c, $$ its own
    assert forked_by_slot_shell(records[1].out_snippet), records[1]


@pytest.mark.timeout(30)
def test_a_stopped_then_continued_task_is_not_done_until_it_exits(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'echo $BASHPID > pid; kill -STOP $BASHPID; echo continued; exit 3\n')
    driver = procs.spawn(disbatch_cmd(FORK, '-s', 'localhost:1', 'Tasks'), cwd=tmp_path, stderr=subprocess.PIPE)
    assert wait_for(lambda: (tmp_path / 'pid').exists() and (tmp_path / 'pid').read_text().endswith('\n'), 15)
    pid = int((tmp_path / 'pid').read_text())
    assert wait_for(lambda: Path(f'/proc/{pid}/stat').read_text().rpartition(')')[2].split()[0] == 'T', 5)
    time.sleep(1.0)
    assert driver.poll() is None  # stopped is not done
    assert not run_files(tmp_path, 'status.txt') or not read_status(status_path(tmp_path))
    signal_sent = time.monotonic()
    os.kill(pid, signal.SIGCONT)
    _, stderr = driver.communicate(timeout=15)
    assert driver.returncode == 0, stderr
    (record,) = read_status(status_path(tmp_path))
    assert (record.return_code, record.out_snippet) == (3, "'continued\\n'"), record
    assert record.finish - record.start >= 1.0 and time.monotonic() - signal_sent < 10


@pytest.mark.timeout(30)
def test_a_task_that_kills_its_slot_shell_is_recorded_lost(procs: Processes, tmp_path: Path) -> None:
    # $$ is the slot shell under --fork-tasks ($PPID is the engine, in both modes)
    write_task_file(tmp_path / 'Tasks', 'kill -9 $$; sleep 100\necho "$$ $BASHPID"\necho "$$ $BASHPID"\n')
    result = run_disbatch(procs, tmp_path, FORK, '-s', 'localhost:1', '-e', 'Tasks', timeout=20)
    assert result.returncode != 0, result.describe()  # a lost attempt is not a success
    assert no_traceback(result.stderr), result.stderr
    assert result.seconds < 10, result.describe()  # its sleep was ended with it
    records = read_status(status_path(tmp_path))
    lost = [record for record in records if record.task_id == 0]
    assert [(record.pid, record.return_code) for record in lost] == [(NO_PID, LOST_RETURN_CODE)], lost
    assert 'slot shell' in lost[0].err_snippet
    others = by_task_id(records)
    assert all(others[task_id].return_code == 0 for task_id in (1, 2))
    assert all(forked_by_slot_shell(others[task_id].out_snippet) for task_id in (1, 2))  # a new slot shell
    assert wait_for(lambda: not procs.alive(), timeout=3.0), f'left running: {procs.alive()}'


@pytest.mark.timeout(30)
def test_cpu_is_measured_and_peak_memory_is_unknown(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'i=0; while ((i < 300000)); do ((i++)); done\ntrue\n')
    result = run_disbatch(procs, tmp_path, FORK, '-s', 'localhost:2', '--json', 'events.jsonl', 'Tasks')
    assert result.returncode == 0, result.describe()
    events = [json.loads(line) for line in (tmp_path / 'events.jsonl').read_text().splitlines()]
    tasks = {event['task_id']: event for event in events if event.get('event') == 'task_finished'}
    assert set(tasks) == {0, 1}, events
    assert all(event['max_rss_bytes'] is None for event in tasks.values())
    assert tasks[0]['user_seconds'] + tasks[0]['system_seconds'] > 0.1, tasks[0]
    assert 'peak memory: unknown' in result.stderr, result.stderr
