"""Smoke test of bench/: `python -m bench --smoke --no-append` runs every tool once and prints its table.

Ours runs from the checkout (--ours-from-checkout), so the test needs no package index for the venv a full run
installs ours into.

No timing is asserted (targets are printed as PASS/MISS, never checked by tests; see STYLE.md). The exit code is:
it is 0 only when each of our runs was correct (status file complete, every rc 0).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(
    shutil.which('xargs') is None and shutil.which('parallel') is None,
    reason='neither xargs nor GNU parallel on PATH: nothing to compare with',
)
@pytest.mark.timeout(300)
def test_bench_smoke_runs_and_prints_the_table() -> None:
    environment = {name: value for name, value in os.environ.items() if not name.startswith('DISBATCH_')}
    done = subprocess.run(
        [sys.executable, '-m', 'bench', '--smoke', '--no-append', '--no-install', '--ours-from-checkout'],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for title in ('50 x true, 2 slots', '50 x true, 8 slots', '10 x sleep 0.1, 10 slots', '1 x true, 1 slot'):
        assert title in done.stdout
    assert 'median s' in done.stdout
    assert 'target: ' in done.stdout
    assert 'correctness: ours 1/1 runs ok' in done.stdout
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith('  ')]
    assert any(row[:1] == ['ours'] for row in rows)
    assert any(row[:2] == ['xargs', '-P'] for row in rows)


@pytest.mark.timeout(120)
def test_bench_spawners_runs_every_spawner_and_prints_the_table() -> None:
    """`python -m bench.spawners` with tiny N: every spawner passes its verification and is timed once."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith('DISBATCH_')}
    environment['PYTHONPATH'] = str(REPO_ROOT)
    done = subprocess.run(
        [sys.executable, '-m', 'bench.spawners', '--tasks', '20', '--reps', '1', '--slots', '2', '--no-parallel'],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'every spawner ran its check tasks right' in done.stdout
    rows = [line.split(' | ') for line in done.stdout.splitlines() if line.startswith('| 2 | ')]
    keys = {row[1] for row in rows}
    assert {'spawn', 'fork', 'fork-pgrp', 'fork-engine'} <= keys
    assert all(row[2] == '1' for row in rows)  # one timed rep each, none failed


def test_bench_spawners_verification_catches_a_spawner_that_kills_its_slot_shell(tmp_path: Path) -> None:
    """The plain forking shell shares its process group with its tasks: a spawner that claimed otherwise fails
    its verification (a task's kill of its own group takes the slot shell with it)."""
    sys.path.insert(0, str(REPO_ROOT))
    try:
        from bench.spawn_fork import SlotShellSpawner
        from bench.spawn_verify import verify
    finally:
        sys.path.remove(str(REPO_ROOT))
    honest = SlotShellSpawner('fork', '', signal_status=128, protocol='plain')
    claiming = SlotShellSpawner('fork', '', own_group=True, signal_status=128, protocol='plain')
    assert verify(honest, 2, tmp_path) == []
    problems = verify(claiming, 2, tmp_path)
    assert len(problems) == 1
    assert problems[0].startswith('2 slots: the check batch did not run: the shell of slot ')  # the one that ran it
    assert problems[0].endswith(' exited')
