"""Lost owners and sources, through the real CLI (issue 22 item 8): a task stream that dies under a running run
ends it with one line and a non-zero exit, its running tasks recorded as interrupted (`I`: a plain `-r` runs them
again), never left waiting for ever nor recorded as failed; a producer that pickles its puts is told so.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from disbatch.results.record import RecordKind

from ..conftest import Processes, disbatch_cmd
from .helpers import messages, no_traceback, read_status, run_disbatch, status_path, wait_for, write_task_file

pytestmark = pytest.mark.timeout(60)

TOKEN = 'lost-sources-token'
SIGN_IN = ("-p 'task source name' mine -p 'task source done task' '#DONE#' -p 'task source result key' R "
           "-p 'task source task key' T")  # fmt: skip
CLIENT = f'{sys.executable} -m disbatch.kvsstcp.kvsclient'


def only_interrupted(directory: Path) -> None:
    """The one task that was running is recorded as interrupted, not failed."""
    records = read_status(status_path(directory))
    assert [(record.kind, record.failed) for record in records] == [(RecordKind.INTERRUPTED, False)], records


def test_a_taskserver_run_whose_outside_kvs_server_dies_ends_and_records_its_running_task(
    procs: Processes, tmp_path: Path
) -> None:
    address_file = tmp_path / 'kvs-address'
    server = procs.spawn([sys.executable, '-m', 'disbatch.kvsstcp.kvsstcp', '-a', str(address_file)],
                         cwd=tmp_path, env={'KVSSTCP_TOKEN': TOKEN}, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)  # fmt: skip
    assert wait_for(lambda: address_file.exists() and address_file.read_text().strip() != '', timeout=15)
    address = address_file.read_text().strip()
    driver = procs.spawn(disbatch_cmd('-s', 'localhost:2', '--taskserver', address), cwd=tmp_path,
                         env={'KVSSTCP_TOKEN': TOKEN}, stderr=subprocess.PIPE)  # fmt: skip
    host, port = address.rsplit(':', 1)
    producer = f"{CLIENT} {SIGN_IN} -p T 'touch started; sleep 40'"
    put = procs.run(['bash', '-c', producer], cwd=tmp_path, env={'KVSSTCP_TOKEN': TOKEN, 'KVSSTCP_HOST': host,
                    'KVSSTCP_PORT': port}, timeout=20)  # fmt: skip
    assert put.returncode == 0, put.stderr
    assert wait_for(lambda: (tmp_path / 'started').exists(), timeout=20)
    server.send_signal(signal.SIGKILL)  # the outside server dies under the run
    _, stderr = driver.communicate(timeout=20)
    assert driver.returncode == 1, stderr
    assert no_traceback(stderr)
    lines = [line for line in messages(stderr) if 'is gone' in line]
    assert len(lines) == 1 and address.rsplit(':', 1)[1] in lines[0], stderr
    only_interrupted(tmp_path)


def test_a_taskcommand_that_dies_mid_run_leaves_its_running_task_interrupted(procs: Processes, tmp_path: Path) -> None:
    producer = write_task_file(
        tmp_path / 'producer.sh',
        f"""#!/bin/bash
{CLIENT} {SIGN_IN} -p T 'touch started; sleep 40'
while [ ! -e started ]; do sleep 0.05; done
exit 3
""",
    )
    producer.chmod(0o755)
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '--taskcommand', str(producer), timeout=30)
    assert result.returncode == 1, result.describe()
    assert 'exited with status 3' in result.stderr and no_traceback(result.stderr), result.describe()
    only_interrupted(tmp_path)


def test_a_bad_line_mid_stream_leaves_the_running_task_interrupted(procs: Processes, tmp_path: Path) -> None:
    producer = write_task_file(
        tmp_path / 'producer.sh',
        f"""#!/bin/bash
{CLIENT} {SIGN_IN} -p T 'touch started; sleep 40'
while [ ! -e started ]; do sleep 0.05; done
{CLIENT} -p T '#DISBATCH NONSENSE'
sleep 30
""",
    )
    producer.chmod(0o755)
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '--taskcommand', str(producer), timeout=30)
    assert result.returncode == 1, result.describe()
    assert 'NONSENSE' in result.stderr and no_traceback(result.stderr), result.describe()
    only_interrupted(tmp_path)


def test_a_producer_that_pickles_its_puts_is_told_so(procs: Processes, tmp_path: Path) -> None:
    producer = write_task_file(
        tmp_path / 'producer.py',
        textwrap.dedent("""
            from disbatch.kvsstcp.kvsclient import KVSClient
            c = KVSClient()
            for key, value in (('task source name', 'p'), ('task source done task', '#DONE#'),
                               ('task source result key', 'R'), ('task source task key', 'T'),
                               ('T', 'touch ran'), ('T', '#DONE#')):
                c.put(key, value)  # the reference client's default: pickled
        """),
    )
    result = run_disbatch(procs, tmp_path, '-s', 'localhost:1', '--taskcommand', f'{sys.executable} {producer}')
    assert result.returncode == 1, result.describe()
    [line] = [line for line in messages(result.stderr) if 'pickled' in line]
    assert 'put(key, value, False)' in line, line
    assert not (tmp_path / 'ran').exists()
