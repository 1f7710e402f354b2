"""Smoke test of the test cluster (tests/cluster): sshd and Slurm answer before disbatch runs there."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.conftest import Processes

pytestmark = pytest.mark.cluster


def test_ssh_reaches_node1(procs: Processes, cluster: dict[str, str], tmp_path: Path) -> None:
    result = procs.run(['ssh', 'node1', 'hostname'], cwd=tmp_path, timeout=30)
    assert result.returncode == 0, result.stderr
    # loopback mode has no per-node hostname: every node is this machine
    expected = 'node1' if cluster['CI_CLUSTER_MODE'] == 'netns' else cluster['CI_CLUSTER_HEAD']
    assert result.stdout.strip() == expected


def test_sinfo_shows_idle_nodes(procs: Processes, cluster: dict[str, str], tmp_path: Path) -> None:
    expected = {name: 'idle' for name in cluster['CI_CLUSTER_NODES'].split()}
    assert len(expected) == int(cluster['CI_NUM_NODES']) == 3
    states: dict[str, str] = {}
    deadline = time.monotonic() + 30  # a job of an earlier test may still be completing
    while time.monotonic() < deadline:
        result = procs.run(['sinfo', '-h', '-N', '-o', '%N %t'], cwd=tmp_path, timeout=15)
        assert result.returncode == 0, result.stderr
        states = dict(line.split() for line in result.stdout.splitlines() if line.strip())
        if states == expected:
            break
        time.sleep(0.5)
    assert states == expected
