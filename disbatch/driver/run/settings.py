"""What the run tells its driver loop (`DriverSettings`), and through it, what each engine and context process
that joins is told in its Welcome."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from disbatch.protocol.messages import ContextWelcome, Welcome
from disbatch.protocol.transport import Credentials
from disbatch.taskfile.items import PerEngineTask


@dataclass(frozen=True, slots=True)
class DriverSettings:
    bind_host: str
    cwd: str
    credentials: Credentials
    task_environment: dict[str, str]  # DISBATCH_JOBID, DISBATCH_NAMETASKS, DISBATCH_KVSSTCP_HOST
    engine_log: str  # path with '{context}' and '{host}' where the context label and node name go
    cpus_per_task: float = 0.0  # -c and -t of the run, for contexts added later that do not set them (0: unset)
    tasks_per_node: int = 0
    gpus_per_task: int = 0  # --gpus-per-task and -E of the run, likewise
    env_resources: tuple[str, ...] = ()
    task_timeout: float = 0.0  # --timeout; 0: none
    kill_leftovers: bool = False  # --kill-leftovers: engines end what a task left running as soon as it exits
    fork_tasks: bool = False  # --fork-tasks: a long-lived bash per slot forks each task
    expected_total: int | None = None  # tasks in a regular task file, counted before the run
    results_dir: str = ''  # --results: absolute directory for every task's complete stdout and stderr
    allocation_end: Callable[[], float | None] | None = None  # reads the Slurm job's end again (its limit may change)
    owner_pid: int | None = None  # --owner-pid (DisBatcher): the parent whose end stops the run

    def knows_secret(self, secret: str) -> bool:
        """Whether a hello's secret is the run's (compared in constant time)."""
        return hmac.compare_digest(secret.encode(), self.credentials.secret.encode())

    def welcome(self, rank: int, start: Sequence[PerEngineTask], stop: Sequence[PerEngineTask]) -> Welcome:
        """What an engine that joined as `rank` is told: where and how its tasks run, its per-engine tasks."""
        return Welcome(
            rank,
            self.cwd,
            dict(self.task_environment),
            [(task.task_id, task.line_number, task.command) for task in start],
            [(task.task_id, task.line_number, task.command) for task in stop],
            self.task_timeout,
            self.kill_leftovers,
            self.results_dir,
            self.fork_tasks,
        )

    def context_welcome(self, label: str) -> ContextWelcome:
        """What a context process is told: its label, and the run's -c/-t/--gpus-per-task/-E for flags it left
        unset."""
        resources = ','.join(self.env_resources)
        return ContextWelcome(label, self.cpus_per_task, self.tasks_per_node, self.gpus_per_task, resources)
