"""Node retirement: when engines exit, tell the batch system (or the user's command) which nodes are free.

Exits that come close together are batched: the command runs once, `quiet_seconds` after the last exit of a batch,
with `NODES` (the nodes of this batch), `RETCODES` (their engines' exit codes), `ACTIVE` (nodes still working),
`RETIRED` (every node retired so far) and, under Slurm, `DRIVER_NODE` in its environment. It runs in the
background; its output goes to the context's log. The command is never allowed to stall the driver.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from dataclasses import dataclass, field

log = logging.getLogger('disbatch.retire')

QUIET_SECONDS = 2.0
# A retire command that fails is run again (with the same environment) this often, this far apart: Slurm refuses a
# second resize of a job that comes soon after the first ("Job update not available right now, ... try again").
ATTEMPTS = 4
RETRY_SECONDS = 1.5


@dataclass(slots=True)
class Retirement:
    command: str | None  # None: retire nothing
    active: list[str]
    log_path: str
    driver_node: str | None = None
    quiet_seconds: float = QUIET_SECONDS
    retired: list[str] = field(default_factory=list)
    _batch: list[tuple[str, int]] = field(default_factory=list)
    _deadline: float | None = None
    _running: list[tuple[subprocess.Popen[bytes], dict[str, str], int]] = field(default_factory=list)  # +env, try
    _retries: list[tuple[float, dict[str, str], int]] = field(default_factory=list)  # (when, environment, attempt)
    _look_at: float | None = None  # when to see how a command that may be retried ended

    def engine_exited(self, node: str, exit_code: int, now: float) -> None:
        if node in self.active:
            self.active.remove(node)
        if self.command is None or node == self.driver_node:
            return
        self._batch.append((node, exit_code))
        self._deadline = now + self.quiet_seconds

    @property
    def deadline(self) -> float | None:
        waits = [when for when, _, _ in self._retries]
        if self._look_at is not None:
            waits.append(self._look_at)
        if self._deadline is not None:
            waits.append(self._deadline)
        return min(waits) if waits else None

    def on_timer(self, now: float) -> None:
        self._check_running(now)
        for when, environment, attempt in [retry for retry in self._retries if retry[0] <= now]:
            self._retries.remove((when, environment, attempt))
            self._start(environment, attempt)
        if self._deadline is None or now < self._deadline:
            return
        self.flush()

    def _check_running(self, now: float) -> None:
        """Retire commands that failed are run again later (up to ATTEMPTS times in all)."""
        still = []
        for process, environment, attempt in self._running:
            code = process.poll()
            if code is None:
                still.append((process, environment, attempt))
            elif code != 0 and attempt < ATTEMPTS:
                log.warning('retiring %s failed (exit %d): trying again in %.1f s', environment['NODES'], code,
                            RETRY_SECONDS)  # fmt: skip
                self._retries.append((now + RETRY_SECONDS, environment, attempt + 1))
            elif code != 0:
                log.error('retiring %s failed (exit %d) %d times: given up', environment['NODES'], code, attempt)
        self._running = still
        retryable = any(attempt < ATTEMPTS for _, _, attempt in still)
        self._look_at = now + RETRY_SECONDS / 3 if retryable else None

    def flush(self) -> None:
        """Run the command for the pending batch now."""
        self._check_running(time.time())
        if not self._batch or self.command is None:
            self._deadline = None
            return
        nodes = [node for node, _ in self._batch]
        self.retired.extend(nodes)
        environment = dict(
            os.environ,
            NODES=','.join(nodes),
            RETCODES=','.join(str(code) for _, code in self._batch),
            ACTIVE=','.join(self.active),
            RETIRED=','.join(self.retired),
        )
        if self.driver_node is not None:
            environment['DRIVER_NODE'] = self.driver_node
        self._batch.clear()
        self._deadline = None
        log.info('retiring %s: %s', ','.join(nodes), self.command)
        self._start(environment, 1)

    def _start(self, environment: dict[str, str], attempt: int) -> None:
        assert self.command is not None
        with open(self.log_path, 'ab') as output:
            process = subprocess.Popen(
                ['/bin/bash', '-c', self.command], env=environment, stdin=subprocess.DEVNULL,
                stdout=output, stderr=output, start_new_session=True,
            )  # fmt: skip
        self._running.append((process, environment, attempt))
        if attempt < ATTEMPTS:
            self._look_at = time.time() + RETRY_SECONDS / 3

    def wait(self, timeout: float) -> None:
        """At the end of a run: give running retire commands `timeout` seconds to finish."""
        deadline = time.monotonic() + timeout
        while self._running or self._retries:
            for process, _, _ in self._running:
                try:
                    process.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log.warning('retire command (pid %d) still running; left to finish on its own', process.pid)
                    return
            self._check_running(time.time())
            if not self._retries:
                return
            pause = min(when for when, _, _ in self._retries) - time.time()
            if time.monotonic() + pause > deadline:
                log.warning('retiring %s: no time left to try again', ','.join(e['NODES'] for _, e, _ in self._retries))
                return
            time.sleep(max(0.0, pause))  # the run is over: nothing else to wait for
            self.on_timer(time.time())
