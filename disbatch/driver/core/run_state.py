"""PURE: the scheduler's terms: what the run tells it at the start (`SchedulerConfig`), and what it keeps that
observers read besides its actions: the run's state (`RunState`) and what became of its tasks (`Counts`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from disbatch.driver.core.walltime import Allocation
from disbatch.taskfile.items import PerEngineTask

# How many times a task lost with its engine is re-issued before it is given up.
MAX_ATTEMPTS = 3


class RunState(enum.Enum):
    RUNNING = 'running'
    DRAINING = 'draining'
    STOPPING = 'stopping'
    FINISHED = 'finished'


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    driver_host: str
    driver_pid: int
    fail_fast: bool = False
    exit_code_on_failure: bool = False  # -e
    max_attempts: int = MAX_ATTEMPTS  # runs of a task whose engines keep getting lost
    retries: int = 0  # --retries: runs of a failed task after the first
    wait_for_contexts: bool = False  # -S: with no engine left, wait for a context to be added instead of failing
    add_context_hint: str = ''  # how the user adds a context (the dbUtil script), for the waiting message
    allocation: Allocation | None = None  # when the run must end (walltime): tasks are held, then stopped, by it
    per_engine_tasks: tuple[PerEngineTask, ...] = ()  # PERENGINE START and STOP: what an engine reports of them


@dataclass(slots=True)
class Counts:
    finished: int = 0
    failed: int = 0
    skipped: int = 0
    barriers: int = 0
    lost: int = 0
    interrupted: int = 0  # tasks whose final record says the run stopped them (not counted in finished)
