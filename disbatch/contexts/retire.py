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
from dataclasses import dataclass, field

from disbatch.privacy import open_append

log = logging.getLogger('disbatch.retire')

QUIET_SECONDS = 2.0


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
    _running: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def engine_exited(self, node: str, exit_code: int, now: float) -> None:
        if node in self.active:
            self.active.remove(node)
        if self.command is None or node == self.driver_node:
            return
        self._batch.append((node, exit_code))
        self._deadline = now + self.quiet_seconds

    @property
    def deadline(self) -> float | None:
        return self._deadline

    def on_timer(self, now: float) -> None:
        if self._deadline is None or now < self._deadline:
            return
        self.flush()

    def flush(self) -> None:
        """Run the command for the pending batch now."""
        self._running = [process for process in self._running if process.poll() is None]
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
        with os.fdopen(open_append(self.log_path), 'ab') as output:
            self._running.append(
                subprocess.Popen(
                    ['/bin/bash', '-c', self.command],
                    env=environment,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=output,
                    start_new_session=True,
                )
            )

    def wait(self, timeout: float) -> None:
        """At the end of a run: give running retire commands `timeout` seconds to finish."""
        for process in self._running:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning('retire command (pid %d) still running; left to finish on its own', process.pid)
