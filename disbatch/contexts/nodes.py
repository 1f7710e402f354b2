"""A context made of a fixed list of nodes, one engine each: the common body of the SSH and Slurm contexts.

The kinds differ only in how they find their nodes and in the command that starts an engine on a node (`python
-m disbatch.engine …` here, `ssh NODE …`, `srun -w NODE …`); that is `engine_launcher`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

from disbatch.contexts.base import Context
from disbatch.contexts.launch import EngineExited, EngineProcesses, LateEngine, LaunchLimits
from disbatch.contexts.retire import Retirement
from disbatch.contract.launch_line import LaunchLine
from disbatch.privacy import open_append

log = logging.getLogger('disbatch.context')


@dataclass(frozen=True, slots=True)
class NodePlan:
    """One engine to start: where, with how many slots, and DISBATCH_CORES_PER_TASK."""

    host: str
    slots: int
    cores_per_task: int


@dataclass(frozen=True, slots=True)
class EngineResources:
    """What every engine of a context shares out among its slots: N GPUs a task, one item of each -E list a task.
    The engine finds them on its node, and runs no more slots than they allow (engine/devices.py)."""

    gpus_per_task: int = 0
    env_resources: tuple[str, ...] = ()

    def options(self) -> list[str]:
        gpus = ['--gpus-per-task', str(self.gpus_per_task)] if self.gpus_per_task else []
        return [*gpus, *(f'--env-resource={variable}' for variable in self.env_resources)]


NO_RESOURCES = EngineResources()


# (plan, engine command) -> the command that runs the engine command on the plan's node
Launcher = Callable[[NodePlan, list[str]], list[str]]
# host -> a command that ends the batch system's side of that host's launcher (Slurm: `scancel` of its step)
StepEnder = Callable[[str], list[str]]


def engine_command(
    run: str, plan: NodePlan, context: str, launch_id: str, resources: EngineResources = NO_RESOURCES
) -> list[str]:
    """`python -m disbatch.engine …` for one node (the same interpreter: nodes share the file system). The driver's
    address and the run's credentials come on its stdin."""
    # A table of one flag and its value a line: the formatter would put each word on a line of its own.
    return [
        sys.executable, '-m', 'disbatch.engine',
        f'--run={run}',  # one word: a job id may begin with '-'
        '--slots', str(plan.slots),
        '--cores-per-task', str(plan.cores_per_task),
        '--context', context,
        '--hostname', plan.host,
        '--launch-id', launch_id,
        '--secret-stdin', '--watch-stdin',
        *resources.options(),
    ]  # fmt: skip


class NodeContext(Context):
    def __init__(
        self,
        label: str,
        plans: list[NodePlan],
        launcher: Launcher,
        retirement: Retirement,
        step_ender: StepEnder | None = None,
        resources: EngineResources = NO_RESOURCES,
        limits: LaunchLimits | None = None,
    ) -> None:
        self.label = label
        self.resources = resources
        self.plans = plans
        self.launcher = launcher
        self.retirement = retirement
        self.step_ender = step_ender
        self.processes = EngineProcesses(limits)
        self._launched = False
        self._enders: list[subprocess.Popen[bytes]] = []

    def launch(self, run: str, log_path: str) -> None:
        at_once = self.processes.limits.at_once
        if at_once is not None and len(self.plans) > at_once:
            log.info(
                'context %s: %d engines to start, at most %d launching at once', self.label, len(self.plans), at_once
            )
        for index, plan in enumerate(self.plans):
            launch_id = f'{self.label}/{index}'
            command = self.launcher(plan, engine_command(run, plan, self.label, launch_id, self.resources))
            self.processes.start(
                launch_id, plan.host, command, log_path.replace('{context}', self.label).replace('{host}', plan.host)
            )
        self._launched = True

    def admit(self, line: LaunchLine) -> None:
        self.processes.admit(line.format())

    def new_fds(self) -> list[int]:
        return self.processes.new_fds()

    def engine_joined(self, launch_id: str) -> None:
        self.processes.joined(launch_id)

    def overdue(self, now: float) -> list[LateEngine]:
        return self.processes.overdue(now)

    def on_ready(self, fd: int, now: float) -> EngineExited | None:
        exited = self.processes.on_ready(fd)
        if exited is not None:
            log.info('engine on %s exited with %d', exited.host, exited.exit_code)
            self.retirement.engine_exited(exited.host, exited.exit_code, now)
            if self.processes.running == 0:
                self.retirement.flush()
        return exited

    def abandon(self, launch_id: str) -> None:
        """End the launcher of a lost engine: a crashed node's `srun` never returns on its own (Slurm finds the node
        dead only minutes later), so its step is cancelled and the `srun` killed; the launcher's exit then retires
        the node like any other engine's end. An `ssh` launcher is killed the same way."""
        host = next((plan.host for index, plan in enumerate(self.plans) if f'{self.label}/{index}' == launch_id), None)
        if host is None:
            return
        if self.step_ender is not None:
            command = self.step_ender(host)
            log.info('lost engine on %s: ending its Slurm step: %s', host, ' '.join(command))
            with os.fdopen(open_append(self.retirement.log_path), 'ab') as output:
                self._enders.append(
                    subprocess.Popen(
                        command, stdin=subprocess.DEVNULL, stdout=output, stderr=output, start_new_session=True
                    )
                )
        pid = self.processes.end(launch_id)
        if pid is not None:
            log.info('lost engine on %s: killed its launcher (pid %d)', host, pid)

    @property
    def finished(self) -> bool:
        return self._launched and self.processes.running == 0 and self.processes.waiting == 0

    def still_running(self) -> list[tuple[str, str, str]]:
        return self.processes.still_running()

    def deadline(self) -> float | None:
        deadlines = [when for when in (self.retirement.deadline, self.processes.deadline()) if when is not None]
        return min(deadlines, default=None)

    def on_timer(self, now: float) -> None:
        self.processes.on_timer(now)
        self.retirement.on_timer(now)

    def terminate(self) -> None:
        self.processes.terminate()
        self.retirement.flush()
        self.retirement.wait(timeout=10.0)
        for ender in self._enders:
            with contextlib.suppress(subprocess.TimeoutExpired):
                ender.wait(timeout=5.0)
