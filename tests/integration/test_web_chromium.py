"""The `--web` page in a real browser: headless Chromium reads the counts from the DOM while they change.

Chromium runs with `--virtual-time-budget`, so the page's one-second polling happens in virtual time: a dump of the
DOM shows what the page drew after a few polls, without the test waiting in real time. The server is fed snapshots
directly (no run needed), except in the last test, which runs `disbatch -s localhost:2 --web` for real.

Needs Debian's `chromium` (scripts/test installs it); skipped with that reason when it is missing.
Set SAVE_WEB_SCREENSHOT=FILE to keep a copy of the screenshot (e.g. to look at it).
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from disbatch.contract.snapshot import Snapshot
from disbatch.web import WebStatus

from ..conftest import Processes, disbatch_cmd
from .helpers import wait_for

CHROMIUM = shutil.which('chromium')

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        CHROMIUM is None,
        reason='needs headless Chromium: apt-get install -y --no-install-recommends chromium (scripts/test does)',
    ),
]

VOID_ELEMENTS = {'area', 'base', 'br', 'col', 'embed', 'hr', 'img', 'input', 'link', 'meta', 'source', 'wbr'}


class Dom(HTMLParser):
    """What a DOM dump shows: the text and attributes of every element with an id, and the cells of table rows."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.text: dict[str, str] = {}
        self.attributes: dict[str, dict[str, str | None]] = {}
        self.rows: dict[str, list[list[str]]] = {}
        self._open: list[tuple[str, str | None]] = []  # (tag, id)
        self._body: str | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element_id = dict(attrs).get('id')
        if element_id is not None:
            self.text[element_id] = ''
            self.attributes[element_id] = dict(attrs)
            if tag == 'tbody':
                self._body = element_id
                self.rows[element_id] = []
        if self._body is not None and tag == 'tr':
            self.rows[self._body].append([])
        elif self._body is not None and tag == 'td':
            self.rows[self._body][-1].append('')
        if tag not in VOID_ELEMENTS:
            self._open.append((tag, element_id))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            open_tag, element_id = self._open.pop()
            if element_id is not None and element_id == self._body:
                self._body = None
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, element_id in self._open:
            if element_id is not None:
                self.text[element_id] += data
        if self._body is not None and self.rows[self._body] and self._open and self._open[-1][0] == 'td':
            self.rows[self._body][-1][-1] += data

    def hidden(self, element_id: str) -> bool:
        return 'hidden' in self.attributes[element_id]


def chromium(procs: Processes, tmp_path: Path, url: str, *options: str, budget_ms: int = 3000) -> str:
    """Run headless Chromium on `url` (its own profile directory) and return its standard output."""
    assert CHROMIUM is not None
    profile = tempfile.mkdtemp(prefix='chromium-', dir=tmp_path)
    args = [
        CHROMIUM, '--headless=new', '--disable-gpu', '--no-sandbox', f'--user-data-dir={profile}',
        '--no-first-run', '--no-default-browser-check', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--disable-extensions', '--disable-dev-shm-usage',
        f'--virtual-time-budget={budget_ms}', *options, url,
    ]  # fmt: skip
    result = procs.run(args, cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def dump(procs: Processes, tmp_path: Path, url: str, budget_ms: int = 3000) -> Dom:
    html = chromium(procs, tmp_path, url, '--dump-dom', budget_ms=budget_ms)
    assert 'id="finished"' in html, html[:2000]
    return Dom(html)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n'
    width, height = struct.unpack('>II', data[16:24])
    return width, height


def view(finished: int, failed: int = 1, engines: int = 1, **changes: Any) -> dict[str, Any]:
    """A snapshot's JSON, shaped like the driver's."""
    now = time.time()
    base: dict[str, Any] = {
        'run': 'Tasks_disBatch_260101000000_007',
        'status': 'running',
        'more': True,
        'started': now - 75.0,
        'now': now,
        'finished': finished,
        'failed': failed,
        'skipped': 2,
        'barriers': 1,
        'lost': 0,
        'running': 2 * engines,
        'pending': 3,
        'total': None,
        'slots': 2 * engines,
        'engines': [
            {
                'rank': rank,
                'context': 'SSH0',
                'host': f'node{rank:02d}',
                'pid': 4000 + rank,
                'last_heard': 0.3,
                'slots': 2,
                'running': 2,
                'free': 0,
                'given': finished // engines + 2,
                'finished': finished // engines,
                'failed': failed if rank == 0 else 0,
                'retiring': rank == 1,
            }
            for rank in range(engines)
        ],
        'recent': [
            {
                'task': task,
                'line': task + 1,
                'host': 'node00',
                'return_code': 1 if task % 10 == 3 else 0,
                'elapsed': 0.25 + task / 100,
                'finish': now - 20 + task,
                'command': f'python3 simulate.py --seed {task} --out results/run_{task:04d}.h5',
            }
            for task in range(max(0, finished - 12), finished)
        ],
        'failures': [
            {
                'task': 3,
                'line': 4,
                'host': 'node00',
                'return_code': 1,
                'elapsed': 0.28,
                'finish': now - 17,
                'command': 'python3 simulate.py --seed 3 <broken> & "quoted"',
            }
        ][:failed],
    }
    base.update(changes)
    return base


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebStatus]:
    server = WebStatus('127.0.0.1', str(tmp_path / 'run_url'))
    server.start()
    try:
        yield server
    finally:
        server.stop()


class RequestWatcher(logging.Handler):
    """Sees the server's request log lines (DEBUG on `disbatch.web`) and calls `on_status` at the first poll."""

    def __init__(self, on_status: Callable[[], None]) -> None:
        super().__init__(logging.DEBUG)
        self.on_status = on_status
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        with self._lock:
            self.lines.append(message)
            first_poll = '/status.json' in message and sum('/status.json' in line for line in self.lines) == 1
        if first_poll:
            self.on_status()

    def count(self, text: str) -> int:
        with self._lock:
            return sum(text in line for line in self.lines)


@pytest.fixture
def watch_requests(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[Callable[[], None]], RequestWatcher]]:
    logger = logging.getLogger('disbatch.web')
    watchers: list[RequestWatcher] = []

    def start(on_status: Callable[[], None]) -> RequestWatcher:
        watcher = RequestWatcher(on_status)
        watchers.append(watcher)
        logger.addHandler(watcher)
        return watcher

    with caplog.at_level(logging.DEBUG, logger='disbatch.web'):
        yield start
    for watcher in watchers:
        logger.removeHandler(watcher)


def test_the_page_shows_the_counts_as_they_change(procs: Processes, tmp_path: Path, web: WebStatus) -> None:
    web.on_snapshot(Snapshot.from_json(view(finished=3, failed=0)))
    first = dump(procs, tmp_path, web.url)
    assert first.text['run'] == 'Tasks_disBatch_260101000000_007'
    assert first.text['status'] == 'Running'  # the monitor's words (run_vocabulary), not the snapshot's keys
    assert (first.text['finished'], first.text['failed'], first.text['running']) == ('3', '0', '2')
    assert (first.text['waiting'], first.text['skipped'], first.text['barriers']) == ('3', '2', '1')
    assert first.text['lost'] == '\u2013' and first.hidden('lost-card')  # shown only when not 0
    assert first.text['slots'] == '2'
    assert first.text['total'] == '\u2013'  # not known yet
    assert first.text['elapsed'].startswith('0:01:1')
    assert len(first.rows['engines']) == 1
    assert first.rows['engines'][0][:3] == ['0', 'SSH0', 'node00']
    assert len(first.rows['recent']) == 3
    assert first.rows['recent'][0][0] == '2'  # newest first
    assert first.rows['failures'] == [['no failed task']]
    assert first.hidden('ended')

    web.on_snapshot(Snapshot.from_json(view(finished=42, failed=1, engines=2, status='draining', more=False, total=50)))
    second = dump(procs, tmp_path, web.url)
    assert (second.text['finished'], second.text['failed'], second.text['running']) == ('42', '1', '4')
    assert second.text['total'] == '50'
    assert second.text['status'] == 'Finishing the last tasks'
    assert second.text['waiting'] == '2'  # 50 - 42 finished - 2 skipped - 4 running, as the monitor counts
    assert second.text['progress-label'] == '44 of 50 tasks done (88%)'
    assert [row[0] for row in second.rows['engines']] == ['0', '1']  # the one with a failure first
    assert second.rows['engines'][1][-1] == 'retiring: takes no more tasks, finishes the ones it runs'
    assert len(second.rows['recent']) == 12
    assert second.rows['failures'][0][-1] == 'python3 simulate.py --seed 3 <broken> & "quoted"'  # text, not markup
    assert second.hidden('ended')

    screenshot = tmp_path / 'web.png'
    chromium(procs, tmp_path, web.url, f'--screenshot={screenshot}', '--window-size=1200,900')
    assert png_size(screenshot) == (1200, 900)
    assert screenshot.stat().st_size > 10_000  # a drawn page, not a blank one
    keep = os.environ.get('SAVE_WEB_SCREENSHOT')
    if keep:
        shutil.copyfile(screenshot, keep)


def test_the_page_updates_without_reloading(
    procs: Processes, tmp_path: Path, web: WebStatus, watch_requests: Callable[..., RequestWatcher]
) -> None:
    web.on_snapshot(Snapshot.from_json(view(finished=5)))
    # The page is loaded with 5 finished embedded; from its second poll on, the server answers 17.
    watcher = watch_requests(lambda: web.on_snapshot(Snapshot.from_json(view(finished=17, failed=4))))
    dom = dump(procs, tmp_path, web.url, budget_ms=4000)
    assert (dom.text['finished'], dom.text['failed']) == ('17', '4')
    assert watcher.count(f'GET /{web.token}/ ') == 1  # loaded once
    assert watcher.count(f'GET /{web.token}/status.json ') >= 2  # polled


def test_the_page_says_run_ended_when_the_run_finished(procs: Processes, tmp_path: Path, web: WebStatus) -> None:
    final = view(finished=9, status='finished', more=False, total=9, running=0, pending=0, exit_code=0)
    web.on_snapshot(Snapshot.from_json(final))
    dom = dump(procs, tmp_path, web.url)
    assert not dom.hidden('ended')
    assert dom.text['ended'] == 'run ended \u2014 exit code 0'
    assert dom.text['status'] == 'Finished'


def test_the_page_says_run_ended_when_the_driver_stops_answering(
    procs: Processes, tmp_path: Path, web: WebStatus, watch_requests: Callable[..., RequestWatcher]
) -> None:
    web.on_snapshot(Snapshot.from_json(view(finished=6)))
    watch_requests(lambda: threading.Thread(target=web.stop).start())
    dom = dump(procs, tmp_path, web.url, budget_ms=5000)
    assert not dom.hidden('ended')
    assert dom.text['ended'].startswith('run ended')
    assert dom.text['finished'] == '6'  # the last counts stay on the page


def test_a_real_run_with_web(procs: Processes, tmp_path: Path) -> None:
    tasks = tmp_path / 'Tasks'
    tasks.write_text('sleep 0.25\n' * 40)
    run = procs.spawn(
        disbatch_cmd('-s', 'localhost:2', '--web', '-p', str(tmp_path / 'run'), str(tasks)),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url_file = tmp_path / 'run_url'
    assert wait_for(lambda: url_file.exists() or run.poll() is not None, timeout=15)
    assert url_file.exists(), run.communicate(timeout=10)
    assert (url_file.stat().st_mode & 0o077) == 0
    url = url_file.read_text().strip()
    assert url.startswith('http://127.0.0.1:')
    first = dump(procs, tmp_path, url, budget_ms=1500)
    time.sleep(1.0)
    second = dump(procs, tmp_path, url, budget_ms=1500)
    assert int(second.text['finished']) > int(first.text['finished'])
    assert second.text['slots'] == '2'
    assert len(second.rows['engines']) == 1
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 0, stderr
    assert url not in stderr  # the URL is private: only in the 0600 file


def test_the_page_shows_rate_eta_and_the_stderr_of_failed_tasks(
    procs: Processes, tmp_path: Path, web: WebStatus
) -> None:
    snapshot = view(finished=42, failed=1, total=50, rate=2.5, eta=3.2)
    snapshot['failures'][0]['stderr'] = 'Traceback: <ValueError>\n'
    web.on_snapshot(Snapshot.from_json(snapshot))
    page = dump(procs, tmp_path, web.url)
    assert (page.text['rate'], page.text['eta']) == ('2.5/s', '0:00:03')
    assert page.rows['failures'][0][-2] == 'Traceback: <ValueError>\n'  # as text, before the command

    web.on_snapshot(Snapshot.from_json(view(finished=3, failed=0, rate=0.25, eta=None)))
    assert dump(procs, tmp_path, web.url).text['rate'] == '15.0/min'


def test_disbatch_report_writes_a_page_with_a_timeline(procs: Processes, tmp_path: Path) -> None:
    (tmp_path / 'Tasks').write_text('sleep 0.2\nsleep 0.3; echo no such input >&2; exit 2\nsleep 0.1\nkill -9 $$\n')
    run = procs.run(disbatch_cmd('-s', 'localhost:2', '--json', 'events.jsonl', 'Tasks'), cwd=tmp_path, timeout=60)
    assert run.returncode == 0, run.stderr
    report = procs.run(
        disbatch_cmd('report', 'events.jsonl', '-o', 'report.html'), cwd=tmp_path, timeout=60
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert '4 tasks run' in report.stdout and '2 failed' in report.stdout
    page = dump(procs, tmp_path, (tmp_path / 'report.html').as_uri())
    assert (page.text['finished'], page.text['failed'], page.text['status']) == ('4', '2', 'Finished')
    # Tasks in the cards, attempts in the engine table, and the page says which (issue 23.9).
    assert page.attributes['failed-card']['title'] == 'finished tasks whose last attempt failed'
    assert page.text['engine-note'] == (
        'Per engine, counted in attempts: a task run again counts on each engine that ran it.'
    )
    assert page.text['ended'].startswith('run ended') and not page.hidden('ended')
    assert 'timeline' in page.attributes and page.text['rate'].endswith(('/s', '/min'))
    assert sorted(row[-2] for row in page.rows['failures']) == ['', 'no such input\n']
    shot = tmp_path / 'report.png'
    chromium(procs, tmp_path, (tmp_path / 'report.html').as_uri(), f'--screenshot={shot}', '--window-size=1200,900')
    assert png_size(shot) == (1200, 900)


def big_run(engines: int = 1000) -> dict[str, Any]:
    """A snapshot of 1,000 engines of 16 slots in three contexts: a few lost, silent or with failures, a few left."""
    data = view(finished=401_234, failed=187, total=1_000_000, pending=1200)
    rows = []
    for rank in range(engines):
        context = 'SLURM0' if rank < 600 else 'SSH1' if rank < 900 else 'SGE2'
        row = {'rank': rank, 'context': context, 'host': f'{context.lower()}-n{rank:04d}', 'pid': 10_000 + rank,
               'last_heard': 0.4, 'slots': 16, 'running': 16 - rank % 3, 'free': rank % 3, 'given': 400 + rank % 50,
               'finished': 380 + rank % 50, 'failed': 0, 'retiring': False}  # fmt: skip
        if rank % 97 == 5:
            row.update(stage='lost', why='silent, or its process or connection ended', running=0, free=0)
        elif rank % 131 == 7:
            row.update(last_heard=6.5)
        elif rank % 53 == 3:
            row.update(failed=rank % 9 + 1)
        elif rank >= 990:
            row.update(stage='left', why='finished its tasks and was let go', running=0, free=0, retiring=True)
        rows.append(row)
    data.update(engines=rows, slots=16 * engines, running=sum(row['running'] for row in rows))
    return data


def test_a_run_of_1000_engines_shows_its_contexts_and_a_page_of_engines_troubled_first(
    procs: Processes, tmp_path: Path, web: WebStatus
) -> None:
    web.on_snapshot(Snapshot.from_json(big_run()))
    dom = dump(procs, tmp_path, web.url)
    assert len(dom.rows['engines']) == 50
    assert dom.text['engine-range'] == '1\u201350 of 1000, troubled first, then the busiest'
    contexts = dom.text['contexts']
    assert 'SLURM0: 600 engines (' in contexts and 'SSH1: 300 engines (' in contexts and 'SGE2: 100 engines' in contexts
    states = [row[-1].split(':')[0] for row in dom.rows['engines']]
    assert states[:19] == ['silent'] * 8 + ['lost'] * 11 and set(states[19:]) == {'active'}, states
    assert 'counted in attempts' in dom.text['engine-note']
    assert dom.attributes['engines-previous'].get('disabled') is not None
    last = dump(procs, tmp_path, web.url + '#engines=950')
    assert last.text['engine-range'] == '951\u20131000 of 1000, troubled first, then the busiest'
    assert [row[-1].split(':')[0] for row in last.rows['engines']][-10:] == ['left'] * 10
    screenshot = tmp_path / 'web-1000.png'
    chromium(procs, tmp_path, web.url, f'--screenshot={screenshot}', '--window-size=1280,2000')
    assert png_size(screenshot) == (1280, 2000)
    keep = os.environ.get('SAVE_WEB_SCREENSHOT')
    if keep:
        shutil.copyfile(screenshot, keep.replace('.png', '-1000.png'))
