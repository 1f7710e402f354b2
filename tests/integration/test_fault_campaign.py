"""A small fault campaign (`python -m bench.faults`, issue 22): 40 marker-file tasks through a chain of runs, engines
and drivers killed with SIGKILL and a Ctrl-C, each resumed with the command the run prints. It must find nothing
lost, nothing finished run again, nothing running twice at once and no process left: exit 0 and PASS.
"""

from __future__ import annotations

import re
import sys

import pytest

from ..conftest import Processes
from .helpers import REPO_ROOT


@pytest.mark.timeout(240)
def test_a_small_fault_campaign_finds_nothing_lost_or_twice(procs: Processes) -> None:
    arguments = [
        '--tasks',
        '40',
        '--driver-kills',
        '3',
        '--engine-kills',
        '3',
        '--interrupts',
        '1',
        '--seconds-per-task',
        '1.0-2.0',
        '--seed',
        '5',
        '--seconds',
        '200',
    ]
    done = procs.run([sys.executable, '-m', 'bench.faults', *arguments], cwd=REPO_ROOT, timeout=230)
    assert done.returncode == 0, done.stdout + done.stderr
    # a run may end before its planned stop (little work left): at least some of each kind happened
    kills = re.search(r'\((\d+) driver SIGKILLs, (\d+) engine SIGKILLs, (\d+) SIGINTs\)', done.stdout)
    assert kills and int(kills[1]) >= 2 and int(kills[2]) >= 1, done.stdout
    assert 'result: PASS' in done.stdout, done.stdout
