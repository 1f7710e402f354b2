"""The engine core under random interleavings: a simulated shell feeds tasks, exits, spawn failures and turns in any
order, and the core keeps its promises (no more than `slots` tasks at once, disjoint shares, every task run once
and reported once, in the order of its end, and a Goodbye once drained)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from disbatch.engine.core import EngineCore, EngineStage
from disbatch.engine.core_events import (
    Action,
    Joined,
    Leaving,
    Received,
    SendGoodbye,
    SendResults,
    Spawn,
    SpawnFailed,
    TaskExited,
    Tick,
    TurnEnded,
)
from disbatch.engine.shares import Resource
from disbatch.protocol.messages import Drain, Leftover, TaskDone

from .core_support import failed_spawn, outcome, run, welcome

STEPS = st.lists(st.sampled_from(['send', 'send', 'exit', 'exit', 'turn', 'wait']), max_size=60)


class Shell:
    """Carries the core's actions out the way `EngineLoop` does, with a pretend clock and pretend processes."""

    def __init__(self, slots: int, failing: set[int]) -> None:
        self.gpus = Resource('GPUs', tuple(str(i) for i in range(2 * slots)), 2, ('CUDA_VISIBLE_DEVICES',))
        self.core = EngineCore(slots, (self.gpus,), 0.0)
        self.slots = slots
        self.failing = failing  # task ids whose spawn fails
        self.now = 0.0
        self.running: dict[int, tuple[int, str]] = {}  # slot -> (task id, its GPUs)
        self.started: list[int] = []
        self.ended: list[int] = []  # task ids, in the order the core was told of their end
        self.reported: list[int] = []
        self.goodbye = False

    def carry_out(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Spawn):
                task_id = action.job.task_id
                if task_id in self.failing:
                    self.ended.append(task_id)
                    actions.extend(self.core.handle(SpawnFailed(action.slot, failed_spawn(), self.now)))
                    continue
                assert action.slot not in self.running
                share = action.shares['CUDA_VISIBLE_DEVICES']
                assert all(not set(share.split(',')) & set(held.split(',')) for _, held in self.running.values())
                self.running[action.slot] = (task_id, share)
                self.started.append(task_id)
                assert len(self.running) <= self.slots
            elif isinstance(action, SendResults | SendGoodbye):
                assert not self.goodbye
                self.reported.extend(r.task_id for r in action.batch if isinstance(r, TaskDone))
                assert all(isinstance(r, TaskDone | Leftover) for r in action.batch)
                self.goodbye = isinstance(action, SendGoodbye)

    def turn(self) -> None:
        self.carry_out(self.core.handle(Tick(self.now)))
        self.carry_out(self.core.handle(TurnEnded(self.now)))


@settings(max_examples=300, deadline=None)
@given(
    slots=st.integers(1, 4),
    steps=STEPS,
    failing=st.sets(st.integers(0, 30), max_size=5),
    picks=st.lists(st.integers(0, 3), min_size=60, max_size=60),
)
def test_every_task_runs_once_and_is_reported_once(
    slots: int, steps: list[str], failing: set[int], picks: list[int]
) -> None:
    shell = Shell(slots, failing)
    shell.carry_out(shell.core.handle(Joined(welcome(), [], 0.0)))
    sent = 0
    for step, pick in zip(steps, picks, strict=False):
        if step == 'send':
            shell.carry_out(shell.core.handle(Received([run(sent)], shell.now)))
            sent += 1
        elif step == 'exit' and shell.running:
            slot = sorted(shell.running)[pick % len(shell.running)]
            task_id, _ = shell.running.pop(slot)
            shell.ended.append(task_id)
            shell.carry_out(shell.core.handle(TaskExited(slot, outcome(), (), shell.now)))
        elif step == 'turn':
            shell.turn()
        elif step == 'wait':
            shell.now += 0.02
            shell.carry_out(shell.core.handle(Received([], shell.now)))
            shell.turn()
    shell.carry_out(shell.core.handle(Received([Drain()], shell.now)))
    shell.turn()
    while shell.running:  # the driver said Drain: the rest finishes
        slot = min(shell.running)
        task_id, _ = shell.running.pop(slot)
        shell.ended.append(task_id)
        shell.carry_out(shell.core.handle(TaskExited(slot, outcome(), (), shell.now)))
        shell.turn()
    assert shell.core.stage is EngineStage.DONE
    shell.carry_out(shell.core.handle(Leaving(clean=True)))
    assert shell.goodbye
    assert sorted(shell.started) == sorted(set(range(sent)) - failing)
    assert shell.reported == shell.ended  # once each, in the order they ended
    assert sorted(shell.reported) == list(range(sent))
