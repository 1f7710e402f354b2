"""Helpers of the mail tests: a real SMTP server on loopback (aiosmtpd on a free port, collecting what it receives),
and status records to feed the notifier."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from disbatch.results.record import Outcome, RecordKind, StatusRecord
from disbatch.taskfile.items import NO_REPEAT


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return int(probe.getsockname()[1])


class Collector:
    """The aiosmtpd handler: keeps every message it is given, parsed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # the name aiosmtpd calls
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self._lock:
            self.messages.append(message)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return '250 OK'

    def wait_for(self, count: int, timeout: float = 10) -> list[EmailMessage]:
        """The messages, once at least `count` have arrived (or what arrived by `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.messages) >= count:
                    break
            time.sleep(0.02)
        with self._lock:
            return list(self.messages)


@contextmanager
def mail_server(port: int | None = None) -> Iterator[tuple[Collector, int]]:
    """An SMTP server on 127.0.0.1:`port` (default: a free one) for the block; yields (collector, port)."""
    collector = Collector()
    for _ in range(5):
        port = port or free_port()
        controller = Controller(collector, hostname='127.0.0.1', port=port)
        try:
            controller.start()
        except OSError:
            continue  # someone took the port in between
        break
    else:
        raise RuntimeError('no free port for the SMTP server')
    try:
        yield collector, port
    finally:
        controller.stop()


def record(task_id: int, return_code: int = 0, kind: RecordKind = RecordKind.NORMAL, command: str = '') -> StatusRecord:
    start = 1700000000.0 + task_id
    outcome = Outcome(1000 + task_id, return_code, start, 1700000000.25 + task_id, 0.25, 6, "'hello\\n'")
    return StatusRecord(kind, task_id, task_id + 1, NO_REPEAT, command or f'echo task {task_id}', 'node1', outcome)
