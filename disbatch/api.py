"""`DisBatcher`: submit tasks from a Python program and collect their results while they run.

    from disbatch import DisBatcher
    batcher = DisBatcher(tasksname='squares', args=['-s', 'localhost:4'])
    for n in range(10):
        batcher.submit(f'echo $(({n} * {n}))')
    report = batcher.wait_one_task()        # the next task to finish, as a dict (the reference's keys)
    reports = batcher.syncTasks([0, 1, 2])  # {task id: report}, once all of them have finished
    batcher.done()                          # no more tasks; waits for the run to end, returns its exit code

The run is a separate `disbatch --taskserver` process (so it touches neither this program's logging nor its signal
handlers); the two talk through the run's KVS with the reference's task-source protocol, so `kvsserver='host:port'`
also attaches to a run started elsewhere (the KVS token then comes from `$DISBATCH_KVSSTCP_TOKEN`, as in its tasks).
Every submitted line, directives included, is read by the same parser as the driver's, so `submit` returns the id
the driver gives the task. The last task runs as soon as it is submitted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any

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
        self._scratch: str | None = None
        address, token = (kvsserver, None) if kvsserver else self._start_driver(list(args))
        self._kvs = KVSClient.from_address(address, token=token)
        unique = uuid.uuid4().hex
        self._sentinel = f'#DONE {unique}#'
        self._results = f'.{tasksname} results {unique}'
        self._tasks = f'.{tasksname} tasks {unique}'
        self._kvs.put('task source name', tasksname)
        self._kvs.put('task source done task', self._sentinel)
        self._kvs.put('task source result key', self._results)
        self._kvs.put('task source task key', self._tasks)
        self._parser = TaskFileParser(tasksname)
        self._line_number = 0
        self._reports: dict[int, Report] = {}
        self._unreturned: deque[int] = deque()  # finished, not yet handed out by wait_one_task
        self._submitted = 0  # tasks and barriers submitted: wait_one_task knows when none is outstanding
        self._handed_out = 0
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
        items = [item for item in self._parser.feed(line.encode('utf-8', 'surrogateescape'), self._line_number)
                 if isinstance(item, (Task, Barrier))]  # fmt: skip
        self._kvs.put(self._tasks, line)
        self._submitted += len(items)
        return items[0].task_id if len(items) == 1 else None

    def wait_one_task(self) -> Report:
        """The report of the next task to finish (any task, barriers included), waiting for it if need be.

        DisbatchError when no submitted task is left to report (it would wait forever).
        """
        if not self._unreturned:
            if self._handed_out >= self._submitted:
                raise DisbatchError(f'wait_one_task(): all {self._submitted} submitted tasks were already returned')
            self._receive_one()
        self._handed_out += 1
        return self._reports[self._unreturned.popleft()]

    def syncTasks(self, ids: Iterable[int]) -> dict[int, Report]:
        """The reports of these tasks, once every one of them has finished."""
        wanted = list(ids)
        while any(task_id not in self._reports for task_id in wanted):
            self._receive_one()
        return {task_id: self._reports[task_id] for task_id in wanted}

    def done(self) -> int | None:
        """No more tasks: the run ends once they have all finished. Returns the run's exit code when this object
        started the run (waiting for it), else None."""
        if self._closed:
            return self._driver.returncode if self._driver else None
        self._closed = True
        self._kvs.put(self._tasks, self._sentinel)
        self._kvs.close()
        if self._driver is None:
            return None
        code = self._driver.wait()
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)
        return code

    def __enter__(self) -> DisBatcher:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.done()

    def _receive_one(self) -> None:
        if self._closed:
            raise DisbatchError('DisBatcher.done() was called: no more results will come')
        _, value = self._kvs.get(f'{self._results} done tasks')
        task_id = int(value)
        _, report = self._kvs.get(f'{self._results} {task_id}')
        self._reports[task_id] = json.loads(report)
        self._unreturned.append(task_id)

    def _start_driver(self, args: list[str]) -> tuple[str, bytes]:
        """Start `disbatch --taskserver`; returns its KVS address and token once it listens."""
        self._scratch = tempfile.mkdtemp(prefix='disbatcher-')
        address_file = os.path.join(self._scratch, 'kvs-address')
        command = [sys.executable, '-m', 'disbatch', '--taskserver', '--address-file', address_file,
                   '--tasks-name', self.tasksname, *args]  # fmt: skip
        self._driver = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if os.path.exists(address_file):  # written whole, by a rename
                with open(address_file) as handle:
                    address, token = handle.read().split()
                return address, token.encode()
            if self._driver.poll() is not None:
                raise DisbatchError(f'the disbatch run could not start (exit {self._driver.returncode})')
            time.sleep(0.01)
        self._driver.kill()
        raise DisbatchError(f'the disbatch run did not start within {START_TIMEOUT_SECONDS:.0f} s')
