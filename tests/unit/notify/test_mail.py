"""MailNotifier against a real SMTP server (aiosmtpd) on loopback, and its pure parts."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest

from disbatch.contract.snapshot import Snapshot
from disbatch.notify.mail import MailNotifier, default_sender
from disbatch.results.record import RecordKind
from disbatch.results.status_line import format_line

from .support import Collector, free_port, mail_server, record

pytestmark = pytest.mark.timeout(30)

TO = 'you@example.org'
SENDER = 'runner@example.org'
STATUS = '/tmp/run_status.txt'


def view(finished: int, failed: int, total: int | None, running: int = 0) -> Snapshot:
    return Snapshot.from_json(
        {
            'run': 'Tasks_run',
            'finished': finished,
            'failed': failed,
            'skipped': 0,
            'barriers': 0,
            'lost': 0,
            'running': running,
            'pending': 0,
            'total': total,
        }
    )


def text(message: EmailMessage) -> str:
    content = message.get_content()
    assert isinstance(content, str)
    return content


@pytest.fixture
def server() -> Iterator[tuple[Collector, int]]:
    with mail_server() as running:
        yield running


def notifier(port: int, every: int, **options: Any) -> MailNotifier:
    return MailNotifier(TO, every, 'Tasks_run', STATUS, '127.0.0.1', port, SENDER, **options)


def test_every_n_completions_one_message_then_the_final_one(server: tuple[Collector, int]) -> None:
    collector, port = server
    mail = notifier(port, every=5)
    records = [record(task_id, return_code=1 if task_id in (3, 7) else 0) for task_id in range(10)]
    mail.on_snapshot(view(0, 0, None, running=4))
    for item in records:
        mail.on_record(item)
    messages = collector.wait_for(2)
    assert [message['Subject'] for message in messages] == [
        'Tasks_run has completed 5 tasks (1 failed)',
        'Tasks_run has completed 10 tasks (2 failed)',
    ]
    first, second = (text(message) for message in messages)
    assert 'Finished: 5   Failed: 1' in first
    assert 'Running: 4' in first
    assert 'Total: not known yet' in first
    assert f'Status file: {STATUS}' in first
    assert 'Status lines since the last message (5):' in first
    for item in records[:5]:
        assert format_line(item) in first.splitlines()
        assert format_line(item) not in second
    for item in records[5:]:
        assert format_line(item) in second.splitlines()
    mail.close(view(10, 2, 10), 0)
    messages = collector.wait_for(3)
    assert len(messages) == 3
    final = messages[2]
    assert final['Subject'] == 'Tasks_run has completed 10 tasks (2 failed): the run is over, exit code 0'
    assert 'The run Tasks_run is over: exit code 0.' in text(final)
    assert 'Finished: 10   Failed: 2' in text(final)
    assert 'Total: 10' in text(final)
    assert 'Status lines since the last message (0):' in text(final)
    assert all(message['From'] == SENDER and message['To'] == TO for message in messages)
    assert collector.envelopes[0] == (SENDER, [TO])
    assert mail.sent == 3


def test_final_message_carries_the_lines_after_the_last_one(server: tuple[Collector, int]) -> None:
    collector, port = server
    mail = notifier(port, every=5)
    records = [record(task_id) for task_id in range(7)]
    for item in records:
        mail.on_record(item)
    mail.close(view(7, 0, 7), 1)
    messages = collector.wait_for(2)
    assert len(messages) == 2
    assert messages[1]['Subject'] == 'Tasks_run has completed 7 tasks (0 failed): the run is over, exit code 1'
    assert [line for line in text(messages[1]).splitlines() if '\t' in line] == [
        format_line(item) for item in records[5:]
    ]


def test_only_normal_task_lines_count_and_skipped_lines_are_not_shown(server: tuple[Collector, int]) -> None:
    collector, port = server
    mail = notifier(port, every=2)
    barrier = record(90, kind=RecordKind.BARRIER)
    per_engine = record(91, kind=RecordKind.PER_ENGINE)
    skipped = record(92, kind=RecordKind.SKIPPED)
    for item in (skipped, record(0), barrier, per_engine, record(1)):
        mail.on_record(item)
    (message,) = collector.wait_for(1)
    assert message['Subject'] == 'Tasks_run has completed 2 tasks (0 failed)'
    lines = text(message).splitlines()
    assert format_line(barrier) in lines
    assert format_line(per_engine) in lines
    assert format_line(skipped) not in lines
    assert '(1 task(s) skipped as done by an earlier run are not shown.)' in lines
    mail.close(view(2, 0, 3), 0)


def test_the_body_is_capped_and_says_how_many_lines_were_left_out(server: tuple[Collector, int]) -> None:
    collector, port = server
    mail = notifier(port, every=10, max_lines=3)
    records = [record(task_id, command='x' * 5000 if task_id == 0 else '') for task_id in range(10)]
    for item in records:
        mail.on_record(item)
    (message,) = collector.wait_for(1)
    lines = text(message).splitlines()
    assert 'Status lines since the last message (10):' in lines
    assert '... 7 more line(s) left out: see the status file.' in lines
    assert format_line(records[2]) in lines
    assert format_line(records[3]) not in lines
    assert any(line.endswith('x' * 2000 + ' ...') for line in lines)  # a very long command is cut
    mail.close(view(10, 0, 10), 0)


def test_a_server_that_is_down_is_warned_about_once_and_never_blocks(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger='disbatch.mail')
    mail = notifier(free_port(), every=1, retry_delay=0.01)
    slowest = 0.0
    for task_id in range(20):
        started = time.monotonic()
        mail.on_record(record(task_id))
        slowest = max(slowest, time.monotonic() - started)
    started = time.monotonic()
    mail.close(view(20, 0, 20), 0)
    assert time.monotonic() - started < 6
    assert slowest < 0.05
    warnings = [entry for entry in caplog.records if entry.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].name == 'disbatch.mail'
    assert 'could not send mail to you@example.org through 127.0.0.1' in warnings[0].getMessage()
    assert mail.sent == 0
    assert any('stopped after 3 failed messages' in entry.getMessage() for entry in caplog.records)


def test_a_server_that_is_down_is_said_on_stderr_too(capsys: pytest.CaptureFixture[str]) -> None:
    mail = notifier(free_port(), every=1, retry_delay=0.01)
    mail.on_record(record(0))
    mail.close(view(1, 0, 1), 0)
    said = capsys.readouterr().err.splitlines()
    assert [line for line in said if 'could not send mail' in line] == [said[0]], said  # once, as a warning
    assert said[0].startswith('disbatch: warning: could not send mail to you@example.org through 127.0.0.1:')


def test_later_messages_are_still_tried_after_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    mail = notifier(port, every=1, retry_delay=0.01)
    mail.on_record(record(0))  # nothing listens yet: this one is lost
    deadline = time.monotonic() + 5
    while not any(entry.levelno == logging.WARNING for entry in caplog.records) and time.monotonic() < deadline:
        time.sleep(0.01)
    with mail_server(port) as (collector, _):
        mail.on_record(record(1))
        (message,) = collector.wait_for(1)
        assert message['Subject'] == 'Tasks_run has completed 2 tasks (0 failed)'
        assert 'Note: 1 earlier message(s) could not be sent' in text(message)
        mail.close(view(2, 0, 2), 0)
        assert len(collector.wait_for(2)) == 2


def test_a_server_that_never_answers_costs_the_driver_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger='disbatch.mail')
    with socket.socket() as silent:  # accepts connections (backlog) but never greets
        silent.bind(('127.0.0.1', 0))
        silent.listen(50)
        mail = notifier(silent.getsockname()[1], every=1, queue_size=2, flush_seconds=0.3)
        slowest = 0.0
        for task_id in range(30):
            started = time.monotonic()
            mail.on_record(record(task_id))
            slowest = max(slowest, time.monotonic() - started)
        started = time.monotonic()
        mail.close(view(30, 0, 30), 0)
        closing = time.monotonic() - started
    assert slowest < 0.05
    assert closing < 1.0
    assert any('dropping messages' in entry.getMessage() for entry in caplog.records)


def test_default_sender(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('USER', 'ada')
    assert default_sender() == f'ada@{socket.gethostname()}'
    monkeypatch.delenv('USER')
    assert default_sender() == f'disbatch@{socket.gethostname()}'


def test_every_must_be_positive_and_headers_one_line() -> None:
    with pytest.raises(ValueError, match='at least 1'):
        MailNotifier(TO, 0, 'R', STATUS)
    with pytest.raises(ValueError, match='line break'):
        MailNotifier('a@b\nBcc: c@d', 1, 'R', STATUS)
