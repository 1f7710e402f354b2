"""`--retries N` and `--timeout SECONDS` through the real CLI (new in disbatch 4).

--retries: a task that fails (non-zero return code, or timed out) runs again, first in the queue, until it has run
1 + N times; every attempt is a status line, and the task sees its attempt number in `DISBATCH_ATTEMPT`.
--timeout: a task still running after SECONDS gets SIGTERM (its whole process group), SIGKILL 1 s later; it is
recorded with flag `T` and counts as failed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from disbatch.results.record import RecordKind, StatusRecord

from ..conftest import Processes
from .helpers import (
    messages,
    no_traceback,
    read_status,
    run_disbatch,
    status_lines,
    status_path,
    wait_for,
    write_task_file,
)

# Fails its first two runs, then succeeds: the counter file says how many times it ran.
FAILS_TWICE = (
    'n=$(( $(cat counter 2>/dev/null || echo 0) + 1 )); echo $n > counter; echo attempt $DISBATCH_ATTEMPT; [ $n -ge 3 ]'
)
ALWAYS_FAILS = 'echo attempt $DISBATCH_ATTEMPT; exit 3'


def records_of(records: list[StatusRecord], task_id: int) -> list[StatusRecord]:
    """The status lines of one task (every attempt), in file order (the order they finished in)."""
    return [record for record in records if record.task_id == task_id]


def sleepers_left(procs: Processes) -> list[int]:
    """Processes of this test still running `sleep 100`."""
    found = []
    for pid in procs.alive():
        try:
            words = Path(f'/proc/{pid}/cmdline').read_bytes().split(b'\0')
        except OSError:
            continue
        if words[0].rsplit(b'/', 1)[-1] == b'sleep' and words[1:2] == [b'100']:
            found.append(pid)
    return found


@pytest.mark.timeout(30)
def test_retries_run_a_failing_task_again_until_it_succeeds(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', FAILS_TWICE + '\necho other\n')
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '--retries', '2', '-e', 'Tasks')
    assert result.returncode == 0, result.describe()  # -e: the failures were retried away
    assert no_traceback(result.stderr), result.stderr
    records = read_status(status_path(tmp_path))
    attempts = records_of(records, 0)
    assert [record.out_snippet for record in attempts] == ["'attempt 1\\n'", "'attempt 2\\n'", "'attempt 3\\n'"]
    assert [record.return_code for record in attempts] == [1, 1, 0]
    assert all(record.kind is RecordKind.NORMAL for record in attempts)
    assert [line[:4] for line in status_lines(status_path(tmp_path)) if line.split('\t')[1] == '0'] == [
        'RO  ',
        'RO  ',
        ' O  ',
    ]
    assert (tmp_path / 'counter').read_text() == '3\n'
    [other] = records_of(records, 1)
    assert (other.return_code, other.out_snippet) == (0, "'other\\n'")
    assert len(records) == 4


@pytest.mark.timeout(30)
@pytest.mark.parametrize(('flags', 'exit_code'), [((), 0), (('-e',), 1)])
def test_retries_give_up_after_one_plus_retries_runs(
    procs: Processes, tmp_path: Path, flags: tuple[str, ...], exit_code: int
) -> None:
    write_task_file(tmp_path / 'Tasks', ALWAYS_FAILS + '\n')
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '--retries', '1', *flags, 'Tasks')
    assert result.returncode == exit_code, result.describe()
    assert no_traceback(result.stderr), result.stderr
    records = read_status(status_path(tmp_path))
    assert [(r.task_id, r.return_code, r.out_snippet) for r in records] == [
        (0, 3, "'attempt 1\\n'"),
        (0, 3, "'attempt 2\\n'"),
    ]


def test_sleepers_left_sees_a_running_sleep(procs: Processes, tmp_path: Path) -> None:
    procs.spawn(['bash', '-c', "trap '' TERM; sleep 100"], cwd=tmp_path)
    assert wait_for(lambda: len(sleepers_left(procs)) == 1, timeout=5.0)


@pytest.mark.timeout(30)
def test_timeout_stops_a_task_and_records_it_with_flag_t(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'sleep 100\necho fast\n')
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '--timeout', '1', 'Tasks')
    assert result.returncode == 0, result.describe()  # a timed-out task is a failure, and failures exit 0 without -e
    assert no_traceback(result.stderr), result.stderr
    assert wait_for(lambda: not sleepers_left(procs), timeout=1.0), f'left running: {sleepers_left(procs)}'
    records = read_status(status_path(tmp_path))
    [stopped] = records_of(records, 0)
    assert stopped.kind is RecordKind.TIMED_OUT
    assert stopped.return_code < 0, stopped  # killed by SIGTERM
    assert 1.0 <= stopped.elapsed < 2.5, stopped
    [line] = [line for line in status_lines(status_path(tmp_path)) if line.split('\t')[1] == '0']
    assert line.startswith('R  T\t0\t1\t')
    [fast] = records_of(records, 1)
    assert (fast.kind, fast.return_code, fast.out_snippet) == (RecordKind.NORMAL, 0, "'fast\\n'")
    assert result.seconds < 10, result.seconds


@pytest.mark.timeout(30)
def test_timeout_kills_a_task_that_ignores_sigterm(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', "trap '' TERM; sleep 100\n")
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '--timeout', '1', '-e', 'Tasks')
    assert result.returncode == 1, result.describe()  # -e: the timed-out task failed
    assert no_traceback(result.stderr), result.stderr
    assert wait_for(lambda: not sleepers_left(procs), timeout=1.0), f'left running: {sleepers_left(procs)}'
    [stopped] = read_status(status_path(tmp_path))
    assert stopped.kind is RecordKind.TIMED_OUT
    assert stopped.return_code == -9, stopped  # SIGTERM was ignored: SIGKILL after the 1 s grace
    assert 1.9 <= stopped.elapsed < 3.0, stopped
    assert status_lines(status_path(tmp_path))[0].startswith('R  T\t')


@pytest.mark.timeout(30)
def test_a_timed_out_task_is_retried(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'echo attempt $DISBATCH_ATTEMPT; [ "$DISBATCH_ATTEMPT" -ge 2 ] || sleep 100\n')
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '--timeout', '1', '--retries', '1', '-e', 'Tasks')
    assert result.returncode == 0, result.describe()
    records = read_status(status_path(tmp_path))
    assert [(r.kind, r.out_snippet) for r in records] == [
        (RecordKind.TIMED_OUT, "'attempt 1\\n'"),
        (RecordKind.NORMAL, "'attempt 2\\n'"),
    ]
    assert records[0].return_code < 0 and records[1].return_code == 0


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ('flag', 'value'),
    [('--retries', '-1'), ('--timeout', '-2')],
)
def test_bad_retries_or_timeout_is_a_one_line_usage_error(
    procs: Processes, tmp_path: Path, flag: str, value: str
) -> None:
    write_task_file(tmp_path / 'Tasks', 'touch ran\n')
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', flag, value, 'Tasks')
    assert result.returncode == 2, result.describe()
    lines = messages(result.stderr)
    assert len(lines) == 1, result.stderr
    assert f'{flag} {value}' in lines[0]
    assert not (tmp_path / 'ran').exists()
    assert list(tmp_path.glob('*_status.txt')) == []


@pytest.mark.timeout(30)
def test_a_timeout_that_is_not_a_number_is_a_usage_error(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'touch ran\n')
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '--timeout', 'nan', 'Tasks')
    assert result.returncode == 2, result.describe()
    assert len(messages(result.stderr)) == 1, result.stderr
    assert not (tmp_path / 'ran').exists()


@pytest.mark.timeout(30)
def test_a_timed_out_task_that_exits_0_on_sigterm_is_still_recorded_as_failed(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', "trap 'exit 0' TERM; sleep 100 & wait\n")
    finished = run_disbatch(procs, tmp_path, '-s', 'localhost:1', '--timeout', '1', 'Tasks', timeout=20)
    assert finished.returncode == 0, finished.describe()
    [record] = read_status(status_path(tmp_path))
    assert record.kind is RecordKind.TIMED_OUT
    assert record.return_code == -15  # the signal that stopped it, not the 0 it chose to exit with
    assert record.failed
