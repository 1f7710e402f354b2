"""`--mailTo ADDR --mailFreq N --mail-server HOST:PORT`: the mail reaches a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ..conftest import Processes
from ..unit.notify.support import mail_server
from .helpers import run_disbatch, status_path, write_task_file

pytestmark = pytest.mark.timeout(60)


def test_mail_every_five_completions_and_at_the_end(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', ''.join(f'echo task {number}\n' for number in range(10)))
    with mail_server() as (collector, port):
        result = run_disbatch(
            procs, tmp_path, '-s', 'localhost:2', '--mailTo', 'you@example.org', '--mailFreq', '5',
            '--mail-server', f'127.0.0.1:{port}', 'Tasks',
        )  # fmt: skip
        assert result.returncode == 0, result.describe()
        messages = collector.wait_for(3, timeout=10)
    run = os.path.basename(str(status_path(tmp_path))[: -len('_status.txt')])
    assert [message['Subject'] for message in messages] == [
        f'{run} has completed 5 tasks (0 failed)',
        f'{run} has completed 10 tasks (0 failed)',
        f'{run} has completed 10 tasks (0 failed): the run is over, exit code 0',
    ]
    assert all(message['To'] == 'you@example.org' for message in messages)
    lines = [line for message in messages[:2] for line in message.get_content().splitlines() if '\t' in line]
    assert sorted(line.rsplit('\t', 1)[1] for line in lines) == [f'echo task {number}' for number in range(10)]
    assert 'The run' in messages[2].get_content()
    assert 'WARNING' not in result.stderr
