"""The `--web` server on its own: fed snapshots directly, read back with urllib and raw sockets over loopback."""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from disbatch.contract.snapshot import EngineView, Snapshot
from disbatch.web import WebStatus
from disbatch.web.page import render
from disbatch.web.page_view import ENGINES_SHOWN, page_view

pytestmark = pytest.mark.timeout(20)


def view(finished: int = 3, **changes: Any) -> Snapshot:
    """A snapshot shaped like the driver's."""
    base: dict[str, Any] = {
        'run': 'Tasks_disBatch_260101000000_001',
        'status': 'running',
        'more': True,
        'started': 1_700_000_000.0,
        'now': 1_700_000_042.5,
        'finished': finished,
        'failed': 1,
        'skipped': 0,
        'barriers': 0,
        'lost': 0,
        'running': 2,
        'pending': 1,
        'total': None,
        'slots': 2,
        'engines': [
            {
                'rank': 0,
                'context': 'SSH0',
                'host': 'here',
                'pid': 4242,
                'last_heard': 0.1,
                'slots': 2,
                'running': 2,
                'free': 0,
                'given': 6,
                'finished': finished,
                'failed': 1,
                'retiring': False,
            },
        ],
        'recent': [
            {
                'task': 0,
                'line': 1,
                'host': 'here',
                'return_code': 1,
                'elapsed': 0.01,
                'finish': 1_700_000_001.0,
                'command': 'false </script><b>bold</b>',
            },
        ],
        'failures': [],
    }
    base.update(changes)
    return Snapshot.from_json(base)


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebStatus]:
    server = WebStatus('127.0.0.1', str(tmp_path / 'run_url'))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def raw(web: WebStatus, request: bytes) -> bytes:
    """Send `request` bytes as they are and return whatever comes back before the server closes."""
    _, port = web.url.split('//', 1)[1].split('/', 1)[0].rsplit(':', 1)
    with socket.create_connection(('127.0.0.1', int(port)), timeout=5) as connection:
        connection.sendall(request)
        connection.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b''.join(chunks)


def test_start_writes_a_private_url_file_with_a_token(web: WebStatus, tmp_path: Path) -> None:
    url_file = tmp_path / 'run_url'
    assert url_file.read_text() == web.url + '\n'
    assert stat.S_IMODE(os.stat(url_file).st_mode) == 0o600
    assert web.url.startswith('http://127.0.0.1:')
    assert web.url.endswith(f'/{web.token}/')
    assert len(web.token) >= 20
    assert web.start() == web.url  # a second start changes nothing


def test_two_servers_have_different_tokens(tmp_path: Path) -> None:
    assert WebStatus('127.0.0.1', str(tmp_path / 'a')).token != WebStatus('127.0.0.1', str(tmp_path / 'b')).token


def test_page_is_self_contained_html_with_the_snapshot(web: WebStatus) -> None:
    web.on_snapshot(view(finished=7))
    code, headers, body = get(web.url)
    assert code == 200
    assert headers['Content-Type'].startswith('text/html')
    assert headers['Cache-Control'] == 'no-store'
    assert "default-src 'none'" in headers['Content-Security-Policy']
    page = body.decode()
    for element in ('finished', 'failed', 'running', 'waiting', 'total', 'skipped', 'lost', 'slots', 'elapsed'):
        assert f'id="{element}"' in page
    for element in ('run', 'status', 'ended', 'engines', 'recent', 'failures'):
        assert f'id="{element}"' in page
    assert 'status.json' in page
    assert 'http://' not in page and 'https://' not in page and '//' + 'cdn' not in page  # nothing external
    assert '"finished":7' in page
    # The embedded snapshot cannot close its <script> element.
    assert '</script><b>' not in page
    embedded = page.split('<script id="initial" type="application/json">', 1)[1].split('</script>', 1)[0]
    assert json.loads(embedded)['recent'][0]['command'] == 'false </script><b>bold</b>'


def test_status_json_follows_the_snapshots(web: WebStatus) -> None:
    code, headers, body = get(web.url + 'status.json')
    assert code == 200
    assert json.loads(body)['status'] == 'starting' and json.loads(body)['words']['status'] == 'Starting'
    web.on_snapshot(view(finished=3))
    code, headers, body = get(web.url + 'status.json')
    assert headers['Content-Type'] == 'application/json'
    assert headers['Cache-Control'] == 'no-store'
    assert json.loads(body) == page_view(view(finished=3))
    web.on_snapshot(view(finished=9, status='draining'))
    assert json.loads(get(web.url + 'status.json?t=1')[2])['finished'] == 9


def test_head_answers_headers_only(web: WebStatus) -> None:
    request = urllib.request.Request(web.url + 'status.json', method='HEAD')
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
        assert int(response.headers['Content-Length']) > 0
        assert response.read() == b''


@pytest.mark.parametrize(
    'path',
    ['', 'status.json', 'x/', 'favicon.ico', '{token}', '{token}/other', '{token}/status.json/', '{token}x/',
     '{token}/../{token}/', 'wrong-token-aaaaaaaaaa/', 'wrong-token-aaaaaaaaaa/status.json'],
)  # fmt: skip
def test_every_other_path_is_404(web: WebStatus, path: str) -> None:
    base = web.url[: -len(web.token) - 1]  # http://host:port/
    code, headers, body = get(base + path.format(token=web.token))
    assert code == 404
    assert headers['Cache-Control'] == 'no-store'
    assert web.token.encode() not in body


def test_a_wrong_token_of_the_right_length_is_404(web: WebStatus) -> None:
    wrong = ('A' if web.token[0] != 'A' else 'B') + web.token[1:]
    assert get(web.url.replace(web.token, wrong))[0] == 404
    assert get(web.url.replace(web.token, wrong) + 'status.json')[0] == 404


@pytest.mark.parametrize(
    'request_bytes',
    [
        b'garbage\r\n\r\n',
        b'\x00\xff\xfe\r\n\r\n',
        b'GET /' + b'a' * 70_000 + b' HTTP/1.1\r\n\r\n',
        b'GET / HTTP/9.9\r\n\r\n',
        b'POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello',
        b'DELETE / HTTP/1.1\r\n\r\n',
        b'GET /\xc3\x28\xff/ HTTP/1.1\r\n\r\n',
        b'GET / HTTP/1.1\r\n' + b'X: y\r\n' * 200 + b'\r\n',
        b'GET http://evil.example/ HTTP/1.1\r\n\r\n',
        b'',
    ],
)
def test_hostile_requests_do_not_kill_it(web: WebStatus, request_bytes: bytes) -> None:
    web.on_snapshot(view(finished=5))
    answer = raw(web, request_bytes)
    assert b'200 OK' not in answer
    code, _, body = get(web.url + 'status.json')
    assert code == 200
    assert json.loads(body)['finished'] == 5


def test_the_token_in_a_raw_request_still_works(web: WebStatus) -> None:
    token = web.token.encode()
    answer = raw(web, b'GET /' + token + b'/status.json HTTP/1.0\r\n\r\n')
    assert answer.startswith(b'HTTP/1.0 200')


def test_a_silent_client_does_not_block_others(web: WebStatus) -> None:
    _, port = web.url.split('//', 1)[1].split('/', 1)[0].rsplit(':', 1)
    with socket.create_connection(('127.0.0.1', int(port)), timeout=5) as idle:
        idle.sendall(b'GET /')  # and nothing more
        assert get(web.url + 'status.json')[0] == 200


def test_requests_are_logged_at_debug_only(web: WebStatus, caplog: pytest.LogCaptureFixture, capfd: Any) -> None:
    with caplog.at_level(logging.DEBUG, logger='disbatch.web'):
        get(web.url + 'status.json')
        get(web.url + 'nope')
        raw(web, b'garbage\r\n\r\n')
    records = [record for record in caplog.records if record.name == 'disbatch.web']
    assert records
    assert all(record.levelno == logging.DEBUG for record in records)
    assert capfd.readouterr().err == ''


def test_many_concurrent_readers_while_snapshots_change(web: WebStatus) -> None:
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(20):
                code, _, body = get(web.url + 'status.json')
                assert code == 200
                json.loads(body)
        except BaseException as error:  # reported below
            errors.append(error)

    readers = [threading.Thread(target=reader) for _ in range(8)]
    for thread in readers:
        thread.start()
    for finished in range(200):
        web.on_snapshot(view(finished=finished))
    for thread in readers:
        thread.join(15)
    assert not errors
    assert json.loads(get(web.url + 'status.json')[2])['finished'] == 199


def test_close_keeps_the_final_view_and_stops_serving(tmp_path: Path) -> None:
    web = WebStatus('127.0.0.1', str(tmp_path / 'run_url'))
    url = web.start()
    web.on_snapshot(view(finished=3))
    web.close(view(finished=10, status='finished'), 0)
    final = json.loads(web.snapshot_json())
    assert final == page_view(replace(view(finished=10, status='finished'), exit_code=0)) and final['exit_code'] == 0
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + 'status.json', timeout=2)
    assert (tmp_path / 'run_url').exists()  # close removes nothing
    web.close(view(), 1)  # a second close is harmless
    web.stop()


def test_observer_methods_never_raise(web: WebStatus) -> None:
    web.on_snapshot(replace(view(), run=object()))  # type: ignore[arg-type]  # not JSON: kept out, logged
    web.on_snapshot(view(finished=4))
    web.on_snapshot(replace(view(), now=float('nan'), run={1}))  # type: ignore[arg-type]
    assert json.loads(get(web.url + 'status.json')[2])['finished'] == 4


def test_a_port_can_be_given(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    web = WebStatus('127.0.0.1', str(tmp_path / 'run_url'), port=port)
    try:
        assert web.start().startswith(f'http://127.0.0.1:{port}/')
        assert get(web.url + 'status.json')[0] == 200
    finally:
        web.stop()


def test_a_busy_port_raises_and_leaves_nothing(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0))
        busy.listen()
        web = WebStatus('127.0.0.1', str(tmp_path / 'run_url'), port=busy.getsockname()[1])
        with pytest.raises(OSError):
            web.start()
    assert web.url == ''
    assert not (tmp_path / 'run_url').exists()


def test_the_url_file_is_not_followed_through_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / 'elsewhere'
    (tmp_path / 'run_url').symlink_to(target)
    web = WebStatus('127.0.0.1', str(tmp_path / 'run_url'))
    with pytest.raises(OSError):
        web.start()
    assert not target.exists()


def test_render_escapes_markup_in_the_embedded_json() -> None:
    body = json.dumps({'command': '</script><script>alert(1)</script> & <!--'}).encode()
    page = render(body).decode()
    assert '<script>alert(1)' not in page
    assert '<!--' not in page.split('id="initial"', 1)[1].split('</script>', 1)[0]


def test_a_big_run_sends_one_page_of_engines_troubled_first_and_the_rest_on_request(web: WebStatus) -> None:
    engines = [
        EngineView(rank, f'SSH{rank // 500}', f'node{rank}', pid=rank, last_heard=0.5, slots=16, running=rank % 17)
        for rank in range(1000)
    ]
    engines[700] = replace(engines[700], stage='lost', why='silent')
    big = replace(view(), engines=tuple(engines))
    web.on_snapshot(big)
    first = json.loads(get(web.url + 'status.json')[2])
    assert (first['engine_count'], first['engines_from'], len(first['engines'])) == (1000, 0, ENGINES_SHOWN)
    assert first['engines'][0]['rank'] == 700 and first['engines'][0]['state'] == 'lost'
    assert all(engine['running'] == 16 for engine in first['engines'][1:])  # then the busiest
    assert first['contexts'][0].startswith('SSH0: 500 engines (500 active)')
    body = get(web.url + 'status.json')[2]
    assert len(body) * 8 < len(json.dumps(big.to_json()))  # not a 1,000-row table every second
    later = json.loads(get(web.url + 'status.json?engines=950')[2])
    assert later['engines_from'] == 950 and len(later['engines']) == 50
    seen = {engine['rank'] for start in range(0, 1000, 50) for engine in json.loads(
        get(web.url + f'status.json?engines={start}')[2])['engines']}  # fmt: skip
    assert seen == set(range(1000))
    assert json.loads(get(web.url + 'status.json?engines=5000')[2])['engines_from'] == 950
