"""The real `disbatch` CLI on this machine (`-s localhost:N`): the task-file grammar end to end, the status file field
by field, the files a run leaves, `-p`, `-e`, `--version`, and bad input (reference §1.4, §2, §4, §5, §5.1, §8;
SPEC §2, §3, §6).

Every test runs in its own `tmp_path`; every process it starts is killed at teardown by the `procs` fixture.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import sys
import time
from pathlib import Path

import pytest

from disbatch import __version__
from disbatch.results.record import RecordKind, StatusRecord
from disbatch.results.status_line import HEADER

from ..conftest import Processes
from .helpers import (
    DEFAULT_STEM,
    EXAMPLES,
    by_task_id,
    messages,
    no_traceback,
    read_status,
    run_disbatch,
    run_files,
    short_hostname,
    sort_records,
    status_lines,
    status_path,
    stem_of,
    write_task_file,
)

LONG_OUTPUT = ''.join('abcdefghijklmnopqrstuvwxyz0123456789'[index % 36] for index in range(100))

# Every directive of the grammar. Line numbers matter: they are checked below.
EVERY_DIRECTIVE = (
    b'\n'.join(
        [
            b'# every directive',  # 1
            b'#DISBATCH PREFIX X=1; ',  # 2  trailing space kept
            b'#DISBATCH SUFFIX  ; true ',  # 3  one separator, then " ; true " verbatim
            b'#DISBATCH PERENGINE START echo pe-start',  # 4  P, START id 0
            b'#DISBATCH PERENGINE STOP echo pe-stop >&2',  # 5  P, STOP id 0
            b'echo a',  # 6  task 0 (prefix + suffix)
            b'#DISBATCH SUFFIX',  # 7  alone: clears the suffix (SPEC §3)
            b'#DISBATCH PREFIX ',  # 8  clears the prefix (reference form)
            b'echo out',  # 9  task 1: leaked stdout
            b'echo err >&2',  # 10 task 2: leaked stderr
            b'echo bad; echo worse >&2; exit 3',  # 11 task 3: fails, leaks both
            b'#DISBATCH BARRIER',  # 12 task 4
            b'printf %s ' + LONG_OUTPUT.encode(),  # 13 task 5: 100 bytes -> first40...last40
            b'echo "a\tb"',  # 14 task 6: a tab in the command
            b'#DISBATCH REPEAT 3 start 5 step 2 echo r$DISBATCH_REPEAT_INDEX',  # 15 tasks 7, 8, 9
            b'#DISBATCH PREFIX echo rep ',  # 16
            b'#DISBATCH REPEAT 2',  # 17 tasks 10, 11: no command, prefix only
            b'#DISBATCH PREFIX ',  # 18
            b'#DISBATCH REPEAT 0 start 1 echo never',  # 19 nothing
            b'#DISBATCH BARRIER CHECK',  # 20 task 12: nothing failed since line 12
            b'echo "z\xffz"',  # 21 task 13: not UTF-8
            b'#DISBATCH BARRIER mykey',  # 22 task 14
            b'echo last',  # 23 task 15
        ]
    )
    + b'\n'
)

NO_OUTPUT = (0, "''")


def expected_every_directive() -> list[tuple[object, ...]]:
    """(flags, kind, id, line, repeat, rc, out bytes, out snippet, err bytes, err snippet, command), sorted."""
    head, rest = LONG_OUTPUT[:40], LONG_OUTPUT[40:]

    def task(
        flags: str,
        task_id: int,
        line: int,
        command: str,
        out: tuple[int, str] = NO_OUTPUT,
        err: tuple[int, str] = NO_OUTPUT,
        rc: int = 0,
        repeat: int = -1,
        kind: RecordKind = RecordKind.NORMAL,
    ) -> tuple[object, ...]:
        return (flags, kind, task_id, line, repeat, rc, *out, *err, command)

    def barrier(flags: str, task_id: int, line: int, command: str) -> tuple[object, ...]:
        kind = RecordKind.BARRIER_CHECK if flags.startswith('C') else RecordKind.BARRIER
        return (flags, kind, task_id, line, -1, 0, *NO_OUTPUT, *NO_OUTPUT, command)

    rows = [
        task(' O P', 0, 4, 'X=1; echo pe-start ; true ', out=(9, "'pe-start\\n'"), kind=RecordKind.PER_ENGINE),
        task('  EP', 0, 5, 'X=1; echo pe-stop >&2 ; true ', err=(8, "'pe-stop\\n'"), kind=RecordKind.PER_ENGINE),
        task(' O  ', 0, 6, 'X=1; echo a ; true ', out=(2, "'a\\n'")),
        task(' O  ', 1, 9, 'echo out', out=(4, "'out\\n'")),
        task('  E ', 2, 10, 'echo err >&2', err=(4, "'err\\n'")),
        task('ROE ', 3, 11, 'echo bad; echo worse >&2; exit 3', out=(4, "'bad\\n'"), err=(6, "'worse\\n'"), rc=3),
        barrier('B    ', 4, 12, '#DISBATCH BARRIER'),
        task(' O  ', 5, 13, 'printf %s ' + LONG_OUTPUT, out=(100, repr(head + '...' + rest[-40:]))),
        task(' O  ', 6, 14, 'echo "a\tb"', out=(4, "'a\\tb\\n'")),
        task(' O  ', 7, 15, 'echo r$DISBATCH_REPEAT_INDEX', out=(3, "'r5\\n'"), repeat=5),
        task(' O  ', 8, 15, 'echo r$DISBATCH_REPEAT_INDEX', out=(3, "'r7\\n'"), repeat=7),
        task(' O  ', 9, 15, 'echo r$DISBATCH_REPEAT_INDEX', out=(3, "'r9\\n'"), repeat=9),
        task(' O  ', 10, 17, 'echo rep ', out=(4, "'rep\\n'"), repeat=0),
        task(' O  ', 11, 17, 'echo rep ', out=(4, "'rep\\n'"), repeat=1),
        barrier('C    ', 12, 20, '#DISBATCH BARRIER CHECK'),
        task(' O  ', 13, 21, 'echo "z\udcffz"', out=(4, repr('z\ufffdz\n'))),
        barrier('B    ', 14, 22, '#DISBATCH BARRIER mykey'),
        task(' O  ', 15, 23, 'echo last', out=(5, "'last\\n'")),
    ]
    order = {kind: position for position, kind in enumerate(RecordKind)}
    return sorted(rows, key=lambda row: (order[row[1]], row[2], row[3]))  # type: ignore[index]


def actual_row(flags: str, record: StatusRecord) -> tuple[object, ...]:
    return (
        flags,
        record.kind,
        record.task_id,
        record.line_number,
        record.repeat_index,
        record.return_code,
        record.out_bytes,
        record.out_snippet,
        record.err_bytes,
        record.err_snippet,
        record.command,
    )


@pytest.mark.timeout(30)
def test_every_directive_status_lines_field_by_field(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'All', EVERY_DIRECTIVE)
    started = time.time()
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:5', 'All')
    ended = time.time()
    assert result.returncode == 0, result.describe()
    path = status_path(tmp_path)
    lines = status_lines(path)
    records = read_status(path)
    flags = {(r.kind, r.task_id, r.line_number): line.split('\t', 1)[0] for r, line in zip(records, lines, strict=True)}
    rows = [actual_row(flags[(r.kind, r.task_id, r.line_number)], r) for r in sort_records(records)]
    expected = expected_every_directive()
    assert len(rows) == len(expected), '\n'.join(lines)
    for got, want in zip(rows, expected, strict=True):
        assert got == want
    # one line per task: ids 0..15 once over tasks and barriers; P lines have their own ids
    normal = by_task_id(records)
    barriers = {r.task_id for r in records if r.kind in (RecordKind.BARRIER, RecordKind.BARRIER_CHECK)}
    assert sorted([*normal, *barriers]) == list(range(16))
    assert not set(normal) & barriers
    host = short_hostname()
    for record in records:
        assert record.host == host
        assert abs(record.elapsed - (record.finish - record.start)) <= 0.002, record
        assert started - 1 <= record.start <= record.finish <= ended + 1, record
        if record.kind in (RecordKind.BARRIER, RecordKind.BARRIER_CHECK):
            assert record.pid == result.pid
        else:
            assert record.pid > 0 and record.pid != result.pid
    task_pids = [r.pid for r in records if r.kind is RecordKind.NORMAL]
    assert len(set(task_pids)) == len(task_pids)


@pytest.mark.timeout(30)
def test_example_one_bad_one_leaky(procs: Processes, tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / 'DBtasksOneBadOneLeaky', tmp_path / 'DBtasksOneBadOneLeaky')
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:5', 'DBtasksOneBadOneLeaky')
    assert result.returncode == 0, result.describe()
    records = read_status(status_path(tmp_path))
    tasks = by_task_id(records)
    assert {i: r.return_code for i, r in tasks.items() if r.return_code} == {1: 13, 11: 1}
    assert {i: r.repeat_index for i, r in tasks.items() if r.repeat_index != -1} == {
        7: 39,
        9: 49,
        10: 50,
        11: 51,
        12: 52,
        13: 53,
    }
    assert sorted(r.task_id for r in records if r.kind is RecordKind.BARRIER) == [3, 6, 14]
    assert sorted((r.task_id, r.line_number) for r in records if r.kind is RecordKind.PER_ENGINE) == [(0, 9), (0, 10)]
    assert (tasks[4].out_snippet, tasks[5].err_snippet) == (
        "'leaked to stdout by task 4\\n'",
        "'leaked to stderr by task 5\\n'",
    )
    logs = tmp_path / 'oneBadOneLeaky'
    assert (logs / 'task_000007.log').read_text() == 'repeat index 39\n'
    assert (logs / 'task_000008.log').read_text() == '000008 000028 -00001\n'
    assert (logs / 'last_task.txt').read_text() == 'last task done\n'
    assert tasks[15].command.endswith('echo "last task done" > last_task.txt')  # SUFFIX alone cleared it


@pytest.mark.timeout(30)
def test_status_header_is_the_first_line(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'echo one\necho two\n')
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '--status-header', 'Tasks')
    assert result.returncode == 0, result.describe()
    path = status_path(tmp_path)
    assert status_lines(path)[0] == HEADER
    records = read_status(path, header=True)
    assert sorted(r.command for r in records) == ['echo one', 'echo two']
    assert HEADER.split('\t') == [
        'ROE[ PSZ]', 'TaskID', 'LineNum', 'RepeatIndex', 'Node', 'PID', 'ReturnCode', 'Elapsed', 'Start', 'Finish',
        'BytesOfLeakedOutput', 'OutputSnippet', 'BytesOfLeakedError', 'ErrorSnippet', 'Command',
    ]  # fmt: skip


@pytest.mark.timeout(30)
def test_crlf_task_file(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', b'#DISBATCH PREFIX echo \r\none\r\ntwo\r\n\r\n# comment\r\n')
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', 'Tasks')
    assert result.returncode == 0, result.describe()
    records = by_task_id(read_status(status_path(tmp_path)))
    assert {i: (r.line_number, r.command, r.out_snippet) for i, r in records.items()} == {
        0: (2, 'echo one', "'one\\n'"),
        1: (3, 'echo two', "'two\\n'"),
    }


@pytest.mark.timeout(60)
def test_way_too_long_task(procs: Processes, tmp_path: Path) -> None:
    source = EXAMPLES / 'WayTooLongTask'
    shutil.copy(source, tmp_path / 'WayTooLongTask')
    command = source.read_bytes().decode().rstrip('\n')
    assert len(command) > 320_000
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', 'WayTooLongTask', timeout=50)
    assert result.returncode == 0, result.describe()
    (record,) = read_status(status_path(tmp_path))
    assert (record.task_id, record.line_number, record.return_code) == (0, 1, 0)
    assert record.command == command
    assert (record.out_bytes, record.out_snippet) == (20, "'WayTooLongTask done\\n'")
    assert record.err_bytes == 0


@pytest.mark.timeout(30)
def test_tasks_from_stdin(procs: Processes, tmp_path: Path) -> None:
    result = run_disbatch(
        procs, tmp_path, '-s', 'localhost:2', '-', input='echo $DISBATCH_NAMETASKS\n#DISBATCH REPEAT 2 echo r\n'
    )
    assert result.returncode == 0, result.describe()
    path = status_path(tmp_path)
    match = DEFAULT_STEM.fullmatch(Path(stem_of(path)).name)
    assert match is not None and match['name'] == 'stdin'
    records = by_task_id(read_status(path))
    assert {i: (r.line_number, r.repeat_index, r.out_snippet) for i, r in records.items()} == {
        0: (1, -1, "'stdin\\n'"),
        1: (2, 0, "'r\\n'"),
        2: (2, 1, "'r\\n'"),
    }


@pytest.mark.timeout(30)
def test_empty_task_file(procs: Processes, tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / 'emptyTaskFile', tmp_path / 'emptyTaskFile')
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', 'emptyTaskFile')
    assert result.returncode == 0, result.describe()
    assert 'No tasks to run.' in result.stderr
    assert status_path(tmp_path).read_bytes() == b''
    assert len(run_files(tmp_path, 'dbUtil.sh')) == 1
    assert len(run_files(tmp_path, 'driver.log')) == 1
    assert run_files(tmp_path, 'kvsinfo.txt') == []


@pytest.mark.timeout(30)
def test_dev_null_exits_zero(procs: Processes, tmp_path: Path) -> None:
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '/dev/null')
    assert result.returncode == 0, result.describe()
    assert 'No tasks to run.' in result.stderr


@pytest.mark.timeout(30)
def test_default_file_names(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'touch A.txt\ntouch B.txt\ntouch C.txt\n')
    before = time.time()
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', 'Tasks')
    assert result.returncode == 0, result.describe()
    assert all((tmp_path / name).exists() for name in ('A.txt', 'B.txt', 'C.txt'))
    stem = Path(stem_of(status_path(tmp_path)))
    assert stem.parent == tmp_path.resolve()
    match = DEFAULT_STEM.fullmatch(stem.name)
    assert match is not None and match['name'] == 'Tasks', stem.name
    stamp = time.mktime(time.strptime(match['when'], '%y%m%d%H%M%S'))
    assert before - 2 <= stamp <= time.time() + 1
    for suffix in ('status.txt', 'driver.log', 'dbUtil.sh'):
        assert Path(f'{stem}_{suffix}').is_file(), suffix
    mode = stat.S_IMODE(os.stat(f'{stem}_dbUtil.sh').st_mode)
    assert mode == 0o700, oct(mode)
    assert not Path(f'{stem}_kvsinfo.txt').exists()
    assert run_files(tmp_path, 'kvsinfo.txt') == []


@pytest.mark.timeout(30)
def test_prefix_directory(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'true\n')
    (tmp_path / 'out').mkdir()
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '-p', 'out/', 'Tasks')
    assert result.returncode == 0, result.describe()
    stem = Path(stem_of(status_path(tmp_path / 'out')))
    match = DEFAULT_STEM.fullmatch(stem.name)
    assert match is not None and match['name'] == 'Tasks'
    assert run_files(tmp_path, 'status.txt') == []
    assert Path(f'{stem}_dbUtil.sh').is_file()
    assert Path(f'{stem}_driver.log').is_file()


@pytest.mark.timeout(30)
def test_prefix_directory_and_name(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'true\n')
    (tmp_path / 'out').mkdir()
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '-p', 'out/myrun', 'Tasks')
    assert result.returncode == 0, result.describe()
    for suffix in ('status.txt', 'driver.log', 'dbUtil.sh'):
        assert (tmp_path / 'out' / f'myrun_{suffix}').is_file(), suffix
    assert len(read_status(tmp_path / 'out' / 'myrun_status.txt')) == 1


@pytest.mark.timeout(30)
def test_prefix_directory_that_cannot_be_made(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'touch ran.txt\n')
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '-p', 'Tasks/missing/', 'Tasks')
    assert result.returncode != 0, result.describe()
    assert len(messages(result.stderr)) == 1, result.stderr
    assert 'missing' in result.stderr
    assert no_traceback(result.stderr)
    assert not (tmp_path / 'ran.txt').exists()
    assert list(tmp_path.iterdir()) == [tmp_path / 'Tasks']


@pytest.mark.timeout(30)
def test_exit_code_flag_with_a_failure(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'true\nexit 5\n')
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '-e', 'Tasks')
    assert result.returncode == 1, result.describe()
    assert 'Some tasks failed with non-zero exit codes' in result.stderr
    assert {r.task_id: r.return_code for r in read_status(status_path(tmp_path))} == {0: 0, 1: 5}


@pytest.mark.timeout(30)
def test_failed_task_without_exit_code_flag_exits_zero(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'true\nexit 5\n')
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', 'Tasks')
    assert result.returncode == 0, result.describe()


@pytest.mark.timeout(30)
def test_logfile_flag(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'true\n')
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:1', '--logfile', 'my.log', 'Tasks')
    assert result.returncode == 0, result.describe()
    assert 'run over' in (tmp_path / 'my.log').read_text()
    assert run_files(tmp_path, 'driver.log') == []


@pytest.mark.timeout(30)
@pytest.mark.parametrize('flags', [['-c', '0'], ['-c', '-1'], ['-t', '0'], ['-R'], ['--force-resume']])
def test_bad_flag_values(procs: Processes, tmp_path: Path, flags: list[str]) -> None:
    write_task_file(tmp_path / 'Tasks', 'touch marker\n')
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', *flags, 'Tasks')
    assert result.returncode == 2, result.describe()
    assert flags[0] in result.stderr and no_traceback(result.stderr), result.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / 'Tasks']


@pytest.mark.timeout(30)
def test_version(procs: Processes, tmp_path: Path) -> None:
    result = run_disbatch(procs, tmp_path, '--version')
    assert result.returncode == 0, result.describe()
    assert result.stdout.strip() == __version__
    assert list(tmp_path.iterdir()) == []


@pytest.mark.timeout(30)
def test_barrier_check_after_a_failure_ends_the_run(procs: Processes, tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / 'barrierCheckFail', tmp_path / 'barrierCheckFail')
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', 'barrierCheckFail')
    assert result.returncode == 0, result.describe()
    assert not list(tmp_path.glob('barrierCheckFail_must_not_exist_*'))
    records = read_status(status_path(tmp_path))
    assert {r.task_id: r.return_code for r in records if r.kind is RecordKind.NORMAL} == {0: 0, 1: 13, 2: 0}
    (check,) = [r for r in records if r.kind is RecordKind.BARRIER_CHECK]
    assert (check.task_id, check.line_number, check.command) == (3, 5, '#DISBATCH BARRIER CHECK')
    assert len(records) == 4


@pytest.mark.timeout(30)
def test_barrier_check_after_a_failure_with_exit_code_flag(procs: Processes, tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / 'barrierCheckFail', tmp_path / 'barrierCheckFail')
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '-e', 'barrierCheckFail')
    assert result.returncode == 1, result.describe()
    assert not list(tmp_path.glob('barrierCheckFail_must_not_exist_*'))


@pytest.mark.timeout(30)
def test_barrier_waits_for_every_earlier_task(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'sleep 0.3; touch slow\n#DISBATCH BARRIER\ntest -e slow\n')
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:3', 'Tasks')
    assert result.returncode == 0, result.describe()
    records = {r.task_id: r for r in read_status(status_path(tmp_path))}
    assert records[2].return_code == 0
    assert records[0].finish <= records[1].finish <= records[2].start + 0.002


@pytest.mark.timeout(30)
def test_barrier_key_is_put_in_the_kvs(procs: Processes, tmp_path: Path) -> None:
    reader = (
        f'{shlex.quote(sys.executable)} -c "import os; from disbatch.kvsstcp.client import KVSClient; '
        "client = KVSClient.from_address(os.environ['DISBATCH_KVSSTCP_HOST'], timeout=5); "
        "print(client.view('mykey')[1].decode())\""
    )
    write_task_file(tmp_path / 'Tasks', f'true\ntrue\n#DISBATCH BARRIER CHECK mykey\n{reader}\n')
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', 'Tasks')
    assert result.returncode == 0, result.describe()
    records = read_status(status_path(tmp_path))
    (check,) = [r for r in records if r.kind is RecordKind.BARRIER_CHECK]
    assert (check.task_id, check.command) == (2, '#DISBATCH BARRIER CHECK mykey')
    assert by_task_id(records)[3].out_snippet == "'2\\n'"  # str(task id of the barrier)


@pytest.mark.timeout(30)
def test_barrier_is_case_insensitive(procs: Processes, tmp_path: Path) -> None:
    # the reference ignored `#DISBATCH barrier` (an unknown directive); SPEC §3 makes it a barrier
    write_task_file(tmp_path / 'Tasks', 'sleep 0.2; touch first\n#DISBATCH barrier\ntest -e first\n')
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', 'Tasks')
    assert result.returncode == 0, result.describe()
    records = read_status(status_path(tmp_path))
    assert [(r.kind, r.task_id) for r in records if r.kind is RecordKind.BARRIER] == [(RecordKind.BARRIER, 1)]
    assert by_task_id(records)[2].return_code == 0


# ---------------------------------------------------------------- bad input


BAD_TASK_FILES = {
    'unknown directive': ('touch marker\necho fine\n#DISBATCH FOO bar\necho after\n', 3),
    'bad REPEAT': ('touch marker\n#DISBATCH REPEAT x echo y\n', 2),
    'REPEAT with negative count': ('touch marker\n\n#DISBATCH REPEAT -2 echo y\n', 3),
    'late PERENGINE': ('touch marker\n# the per-engine block is closed\n#DISBATCH PERENGINE START echo late\n', 3),
    'PERENGINE without a phase': ('#DISBATCH PERENGINE echo x\ntouch marker\n', 1),
    'BARRIER with two keys': ('touch marker\n#DISBATCH BARRIER a b\n', 2),
    'marker glued to a word': ('touch marker\n#DISBATCHFOO\n', 2),
    'directive at the end of a long file': ('touch marker\n' + 'true\n' * 500 + '#DISBATCH BOGUS\n', 502),
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize('case', list(BAD_TASK_FILES))
def test_malformed_directive_is_reported_before_anything_runs(procs: Processes, tmp_path: Path, case: str) -> None:
    text, line = BAD_TASK_FILES[case]
    write_task_file(tmp_path / 'Tasks', text)
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', 'Tasks')
    assert result.returncode != 0, result.describe()
    assert f'Tasks:{line}: ' in result.stderr, result.stderr
    assert len(messages(result.stderr)) == 1, result.stderr
    assert no_traceback(result.stderr)
    assert not (tmp_path / 'marker').exists()
    assert run_files(tmp_path, 'status.txt') == []


@pytest.mark.timeout(30)
def test_late_perengine_example(procs: Processes, tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / 'latePETask', tmp_path / 'latePETask')
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', 'latePETask')
    assert result.returncode != 0, result.describe()
    assert 'latePETask:4: ' in result.stderr, result.stderr
    assert run_files(tmp_path, 'status.txt') == []


@pytest.mark.timeout(30)
def test_missing_task_file(procs: Processes, tmp_path: Path) -> None:
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', 'NoSuchTasks')
    assert result.returncode != 0, result.describe()
    assert 'NoSuchTasks' in result.stderr
    assert len(messages(result.stderr)) == 1, result.stderr
    assert no_traceback(result.stderr)
    assert run_files(tmp_path, 'status.txt') == []


@pytest.mark.timeout(30)
def test_missing_task_file_leaves_no_files(procs: Processes, tmp_path: Path) -> None:
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', 'NoSuchTasks')
    assert result.returncode != 0, result.describe()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.timeout(30)
@pytest.mark.parametrize('item', ['localhost', 'localhost:x', 'localhost:0', ':4', 'localhost:2,bad'])
def test_bad_node_list_item(procs: Processes, tmp_path: Path, item: str) -> None:
    write_task_file(tmp_path / 'Tasks', 'touch marker\n')
    result = run_disbatch(procs, tmp_path, '-s', item, 'Tasks')
    assert result.returncode != 0, result.describe()
    shown = item.split(',')[-1]
    assert f'-s {shown!r}' in result.stderr or f'-s {shown}' in result.stderr, result.stderr
    assert len(messages(result.stderr)) == 1, result.stderr
    assert no_traceback(result.stderr)
    assert not (tmp_path / 'marker').exists()


@pytest.mark.timeout(30)
def test_no_execution_environment(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'touch marker\n')
    environment = {name: '' for name in ('SLURM_JOBID', 'SLURM_JOB_ID', 'DISBATCH_SSH_NODELIST')}
    result = run_disbatch(procs, tmp_path, 'Tasks', env=environment)
    assert result.returncode == 1, result.describe()
    assert 'Cannot determine batch execution environment' in result.stderr
    assert not (tmp_path / 'marker').exists()


@pytest.mark.timeout(30)
def test_nodes_from_environment(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'touch marker\n')
    result = run_disbatch(procs, tmp_path, 'Tasks', env={'DISBATCH_SSH_NODELIST': 'localhost:2'})
    assert result.returncode == 0, result.describe()
    assert (tmp_path / 'marker').exists()


@pytest.mark.timeout(30)
def test_an_outside_task_server_that_is_not_there(procs: Processes, tmp_path: Path) -> None:
    # --taskserver HOST:PORT is supported now (issue 10): a server that does not answer is one line, exit 1
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '--taskserver', 'localhost:1')
    assert result.returncode == 1, result.describe()
    assert 'localhost:1' in result.stderr and no_traceback(result.stderr), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.timeout(30)
def test_bare_kvsserver_is_refused(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'touch marker\n')
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', 'Tasks', '--kvsserver')
    assert result.returncode == 2, result.describe()
    assert '--kvsserver' in result.stderr, result.stderr
    assert not (tmp_path / 'marker').exists()
