"""How engines start, seen by a user on the real test cluster (tests/cluster): a dbUtil that adds remote engines to a
run listening on loopback only refuses at once and says how to start one they can join; a host that never answers is
reported and a run whose every engine failed says so; a hundred hosts start a window at a time.

Hosts that misbehave are made with an `ssh` first on PATH that runs the real ssh with a configuration of the test's
own (`-F`): the machine's own sshd under many names, or a port on this machine that accepts and never answers. No
packet leaves the machine.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import Processes, disbatch_cmd
from .helpers import no_traceback, read_status, run_disbatch, run_files, status_path, wait_for
from .test_contexts_cluster import ABSENT_IP, engines_of_run

pytestmark = pytest.mark.cluster


@pytest.fixture
def netns(cluster: dict[str, str]) -> None:
    if cluster['CI_CLUSTER_MODE'] != 'netns':
        pytest.skip('needs per-node hostnames: the test cluster runs in loopback mode')


@pytest.fixture
def remote_cleanup(tmp_path: Path) -> Iterator[None]:
    yield
    for pid in engines_of_run(tmp_path):
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            continue


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections and never says a word (a host that drops what it is sent)."""
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(2)
    for connection in held:
        connection.close()
    listener.close()


def ssh_with_config(tmp_path: Path, config: str) -> dict[str, str]:
    """The environment of a run whose `ssh` is the real one reading `config` (and not the system's)."""
    real_ssh = shutil.which('ssh')
    assert real_ssh is not None
    (tmp_path / 'ssh_config').write_text(config)
    bin_directory = tmp_path / 'bin'
    bin_directory.mkdir(exist_ok=True)
    (bin_directory / 'ssh').write_text(f'#!/bin/bash\nexec {real_ssh} -F {tmp_path / "ssh_config"} "$@"\n')
    (bin_directory / 'ssh').chmod(0o755)
    return {'PATH': f'{bin_directory}:{os.environ["PATH"]}'}


def own_sshd(cluster: dict[str, str], pattern: str) -> str:
    """ssh configuration: hosts matching `pattern` are this machine's own sshd (the head's, on 127.0.0.1)."""
    return (
        f'Host {pattern}\n    HostName 127.0.0.1\n    Port {cluster["CI_SSH_PORT"]}\n    User root\n'
        f'    IdentityFile {cluster["CI_CLUSTER_DIR"]}/ssh/id_ed25519\n    IdentitiesOnly yes\n'
        '    StrictHostKeyChecking no\n    UserKnownHostsFile /dev/null\n    LogLevel ERROR\n'
    )


# ------------------------------------------------------------------------------- dbUtil and a loopback run


@pytest.mark.timeout(90)
def test_dbutil_refuses_remote_engines_for_a_loopback_run_and_the_advice_works(
    procs: Processes, netns: None, remote_cleanup: None, tmp_path: Path
) -> None:
    (tmp_path / 'Tasks').write_text('hostname; sleep 4\n' * 4)
    local = procs.spawn(
        disbatch_cmd('-s', 'localhost:1', 'Tasks'), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    assert wait_for(lambda: bool(run_files(tmp_path, 'dbUtil.sh')), 15)
    dbutil = str(run_files(tmp_path, 'dbUtil.sh')[0])
    started = time.monotonic()
    refused = procs.run([dbutil, '-s', 'node2:2'], cwd=tmp_path, timeout=20)
    assert refused.returncode != 0, refused.stderr
    assert time.monotonic() - started < 5, 'dbUtil took its time to refuse'
    assert 'node2 cannot reach it' in refused.stderr and '--use-address 0.0.0.0:0' in refused.stderr, refused.stderr
    assert local.wait(40) == 0
    assert {record.host for record in read_status(status_path(tmp_path))} == {socket.gethostname()}

    # What the message advises: a run started so that remote engines can join it
    advised = tmp_path / 'advised'
    advised.mkdir()
    (advised / 'Tasks').write_text('hostname; sleep 2\n' * 8)
    run = procs.spawn(
        disbatch_cmd('--use-address', '0.0.0.0:0', '-s', 'localhost:1', 'Tasks'),
        cwd=advised,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert wait_for(lambda: bool(run_files(advised, 'dbUtil.sh')), 15)
    added = procs.run([str(run_files(advised, 'dbUtil.sh')[0]), '-s', 'node2:2'], cwd=advised, timeout=40)
    assert added.returncode == 0, added.stderr
    assert run.wait(40) == 0
    assert 'node2' in {record.host for record in read_status(status_path(advised))}


# ------------------------------------------------------------------------------- hosts that never answer


@pytest.mark.timeout(120)
def test_a_host_that_never_answers_is_reported_and_a_run_with_no_engine_fails(
    procs: Processes, netns: None, tmp_path: Path, silent_port: int
) -> None:
    # node3, as this ssh configuration has it, accepts the connection and never answers; nothing caps ssh's wait
    # there but disbatch's own connect timeout (30 s by default)
    env = ssh_with_config(tmp_path, f'Host node3\n    HostName 127.0.0.1\n    Port {silent_port}\n    BatchMode yes\n')
    (tmp_path / 'Tasks').write_text('true\ntrue\n')
    result = run_disbatch(procs, tmp_path, '-s', 'node3:2', 'Tasks', timeout=100, env=env)
    assert result.returncode != 0, result.describe()
    assert result.seconds < 60, result.describe()
    lines = [line for line in result.stderr.splitlines() if 'node3' in line and 'started:' not in line]
    assert len(lines) == 1 and 'before joining the run' in lines[0], result.stderr
    assert 'no engine could start' in result.stderr, result.stderr
    assert no_traceback(result.stderr), result.stderr


@pytest.mark.timeout(90)
def test_an_engine_not_joined_by_its_deadline_is_named_while_the_others_work(
    procs: Processes, netns: None, remote_cleanup: None, tmp_path: Path
) -> None:
    # A launcher that waits and never starts its engine (an `ssh` that hangs for that address): reported once its
    # join deadline (--connect-timeout 1 + the start-up margin) passes, while node1 runs the tasks
    real_ssh = shutil.which('ssh')
    bin_directory = tmp_path / 'bin'
    bin_directory.mkdir()
    (bin_directory / 'ssh').write_text(
        f'#!/bin/bash\nfor word in "$@"; do [ "$word" = {ABSENT_IP} ] && exec sleep 120; done\nexec {real_ssh} "$@"\n'
    )
    (bin_directory / 'ssh').chmod(0o755)
    (tmp_path / 'Tasks').write_text('hostname; sleep 5\n' * 8)
    env = {'PATH': f'{bin_directory}:{os.environ["PATH"]}'}
    result = run_disbatch(
        procs, tmp_path, '--connect-timeout', '1', '-s', f'node1:2,{ABSENT_IP}:2', 'Tasks', timeout=60, env=env
    )
    assert result.returncode == 0, result.describe()
    lines = [line for line in result.stderr.splitlines() if ABSENT_IP in line and 'started:' not in line]
    assert len(lines) == 1 and re.search(r'the engine on 10.250.0.99 has not joined 1\d s after its start', lines[0]), (
        lines
    )
    assert {record.host for record in read_status(status_path(tmp_path))} == {'node1'}


# ------------------------------------------------------------------------------- a hundred hosts


@pytest.mark.timeout(240)
def test_a_hundred_hosts_start_a_window_at_a_time_and_an_unreachable_one_is_reported(
    procs: Processes, cluster: dict[str, str], remote_cleanup: None, tmp_path: Path
) -> None:
    hosts = [f'loop-{number:03d}' for number in range(1, 102)]
    # dead-host: an address of the cluster's subnet with no host behind it
    env = ssh_with_config(tmp_path, own_sshd(cluster, 'loop-*') + f'Host dead-host\n    HostName {ABSENT_IP}\n')
    nodes = ','.join(f'{host}:1' for host in [*hosts[:50], 'dead-host', *hosts[50:]])
    # each task waits (90 s at most) until every engine has joined, so each host name gets one
    wait = "for i in $(seq 90); do [ $(grep -c 'joined from' *_driver.log) -ge 101 ] && break; sleep 1; done\n"
    (tmp_path / 'Tasks').write_text(wait * 101)
    result = run_disbatch(procs, tmp_path, '--use-address', '127.0.0.1:0', '-s', nodes, 'Tasks', timeout=220, env=env)
    assert result.returncode == 0, result.describe()
    dead = [line for line in result.stderr.splitlines() if 'dead-host' in line and 'started:' not in line]
    assert len(dead) == 1 and 'before joining the run' in dead[0], result.stderr
    log = run_files(tmp_path, 'driver.log')[0].read_text()
    assert 'context SSH0: 102 engines to start, at most 32 launching at once' in log
    in_flight = [int(count) for count in re.findall(r'starting the engine of \S+ \(launch \d+, (\d+) in flight', log)]
    assert len(in_flight) == 102 and max(in_flight) == 32, in_flight
    records = read_status(status_path(tmp_path))
    assert len(records) == 101 and all(record.return_code == 0 for record in records)
    assert sorted(record.host for record in records) == hosts  # one task on each engine: 101 distinct engines
    joined = re.findall(r'engine \d+ joined from (\S+) ', log)
    assert sorted(joined) == hosts, 'an engine per host name, each joined once'
