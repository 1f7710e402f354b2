"""Strangers on the KVS port cannot take the driver down (issue 22 item 5).

A thousand idle connections that never present the token, to a driver whose descriptor limit is low enough that
accepting them runs out (EMFILE): the run's own client still gets its answer, the driver's CPU stays near idle, its
log stays small, and the run completes. Before, the accept loop spun on EMFILE (a log line per attempt, 100 % CPU)
and the strangers were kept for ever.
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import subprocess
import time
from pathlib import Path

import pytest

from disbatch.kvsstcp import server
from disbatch.kvsstcp.client import KVSClient

from ..conftest import Processes, disbatch_cmd
from .helpers import dbutil_exports, no_traceback, run_files, wait_for
from .test_security import HOLD, LiveRun, kvs_read_status

STRANGERS = 1000
DRIVER_DESCRIPTORS = 64  # the driver's own limit: below what it uses plus the cap on strangers, so EMFILE happens
IDLE_SECONDS = 7.0  # longer than a stranger's deadline to authenticate (server.AUTH_SECONDS)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, from /proc."""
    fields = Path(f'/proc/{pid}/stat').read_text().rpartition(')')[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def start_with_few_descriptors(procs: Processes, directory: Path) -> LiveRun:
    (directory / 'Tasks').write_text('echo before\n' + HOLD)
    command = ['bash', '-c', f'ulimit -n {DRIVER_DESCRIPTORS}; exec "$@"', 'limit', *disbatch_cmd('-s', 'localhost:1',
               'Tasks')]  # fmt: skip
    driver = procs.spawn(command, cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=False)

    def ready() -> bool:
        logs = run_files(directory, 'driver.log')
        return bool(logs and run_files(directory, 'kvsinfo.txt') and ' joined from ' in logs[0].read_text())

    assert wait_for(lambda: ready() or driver.poll() is not None, 15), 'the run did not start'
    assert driver.poll() is None, driver.communicate(timeout=5)
    return LiveRun(directory, driver, dbutil_exports(directory))


@pytest.mark.timeout(90)
def test_a_thousand_idle_strangers_do_not_take_the_driver_down(procs: Processes, tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < STRANGERS + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, STRANGERS + 200), hard))
    run = start_with_few_descriptors(procs, tmp_path)
    token = run.exports['DISBATCH_KVSSTCP_TOKEN'].encode()
    strangers: list[socket.socket] = []
    try:
        cpu_before, started = cpu_seconds(run.driver.pid), time.monotonic()
        for _ in range(STRANGERS):
            with contextlib.suppress(OSError):  # a full backlog refuses some: they are strangers kept out too
                strangers.append(socket.create_connection(run.kvs_address, timeout=5))
        assert len(strangers) >= STRANGERS // 2, len(strangers)
        snapshot = kvs_read_status(run, token)  # the run's own client is served meanwhile
        assert snapshot, snapshot
        time.sleep(max(0.0, IDLE_SECONDS - (time.monotonic() - started)))
        assert run.alive()
        cpu = cpu_seconds(run.driver.pid) - cpu_before
        assert kvs_read_status(run, token)  # and after the strangers' deadline
    finally:
        for stranger in strangers:
            stranger.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    wall = time.monotonic() - started
    assert cpu < 0.25 * wall, f'the driver used {cpu:.1f} s of CPU in {wall:.1f} s'
    returncode, stderr = run.finish()
    assert returncode == 0, stderr
    assert no_traceback(stderr), stderr
    log = run.driver_log()
    assert len(log) < 20_000, f'{len(log)} bytes of log:\n{log[-2000:]}'
    assert 'unauthenticated connections' in log, log
    assert 'Too many open files' in log, log  # EMFILE did happen, and was logged as a count


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes `sock` within `seconds` (without it sending anything)."""
    sock.settimeout(seconds)
    try:
        return sock.recv(1) == b''
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.mark.timeout(30)
def test_a_stranger_is_closed_after_its_deadline_and_over_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, 'AUTH_SECONDS', 1.0)
    monkeypatch.setattr(server, 'MAX_UNAUTHENTICATED', 3)
    with server.KVSServer(token=b'secret') as kvs:
        first = socket.create_connection(kvs.address, timeout=5)
        time.sleep(0.2)
        others = [socket.create_connection(kvs.address, timeout=5) for _ in range(3)]  # the 4th of them: over the cap
        try:
            assert closed_within(first, 0.5), 'the oldest stranger was kept over the cap'
            assert not closed_within(others[-1], 0.3)
            assert closed_within(others[-1], 2.0), 'a stranger was kept past its deadline'
            with KVSClient(*kvs.address, token=b'secret') as client:  # the run's own clients are not strangers
                client.put(b'k', b'v')
                time.sleep(1.5)
                assert client.view(b'k') == (b'ASTR', b'v')
        finally:
            for sock in (first, *others):
                sock.close()
