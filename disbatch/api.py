"""`DisBatcher`: submit tasks from a Python program and collect their results while they run.

    from disbatch import DisBatcher
    with DisBatcher(tasksname='squares', args=['-s', 'localhost:4']) as batcher:
        ids = [batcher.submit(f'echo $(({n} * {n}))') for n in range(10)]
        first = batcher.wait_one_task()       # the next task to finish, as a dict (the reference's keys)
        reports = batcher.syncTasks(ids[:3])  # {task id: report}, once all of them have finished
        code = batcher.done()                 # no more tasks: waits for the run to end, returns its exit code

Each finished task is handed out once, by `wait_one_task` (the next to finish) or by `syncTasks` (these ids); a
report handed out by `wait_one_task` can still be synced on. Leaving the `with` block calls `done()`, or, when an
exception leaves it, stops the run as Ctrl-C would: running tasks are interrupted and recorded with flag `I` in the
status file (a resume with `-r` runs them again). The run never outlives this program: however it ends (an exception
without `done()`, a crash, SIGKILL), its driver sees it within a moment and stops the run the same way.

The run is a separate `disbatch --taskserver` process (so it touches neither this program's logging nor its signal
handlers); the two talk through the run's KVS with the reference's task-source protocol, so `kvsserver='host:port'`
also attaches to a run started elsewhere (the KVS token then comes from `$DISBATCH_KVSSTCP_TOKEN`, as in its tasks;
that run then lives on its own). Every submitted line, directives included, is read by the same parser as the
driver's, so `submit` returns the id the driver gives the task. The last task runs as soon as it is submitted.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any

from disbatch.contract.kvs_keys import (
    TASK_SOURCE_DONE_TASK,
    TASK_SOURCE_NAME,
    TASK_SOURCE_RESULT_KEY,
    TASK_SOURCE_TASK_KEY,
)
from disbatch.errors import DisbatchError
from disbatch.kvsstcp.client import KVSClient
from disbatch.taskfile.items import Barrier, Task
from disbatch.taskfile.parser import TaskFileParser

START_TIMEOUT_SECONDS = 30.0
Report = dict[str, Any]


class DisBatcher:
    def __init__(self, tasksname: str = 'DisBatcher', args: Sequence[str] = (), kvsserver: str | None = None) -> None:
        self.tasksname = tasksname
        self._driver: subprocess.Popen[bytes] | None = None
        address, token = (kvsserver, None) if kvsserver else self._start_driver(list(args))
        try:
            self._kvs = KVSClient.from_address(address, token=token)
        except BaseException:
            self._stop_driver()
            raise
        unique = uuid.uuid4().hex
        self._sentinel = f'#DONE {unique}#'
        self._results = f'.{tasksname} results {unique}'
        self._tasks = f'.{tasksname} tasks {unique}'
        self._kvs.put(TASK_SOURCE_NAME, tasksname)
        self._kvs.put(TASK_SOURCE_DONE_TASK, self._sentinel)
        self._kvs.put(TASK_SOURCE_RESULT_KEY, self._results)
        self._kvs.put(TASK_SOURCE_TASK_KEY, self._tasks)
        self._parser = TaskFileParser(tasksname)
        self._line_number = 0
        self._submitted: set[int] = set()  # ids of the tasks and barriers submitted
        self._reports: dict[int, Report] = {}  # every report received
        self._unclaimed: dict[int, None] = {}  # received, handed out by neither call yet (in the order they finished)
        self._claimed: set[int] = set()  # handed out by wait_one_task or syncTasks
        self._closed = False

    def submit(self, line: str) -> int | None:
        """Submit one task-file line (a command or a `#DISBATCH` directive). Returns the id of the task or barrier
        it makes, or None when it makes none or several (a comment, PREFIX, REPEAT). ValueError for a blank line
        (it makes nothing), DisbatchError once `done()` was called."""
        if self._closed:
            raise DisbatchError('this DisBatcher is closed (done() was called): it takes no more tasks')
        if not line.strip():
            raise ValueError('submit() needs a task-file line: a blank line makes no task')
        self._line_number += 1
        made = self._parser.feed(line.encode('utf-8', 'surrogateescape'), self._line_number)
        items = [item for item in made if isinstance(item, (Task, Barrier))]
        self._kvs.put(self._tasks, line)
        self._submitted.update(item.task_id for item in items)
        return items[0].task_id if len(items) == 1 else None

    def wait_one_task(self) -> Report:
        """The report of the next task to finish (any task, barriers included) that neither this nor `syncTasks`
        has handed out yet, waiting for it if need be.

        DisbatchError when every submitted task was handed out already (it would wait forever).
        """
        if not self._unclaimed and len(self._claimed) == len(self._submitted):
            raise DisbatchError(f'wait_one_task(): all {len(self._submitted)} submitted tasks were already returned')
        while not self._unclaimed:
            self._receive_one()
        task_id = next(iter(self._unclaimed))
        return self._claim([task_id])[task_id]

    def syncTasks(self, ids: Iterable[int]) -> dict[int, Report]:
        """The reports of these tasks, once every one of them has finished; `wait_one_task` hands them out no more.

        DisbatchError for an id that was never submitted (it would wait forever)."""
        wanted = list(ids)
        unknown = sorted(set(wanted) - self._submitted)
        if unknown:
            raise DisbatchError(f'syncTasks(): no task was submitted with id {", ".join(map(str, unknown))}')
        while any(task_id not in self._reports for task_id in wanted):
            self._receive_one()
        return self._claim(wanted)

    def done(self) -> int | None:
        """No more tasks: the run ends once they have all finished. Returns the run's exit code when this object
        started the run (waiting for it), else None."""
        if self._closed:
            return self._driver.returncode if self._driver else None
        self._close()
        return self._driver.wait() if self._driver is not None else None

    def __enter__(self) -> DisBatcher:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        """`done()`; or, when an exception leaves the block, stop the run at once (its running tasks recorded as
        interrupted) before the exception goes on."""
        if error is None:
            self.done()
        elif not self._closed:
            self._close()
            self._stop_driver()

    def _claim(self, ids: list[int]) -> dict[int, Report]:
        for task_id in ids:
            self._unclaimed.pop(task_id, None)
            self._claimed.add(task_id)
        return {task_id: self._reports[task_id] for task_id in ids}

    def _receive_one(self) -> None:
        if self._closed:
            raise DisbatchError('DisBatcher.done() was called: no more results will come')
        _, value = self._kvs.get(f'{self._results} done tasks')
        task_id = int(value)
        _, report = self._kvs.get(f'{self._results} {task_id}')
        self._reports[task_id] = json.loads(report)
        if task_id not in self._claimed:
            self._unclaimed[task_id] = None

    def _close(self) -> None:
        """End the task stream: the run ends once the tasks it has are done (a run that ended already, after Ctrl-C or
        --fail-fast, has no stream to end)."""
        self._closed = True
        with contextlib.suppress(OSError):
            self._kvs.put(self._tasks, self._sentinel)
        self._kvs.close()

    def _start_driver(self, args: list[str]) -> tuple[str, bytes]:
        """Start `disbatch --taskserver` as a child that stops when this process ends (`--owner-pid`); returns its
        KVS address and token, which it writes down a pipe (`--address-fd`) once it listens."""
        read_end, write_end = os.pipe()
        try:
            owner = ['--address-fd', str(write_end), '--owner-pid', str(os.getpid())]
            command = [sys.executable, '-m', 'disbatch', '--taskserver', '--tasks-name', self.tasksname, *owner, *args]
            self._driver = subprocess.Popen(command, stdin=subprocess.DEVNULL, pass_fds=(write_end,))
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        try:
            address, token = self._read_address(read_end).split()
        finally:
            os.close(read_end)
        return address, token.encode()

    def _read_address(self, read_end: int) -> str:
        """The line the driver writes once it listens (DisbatchError if it exits or takes too long first)."""
        assert self._driver is not None
        data = b''
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not data.endswith(b'\n'):
            ready, _, _ = select.select([read_end], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                self._stop_driver()
                raise DisbatchError(f'the disbatch run did not start within {START_TIMEOUT_SECONDS:.0f} s')
            chunk = os.read(read_end, 4096)
            if not chunk:
                raise DisbatchError(f'the disbatch run could not start (exit {self._driver.wait()})')
            data += chunk
        return data.decode()

    def _stop_driver(self) -> None:
        """Stop the run as SIGTERM does (running tasks recorded as interrupted), and wait for its end."""
        if self._driver is not None and self._driver.poll() is None:
            self._driver.terminate()
            self._driver.wait()
