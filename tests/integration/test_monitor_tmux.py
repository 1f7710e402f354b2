"""The `--mon` monitor on a real terminal: a live run with two engines, watched in tmux, one engine stopped from the
monitor's menu, the run going on with the other one, the monitor quitting with `q` and noticing the end of the run.

tmux runs on a socket of its own (`tmux -L <unique>`), started with this test's marker in its environment, so the
`procs` clean-up and the finalizer (`kill-session` by name, then `kill-server` on that socket) leave nothing behind.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from disbatch.contract import STATUS_KEY
from disbatch.contract.snapshot import EngineView, Snapshot
from disbatch.kvsstcp.client import KVSClient
from disbatch.kvsstcp.server import KVSServer

from ..conftest import Processes, disbatch_cmd
from .helpers import REPO_ROOT, read_status, wait_for, write_task_file

pytestmark = pytest.mark.skipif(shutil.which('tmux') is None, reason='needs tmux')

TASKS = 'sleep 0.5\n' * 60
# Mem and CPU (peak memory, CPU seconds of the host's tasks) follow State when the pane is wide enough.
ROW = re.compile(r'^\s*(?P<rank>\d+) +(?P<context>\S+) +(?P<host>\S+) +\S+ +\d+ +\d+ +(?P<finished>\d+) +\d+ +'
                 r'(?P<state>active|retiring|silent|left|lost)'
                 r'(?: +(?P<memory>-|[0-9.]+[BKMGT]) +(?P<cpu>-|[0-9.]+s))?\s*$',
                 re.MULTILINE)  # fmt: skip
FINISHED = re.compile(r'Tasks: Finished (\d+)')


class Tmux:
    """A private tmux server (its own socket) whose sessions show 120x40 terminals."""

    def __init__(self, procs: Processes) -> None:
        self.procs = procs
        self.socket = f'disbatch-test-{uuid.uuid4().hex[:12]}'
        self.sessions: list[str] = []

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ['tmux', '-L', self.socket, '-f', '/dev/null', *args],
            env=self.procs.environment({'PYTHONPATH': str(REPO_ROOT)}),
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )

    def start(self, shell_command: str, cwd: Path) -> str:
        name = f'mon-{uuid.uuid4().hex[:8]}'
        done = self.command('new-session', '-d', '-s', name, '-x', '120', '-y', '40', '-c', str(cwd), shell_command)
        assert done.returncode == 0, done.stderr
        self.sessions.append(name)
        return name

    def screen(self, name: str) -> str:
        return self.command('capture-pane', '-p', '-t', name).stdout

    def keys(self, name: str, *keys: str) -> None:
        for key in keys:
            assert self.command('send-keys', '-t', name, key).returncode == 0
            time.sleep(0.2)

    def resize(self, name: str, width: int, height: int) -> None:
        done = self.command('resize-window', '-t', name, '-x', str(width), '-y', str(height))
        assert done.returncode == 0, done.stderr

    def close(self) -> None:
        for name in self.sessions:
            self.command('kill-session', '-t', name)
        self.command('kill-server')


@pytest.fixture
def tmux(procs: Processes) -> Iterator[Tmux]:
    server = Tmux(procs)
    try:
        yield server
    finally:
        server.close()


def monitor_command(dbutil: Path) -> str:
    """The shell command of a pane: the monitor, then its exit status, then a pause so the pane can be read."""
    if 'disbatch.monitor' in dbutil.read_text():
        monitor = f'{shlex.quote(str(dbutil))} --mon'
    else:  # dbUtil.sh --mon not wired yet: the same program with the variables the script exports
        monitor = (
            f'. <(grep "^export " {shlex.quote(str(dbutil))}) && {shlex.quote(sys.executable)} -m disbatch.monitor'
        )
    return 'bash -c ' + shlex.quote(f'{monitor}; echo "[monitor rc=$?]"; exec sleep 120')


def engines(screen: str) -> dict[int, re.Match[str]]:
    return {int(match['rank']): match for match in ROW.finditer(screen)}


def finished(screen: str) -> int:
    match = FINISHED.search(screen)
    return int(match[1]) if match else -1


@pytest.mark.timeout(90)
def test_monitor_shows_the_run_and_stops_one_engine(procs: Processes, tmux: Tmux, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', TASKS)
    stem = tmp_path / 'run'
    driver = procs.spawn(
        disbatch_cmd('-s', 'localhost:2,127.0.0.1:2', '-p', str(stem), 'Tasks'),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    dbutil, kvsinfo = Path(f'{stem}_dbUtil.sh'), Path(f'{stem}_kvsinfo.txt')
    assert wait_for(lambda: (dbutil.exists() and kvsinfo.exists()) or driver.poll() is not None, timeout=15)
    assert driver.poll() is None, driver.communicate(timeout=5)

    watcher = tmux.start(monitor_command(dbutil), tmp_path)  # watches to the end
    actor = tmux.start(monitor_command(dbutil), tmp_path)  # stops an engine, then quits

    # The header and both engines appear, and the counts move.
    assert wait_for(lambda: len(engines(tmux.screen(actor))) == 2, timeout=15), tmux.screen(actor)
    screen = tmux.screen(actor)
    assert 'Run label: run   Status: Running.' in screen, screen
    assert re.search(r'Slots 4 +Tasks: Finished \d+ +Failed 0 +Barriers 0 +Running \d+ +Waiting \d+', screen), screen
    assert 'Rank Context Host' in screen and 'Assigned Finished Failed State' in screen, screen
    first = finished(screen)
    assert wait_for(lambda: finished(tmux.screen(actor)) > first, timeout=10), tmux.screen(actor)

    # Stop engine 1 through the menu: select the second row, E, then Yes.
    stopped_host = engines(tmux.screen(actor))[1]['host']
    tmux.keys(actor, 'j', 'E')
    assert wait_for(lambda: 'Stop engine 1' in tmux.screen(actor), timeout=5), tmux.screen(actor)
    menu = tmux.screen(actor)
    assert '1 - Yes' in menu and '2 - No' in menu, menu
    tmux.keys(actor, '1', 'Enter')
    stopped_at = time.time()
    assert wait_for(lambda: 'Asked engine 1 to stop.' in tmux.screen(actor), timeout=5), tmux.screen(actor)

    # Its row stays, as an engine that left (greyed, and why when selected); the other engine carries on.
    assert wait_for(lambda: engines(tmux.screen(actor))[1]['state'] == 'left', timeout=15), tmux.screen(actor)
    assert wait_for(lambda: 'engine 1 left: finished its tasks' in tmux.screen(actor), timeout=10), tmux.screen(actor)
    after = finished(tmux.screen(actor))
    assert wait_for(lambda: finished(tmux.screen(actor)) > after, timeout=10), tmux.screen(actor)
    assert 'Slots 2 ' in tmux.screen(actor)

    # A terminal too small for the table says so, and the table comes back when it grows again.
    tmux.resize(watcher, 50, 10)
    assert wait_for(lambda: 'Terminal too small' in tmux.screen(watcher), timeout=5), tmux.screen(watcher)
    tmux.resize(watcher, 120, 40)
    assert wait_for(lambda: 'Run label: run' in tmux.screen(watcher), timeout=5), tmux.screen(watcher)

    # q quits the monitor; the run goes on to its end.
    tmux.keys(actor, 'q')
    assert wait_for(lambda: '[monitor rc=0]' in tmux.screen(actor), timeout=5), tmux.screen(actor)
    assert 'Traceback' not in tmux.screen(actor)
    stdout, stderr = driver.communicate(timeout=40)
    assert driver.returncode == 0, (stdout, stderr)

    # The watching monitor notices the end by itself.
    assert wait_for(lambda: '[monitor rc=0]' in tmux.screen(watcher), timeout=10), tmux.screen(watcher)
    ended = tmux.screen(watcher)
    assert re.search(r'The run run has ended(: 60 tasks finished, 0 failed)?\.', ended), ended
    assert 'Traceback' not in ended

    records = read_status(Path(f'{stem}_status.txt'))
    assert sorted(record.task_id for record in records) == list(range(60))
    assert all(record.return_code == 0 for record in records)
    late = {record.host for record in records if record.start > stopped_at + 1.0}
    assert late and stopped_host not in late, (stopped_host, late)


@pytest.mark.timeout(20)
def test_no_run_to_watch_is_one_line_and_status_1(procs: Processes, tmp_path: Path) -> None:
    command = [sys.executable, '-m', 'disbatch.monitor']
    environment = {'PYTHONPATH': str(REPO_ROOT)}
    missing = procs.run(command, cwd=tmp_path, env=environment)
    assert (missing.returncode, missing.stdout) == (1, ''), missing
    assert missing.stderr.count('\n') == 1 and 'no run to watch' in missing.stderr, missing.stderr

    ended = procs.run(
        command,
        cwd=tmp_path,
        env={**environment, 'DISBATCH_KVSSTCP_HOST': '127.0.0.1:1', 'DISBATCH_RUN_STEM': f'{tmp_path}/gone'},
    )
    assert (ended.returncode, ended.stdout) == (1, ''), ended
    assert ended.stderr == 'disbatch monitor: the run gone is not running (no ' + f'{tmp_path}/gone_kvsinfo.txt).\n'

    named = procs.run([*command, f'{tmp_path}/gone'], cwd=tmp_path, env=environment)
    assert (named.returncode, named.stdout) == (1, ''), named
    assert named.stderr.count('\n') == 1 and 'gone_kvsinfo.txt does not exist' in named.stderr, named.stderr

    refused = procs.run(command, cwd=tmp_path, env={**environment, 'DISBATCH_KVSSTCP_HOST': '127.0.0.1:1'})
    assert refused.returncode == 1, refused
    assert refused.stderr.count('\n') == 1 and 'cannot contact the run' in refused.stderr, refused.stderr


def big_snapshot(now: float, engines: int = 1000) -> Snapshot:
    """1,000 engines of 16 slots in three contexts: some lost, some silent, some with failures, ten that left."""
    views = []
    for rank in range(engines):
        context = 'SLURM0' if rank < 600 else 'SSH1' if rank < 900 else 'SGE2'
        engine = EngineView(rank, context, f'{context.lower()}-n{rank:04d}', pid=rank, last_heard=0.4, slots=16,
                            running=16 - rank % 3, free=rank % 3, given=400, finished=380)  # fmt: skip
        if rank % 97 == 5:
            engine = replace(engine, stage='lost', why='silent, or its process or connection ended', running=0, free=0)
        elif rank % 131 == 7:
            engine = replace(engine, last_heard=6.5)
        elif rank % 53 == 3:
            engine = replace(engine, failed=rank % 9 + 1)
        elif rank >= 990:
            engine = replace(engine, stage='left', why='finished its tasks and was let go', running=0, free=0)
        views.append(engine)
    return Snapshot(run='big', status='running', more=True, started=now - 3723, now=now, finished=401_234, failed=187,
                    lost=11, running=sum(view.running for view in views), pending=1200, total=1_000_000,
                    slots=16 * engines, engines=tuple(views))  # fmt: skip


@pytest.mark.timeout(60)
def test_the_monitor_of_1000_engines_sums_up_contexts_and_shows_troubled_engines_first(
    procs: Processes, tmux: Tmux, tmp_path: Path
) -> None:
    server = KVSServer('127.0.0.1', 0).start()  # a real KVS holding a real snapshot, as the driver publishes it
    try:
        host, port = server.address
        client = KVSClient.from_address(f'{host}:{port}')
        client.put(STATUS_KEY, json.dumps(big_snapshot(time.time()).to_json()).encode(), encoding=b'JSON')
        monitor = f'DISBATCH_KVSSTCP_HOST={host}:{port} {shlex.quote(sys.executable)} -m disbatch.monitor'
        pane = tmux.start('bash -c ' + shlex.quote(f'{monitor}; echo "[monitor rc=$?]"; exec sleep 60'), tmp_path)
        tmux.resize(pane, 80, 30)
        assert wait_for(lambda: 'rows 1-' in tmux.screen(pane), timeout=15), tmux.screen(pane)
        time.sleep(1.0)  # a redraw at the new size
        lines = tmux.screen(pane).splitlines()
        assert all(len(line.rstrip()) <= 80 for line in lines), lines
        assert lines[1:3] == [
            'Slots 16000   Tasks: Finished 401234  Failed 187  Barriers 0  Running 14685',
            'Waiting 584081  Total 1000000  Lost 11',
        ], lines
        assert lines[3].startswith('Engines 979, 21 gone   Elapsed 01:02:0'), lines
        assert lines[4] == 'SLURM0: 600 eng, 12 lost/silent, 8896/9488 busy, 54 failed'  # the short form in 79
        assert lines[6] == 'SGE2: 100 engines, 2 lost or silent, 1334/1424 slots busy, 9 failed attempts'
        rows = [match['state'] for match in ROW.finditer('\n'.join(lines))]
        assert rows[:19] == ['silent'] * 8 + ['lost'] * 11 and set(rows[19:]) == {'active'}, lines
        assert re.search(r'rows 1-\d+ of 1000', lines[-1]) and re.match(r'engine \d+ silent: not heard', lines[-1])
        tmux.keys(pane, 'End')
        assert wait_for(lambda: 'of 1000' in tmux.screen(pane) and ' left' in tmux.screen(pane), timeout=5)
        end = tmux.screen(pane)
        assert [match['state'] for match in ROW.finditer(end)][-10:] == ['left'] * 10, end
        assert 'engine 999 left: finished its tasks and was let go' in end, end
        tmux.keys(pane, 'q')
        assert wait_for(lambda: '[monitor rc=0]' in tmux.screen(pane), timeout=5), tmux.screen(pane)
        client.close()
    finally:
        server.shutdown()
