"""The `--web` status page's server: a `RunObserver` that keeps the newest snapshot and serves it over HTTP.

`WebStatus` takes every snapshot from the driver's thread (`on_snapshot`: its page view, `page_view.py`, through one
`json.dumps`, then a swap under a lock) and serves it from a daemon thread with the standard library's
`ThreadingHTTPServer`:

    GET /<token>/                       the page (`page.py`: one document, inline CSS and JS, the view embedded)
    GET /<token>/status.json            the newest view (the page fetches it every second): the run, the first
                                        page of engines (troubled first, then the busiest)
    GET /<token>/status.json?engines=N  the same with the engines from the N-th on (made on request)

Every other path, a wrong token included, is 404. The server binds only the host it is given (the run's bind host:
127.0.0.1 for a local run) on a free port unless one is given. Anybody who can reach that address could read the
page if they knew its URL, so the URL carries a random token (`secrets.token_urlsafe(16)`) and is written only to
`url_file` (the reference's `<stem>_url`, mode 0600); nothing here logs it. Responses say `Cache-Control: no-store`
and carry a content security policy that allows no resource from anywhere (the page's own script and style are
allowed by hash, its fetches only to this server). Requests are logged at DEBUG to `disbatch.web`, never to stderr.

`close` (end of run) stops the server at once: an open page then says "run ended". It removes no file.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import secrets
import selectors
import socket
import socketserver
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from disbatch.contract.snapshot import Snapshot
from disbatch.privacy import write_file
from disbatch.results.record import StatusRecord
from disbatch.web import page
from disbatch.web.page_view import page_view

log = logging.getLogger('disbatch.web')

STATUS_PATH = 'status.json'
REQUEST_TIMEOUT_SECONDS = 10.0  # a client that sends nothing for this long is dropped
STOP_TIMEOUT_SECONDS = 2.0
_ANY_HOSTS = ('', '0.0.0.0', '::')


class WebStatus:
    """The live status page of one run. Thread-safe; `on_*` and `close` are quick and never raise."""

    def __init__(self, host: str, url_file: str, port: int = 0) -> None:
        self.host = host
        self.url_file = url_file
        self.port = port
        self.token = secrets.token_urlsafe(16)
        self._lock = threading.Lock()
        self._view = Snapshot(status='starting')
        self._snapshot = _encode(page_view(self._view))
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._wake: tuple[int, int] | None = None
        self._url = ''

    @property
    def url(self) -> str:
        """The page's URL (empty before `start`)."""
        return self._url

    def start(self) -> str:
        """Bind, write the URL to `url_file` (mode 0600), start serving; returns the URL.

        Raises OSError when the address cannot be bound or the file cannot be written (nothing is left running).
        """
        with self._lock:
            if self._server is not None:
                return self._url
            server = _Server((self.host, self.port), self)
            try:
                port = server.server_address[1]
                url = f'http://{_url_host(self.host)}:{port}/{self.token}/'
                _write_private(self.url_file, url + '\n')
                wake = os.pipe()
            except OSError:
                server.server_close()
                raise
            self._server, self._wake, self._url = server, wake, url
            self._thread = threading.Thread(
                target=self._serve, args=(server, wake[0]), name='disbatch-web', daemon=True
            )
            self._thread.start()
        log.info('status page on %s port %d; its URL is in %s', self.host or '*', port, self.url_file)
        return url

    def snapshot_json(self, engines_from: int = 0) -> bytes:
        """The body `status.json` answers now (`?engines=engines_from`: that page of engines)."""
        with self._lock:
            body, view = self._snapshot, self._view
        return body if engines_from == 0 else _encode(page_view(view, engines_from))

    # ------------------------------------------------------------ RunObserver

    def on_record(self, record: StatusRecord) -> None:
        """Nothing to do: the snapshot carries the recent tasks."""

    def on_snapshot(self, view: Snapshot) -> None:
        self._store(view)

    def close(self, view: Snapshot, exit_code: int) -> None:
        """The run is over: keep its final view (with `exit_code`) and stop serving."""
        self._store(replace(view, exit_code=exit_code))
        self.stop()

    # ------------------------------------------------------------ the server

    def stop(self) -> None:
        """Stop serving (at once, without waiting for slow clients); safe to call more than once."""
        with self._lock:
            server, thread, wake = self._server, self._thread, self._wake
            self._server = self._thread = self._wake = None
        if server is None or wake is None:
            return
        with contextlib.suppress(OSError):
            os.write(wake[1], b'!')
        if thread is not None:
            thread.join(STOP_TIMEOUT_SECONDS)
        server.server_close()
        for fd in wake:
            with contextlib.suppress(OSError):
                os.close(fd)

    def route(self, path: str) -> str | None:
        """What a request path asks for: 'page', 'status', or None (404)."""
        path = path.split('?', 1)[0].split('#', 1)[0]
        if not path.startswith('/'):
            return None
        token, slash, rest = path[1:].partition('/')
        if not slash or not hmac.compare_digest(token.encode('utf-8', 'replace'), self.token.encode()):
            return None
        if rest == '':
            return 'page'
        if rest == STATUS_PATH:
            return 'status'
        return None

    def _store(self, view: Snapshot) -> None:
        try:
            body = _encode(page_view(view))
        except (TypeError, ValueError) as error:
            log.warning('status page: cannot encode the snapshot: %s', error)
            return
        with self._lock:
            self._snapshot, self._view = body, view

    def _serve(self, server: _Server, wake: int) -> None:
        """The server thread: handle connections until the wake pipe becomes readable."""
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(server, selectors.EVENT_READ)
                selector.register(wake, selectors.EVENT_READ)
                while True:
                    ready = selector.select()
                    if any(key.fd == wake for key, _ in ready):
                        return
                    server.handle_request()  # a connection is waiting: accept it and hand it to a thread
        except Exception:
            log.exception('status page: the server stopped')


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stopping never waits for a slow client
    request_queue_size = 64  # a few browsers at once never see a dropped connection

    def __init__(self, address: tuple[str, int], web: WebStatus) -> None:
        self.address_family = socket.AF_INET6 if ':' in address[0] else socket.AF_INET
        self.web = web
        super().__init__(address, _Handler)
        self.timeout = 0  # handle_request() runs only when a connection is ready

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's full name, which can take seconds on a cluster: skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug('status page: request from %s failed', client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = REQUEST_TIMEOUT_SECONDS

    def version_string(self) -> str:
        return 'disbatch'  # the Server header: no Python version for strangers

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, send_body: bool) -> None:
        web = self.server.web
        route = web.route(self.path)
        if route == 'page':
            self._send(200, 'text/html; charset=utf-8', page.render(web.snapshot_json()), send_body)
        elif route == 'status':
            self._send(200, 'application/json', web.snapshot_json(engines_from(self.path)), send_body)
        else:
            self._send(404, 'text/plain; charset=utf-8', b'not found\n', send_body)

    def _send(self, code: int, content_type: str, body: bytes, send_body: bool) -> None:
        self.send_response(code)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(body)))
        self.send_header('Cache-Control', 'no-store')
        self.send_header('X-Content-Type-Options', 'nosniff')
        self.send_header('Referrer-Policy', 'no-referrer')
        self.send_header('Content-Security-Policy', page.page_files().content_security_policy)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug('%s %s', self.address_string(), format % args)


def engines_from(path: str) -> int:
    """The `engines=N` of a request's query (0 when absent or not a number)."""
    query = path.split('#', 1)[0].partition('?')[2]
    for part in query.split('&'):
        name, _, value = part.partition('=')
        if name == 'engines' and value.isdigit() and len(value) < 10:
            return int(value)
    return 0


def _encode(view: object) -> bytes:
    return json.dumps(view, separators=(',', ':')).encode()


def _url_host(host: str) -> str:
    """The host part of the URL for a server bound to `host`."""
    if host in _ANY_HOSTS:
        return socket.gethostname()
    return f'[{host}]' if ':' in host else host


def _write_private(path: str, text: str) -> None:
    """Write `text` to `path`, readable by its owner only (never through a planted link or file)."""
    write_file(path, text)
