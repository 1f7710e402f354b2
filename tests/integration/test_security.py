"""Only the run's own parts can talk to a live run (SPEC §3 "Security"), seen from outside the driver.

* Engine port (ZeroMQ ROUTER, CURVE): a DEALER without the server's public key never completes its handshake, so
  nothing it sends arrives; a DEALER with the key but not the run secret gets its Hello refused (driver log).
* KVS port: a client that does not open with `put_ .auth <token>` is disconnected before it reads anything; with
  the token it reads `DisBatch status`.
* A local run listens on 127.0.0.1 only; the dbUtil script is 0700, the `--web` URL file 0600; the secrets are on
  no command line and in no log.

`LiveRun` (a local run held open until the test creates `release`) is shared with test_fuzz_ports.py.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from disbatch.protocol import codec
from disbatch.protocol.messages import PROTOCOL_VERSION, ContextHello, Hello, TaskDone, this_software
from disbatch.results.record import Outcome

from ..conftest import Processes, disbatch_cmd
from . import kvs_wire
from .helpers import by_task_id, dbutil_exports, no_traceback, read_status, run_files, status_path, wait_for

WAIT = 10.0
STATUS_KEY = b'DisBatch status'
INTRUDER = 'intruder-host'
HOLD = 'for i in $(seq 400); do [ -e release ] && exit 0; sleep 0.1; done; exit 1\n'  # bounded: 40 s

# ------------------------------------------------------------------------------------------- a live run


@dataclass
class LiveRun:
    """A `-s localhost:1` run whose second task waits for `release`."""

    directory: Path
    driver: subprocess.Popen[bytes]
    exports: dict[str, str]

    @property
    def kvs_address(self) -> tuple[str, int]:
        host, _, port = self.exports['DISBATCH_KVSSTCP_HOST'].rpartition(':')
        return host, int(port)

    @property
    def engine_address(self) -> str:
        return self.exports['DISBATCH_DRIVER_ADDRESS']

    def driver_log(self) -> str:
        [log] = run_files(self.directory, 'driver.log')
        return log.read_text(errors='replace')

    def alive(self) -> bool:
        return self.driver.poll() is None

    def finish(self) -> tuple[int, str]:
        """Release the held task; the driver's exit code and stderr."""
        (self.directory / 'release').touch()
        _, stderr = self.driver.communicate(timeout=20)
        return self.driver.returncode, stderr.decode(errors='replace')

    def check_completed(self) -> None:
        """The run ended well and its status file holds both tasks, done."""
        returncode, stderr = self.finish()
        assert returncode == 0, stderr
        assert no_traceback(stderr), stderr
        tasks = by_task_id(read_status(status_path(self.directory)))
        assert sorted(tasks) == [0, 1], tasks
        assert all(record.return_code == 0 for record in tasks.values()), tasks
        assert tasks[0].out_snippet == repr('before\n'), tasks[0]
        assert self.driver_log().count(' joined from ') == 1, self.driver_log()


def start_live_run(procs: Processes, directory: Path, *flags: str) -> LiveRun:
    (directory / 'Tasks').write_text('echo before\n' + HOLD)
    driver = procs.spawn(
        disbatch_cmd('-s', 'localhost:1', *flags, 'Tasks'),
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=False,
    )

    def ready() -> bool:
        logs = run_files(directory, 'driver.log')
        return bool(logs and run_files(directory, 'kvsinfo.txt') and ' joined from ' in logs[0].read_text())

    assert wait_for(lambda: ready() or driver.poll() is not None, 15), 'the run did not start'
    assert driver.poll() is None, driver.communicate(timeout=5)
    return LiveRun(directory, driver, dbutil_exports(directory))


@pytest.fixture
def live_run(procs: Processes, tmp_path: Path) -> Iterator[LiveRun]:
    run = start_live_run(procs, tmp_path, '--web')
    try:
        yield run
    finally:
        (tmp_path / 'release').touch()


# ------------------------------------------------------------------------------ kvsstcp replies (requests: kvs_wire)


def read_until_closed(sock: socket.socket, limit: float = WAIT) -> bytes:
    """Everything the server sends until it closes the connection (fails the test if it does not)."""
    sock.settimeout(limit)
    data = b''
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        except TimeoutError:
            raise AssertionError(f'the server kept the connection open (got {data!r})') from None
        if not chunk:
            return data
        data += chunk


def receive_exactly(sock: socket.socket, size: int) -> bytes:
    data = b''
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f'connection closed after {data!r}'
        data += chunk
    return data


def kvs_read_status(run: LiveRun, token: bytes) -> dict[str, object]:
    """`view DisBatch status` on a connection that authenticates with `token`."""
    with socket.create_connection(run.kvs_address, timeout=WAIT) as sock:
        sock.sendall(kvs_wire.put(b'.auth', token) + kvs_wire.view(STATUS_KEY))
        head = receive_exactly(sock, 14)
        value = receive_exactly(sock, int(head[4:]))
    snapshot = json.loads(value)
    assert isinstance(snapshot, dict), snapshot
    return snapshot


# ------------------------------------------------------------------------------------------- ZeroMQ peers


def curve_dealer(context: zmq.Context[zmq.Socket[bytes]], server_key: bytes) -> zmq.Socket[bytes]:
    """A DEALER that does CURVE with `server_key` and a key pair of its own; not yet connected (add a monitor
    first if the handshake is to be watched)."""
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    public, private = zmq.curve_keypair()
    dealer.setsockopt(zmq.CURVE_SERVERKEY, server_key)
    dealer.setsockopt(zmq.CURVE_PUBLICKEY, public)
    dealer.setsockopt(zmq.CURVE_SECRETKEY, private)
    return dealer


def hello(secret: str) -> bytes:
    return codec.encode(Hello(secret, PROTOCOL_VERSION, this_software(), INTRUDER, 4242, 8, 1, 'SSH', ''))


def wait_for_event(monitor: zmq.Socket[bytes], wanted: set[int], timeout: float = WAIT) -> list[int]:
    """Socket-monitor events until one in `wanted` (returned last) or `timeout`."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if monitor.poll(100):
            event = recv_monitor_message(monitor)['event']
            seen.append(event)
            if event in wanted:
                return seen
    return seen


HANDSHAKE_FAILED = {
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
    zmq.EVENT_HANDSHAKE_FAILED_AUTH,
}


@pytest.mark.timeout(60)
def test_dealer_without_the_curve_key_gets_nothing_through(live_run: LiveRun) -> None:
    context = zmq.Context()
    try:
        dealer = context.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        monitor = dealer.get_monitor_socket()
        dealer.connect(f'tcp://{live_run.engine_address}')
        # the right secret, even: without the key the handshake never completes, so the Hello never arrives
        dealer.send(hello(live_run.exports['DISBATCH_RUN_SECRET']), zmq.NOBLOCK)
        events = wait_for_event(monitor, HANDSHAKE_FAILED | {zmq.EVENT_DISCONNECTED})
        assert zmq.EVENT_HANDSHAKE_SUCCEEDED not in events, events
        assert events and events[-1] in HANDSHAKE_FAILED | {zmq.EVENT_DISCONNECTED}, events
        # a key of its own does not help either: it is not the run's server key
        stranger = curve_dealer(context, zmq.curve_keypair()[0])
        stranger_monitor = stranger.get_monitor_socket()
        stranger.connect(f'tcp://{live_run.engine_address}')
        stranger.send(hello(live_run.exports['DISBATCH_RUN_SECRET']), zmq.NOBLOCK)
        events = wait_for_event(stranger_monitor, HANDSHAKE_FAILED | {zmq.EVENT_DISCONNECTED})
        assert zmq.EVENT_HANDSHAKE_SUCCEEDED not in events, events
        for socket_ in (monitor, dealer, stranger_monitor, stranger):
            socket_.close(linger=0)
    finally:
        context.destroy(linger=0)
    time.sleep(0.3)
    log = live_run.driver_log()
    assert INTRUDER not in log, log
    assert 'refused' not in log, log  # nothing even reached the secret check
    assert live_run.alive()
    live_run.check_completed()


@pytest.mark.timeout(60)
def test_dealer_with_the_key_but_a_wrong_secret_is_refused(live_run: LiveRun) -> None:
    context = zmq.Context()
    try:
        dealer = curve_dealer(context, live_run.exports['DISBATCH_RUN_KEY'].encode())
        monitor = dealer.get_monitor_socket()
        dealer.connect(f'tcp://{live_run.engine_address}')
        assert zmq.EVENT_HANDSHAKE_SUCCEEDED in wait_for_event(monitor, {zmq.EVENT_HANDSHAKE_SUCCEEDED})
        dealer.send(hello('not-the-secret'))
        assert wait_for(lambda: 'refused' in live_run.driver_log(), WAIT), live_run.driver_log()
        # neither is a context let in, nor a result taken from a peer that never joined
        dealer.send(codec.encode(ContextHello('not-the-secret', PROTOCOL_VERSION, this_software(), '', 'SSH', '0', 0)))
        dealer.send(codec.encode(TaskDone(1, '', Outcome(4242, 0, 0.0, 0.0, 0.0), False, False, 1)))
        assert wait_for(lambda: 'refused a context' in live_run.driver_log(), WAIT), live_run.driver_log()
        assert wait_for(lambda: 'dropped done' in live_run.driver_log(), WAIT), live_run.driver_log()
        # the refused peer is not answered: no Welcome arrives
        assert not dealer.poll(500), dealer.recv()
        monitor.close(linger=0)
        dealer.close(linger=0)
    finally:
        context.destroy(linger=0)
    log = live_run.driver_log()
    refusals = [line for line in log.splitlines() if 'refused' in line]
    assert refusals and INTRUDER in refusals[0], refusals
    assert ' joined from ' + INTRUDER not in log, log
    assert live_run.alive()
    live_run.check_completed()


# ------------------------------------------------------------------------------------------- KVS


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    'opening',
    [
        kvs_wire.view(STATUS_KEY),  # straight to the point
        kvs_wire.get(STATUS_KEY),
        kvs_wire.put(b'.auth', b'wrong-token') + kvs_wire.view(STATUS_KEY),  # a guess
        kvs_wire.put(b'.auth', b'') + kvs_wire.view(STATUS_KEY),
        kvs_wire.put(b'other', b'x') + kvs_wire.view(STATUS_KEY),
        b'dump',
        b'down',
    ],
    ids=['view', 'get', 'wrong-token', 'empty-token', 'put-first', 'dump', 'down'],
)
def test_kvs_client_without_the_token_is_disconnected(live_run: LiveRun, opening: bytes) -> None:
    with socket.create_connection(live_run.kvs_address, timeout=WAIT) as sock:
        sock.sendall(opening)
        assert read_until_closed(sock) == b''
    # the KVS still serves the run's own clients, and the run goes on
    token = live_run.exports['DISBATCH_KVSSTCP_TOKEN'].encode()
    assert kvs_read_status(live_run, token)
    assert live_run.alive()
    live_run.check_completed()


@pytest.mark.timeout(60)
def test_kvs_client_with_the_token_reads_the_status(live_run: LiveRun) -> None:
    token = live_run.exports['DISBATCH_KVSSTCP_TOKEN'].encode()
    snapshot = kvs_read_status(live_run, token)
    assert snapshot, snapshot
    live_run.check_completed()


# ------------------------------------------------------------------------------------------- exposure


def listening_addresses(pid: int) -> list[str]:
    """`ADDRESS:PORT` (hex, as in /proc/net/tcp*) of every TCP socket of `pid` that listens."""
    inodes = set()
    for fd in Path(f'/proc/{pid}/fd').iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith('socket:['):
            inodes.add(target[len('socket:[') : -1])
    found = []
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == '0A' and fields[9] in inodes:  # 0A: LISTEN
                found.append(fields[1])
    return found


@pytest.mark.timeout(60)
def test_local_run_listens_on_loopback_only(live_run: LiveRun) -> None:
    addresses = listening_addresses(live_run.driver.pid)
    # the engine port, the KVS and the --web page
    assert len(addresses) >= 3, addresses
    loopback = '0100007F'
    assert all(address.split(':')[0] == loopback for address in addresses), addresses
    ports = {int(address.split(':')[1], 16) for address in addresses}
    assert live_run.kvs_address[1] in ports and int(live_run.engine_address.rpartition(':')[2]) in ports, ports
    live_run.check_completed()


@pytest.mark.timeout(60)
def test_private_files_and_no_secret_on_a_command_line_or_in_a_log(procs: Processes, live_run: LiveRun) -> None:
    [dbutil] = run_files(live_run.directory, 'dbUtil.sh')
    [url] = run_files(live_run.directory, 'url')
    assert stat.S_IMODE(dbutil.stat().st_mode) == 0o700, oct(dbutil.stat().st_mode)
    assert stat.S_IMODE(url.stat().st_mode) == 0o600, oct(url.stat().st_mode)
    secrets = [
        live_run.exports['DISBATCH_RUN_SECRET'],
        live_run.exports['DISBATCH_KVSSTCP_TOKEN'],
        url.read_text().strip().rstrip('/').rsplit('/', 1)[-1],  # the web page's access token
    ]
    assert all(len(secret) >= 16 for secret in secrets), secrets
    for pid in procs.alive():  # the driver, its engine and its tasks
        try:
            command_line = Path(f'/proc/{pid}/cmdline').read_bytes().decode(errors='replace')
        except OSError:
            continue
        for secret in secrets:
            assert secret not in command_line, f'pid {pid}: {shlex.join(command_line.split(chr(0)))}'
    live_run.check_completed()
    for log in live_run.directory.glob('*.log'):
        text = log.read_text(errors='replace')
        for secret in secrets:
            assert secret not in text, f'{log.name} holds a secret'


def run_under_umask_000(procs: Processes, directory: Path) -> subprocess.CompletedProcess[str]:
    """`disbatch -s localhost:1 Tasks` in `directory` with a umask that would leave its files open to everyone."""
    command = ['bash', '-c', 'umask 000; exec "$@"', 'umask', *disbatch_cmd('-s', 'localhost:1', 'Tasks')]
    return procs.run(command, cwd=directory, timeout=30)


@pytest.mark.timeout(60)
def test_a_runs_files_are_the_users_only_whatever_the_umask(procs: Processes, tmp_path: Path) -> None:
    # they hold commands, output snippets and where the run listens (disbatch/privacy.py); umask 000 would make
    # them world-writable under the usual open(path, 'w')
    (tmp_path / 'Tasks').write_text('echo secret-looking-output\n')
    result = run_under_umask_000(procs, tmp_path)
    assert result.returncode == 0, result.stderr
    modes = {path.name.split('_', 4)[-1]: stat.S_IMODE(path.stat().st_mode) for path in tmp_path.glob('Tasks_*')}
    expected = {'status.txt': 0o600, 'driver.log': 0o600, 'dbUtil.sh': 0o700}
    assert {name: modes[name] for name in expected} == expected, {name: oct(mode) for name, mode in modes.items()}
    logs = [name for name in modes if name.endswith('.log')]
    assert len(logs) >= 2 and all(modes[name] == 0o600 for name in logs), {n: oct(m) for n, m in modes.items()}


@pytest.mark.timeout(60)
def test_kvsinfo_is_the_users_only(procs: Processes, tmp_path: Path) -> None:
    (tmp_path / 'Tasks').write_text('stat -c %a "$DISBATCH_NAMETASKS"_*_kvsinfo.txt > kvsinfo.mode\n')
    result = run_under_umask_000(procs, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / 'kvsinfo.mode').read_text().strip() == '600'
