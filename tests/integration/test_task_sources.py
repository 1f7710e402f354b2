"""Tasks that come from a program, not a file: the DisBatcher API, --taskcommand, --taskserver.

Each test drives the real CLI (or the real API, which starts the real CLI) with real bash tasks; the task-source
protocol is spoken either by our client or byte for byte on a raw socket, as a client written for disBatch 3.0 would.
"""

from __future__ import annotations

import json
import socket
import sys
import textwrap
from pathlib import Path

import pytest

from ..conftest import Processes, disbatch_cmd
from .helpers import dbutil_exports, read_status, run_disbatch, status_path, wait_for, write_task_file

pytestmark = pytest.mark.timeout(60)


def _dberscript(body: str) -> str:
    return 'import sys\nfrom disbatch import DisBatcher\n' + textwrap.dedent(body)


def test_disbatcher_gets_every_result_including_the_last_without_a_barrier(procs: Processes, tmp_path: Path) -> None:
    script = write_task_file(
        tmp_path / 'use_api.py',
        _dberscript("""
            batcher = DisBatcher(tasksname='api', args=['-s', 'localhost:2'])
            seen = []
            for n in range(5):
                task_id = batcher.submit(f'echo {n}; exit $(({n} % 2))')
                report = batcher.wait_one_task()  # one by one: the task just submitted must run on its own
                seen.append((task_id, report['TaskId'], report['ReturnCode'], report['OutData']))
            reports = batcher.syncTasks([0, 2, 4])
            print(json.dumps({'seen': seen, 'sync': sorted(reports), 'keys': sorted(reports[0])}))
            sys.exit(batcher.done())
        """).replace('import sys\n', 'import json\nimport sys\n'),
    )
    result = procs.run([sys.executable, str(script)], cwd=tmp_path, timeout=45)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out['seen'] == [[n, n, n % 2, f'{n}\n'] for n in range(5)]
    assert out['sync'] == [0, 2, 4]
    assert out['keys'] == sorted([
        'Flags', 'TaskId', 'TaskStreamIndex', 'TaskRepIndex', 'Host', 'PID', 'ReturnCode', 'Elapsed', 'Start',
        'End', 'OutBytes', 'OutData', 'ErrBytes', 'ErrData', 'TaskCmd',
    ])  # fmt: skip
    records = read_status(status_path(tmp_path))
    assert sorted(record.task_id for record in records) == [0, 1, 2, 3, 4]


def test_a_result_the_disbatcher_hears_of_is_in_the_status_file_already(procs: Processes, tmp_path: Path) -> None:
    """The driver writes a turn's status lines together, and only then tells anyone (here the KVS result keys the
    DisBatcher waits on) that those tasks are done."""
    script = write_task_file(
        tmp_path / 'use_api.py',
        _dberscript("""
            import glob
            batcher = DisBatcher(tasksname='inorder', args=['-s', 'localhost:4'])
            for n in range(40):
                batcher.submit(f'exit 0')
            missing = []
            for _ in range(40):
                task_id = batcher.wait_one_task()['TaskId']
                lines = open(glob.glob('inorder_*_status.txt')[0]).read().splitlines()
                if not any(line.split('\\t')[1] == str(task_id) for line in lines if '\\t' in line):
                    missing.append(task_id)
            print('missing', missing)
            sys.exit(batcher.done())
        """),
    )
    result = procs.run([sys.executable, str(script)], cwd=tmp_path, timeout=45)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == 'missing []'


def test_disbatcher_names_its_files_says_what_it_cannot_do_and_never_hangs(procs: Processes, tmp_path: Path) -> None:
    script = write_task_file(
        tmp_path / 'use_api.py',
        _dberscript("""
            from disbatch.errors import DisbatchError
            batcher = DisBatcher(tasksname='mini', args=['-s', 'localhost:2'])
            said = []
            try:
                batcher.wait_one_task()  # nothing submitted: must not wait forever
            except DisbatchError as error:
                said.append(str(error))
            try:
                batcher.submit('  ')
            except ValueError as error:
                said.append(str(error))
            batcher.submit('echo hi')
            batcher.wait_one_task()
            try:
                batcher.wait_one_task()  # its one task was returned already
            except DisbatchError as error:
                said.append(str(error))
            code = batcher.done()
            try:
                batcher.submit('echo late')
            except DisbatchError as error:
                said.append(str(error))
            print('\\n'.join(said))
            sys.exit(code)
        """),
    )
    result = procs.run([sys.executable, str(script)], cwd=tmp_path, timeout=45)
    assert result.returncode == 0, result.stderr
    said = result.stdout.strip().splitlines()
    assert len(said) == 4, result.stdout
    assert 'all 0 submitted tasks were already returned' in said[0]
    assert 'blank line' in said[1]
    assert 'all 1 submitted tasks were already returned' in said[2]
    assert 'closed' in said[3] and 'kvsstcp' not in said[3].lower()
    assert status_path(tmp_path).name.startswith('mini_disBatch_')


def test_the_shipped_dbertest_example_runs_to_completion(procs: Processes, tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / 'exampleTaskFiles' / 'dberTest.py'
    result = procs.run([sys.executable, str(example), '6', '-s', 'localhost:3'], cwd=tmp_path, timeout=45)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[1] for line in lines if line.startswith('task ')][:6] == ['0', '1', '2', '3', '4', '5']
    assert lines[6] == 'squares done: 6, failed: []'  # 7 is not among the first 6 squares
    assert sorted(int(line.split()[1]) for line in lines[7:]) == [6, 7, 8, 9, 10, 11]  # cubes only: squares synced
    assert ' rc   1 output 1404928' in result.stdout  # the cube of 112 fails on purpose


def test_a_taskcommand_that_exits_ends_the_stream(procs: Processes, tmp_path: Path) -> None:
    producer = write_task_file(
        tmp_path / 'producer.sh',
        f"""#!/bin/bash
K="{sys.executable} -m disbatch.kvsstcp client $KVSSTCP_HOST:$KVSSTCP_PORT"
$K put 'task source name' shell
$K put 'task source done task' '#DONE#'
$K put 'task source result key' R
$K put 'task source task key' T
for i in 1 2 3; do $K put T "echo task $i > out_$i.txt"; done
""",
    )
    producer.chmod(0o755)
    finished = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '--taskcommand', f'{producer}', timeout=30)
    assert finished.returncode == 0, finished.describe()
    assert sorted(path.name for path in tmp_path.glob('out_*.txt')) == ['out_1.txt', 'out_2.txt', 'out_3.txt']
    assert len(read_status(status_path(tmp_path))) == 3


def test_a_taskcommand_that_fails_at_once_ends_the_run(procs: Processes, tmp_path: Path) -> None:
    finished = run_disbatch(procs, tmp_path, '-s', 'localhost:1', '--taskcommand', 'exit 3', timeout=20)
    assert finished.returncode == 1, finished.describe()  # it failed: so does the run (issue 10)
    assert 'exited with status 3' in finished.stderr, finished.describe()
    assert read_status(status_path(tmp_path)) == []


def _frame_key(key: bytes) -> bytes:
    return b'%10d' % len(key) + key


def _raw_put(sock: socket.socket, key: bytes, value: bytes, encoding: bytes = b'ASTR') -> None:
    sock.sendall(b'put_' + _frame_key(key) + encoding + b'%10d' % len(value) + value)


def _raw_get(sock: socket.socket, key: bytes) -> tuple[bytes, bytes]:
    sock.sendall(b'get_' + _frame_key(key))
    header = _read_exactly(sock, 14)
    return header[:4], _read_exactly(sock, int(header[4:]))


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b''
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        assert chunk, 'connection closed'
        data += chunk
    return data


def test_a_raw_socket_client_of_the_reference_protocol_drives_a_taskserver_run(
    procs: Processes, tmp_path: Path
) -> None:
    driver = procs.spawn(disbatch_cmd('-s', 'localhost:2', '--taskserver'), cwd=tmp_path)
    assert wait_for(lambda: any(tmp_path.glob('*_kvsinfo.txt')), timeout=15), 'the run did not start'
    host, port = next(tmp_path.glob('*_kvsinfo.txt')).read_text().strip().rsplit(':', 1)
    token = dbutil_exports(tmp_path)['DISBATCH_KVSSTCP_TOKEN'].encode()
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        _raw_put(sock, b'.auth', token)  # the one put a client of the reference adds for our KVS
        _raw_put(sock, b'task source name', b'raw')
        _raw_put(sock, b'task source done task', b'#ALL DONE#')
        _raw_put(sock, b'task source result key', b'R')
        _raw_put(sock, b'task source task key', b'T')
        _raw_put(sock, b'T', b'echo one')
        _raw_put(sock, b'T', b'#DISBATCH BARRIER')
        _raw_put(sock, b'T', b'echo two; exit 4')
        done = [int(_raw_get(sock, b'R done tasks')[1]) for _ in range(3)]
        assert sorted(done) == [0, 1, 2]
        encoding, report = _raw_get(sock, b'R 2')
        assert encoding == b'JSON'
        assert json.loads(report)['ReturnCode'] == 4
        assert json.loads(report)['OutData'] == 'two\n'
        _raw_put(sock, b'T', b'#ALL DONE#')
    assert driver.wait(timeout=20) == 0
    records = read_status(status_path(tmp_path))
    assert sorted(record.task_id for record in records) == [0, 1, 2]
