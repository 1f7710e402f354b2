"""Fixtures shared by every test: a clean environment, process clean-up, the test cluster.

* ``clean_environment`` (autouse): no ``DISBATCH_*`` or ``KVSSTCP_*`` variable leaks from the
  caller into a test.
* ``procs``: runs and spawns processes for one test.  Each test gets a unique marker value,
  exported as ``DISBATCH_TEST_MARKER`` into ``os.environ`` and into every process started
  through the helpers; children inherit it, so at teardown every process still carrying it
  (orphaned task processes in other sessions included) is found in ``/proc/*/environ`` and
  killed.  A session-wide safety net does the same for the whole run.
* ``cluster`` (session): the settings of the test cluster of ``tests/cluster``, or a skip
  when it is not up (a failure when ``CI=true``).  Tests marked ``cluster`` get it
  automatically.
* ``disbatch_cmd(*args)``: the command line that runs this checkout's CLI.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

MARKER_VARIABLE = 'DISBATCH_TEST_MARKER'
SCRUBBED_PREFIXES = ('DISBATCH_', 'KVSSTCP_')
DEFAULT_CLUSTER_DIR = '/tmp/ci-cluster'


def disbatch_cmd(*args: str) -> list[str]:
    """The command line that runs the disbatch CLI of this checkout with ``args``."""
    return [sys.executable, '-m', 'disbatch', *args]


def pids_with_marker(prefix: str) -> list[int]:
    """PIDs of live processes whose initial environment has ``DISBATCH_TEST_MARKER=<prefix>...``."""
    needle = f'{MARKER_VARIABLE}={prefix}'.encode()
    own_pid = os.getpid()
    found = []
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit() or int(entry.name) == own_pid:
            continue
        try:
            environment = (entry / 'environ').read_bytes()
        except OSError:
            continue  # gone, or not ours to read
        if any(item.startswith(needle) for item in environment.split(b'\0')):
            found.append(int(entry.name))
    return found


def kill_marked(prefix: str) -> list[int]:
    """SIGKILL every process carrying the marker ``prefix``, repeatedly until none is left."""
    killed: list[int] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pids = pids_with_marker(prefix)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            if pid not in killed:
                killed.append(pid)
        time.sleep(0.05)  # let the kernel tear them down (zombies have an empty environ)
    return killed


class Processes:
    """Runs and spawns processes that carry one test's marker; kills them all at teardown."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.spawned: list[subprocess.Popen[str]] = []

    def environment(self, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """``os.environ`` with ``env`` laid over it and the marker set: what children get."""
        result = dict(os.environ)
        if env is not None:
            result.update(env)
        result[MARKER_VARIABLE] = self.marker
        return result

    def run(
        self,
        args: Sequence[str],
        *,
        cwd: str | os.PathLike[str],
        timeout: float = 60,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``args`` to completion in a new session (text mode, output captured).

        ``env`` is laid over ``os.environ``.  stdin is empty unless ``input`` is given.
        """
        return subprocess.run(
            list(args),
            cwd=cwd,
            env=self.environment(env),
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
            check=False,
        )

    def spawn(
        self,
        args: Sequence[str],
        *,
        cwd: str | os.PathLike[str],
        env: Mapping[str, str] | None = None,
        **popen_kwargs: Any,
    ) -> subprocess.Popen[str]:
        """Start ``args`` in a new session; text mode and stdin from /dev/null unless overridden."""
        popen_kwargs.setdefault('stdin', subprocess.DEVNULL)
        if not {'text', 'universal_newlines', 'encoding', 'errors'} & popen_kwargs.keys():
            popen_kwargs['text'] = True
        process: subprocess.Popen[str] = subprocess.Popen(
            list(args), cwd=cwd, env=self.environment(env), start_new_session=True, **popen_kwargs
        )
        self.spawned.append(process)
        return process

    def alive(self) -> list[int]:
        """PIDs of the processes of this test that still run."""
        return pids_with_marker(self.marker)

    def cleanup(self) -> None:
        """Kill every process of this test and reap the ones spawned directly."""
        kill_marked(self.marker)
        for process in self.spawned:
            if process.poll() is None:
                process.kill()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                continue
            for stream in (process.stdin, process.stdout, process.stderr):
                if stream is not None:
                    stream.close()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every DISBATCH_* and KVSSTCP_* variable from os.environ for the test."""
    for name in list(os.environ):
        if name.startswith(SCRUBBED_PREFIXES):
            monkeypatch.delenv(name)


@pytest.fixture(scope='session')
def session_marker() -> Iterator[str]:
    """The marker prefix of this pytest run; at the end, kills whatever still carries it."""
    marker = f'pytest-{uuid.uuid4().hex}'
    yield marker
    kill_marked(marker + '-')


@pytest.fixture(autouse=True)
def _session_safety_net(session_marker: str) -> None:
    """Makes every test depend on session_marker, so the final clean-up always runs."""


@pytest.fixture
def procs(clean_environment: None, session_marker: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Processes]:
    """Process helpers for one test; every process started with the test's marker dies at teardown.

    The marker is also put into ``os.environ`` so that processes started in-process (the API)
    carry it too.
    """
    processes = Processes(f'{session_marker}-{uuid.uuid4().hex}')
    monkeypatch.setenv(MARKER_VARIABLE, processes.marker)
    try:
        yield processes
    finally:
        processes.cleanup()


def read_settings(path: Path) -> dict[str, str]:
    """The ``export NAME='value'`` lines of the cluster's settings.env as a dict."""
    settings = {}
    for line in path.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == 'export' and '=' in words[1]:
            name, value = words[1].split('=', 1)
            settings[name] = value
    return settings


def cluster_problem(cluster_dir: Path) -> str | None:
    """Why the test cluster cannot be used, or None when it is up."""
    settings_file = cluster_dir / 'settings.env'
    if not settings_file.is_file():
        return f'test cluster not up: no {settings_file} (start it with: sudo bash tests/cluster/ci-up.sh)'
    for pid_file in (cluster_dir / 'slurm' / 'slurmctld.pid', cluster_dir / 'ssh' / 'sshd-head.pid'):
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return f'test cluster only partly up: no {pid_file} (restart it with: sudo bash tests/cluster/ci-up.sh)'
        if not Path(f'/proc/{pid}').exists():
            return f'test cluster only partly up: pid {pid} of {pid_file} is gone (run tests/cluster/ci-up.sh)'
    return None


@pytest.fixture(scope='session')
def cluster() -> dict[str, str]:
    """The settings of the running test cluster (CI_CLUSTER_NODES, CI_CLUSTER_MODE, ...)."""
    cluster_dir = Path(os.environ.get('CI_CLUSTER_DIR') or DEFAULT_CLUSTER_DIR)
    problem = cluster_problem(cluster_dir)
    if problem is not None:
        if os.environ.get('CI') in ('true', '1'):
            pytest.fail(f'CI=true: {problem}', pytrace=False)
        pytest.skip(problem)
    return read_settings(cluster_dir / 'settings.env')


@pytest.fixture(autouse=True)
def _cluster_marker(request: pytest.FixtureRequest) -> None:
    """Tests marked ``cluster`` need the cluster fixture (skip when the cluster is not up)."""
    if request.node.get_closest_marker('cluster') is not None:
        request.getfixturevalue('cluster')
