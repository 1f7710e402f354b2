"""The local context: engines on this machine, one per `-s` entry that names it (`-s localhost:N`).

Each engine is a separate process (`python -m disbatch.engine`) in a session of its own, so a Ctrl-C on the
driver's terminal reaches the driver alone, which then stops the engines in order. The engine watches the driver's
pidfd, so it also stops its tasks if the driver is killed outright.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass

from disbatch.contexts.base import Context, EngineExited, EngineLaunch, Node, slots_for


@dataclass(slots=True)
class _Running:
    process: subprocess.Popen[bytes]
    pidfd: int
    host: str


class LocalContext(Context):
    def __init__(
        self, nodes: list[Node], cpus_per_task: float, tasks_per_node: int | None, label: str, stdin_is_tasks: bool
    ) -> None:
        self.nodes = nodes
        self.cpus_per_task = cpus_per_task
        self.tasks_per_node = tasks_per_node
        self.label = label
        self.stdin_is_tasks = stdin_is_tasks
        self._running: dict[int, _Running] = {}  # pidfd -> engine process
        self._launched = False
        for node in nodes:
            slots_for(node.cores, cpus_per_task, tasks_per_node)  # raise ContextError before anything starts

    def launch(self, launch: EngineLaunch) -> None:
        environment = dict(os.environ, DISBATCH_RUN_SECRET=launch.secret)
        for node in self.nodes:
            slots, cores_per_task = slots_for(node.cores, self.cpus_per_task, self.tasks_per_node)
            command = [
                sys.executable, '-m', 'disbatch.engine',
                '--driver', launch.driver_address,
                '--slots', str(slots),
                '--cores-per-task', str(cores_per_task),
                '--context', self.label,
                '--hostname', node.host,
                '--driver-pid', str(launch.driver_pid),
            ]  # fmt: skip
            with open(launch.log_path.replace('{host}', node.host), 'ab') as log:
                process = subprocess.Popen(
                    command,
                    env=environment,
                    stdin=subprocess.DEVNULL if self.stdin_is_tasks else None,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            pidfd = os.pidfd_open(process.pid)
            self._running[pidfd] = _Running(process, pidfd, node.host)
        self._launched = True

    def watched_fds(self) -> list[int]:
        return list(self._running)

    def on_ready(self, fd: int) -> EngineExited | None:
        running = self._running.pop(fd, None)
        if running is None:
            return None
        os.close(fd)
        exit_code = running.process.wait()
        return EngineExited(running.process.pid, exit_code, running.host)

    @property
    def finished(self) -> bool:
        return self._launched and not self._running

    def terminate(self) -> None:
        for running in self._running.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(running.process.pid, signal.SIGKILL)
