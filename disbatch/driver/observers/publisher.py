"""Watching a live run: the snapshot in the KVS, observers (progress line, web page, mail), monitor commands.

The loop tells the `Publisher` about every record and every change; the publisher rebuilds the snapshot at most
every `INTERVAL_SECONDS` and only when something changed (never per message), puts it under `DisBatch status`, and
hands it to the observers. Commands from the monitor arrive as puts to `DisBatch control`; a KVS watch wakes the
loop through a pipe and `commands()` turns them into scheduler events.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from disbatch.contract import CONTROL_KEY, STATUS_KEY
from disbatch.contract.control import RetireContext, RetireEngine, parse_command
from disbatch.contract.snapshot import Snapshot
from disbatch.driver.core.events import RetireEngines
from disbatch.driver.core.scheduler import Scheduler
from disbatch.driver.observers import snapshot_builder
from disbatch.kvsstcp.outside import KVSStore
from disbatch.results.progress_text import RateMeter, eta_seconds
from disbatch.results.record import StatusRecord
from disbatch.results.usage import UsageBoard

log = logging.getLogger('disbatch.driver')

INTERVAL_SECONDS = 0.5
RECENT = 20


class RunObserver(Protocol):
    """Something that shows the run to a person: it must be quick, and must never raise into the driver."""

    def on_record(self, record: StatusRecord) -> None: ...

    def on_snapshot(self, view: Snapshot) -> None: ...

    def close(self, view: Snapshot, exit_code: int) -> None: ...


class Publisher:
    def __init__(
        self,
        run: str,
        kvs: KVSStore,
        observers: list[RunObserver],
        facts: Callable[[], dict[int, snapshot_builder.EngineFacts]],
        expected_total: int | None = None,
    ) -> None:
        self.expected_total = expected_total
        self.run = run
        self.kvs = kvs
        self.observers = observers
        self.facts = facts
        self.started = time.time()
        self._rate = RateMeter()  # the rate and ETA the progress line shows, for the monitor and the web page
        self._recent: deque[StatusRecord] = deque(maxlen=RECENT)
        self._failures: deque[StatusRecord] = deque(maxlen=RECENT)
        self.usage = UsageBoard()
        self._dirty = True
        self._next = time.monotonic()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        kvs.watch(CONTROL_KEY.encode(), self._on_control_put)

    @property
    def fd(self) -> int:
        """Readable when a monitor command has arrived."""
        return self._wake_read

    def record(self, record: StatusRecord) -> None:
        self._recent.append(record)
        self.usage.add(record)
        if record.failed:
            self._failures.append(record)
        for observer in self.observers:
            observer.on_record(record)
        self._dirty = True

    def changed(self) -> None:
        self._dirty = True

    def deadline(self) -> float | None:
        """When `tick` has work to do (time.monotonic() clock), or None."""
        return self._next if self._dirty else None

    def tick(self, scheduler: Scheduler) -> None:
        now = time.monotonic()
        if not self._dirty or now < self._next:
            return
        self._dirty = False
        self._next = now + INTERVAL_SECONDS
        view = self._view(scheduler)
        self.kvs.replace(STATUS_KEY.encode(), json.dumps(view.to_json()).encode(), b'JSON')
        for observer in self.observers:
            observer.on_snapshot(view)

    def commands(self) -> list[RetireEngines]:
        """The monitor's commands that arrived since the last call, as scheduler events."""
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_read, 4096)
        events = []
        while (value := self.kvs.get_nowait(CONTROL_KEY.encode())) is not None:
            try:
                command = parse_command(value[1])
            except ValueError as error:
                log.warning('ignored a monitor command: %s', error)
                continue
            log.info('monitor: %s', command)
            match command:
                case RetireEngine(rank):
                    events.append(RetireEngines(engine_ranks=(rank,)))
                case RetireContext(label):
                    events.append(RetireEngines(context=label))
        return events

    def close(self, scheduler: Scheduler, exit_code: int, follow_up: str | None = None) -> None:
        """The final snapshot; `follow_up`: the job that continues the run (--resubmit), when one was submitted."""
        view = self._view(scheduler, follow_up)
        self.kvs.replace(STATUS_KEY.encode(), json.dumps(view.to_json()).encode(), b'JSON')
        for observer in self.observers:
            observer.close(view, exit_code)
        self.kvs.unwatch(CONTROL_KEY.encode(), self._on_control_put)
        os.close(self._wake_read)
        os.close(self._wake_write)

    def _view(self, scheduler: Scheduler, follow_up: str | None = None) -> Snapshot:
        now = round(time.time(), 3)  # the snapshot's own `now`: the rate is measured on its clock
        view = snapshot_builder.build(
            self.run,
            scheduler,
            self.facts(),
            self.started,
            now,
            self._recent,
            self._failures,
            self.expected_total,
            self.usage.view(),
            follow_up,
        )
        self._rate.add(now, view.finished)
        rate = self._rate.rate() if view.finished else None
        eta = eta_seconds(view, rate)
        return replace(view, rate=None if rate is None else round(rate, 3), eta=None if eta is None else round(eta, 1))

    def _on_control_put(self, key: bytes, encoding: bytes, value: bytes) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_write, b'!')
