"""Per-task resource usage: a real engine measures each task (wait4) and the driver keeps it on the record."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from disbatch.protocol import codec
from disbatch.protocol.messages import Drain, Hello, TaskAttempt, TaskDone, Welcome
from disbatch.protocol.transport import Credentials, DriverEndpoint
from disbatch.results.record import NO_PID, ResourceUsage, StatusRecord
from disbatch.taskfile.items import NO_REPEAT, Task

from ..conftest import Processes

WAIT_MS = 10_000
# Touches 64 MiB and spins until it has used 0.3 s of CPU (user and system: page faults count).
HUNGRY = (
    f"{sys.executable} -c \"import time; b = bytearray(64 << 20); b[::4096] = b'x' * (len(b) // 4096); "
    't = time.process_time()\nwhile time.process_time() - t < 0.3: pass"'
)


def _receive(endpoint: DriverEndpoint) -> tuple[bytes, list[object]]:
    assert endpoint.socket.poll(WAIT_MS), 'the engine said nothing'
    peer, payloads = endpoint.receive()
    return peer, [codec.decode(payload) for payload in payloads]


def _task_done(procs: Processes, tmp_path: Path, command: str, attempt: int) -> TaskDone:
    """TaskAttempt `command` as one task on a real engine (started as the contexts start it) and return its report."""
    credentials = Credentials.create()
    with DriverEndpoint('127.0.0.1', credentials) as endpoint:
        procs.spawn(
            [sys.executable, '-m', 'disbatch.engine', '--driver', endpoint.address, '--slots', '1'],
            cwd=tmp_path,
            env={'DISBATCH_RUN_SECRET': credentials.secret, 'DISBATCH_RUN_KEY': credentials.server_key},
        )
        peer, (hello,) = _receive(endpoint)
        assert isinstance(hello, Hello)
        endpoint.send(
            peer,
            Welcome(0, str(tmp_path), {}, [], [], 0.0, False, ''),
            TaskAttempt(7, 3, -1, command, attempt),
            Drain(),
        )
        while True:
            _, messages = _receive(endpoint)
            done = [message for message in messages if isinstance(message, TaskDone)]
            if done:
                return done[0]


@pytest.mark.timeout(60)
def test_the_engine_reports_peak_rss_and_cpu_of_each_task(procs: Processes, tmp_path: Path) -> None:
    done = _task_done(procs, tmp_path, HUNGRY, attempt=2)
    usage = done.outcome.usage
    assert done.outcome.return_code == 0 and usage is not None, done
    assert done.attempt == 2
    assert 64 << 20 <= usage.max_rss_bytes < 1 << 30
    assert usage.user_seconds > 0 and usage.system_seconds >= 0
    assert usage.user_seconds + usage.system_seconds >= 0.25  # process_time() counts both

    record = StatusRecord.of_task(Task(done.task_id, 3, NO_REPEAT, HUNGRY), 'here', done.outcome, attempt=done.attempt)
    assert record.attempt == 2
    assert record.usage == ResourceUsage(usage.max_rss_bytes, usage.user_seconds, usage.system_seconds)


@pytest.mark.timeout(60)
def test_a_task_that_could_not_start_has_no_usage(procs: Processes, tmp_path: Path) -> None:
    done = _task_done(procs, tmp_path, 'echo \0 nul', attempt=1)
    assert done.outcome.pid == NO_PID and done.outcome.usage is None
    assert StatusRecord.of_task(Task(done.task_id, 3, NO_REPEAT, 'x'), 'here', done.outcome).usage is None
