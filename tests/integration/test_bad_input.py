"""Bad input, end to end (SPEC §6): every case gets a clear one-line error naming what and where, a non-zero exit
when the run cannot proceed and nothing run where it cannot; or, where the input is legal but odd (tabs, invalid
UTF-8, binary junk), a run that records exactly what happened. No traceback anywhere: not on stderr, not in any log.
"""

from __future__ import annotations

import ast
import os
import random
import socket
from pathlib import Path

import pytest

from disbatch.results.record import RecordKind, StatusRecord
from disbatch.taskfile import Task, parse_stream

from ..conftest import Processes
from .helpers import (
    Finished,
    by_task_id,
    messages,
    no_traceback,
    read_status,
    run_disbatch,
    run_files,
    status_lines,
    status_path,
    write_task_file,
)

LOST = -100  # the return code of a task whose engine was lost
ABSENT_IP = '10.250.0.99'  # on the test cluster's subnet, no host behind it


def logs_without_traceback(directory: Path) -> None:
    for log in directory.glob('*.log'):
        text = log.read_text(errors='replace')
        assert no_traceback(text), f'{log.name}:\n{text}'


def one_line_error(result: Finished, *names: str) -> str:
    """The run failed with one line on stderr that names every one of `names`."""
    assert result.returncode != 0, result.describe()
    assert no_traceback(result.stderr), result.stderr
    lines = messages(result.stderr)
    assert len(lines) == 1, result.describe()
    for name in names:
        assert name in lines[0], f'{name!r} not named in {lines[0]!r}'
    return lines[0]


def nothing_ran(directory: Path, *inputs: str) -> None:
    """No task ran and no run file was left: only the inputs are in `directory`."""
    assert sorted(path.name for path in directory.iterdir()) == sorted(inputs)


def expected_tasks(content: bytes) -> list[Task]:
    """The tasks of a task file, numbered as the driver numbers them: file lines end at `\\n` only."""
    file_lines = [line + b'\n' for line in content.split(b'\n')[:-1]]
    return [item for item in parse_stream(file_lines, 'Tasks') if isinstance(item, Task)]


# ------------------------------------------------------------------------------------------- task files


@pytest.mark.timeout(30)
def test_nul_byte_in_a_command_is_refused_before_anything_runs(procs: Processes, tmp_path: Path) -> None:
    # a command holding NUL cannot be handed to bash (argv strings end at NUL)
    write_task_file(tmp_path / 'Tasks', b'touch ran\necho a\x00b\necho ok\n')
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', 'Tasks')
    line = one_line_error(result, 'Tasks:2:')
    assert 'NUL' in line, line
    assert not (tmp_path / 'ran').exists()
    assert run_files(tmp_path, 'status.txt') == []
    logs_without_traceback(tmp_path)


@pytest.mark.timeout(30)
def test_nul_byte_in_a_directive_is_refused_before_anything_runs(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', b'touch ran\n#DISBATCH SUFFIX ; echo \x00\necho ok\n')
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', 'Tasks')
    line = one_line_error(result, 'Tasks:2:')
    assert 'NUL' in line, line
    assert not (tmp_path / 'ran').exists()
    assert run_files(tmp_path, 'status.txt') == []
    logs_without_traceback(tmp_path)


@pytest.mark.timeout(30)
def test_nul_byte_in_a_command_read_from_stdin(procs: Processes, tmp_path: Path) -> None:
    # a stream is read as it runs: what came before the bad line was handed out, nothing after it is; the bad line
    # stops the run as Ctrl-C does (issue 22): a task still running then is recorded interrupted, not failed
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '-', input=b'echo ok\necho a\x00b\ntouch ran\n')
    line = one_line_error(result, '<stdin>:2:')
    assert 'NUL' in line, line
    assert not (tmp_path / 'ran').exists()
    [record] = read_status(status_path(tmp_path))
    assert record.task_id == 0 and not record.failed, record
    assert record.return_code == 0 or record.kind is RecordKind.INTERRUPTED, record
    logs_without_traceback(tmp_path)


@pytest.mark.timeout(30)
def test_binary_junk_task_file_runs_each_line_as_a_command(procs: Processes, tmp_path: Path) -> None:
    chance = random.Random(20240611)
    # no NUL (see test_nul_byte_in_a_command); bytes.splitlines also splits at \r, \x0b, ... as the reference does
    lines = [bytes(chance.choice(range(1, 256)) for _ in range(24)).replace(b'\n', b'') for _ in range(30)]
    content = b'\n'.join(b'x' + line for line in lines) + b'\n'  # `x...`: never a comment nor a directive
    write_task_file(tmp_path / 'Tasks', content)
    expected = expected_tasks(content)
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', 'Tasks')
    assert result.returncode == 0, result.describe()
    assert no_traceback(result.stderr), result.stderr
    logs_without_traceback(tmp_path)
    tasks = by_task_id(read_status(status_path(tmp_path)))
    assert sorted(tasks) == [task.task_id for task in expected]
    for task in expected:
        record = tasks[task.task_id]
        assert record.command == task.command and record.line_number == task.line_number, record
        assert record.return_code not in (0, LOST) and record.pid > 0, record  # bash ran it and it failed


@pytest.mark.timeout(30)
def test_task_file_that_is_a_directory(procs: Processes, tmp_path: Path) -> None:
    (tmp_path / 'taskdir').mkdir()
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', 'taskdir')
    one_line_error(result, 'taskdir', 'directory')
    nothing_ran(tmp_path, 'taskdir')


@pytest.mark.timeout(30)
def test_missing_task_file(procs: Processes, tmp_path: Path) -> None:
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', 'NoSuchTasks')
    line = one_line_error(result, 'NoSuchTasks')
    assert line.startswith('disbatch: NoSuchTasks: '), line  # the whole file: no ':0:' line number
    nothing_ran(tmp_path)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ('typed', 'meant'), [('--ssh-nodes', '--ssh-node'), ('--fail-fats', '--fail-fast'), ('--mailto', '--mailTo')]
)
def test_a_misspelled_flag_gets_one_line_naming_the_flag_it_is_close_to(
    procs: Processes, tmp_path: Path, typed: str, meant: str
) -> None:
    write_task_file(tmp_path / 'Tasks', 'touch ran\n')
    result = run_disbatch(procs, tmp_path, typed, 'localhost:2', 'Tasks')
    assert result.returncode == 2, result.describe()
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and 'usage:' not in result.stderr, result.describe()
    assert f'unrecognized arguments: {typed}' in lines[0] and f'(did you mean {meant}?)' in lines[0], lines
    assert not (tmp_path / 'ran').exists()


@pytest.mark.timeout(30)
@pytest.mark.parametrize('prefix', ['Tasks/', 'Tasks/name', 'Tasks/deeper/'])
def test_prefix_in_a_directory_that_cannot_be_made(procs: Processes, tmp_path: Path, prefix: str) -> None:
    write_task_file(tmp_path / 'Tasks', 'touch ran\n')
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '-p', prefix, 'Tasks')
    one_line_error(result, '-p', 'Tasks', 'cannot make the directory')
    nothing_ran(tmp_path, 'Tasks')


@pytest.mark.timeout(30)
@pytest.mark.parametrize('prefix', ['nodir/', 'nodir/name', 'nodir/deeper/'])
def test_a_missing_prefix_directory_is_made_like_the_results_directory(
    procs: Processes, tmp_path: Path, prefix: str
) -> None:
    write_task_file(tmp_path / 'Tasks', 'touch ran\n')
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '-p', prefix, 'Tasks')
    assert result.returncode == 0, result.describe()
    assert (tmp_path / 'ran').exists()
    directory = tmp_path / prefix if prefix.endswith('/') else (tmp_path / prefix).parent
    assert directory.is_dir() and (directory.stat().st_mode & 0o777) == 0o700
    assert run_files(directory, 'status.txt')


# ------------------------------------------------------------------------------------------- --use-address


@pytest.mark.timeout(30)
def test_use_address_whose_port_is_taken(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'touch ran\n')
    with socket.create_server(('127.0.0.1', 0)) as taken:
        port = taken.getsockname()[1]
        result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '--use-address', f'127.0.0.1:{port}', 'Tasks')
    one_line_error(result, '--use-address', f'127.0.0.1:{port}', 'Address already in use')
    assert not (tmp_path / 'ran').exists()
    logs_without_traceback(tmp_path)
    assert procs.alive() == []


@pytest.mark.timeout(30)
def test_use_address_that_is_not_this_machine(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'touch ran\n')
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '--use-address', f'{ABSENT_IP}:0', 'Tasks')
    one_line_error(result, '--use-address', ABSENT_IP, 'cannot listen there')
    assert not (tmp_path / 'ran').exists()
    logs_without_traceback(tmp_path)
    assert procs.alive() == []


# ------------------------------------------------------------------------------------------- -s lists


@pytest.mark.timeout(30)
@pytest.mark.parametrize('item', ['localhost', 'localhost:0', ':4', 'host:x', 'localhost:-2'])
def test_malformed_node_list_item(procs: Processes, tmp_path: Path, item: str) -> None:
    write_task_file(tmp_path / 'Tasks', 'touch ran\n')
    result = run_disbatch(procs, tmp_path, '-s', item, 'Tasks')
    line = one_line_error(result, '-s')
    assert repr(item) in line or item in line, line
    nothing_ran(tmp_path, 'Tasks')


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ('item', 'reason'),
    [
        ('x' * 300 + ':1', 'at most 253 characters'),
        ('a/b:1', 'labels of letters'),
        ('localhost:99999999999999999999', 'core count 99999999999999999999 is over'),
        ('-oProxyCommand=touch ran:1', 'cannot begin with "-"'),
    ],
    ids=['300-characters', 'slash', 'huge-count', 'dash'],
)
def test_hostile_host_name_is_a_usage_error(procs: Processes, tmp_path: Path, item: str, reason: str) -> None:
    # each would reach a log file name, ssh's command line or an engine's slot list: refused before anything runs
    write_task_file(tmp_path / 'Tasks', 'touch ran\n')
    result = run_disbatch(procs, tmp_path, '-s', item, 'Tasks')
    line = one_line_error(result, '-s', repr(item), reason)
    assert result.returncode == 2, result.describe()
    assert line.startswith('disbatch: -s '), line
    nothing_ran(tmp_path, 'Tasks')


@pytest.mark.cluster
@pytest.mark.timeout(40)
def test_only_host_is_unreachable(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'touch ran\n')
    result = run_disbatch(procs, tmp_path, '-s', f'{ABSENT_IP}:2', 'Tasks', timeout=30)
    assert result.returncode != 0, result.describe()
    assert result.seconds < 15, f'took {result.seconds:.1f} s\n{result.describe()}'
    assert no_traceback(result.stderr), result.stderr
    assert any(ABSENT_IP in line for line in result.stderr.splitlines()), result.stderr
    assert len(messages(result.stderr)) <= 3, result.stderr  # the host's failure and the run's end
    assert not (tmp_path / 'ran').exists()
    assert [record for record in read_status(status_path(tmp_path)) if record.pid > 0] == []
    logs_without_traceback(tmp_path)


# ------------------------------------------------------------------------------------------- -r files


@pytest.mark.timeout(30)
@pytest.mark.parametrize('kind', ['binary', 'task file', 'missing', 'directory'])
def test_resume_from_something_that_is_not_a_status_file(procs: Processes, tmp_path: Path, kind: str) -> None:
    write_task_file(tmp_path / 'Tasks', 'touch ran\n')
    name = 'old_status.txt'
    inputs = ['Tasks']
    if kind == 'binary':
        write_task_file(tmp_path / name, bytes(random.Random(7).randrange(256) for _ in range(3000)))
    elif kind == 'task file':
        name = 'Tasks'
    elif kind == 'directory':
        (tmp_path / name).mkdir()
    if kind not in ('missing', 'task file'):
        inputs.append(name)
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '-r', name, 'Tasks')
    line = one_line_error(result, name)
    if kind in ('binary', 'task file'):
        assert f'{name}:1:' in line, line  # file and line
    nothing_ran(tmp_path, *inputs)


# ------------------------------------------------------------------------------------------- odd but legal


ODD = (
    b'echo\ta\tb\n'  # tabs in the command (the Command column is the last one: tabs are fine there)
    b'printf "l1\\nl2\\n\\377\\376x"\n'  # output with line breaks and invalid UTF-8
    b'printf "\\377" >&2; echo err >&2\n'  # the same on stderr
    b'echo caf\xe9 > out_\xe9.txt\n'  # a command that is not UTF-8
    b'printf "a\\tb\\r\\n"\n'  # tab and CR in the output
)


def check_odd_records(records: list[StatusRecord]) -> None:
    tasks = by_task_id(records)
    assert sorted(tasks) == [0, 1, 2, 3, 4], records
    assert all(record.return_code == 0 for record in tasks.values()), records
    assert tasks[0].command == 'echo\ta\tb' and tasks[0].out_snippet == repr('a b\n'), tasks[0]
    output = ast.literal_eval(tasks[1].out_snippet)
    assert tasks[1].out_bytes == 9 and output.startswith('l1\nl2\n') and output.endswith('x'), tasks[1]
    error = ast.literal_eval(tasks[2].err_snippet)
    assert tasks[2].err_bytes == 5 and error.endswith('err\n'), tasks[2]
    assert tasks[3].command.encode('utf-8', 'surrogateescape') == b'echo caf\xe9 > out_\xe9.txt', tasks[3]
    assert tasks[4].out_snippet == repr('a\tb\r\n'), tasks[4]


@pytest.mark.timeout(30)
def test_tabs_line_breaks_and_invalid_utf8(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', ODD)
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', 'Tasks')
    assert result.returncode == 0, result.describe()
    assert no_traceback(result.stderr), result.stderr
    status = status_path(tmp_path)
    lines = status_lines(status)
    assert len(lines) == 5, lines  # one line per task: no line break escaped into the file
    check_odd_records(read_status(status))
    # the command that is not UTF-8 ran with its bytes intact, and the status file shows it as b'...'
    assert any(line.endswith("\tb'echo caf\\xe9 > out_\\xe9.txt'") for line in lines), lines
    assert (tmp_path / 'out_\udce9.txt').read_bytes() == b'caf\xe9\n'
    assert os.fsencode('out_\udce9.txt') == b'out_\xe9.txt'
    logs_without_traceback(tmp_path)
    # ... and the status file reads back: a resume finds every task done
    (tmp_path / 'again').mkdir()
    resumed = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '-p', 'again/', '-r', status.name, 'Tasks')
    assert resumed.returncode == 0, resumed.describe()
    skipped = read_status(status_path(tmp_path / 'again'))
    assert len(skipped) == 5 and all(record.kind.value == 'S' for record in skipped), skipped


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ('flags', 'named'),
    [
        (['-c', 'nan'], '-c nan'),
        (['-c', '1e-300'], '-c 1e-300'),  # the engine died with OverflowError (slots = cores / 1e-300)
        (['-p', '/proc/'], '-p /proc/'),
        (['-p', '/proc/', '--logfile', 'driver.log'], '-p /proc/'),  # then it is an engine log that cannot be made
        (['-r', '/dev/zero'], '-r /dev/zero'),  # read for ever before
        (['--label', 'a/b'], '--label'),
        (['--label', '../../etc'], '--label'),
        (['--logfile', '/dev/full'], '--logfile /dev/full'),
        (['--logfile', '/nonexistent/log'], '--logfile /nonexistent/log'),
    ],
)
def test_a_flag_that_cannot_work_is_one_line_naming_it(
    procs: Processes, tmp_path: Path, flags: list[str], named: str
) -> None:
    write_task_file(tmp_path / 'Tasks', 'touch ran\n')
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', *flags, 'Tasks', timeout=20)
    one_line_error(result, named)
    assert not (tmp_path / 'ran').exists()
    logs_without_traceback(tmp_path)
