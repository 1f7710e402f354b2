"""The engine's supervisor (`disbatch/engine/supervisor.py`) with real processes: a stand-in engine forks off its
supervisor exactly as `python -m disbatch.engine` does, starts "tasks" in sessions of their own (one of which starts
a daemon of its own in yet another session) and then dies; whatever it left must be ended by the supervisor, whose
exit is an ordinary one that names the signal.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from disbatch.protocol.messages import engine_killed_exit, killing_signal

from ..conftest import Processes
from .helpers import pid_alive, wait_for

# The stand-in engine: `how` is what it does once its tasks run: 'kill' (SIGKILL itself), 'exit' (exit 3 leaving
# them), 'stop' (wait to be stopped, ignoring SIGTERM: the supervisor must SIGKILL it), 'wait' (SIGTERM ends it).
ENGINE = """
import os, signal, subprocess, sys, time
from disbatch.engine import supervisor
supervisor.ENGINE_STOP_SECONDS = 0.5
how, pids_file = sys.argv[1], sys.argv[2]
code = supervisor.fork_engine()
if code is not None:
    sys.exit(code)
tasks = [subprocess.Popen(['sleep', '300'], start_new_session=True),
         subprocess.Popen(['bash', '-c', 'setsid sleep 301 & echo $! > daemon; sleep 302'], start_new_session=True)]
while not os.path.exists('daemon') or not open('daemon').read().strip():
    time.sleep(0.01)
if how == 'stop':
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
pids = [os.getpid(), *(task.pid for task in tasks), int(open('daemon').read())]
with open(pids_file + '.part', 'w') as handle:
    handle.write(' '.join(map(str, pids)))
os.rename(pids_file + '.part', pids_file)
if how == 'kill':
    os.kill(os.getpid(), signal.SIGKILL)
if how == 'exit':
    os._exit(3)
time.sleep(300)
"""


def start(procs: Processes, tmp_path: Path, how: str) -> tuple[subprocess.Popen[str], list[int]]:
    pids_file = tmp_path / 'pids'
    supervised = procs.spawn(
        [sys.executable, '-c', ENGINE, how, str(pids_file)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert wait_for(pids_file.exists, 20), supervised.communicate(timeout=5)
    pids = [int(word) for word in pids_file.read_text().split()]
    assert len(pids) == 4  # the engine, two tasks, the daemon one of them started
    return supervised, pids


@pytest.mark.timeout(30)
def test_a_killed_engine_leaves_nothing_and_its_supervisor_exits_ordinarily(procs: Processes, tmp_path: Path) -> None:
    supervised, pids = start(procs, tmp_path, 'kill')
    _, stderr = supervised.communicate(timeout=15)
    assert supervised.returncode == engine_killed_exit(signal.SIGKILL) == 73, stderr
    assert killing_signal(supervised.returncode) == signal.SIGKILL
    assert not [pid for pid in pids if pid_alive(pid)], 'a process of the dead engine still runs'
    assert f'the engine (pid {pids[0]}) was killed by SIGKILL; ended the' in stderr, stderr


@pytest.mark.timeout(30)
def test_an_engine_that_exits_leaving_processes_has_them_ended(procs: Processes, tmp_path: Path) -> None:
    supervised, pids = start(procs, tmp_path, 'exit')
    _, stderr = supervised.communicate(timeout=15)
    assert supervised.returncode == 3, stderr  # its own exit code, passed on
    assert not [pid for pid in pids if pid_alive(pid)]
    assert f'the engine (pid {pids[0]}) exited with 3; ended the' in stderr, stderr


@pytest.mark.timeout(30)
@pytest.mark.parametrize('how', ['wait', 'stop'])
def test_a_stop_signal_to_the_supervisor_ends_the_engine_and_its_tasks(
    procs: Processes, tmp_path: Path, how: str
) -> None:
    supervised, pids = start(procs, tmp_path, how)
    supervised.send_signal(signal.SIGTERM)
    _, stderr = supervised.communicate(timeout=15)
    killer = signal.SIGTERM if how == 'wait' else signal.SIGKILL  # one that ignores SIGTERM is killed 0.5 s later
    assert supervised.returncode == engine_killed_exit(killer), stderr
    assert not [pid for pid in pids if pid_alive(pid)]


def test_only_a_supervisors_exit_codes_name_a_signal() -> None:
    assert [killing_signal(engine_killed_exit(signum)) for signum in (1, 9, 11, 15, 31)] == [1, 9, 11, 15, 31]
    assert killing_signal(engine_killed_exit(40)) == 0  # a real-time signal: not named
    assert [killing_signal(code) for code in (-9, 0, 1, 2, 63, 96, 137, 255)] == [None] * 8
