"""Mail about a run (`--mailTo ADDR --mailFreq N --mail-server HOST[:PORT]`): the `MailNotifier` observer.

What it sends:

* every `every` completions, one message with the reference's subject `<run> has completed N tasks (k failed)`;
  its body gives the counts (finished, failed, running, pending, total once known) and the status lines written
  since the last message, formatted as in the status file (at most `max_lines` of them; the body says how many
  were left out);
* at `close`, one last message `<run> has completed N tasks (k failed): the run is over, exit code E` with the
  driver's final counts and the remaining status lines.

What counts as a completion: the final status line of a normal task (kind ' ' or 'T'; failed or not). The
driver hands observers only final lines, so attempts that are run again (--retries, a lost engine) are not
counted. Lines of barriers, per-engine tasks and zombies appear in the bodies but are not counted; lines skipped
by `-r` are neither shown nor counted (the body gives their number).

How it sends: the driver's calls only count and enqueue; one background thread composes each message (the text
comes from `notify/message.py`) and sends it with `smtplib.SMTP(host, port, timeout=10)` (plain SMTP: no TLS, no
login). The queue holds `QUEUE_SIZE` messages; when the mail server is slower than the run, further messages are
dropped and the next message that gets through says how many. A message that cannot be sent is tried once more
after `RETRY_DELAY_SECONDS` (at once while closing); the first failure is logged once, at WARNING, to
`disbatch.mail`; after `DISABLE_AFTER` messages in a row failed, mail stops for the rest of the run (the final
message is not tried either). Nothing here ever raises into the driver. `close` waits at most `FLUSH_SECONDS` for
the queue to drain.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import smtplib
import socket
import sys
import threading
import time
from dataclasses import replace
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from disbatch.contract.snapshot import Snapshot
from disbatch.notify.message import DEFAULT_HOST, DEFAULT_PORT, Batch, body, subject
from disbatch.results.record import RecordKind, StatusRecord

log = logging.getLogger('disbatch.mail')

SMTP_TIMEOUT_SECONDS = 10.0
QUEUE_SIZE = 16
MAX_LINES = 1000
MAX_COMMAND_CHARACTERS = 2000  # longer commands are cut in the mail (the status file has them whole)
RETRY_DELAY_SECONDS = 1.0
DISABLE_AFTER = 3
FLUSH_SECONDS = 5.0


def default_sender() -> str:
    """`$USER@<hostname>`, or `disbatch@<hostname>` when $USER is not set."""
    return f'{os.environ.get("USER") or "disbatch"}@{socket.gethostname()}'


class MailNotifier:
    """A `RunObserver` that mails `to` every `every` completions and once when the run is over."""

    def __init__(
        self,
        to: str,
        every: int,
        run: str,
        status_path: str,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        sender: str | None = None,
        *,
        max_lines: int = MAX_LINES,
        queue_size: int = QUEUE_SIZE,
        retry_delay: float = RETRY_DELAY_SECONDS,
        flush_seconds: float = FLUSH_SECONDS,
    ) -> None:
        if every < 1:
            raise ValueError(f'every must be at least 1, not {every}')
        for name, value in (('to', to), ('sender', sender or ''), ('run', run)):
            if '\n' in value or '\r' in value:
                raise ValueError(f'{name} {value!r}: a mail header cannot hold a line break')
        self.to = to
        self.every = every
        self.run = run
        self.status_path = status_path
        self.host = host
        self.port = port
        self.sender = sender or default_sender()
        self.max_lines = max_lines
        self.retry_delay = retry_delay
        self.flush_seconds = flush_seconds
        self._domain = socket.gethostname()  # for Message-ID (make_msgid's default would ask the DNS)
        # The driver's side (one thread).
        self._completed = 0
        self._failed = 0
        self._records: list[StatusRecord] = []
        self._left_out = 0
        self._skipped = 0
        self._progress = Snapshot()  # the latest
        self._dropped = 0
        self._drop_logged = False
        self._closed = False
        self._queue: queue.Queue[Batch | None] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        # Shared: set by close (retries go at once) and by the worker (mail is given up).
        self._closing = threading.Event()
        self._disabled = threading.Event()
        # The worker's side.
        self._consecutive_failures = 0
        self._unsent = 0
        self._warned = False
        self.sent = 0  # messages the server accepted (for tests and the log)

    # The driver's calls: quick, never blocking, never raising.

    def on_record(self, record: StatusRecord) -> None:
        if self._closed or self._disabled.is_set():
            return
        if record.kind is RecordKind.SKIPPED:
            self._skipped += 1
            return
        if len(self._records) < self.max_lines:
            if len(record.command) > MAX_COMMAND_CHARACTERS:
                record = replace(record, command=record.command[:MAX_COMMAND_CHARACTERS] + ' ...')
            self._records.append(record)
        else:
            self._left_out += 1
        if record.kind not in (RecordKind.NORMAL, RecordKind.TIMED_OUT):
            return
        self._completed += 1
        self._failed += record.failed
        if self._completed % self.every == 0:
            self._enqueue(self._take(None))

    def on_snapshot(self, view: Snapshot) -> None:
        self._progress = view

    def close(self, view: Snapshot, exit_code: int) -> None:
        """Send the final message and wait (at most `flush_seconds`) for the queue to drain."""
        if self._closed:
            return
        self.on_snapshot(view)
        self._closed = True
        deadline = time.monotonic() + self.flush_seconds
        if not self._disabled.is_set():
            self._start()
            with contextlib.suppress(queue.Full):
                self._queue.put(self._take(exit_code), timeout=self.flush_seconds)
        self._closing.set()
        if self._thread is None:
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=max(0.0, deadline - time.monotonic()))
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            log.info('gave up waiting for the mail server %s:%d after %.0f s', self.host, self.port, self.flush_seconds)

    def _take(self, exit_code: int | None) -> Batch:
        """The message for what happened since the last one; starts the next one afresh."""
        batch = Batch(
            completed=self._completed,
            failed=self._failed,
            records=tuple(self._records),
            left_out=self._left_out,
            skipped=self._skipped,
            progress=self._progress,
            dropped=self._dropped,
            exit_code=exit_code,
        )
        self._records = []
        self._left_out = 0
        self._skipped = 0
        self._dropped = 0
        return batch

    def _enqueue(self, batch: Batch) -> None:
        self._start()
        try:
            self._queue.put_nowait(batch)
        except queue.Full:
            if not self._drop_logged:
                self._drop_logged = True
                log.info('the mail server is slower than the run: dropping messages (the next one says how many)')
            self._dropped = batch.dropped + 1

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name='disbatch-mail', daemon=True)
            self._thread.start()

    # The worker thread.

    def _work(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._disabled.is_set():
                continue
            try:
                self._send(batch)
            except Exception:  # the thread's top: a bug must not kill later messages
                log.exception('could not compose a mail message')

    def _send(self, batch: Batch) -> None:
        message = EmailMessage(policy.SMTP.clone(max_line_length=998))  # RFC 5322's limit: no folded subject
        message['From'] = self.sender
        message['To'] = self.to
        message['Subject'] = subject(self.run, batch)
        message['Date'] = formatdate(localtime=True)
        message['Message-ID'] = make_msgid(domain=self._domain)
        message.set_content(body(self.run, batch, self.status_path, self._unsent))
        error: Exception | None = None
        for attempt in range(2):
            if attempt:
                self._closing.wait(self.retry_delay)
            try:
                with smtplib.SMTP(self.host, self.port, timeout=SMTP_TIMEOUT_SECONDS) as connection:
                    connection.send_message(message)
            except (OSError, ValueError) as problem:  # smtplib.SMTPException is an OSError
                error = problem
                continue
            self.sent += 1
            self._consecutive_failures = 0
            self._unsent = 0
            return
        self._unsent += 1
        self._consecutive_failures += 1
        if not self._warned:
            self._warned = True
            _tell(
                f'could not send mail to {self.to} through {self.host}:{self.port}: {error or "unknown error"} (each '
                f'message is tried twice; mail stops after {DISABLE_AFTER} failed messages in a row; this warning '
                'is not repeated)'
            )
        else:
            log.debug('could not send mail to %s: %s', self.to, error)
        if self._consecutive_failures >= DISABLE_AFTER:
            self._disabled.set()
            log.info('mail to %s stopped after %d failed messages in a row', self.to, self._consecutive_failures)


def _tell(message: str) -> None:
    """A mail problem goes to the driver log and to stderr (a batch log): mail that never comes is otherwise silent.

    From the mail thread: the driver's stderr is then the progress line's guarded stream, which takes its lock.
    """
    log.warning('%s', message)
    with contextlib.suppress(OSError, ValueError):
        print(f'disbatch: warning: {message}', file=sys.stderr, flush=True)
