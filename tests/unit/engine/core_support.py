"""Builders for the engine core's tests: the driver's messages, the jobs and results they turn into, an engine."""

from __future__ import annotations

from disbatch.engine.core import EngineCore
from disbatch.engine.core_events import Action, Job, Joined, Leaving, Received, TaskExited, Tick, TurnEnded
from disbatch.engine.shares import Resource
from disbatch.protocol.messages import Message, PerEngineSpec, TaskAttempt, TaskDone, Welcome
from disbatch.results.record import EMPTY_SNIPPET, Outcome, ResourceUsage


def welcome(
    start: tuple[PerEngineSpec, ...] = (), stop: tuple[PerEngineSpec, ...] = (), timeout: float = 0.0
) -> Welcome:
    return Welcome(0, '/tmp', {}, list(start), list(stop), timeout, False, '')


def run(task_id: int, attempt: int = 1) -> TaskAttempt:
    return TaskAttempt(task_id, task_id + 1, -1, f'echo {task_id}', attempt)


def job(task_id: int, attempt: int = 1) -> Job:
    """The job `run(task_id, attempt)` becomes."""
    return Job(task_id, task_id + 1, -1, f'echo {task_id}', attempt=attempt)


def start_job(task_id: int) -> Job:
    return Job(task_id, task_id + 1, -1, f'start {task_id}', 'START')


def stop_job(task_id: int) -> Job:
    return Job(task_id, task_id + 1, -1, f'stop {task_id}', 'STOP')


def start_spec(task_id: int) -> PerEngineSpec:
    return (task_id, task_id + 1, f'start {task_id}')


def stop_spec(task_id: int) -> PerEngineSpec:
    return (task_id, task_id + 1, f'stop {task_id}')


def outcome(return_code: int = 0, pid: int = 4242, start: float = 100.0, finish: float = 101.0) -> Outcome:
    return Outcome.ran(
        pid, return_code, start, finish, 3, "'ok'", 0, EMPTY_SNIPPET, ResourceUsage(1 << 20, 0.25, 0.125)
    )


def failed_spawn(code: int = 2) -> Outcome:
    return Outcome.spawn_failure(code, 'No such file or directory', 100.0)


def done(of: Job, result: Outcome | None = None, timed_out: bool = False, interrupted: bool = False) -> TaskDone:
    """The TaskDone an engine reports for `of` that ended with `result`."""
    return TaskDone(
        of.task_id, of.phase, outcome() if result is None else result, timed_out, interrupted,
        of.attempt if not of.phase else 0,
    )  # fmt: skip


def engine(
    slots: int = 2,
    *messages: Message,
    resources: tuple[Resource, ...] = (),
    start: tuple[PerEngineSpec, ...] = (),
    stop: tuple[PerEngineSpec, ...] = (),
    timeout: float = 0.0,
    now: float = 0.0,
) -> tuple[EngineCore, list[Action]]:
    """An engine started at `now` and welcomed at once (with `messages` in the Welcome's batch): it and the actions
    of its join."""
    core = EngineCore(slots, resources, now)
    return core, core.handle(Joined(welcome(start, stop, timeout), list(messages), now))


def receive(core: EngineCore, *messages: Message, now: float = 0.0) -> list[Action]:
    return core.handle(Received(list(messages), now))


def exit_task(core: EngineCore, slot: int, result: Outcome | None = None, now: float = 0.0) -> list[Action]:
    return core.handle(TaskExited(slot, outcome() if result is None else result, (), now))


def turn(core: EngineCore, now: float) -> list[Action]:
    """The end of a turn of the shell: Tick's actions, then TurnEnded's."""
    return core.handle(Tick(now)) + core.handle(TurnEnded(now))


def leave(core: EngineCore) -> list[Action]:
    return core.handle(Leaving(clean=True))
