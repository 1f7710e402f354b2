"""Tasks from a producer speaking the task-source protocol over the run's KVS (reference §6), and the reports it
reads back.

The producer puts, on the run's KVS, `task source name`, `task source done task` (its end-of-stream sentinel),
`task source result key` (R) and `task source task key` (T); then each item is a put on T (an item may hold several
lines, which share one line number), and a put of the sentinel on T ends the stream. For every finished task the
driver puts the report (JSON) on `R <task id>` and the id on `R done tasks`. With `--taskcommand`, the producer's exit
also ends the stream once what it put has been read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable

from disbatch.contract.kvs_keys import (
    TASK_SOURCE_DONE_TASK,
    TASK_SOURCE_NAME,
    TASK_SOURCE_RESULT_KEY,
    TASK_SOURCE_SIGN_IN,
    TASK_SOURCE_TASK_KEY,
)
from disbatch.contract.snapshot import Snapshot
from disbatch.driver.stream.source import NOT_YET, NotYet
from disbatch.errors import DisbatchError
from disbatch.kvsstcp.outside import KVSStore
from disbatch.results.record import RecordKind, StatusRecord
from disbatch.results.snippet import snippet_text
from disbatch.results.status_line import flags

log = logging.getLogger('disbatch.driver')

# After the producer exits, what it put may still be on its way (through the server's socket, and for an outside
# server through the driver's drain connections): the stream ends, or a missing sign-in is an error, only this late.
SETTLE_SECONDS = 0.25
PRODUCER_GRACE_SECONDS = 1.0  # a producer still running at the end of the run: SIGTERM, then SIGKILL this late


PICKLED = b'PYPK'  # the reference client's default `put(key, value)`: a pickle, which no part of disbatch reads


class KVSTaskSource:
    """The task-source protocol's items, as a source: `read()`, `fds`, `on_ready()`. `lost()` says why the KVS
    server is gone (an outside one can die), None while it serves: the stream ends with that error, if it has not
    ended yet."""

    def __init__(
        self,
        kvs: KVSStore,
        producer: subprocess.Popen[bytes] | None = None,
        lost: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.kvs = kvs
        self.producer = producer
        self._lost = lost
        self.name = ''
        self.result_key = ''
        self._sign_in: dict[str, tuple[bytes, bytes]] = {}  # key -> (encoding, value)
        self._task_key = b''
        self._sentinel = b''
        self._ended = False
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._producer_fd = os.pidfd_open(producer.pid) if producer is not None else -1
        self._settled_at: float | None = None  # time.monotonic() from which the exited producer's puts are all in
        self._settle_timer: threading.Timer | None = None
        for key in TASK_SOURCE_SIGN_IN:
            kvs.watch(key.encode(), self._wake)

    @property
    def fds(self) -> tuple[int, ...]:
        return (self._wake_read,) if self._producer_fd < 0 else (self._wake_read, self._producer_fd)

    def on_ready(self, fd: int) -> None:
        """Note a put or the producer's exit; a producer that failed, or left without signing in, is a
        DisbatchError (the run ends with it)."""
        if fd == self._producer_fd:
            assert self.producer is not None
            code = self.producer.wait()
            os.close(self._producer_fd)
            self._producer_fd = -1
            log.info('the task command exited with %d: the stream ends with what it has put', code)
            if code != 0:
                raise DisbatchError(f'the task command {self._command()!r} exited with status {code}')
            self._settled_at = time.monotonic() + SETTLE_SECONDS
            self._settle_timer = threading.Timer(SETTLE_SECONDS, self._wake, (b'', b'', b''))
            self._settle_timer.daemon = True
            self._settle_timer.start()
            return
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_read, 4096)
        why = self._lost()
        if why is not None and not self._ended:
            self._ended = True
            raise DisbatchError(f'{why}: no more tasks can come from it')
        if not self._ended and self._producer_gone() and not (self._task_key or self._try_sign_in()):
            self._ended = True
            raise DisbatchError(f'the task command {self._command()!r} exited (status 0) without signing in')

    def read(self) -> bytes | NotYet | None:
        if self._ended:
            return None
        if not self._task_key and not self._try_sign_in():
            return None if self._producer_gone() else NOT_YET
        found = self.kvs.get_nowait(self._task_key)
        if found is None:
            return None if self._producer_gone() else NOT_YET
        if found[0] == PICKLED:
            self._ended = True
            raise DisbatchError(_pickled(repr(self._task_key.decode('utf-8', 'replace'))))
        if found[1] == self._sentinel:
            self._ended = True
            return None
        return found[1]

    def close(self) -> None:
        if self._settle_timer is not None:
            self._settle_timer.cancel()
        for key in TASK_SOURCE_SIGN_IN:
            self.kvs.unwatch(key.encode(), self._wake)
        if self._task_key:
            self.kvs.unwatch(self._task_key, self._wake)
        os.close(self._wake_read)
        os.close(self._wake_write)
        if self._producer_fd >= 0:
            os.close(self._producer_fd)
        if self.producer is not None and self.producer.poll() is None:
            self._end_producer(self.producer)

    @staticmethod
    def _end_producer(producer: subprocess.Popen[bytes]) -> None:
        """The run is over and the --taskcommand producer still runs (the run stopped, or it lingers after its
        sentinel): its session is ended (SIGTERM, SIGKILL after PRODUCER_GRACE_SECONDS), so no process is left."""
        for signum in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(producer.pid, signum)  # its own session (start_new_session): its group is its pid
            try:
                producer.wait(PRODUCER_GRACE_SECONDS)
                return
            except subprocess.TimeoutExpired:
                continue

    def _try_sign_in(self) -> bool:
        for key in TASK_SOURCE_SIGN_IN:
            if key not in self._sign_in:
                found = self.kvs.get_nowait(key.encode())
                if found is not None:
                    self._sign_in[key] = found
        if len(self._sign_in) < len(TASK_SOURCE_SIGN_IN):
            return False
        pickled = [key for key in TASK_SOURCE_SIGN_IN if self._sign_in[key][0] == PICKLED]
        if pickled:
            self._ended = True
            raise DisbatchError(_pickled(', '.join(repr(key) for key in pickled)))
        self.name = self._sign_in[TASK_SOURCE_NAME][1].decode('utf-8', 'replace')
        self._sentinel = self._sign_in[TASK_SOURCE_DONE_TASK][1]
        self.result_key = self._sign_in[TASK_SOURCE_RESULT_KEY][1].decode('utf-8', 'replace')
        self._task_key = self._sign_in[TASK_SOURCE_TASK_KEY][1]
        self.kvs.watch(self._task_key, self._wake)
        for key in TASK_SOURCE_SIGN_IN:  # signed in: a later sign-in (another run's, on a shared server) is not ours
            self.kvs.unwatch(key.encode(), self._wake)
        return True

    def _producer_gone(self) -> bool:
        """The producer has exited, and what it put has had time to arrive."""
        return self._settled_at is not None and time.monotonic() >= self._settled_at

    def _command(self) -> str:
        assert self.producer is not None
        args = self.producer.args
        return str(args[-1] if isinstance(args, list) else args)

    def _wake(self, key: bytes, encoding: bytes, value: bytes) -> None:
        with contextlib.suppress(OSError):  # full (a wake is pending anyway), or closed (the run is over)
            os.write(self._wake_write, b'!')


def _pickled(what: str) -> str:
    return (
        f"the task source put {what} pickled (the reference client's default put): disbatch never unpickles; put "
        'text instead, as in put(key, value, False)'
    )


class ResultPoster:
    """A run observer that puts each finished task's report where the task source asked for it."""

    def __init__(self, kvs: KVSStore, source: KVSTaskSource) -> None:
        self.kvs = kvs
        self.source = source

    def on_record(self, record: StatusRecord) -> None:
        if not self.source.result_key or record.kind in (RecordKind.PER_ENGINE, RecordKind.ZOMBIE):
            return
        if record.unreported:
            return  # a lost attempt: the task runs again and reports then
        key = self.source.result_key
        self.kvs.put(f'{key} {record.task_id}'.encode(), json.dumps(report_dict(record)).encode(), b'JSON')
        self.kvs.put(f'{key} done tasks'.encode(), str(record.task_id).encode())

    def on_snapshot(self, view: Snapshot) -> None:
        pass

    def close(self, view: Snapshot, exit_code: int) -> None:
        pass


def report_dict(record: StatusRecord) -> dict[str, object]:
    """A task's report in the reference's form (the keys its DisBatcher clients read)."""
    return {
        'Flags': flags(record),
        'TaskId': record.task_id,
        'TaskStreamIndex': record.line_number,
        'TaskRepIndex': record.repeat_index,
        'Host': record.host,
        'PID': record.pid,
        'ReturnCode': record.return_code,
        'Elapsed': record.elapsed,
        'Start': record.start,
        'End': record.finish,
        'OutBytes': record.out_bytes,
        'OutData': snippet_text(record.out_snippet),
        'ErrBytes': record.err_bytes,
        'ErrData': snippet_text(record.err_snippet),
        'TaskCmd': record.command.encode('utf-8', 'surrogateescape').decode('utf-8', 'replace'),
    }
