"""The engine core stopping tasks: --timeout (TERM, then KILL after the grace), the abort (TERM, KILL after the grace,
KILL again every 5 s), a lost driver, and a task whose process could not be created.

`tick` keeps the driver heard and leaves heartbeats out, so each list shows only what the test is about.
"""

from __future__ import annotations

import logging
from signal import SIGINT, SIGKILL, SIGTERM

from disbatch.engine.core import (
    ABORT_KILL_AGAIN_SECONDS,
    KILL_GRACE_SECONDS,
    STOP_SIGNAL_HOLD_SECONDS,
    EngineCore,
    EngineStage,
)
from disbatch.engine.core_events import (
    PER_ENGINE_SLOT,
    Action,
    DriverGone,
    KillLeftovers,
    Log,
    SendGoodbye,
    SendHeartbeat,
    SendResults,
    SignalGroup,
    Signalled,
    SignalLeftovers,
    Spawn,
    SpawnFailed,
    Tick,
    TurnEnded,
)
from disbatch.engine.shares import Resource
from disbatch.protocol.messages import Abort, Drain, Heartbeat

from .core_support import (
    done,
    engine,
    exit_task,
    failed_spawn,
    job,
    leave,
    outcome,
    receive,
    run,
    start_job,
    start_spec,
    stop_job,
    stop_spec,
)


def tick(core: EngineCore, now: float) -> list[Action]:
    """A turn's Tick and TurnEnded, the driver heard just before; heartbeats left out."""
    receive(core, Heartbeat(), now=now)
    actions = core.handle(Tick(now)) + core.handle(TurnEnded(now))
    return [action for action in actions if not isinstance(action, SendHeartbeat)]


def ran_past(task_id: int, seconds: str) -> Log:
    return Log(logging.INFO, f'task {task_id} ran past {seconds} s: stopping it')


# ---------------------------------------------------------------- --timeout


def test_a_task_past_its_timeout_gets_term_then_kill_after_the_grace() -> None:
    core, _ = engine(1, run(0), timeout=3.0, now=10.0)
    assert core.next_deadline() == 12.0  # the heartbeat comes first
    assert tick(core, 12.9) == []
    assert core.next_deadline() == 13.0
    assert tick(core, 13.0) == [ran_past(0, '3'), SignalGroup(0, SIGTERM)]
    assert core.next_deadline() == 13.0 + KILL_GRACE_SECONDS
    assert tick(core, 13.5) == []
    assert tick(core, 14.0) == [SignalGroup(0, SIGKILL)]
    assert tick(core, 15.0) == []  # killed once: no timer left for it
    assert core.next_deadline() == 17.0  # the next heartbeat
    exit_task(core, 0, outcome(-SIGKILL), now=15.5)
    assert tick(core, 15.5) == [SendResults((done(job(0), outcome(-SIGKILL), timed_out=True),))]


def test_a_task_that_exits_during_the_grace_is_timed_out_and_not_killed() -> None:
    core, _ = engine(1, run(0), run(1), timeout=1.5)
    assert tick(core, 1.5) == [ran_past(0, '2'), SignalGroup(0, SIGTERM)]
    exit_task(core, 0, outcome(-SIGTERM), now=2.0)
    assert tick(core, 2.0) == [Spawn(0, job(1)), SendResults((done(job(0), outcome(-SIGTERM), timed_out=True),))]
    assert core.next_deadline() == 2.0 + 1.5  # the new task's own timeout, nothing left of the old one
    assert tick(core, 2.5) == []


def test_a_timed_out_task_that_exits_0_is_recorded_as_stopped_by_sigterm() -> None:
    core, _ = engine(1, run(0), timeout=1.0)
    tick(core, 1.0)
    exit_task(core, 0, outcome(0), now=1.2)
    assert tick(core, 1.2) == [SendResults((done(job(0), outcome(-SIGTERM), timed_out=True),))]


def test_a_task_that_ends_in_time_is_not_signalled() -> None:
    core, _ = engine(1, run(0), timeout=1.0)
    exit_task(core, 0, outcome(1), now=0.9)
    assert tick(core, 1.0) == [SendResults((done(job(0), outcome(1)),))]
    assert tick(core, 1.9) == []


def test_each_task_has_its_own_timeout_from_its_start() -> None:
    core, _ = engine(2, run(0), timeout=1.0)
    receive(core, run(1), now=0.4)
    assert tick(core, 0.4) == [Spawn(1, job(1))]
    assert tick(core, 1.0) == [ran_past(0, '1'), SignalGroup(0, SIGTERM)]
    assert tick(core, 1.4) == [ran_past(1, '1'), SignalGroup(1, SIGTERM)]
    assert tick(core, 2.0) == [SignalGroup(0, SIGKILL)]
    assert tick(core, 2.4) == [SignalGroup(1, SIGKILL)]


def test_no_timeout_no_timer() -> None:
    core, _ = engine(1, run(0), timeout=0.0)
    assert core.next_deadline() == 2.0
    assert tick(core, 100.0) == []


def test_a_start_task_has_the_timeout_too() -> None:
    core, _ = engine(1, start=(start_spec(10),), timeout=1.0)
    assert tick(core, 1.0) == [ran_past(10, '1'), SignalGroup(PER_ENGINE_SLOT, SIGTERM)]


# ---------------------------------------------------------------- the abort


def test_an_abort_sends_term_to_every_task_and_their_leftovers_and_drops_the_queue() -> None:
    core, _ = engine(2, run(0), run(1), run(2))
    assert receive(core, Abort('fail-fast'), now=1.0) == [
        Log(logging.INFO, 'aborting: driver: fail-fast'),
        SignalGroup(0, SIGTERM),
        SignalGroup(1, SIGTERM),
        SignalLeftovers(SIGTERM),
    ]
    assert core.stage is EngineStage.ABORTING
    assert core.queued == 0
    assert core.next_deadline() == 1.0 + KILL_GRACE_SECONDS


def test_an_abort_kills_after_the_grace_and_again_every_5_s() -> None:
    core, _ = engine(2, run(0), run(1))
    receive(core, Abort('stop'), now=1.0)
    assert tick(core, 1.9) == []
    kills = [SignalGroup(0, SIGKILL), SignalGroup(1, SIGKILL), SignalLeftovers(SIGKILL)]
    assert tick(core, 2.0) == kills
    assert tick(core, 6.9) == []
    exit_task(core, 0, outcome(-SIGKILL), now=7.0)
    assert tick(core, 7.0) == [
        SignalGroup(1, SIGKILL),
        SignalLeftovers(SIGKILL),
        SendResults((done(job(0), outcome(-SIGKILL), interrupted=True),)),
    ]
    assert tick(core, 7.0 + ABORT_KILL_AGAIN_SECONDS) == [SignalGroup(1, SIGKILL), SignalLeftovers(SIGKILL)]


def test_aborted_tasks_are_interrupted_unless_they_exit_0() -> None:
    core, _ = engine(2, run(0), run(1))
    receive(core, Abort('stop'), now=1.0)
    exit_task(core, 0, outcome(-SIGTERM), now=1.1)
    exit_task(core, 1, outcome(0), now=1.1)
    assert tick(core, 1.1) == [
        SendResults((done(job(0), outcome(-SIGTERM), interrupted=True), done(job(1), outcome(0)))),
    ]
    assert core.stage is EngineStage.DONE
    assert leave(core) == [SendGoodbye((), 'driver: stop')]


def test_a_timed_out_task_caught_by_an_abort_stays_timed_out_not_interrupted() -> None:
    core, _ = engine(1, run(0), timeout=1.0)
    tick(core, 1.0)  # TERM for the timeout
    receive(core, Abort('stop'), now=1.5)
    exit_task(core, 0, outcome(-SIGTERM), now=1.6)
    assert tick(core, 1.6) == [SendResults((done(job(0), outcome(-SIGTERM), timed_out=True),))]


# ---------------------------------------------------------------- a batch system's end signals every process


def test_a_task_killed_by_the_stop_signal_the_engine_gets_next_is_interrupted() -> None:
    """`scancel` signals the task and the engine at once; the task's death may be seen first."""
    core, _ = engine(2, run(0), run(1))
    exit_task(core, 0, outcome(-SIGTERM), now=1.0)
    assert tick(core, 1.0) == []  # held: its hold has not ended
    assert core.next_deadline() == 1.0 + STOP_SIGNAL_HOLD_SECONDS
    assert core.handle(Signalled(1.1))[0] == Log(logging.INFO, 'aborting: engine received a signal')
    exit_task(core, 1, outcome(-SIGTERM), now=1.2)
    assert tick(core, 1.2) == [
        SendResults(
            (done(job(0), outcome(-SIGTERM), interrupted=True), done(job(1), outcome(-SIGTERM), interrupted=True))
        )
    ]


def test_a_task_that_dies_of_a_stop_signal_alone_is_reported_as_it_died_after_the_hold() -> None:
    core, _ = engine(1, run(0), run(1))
    exit_task(core, 0, outcome(-SIGINT), now=1.0)
    assert tick(core, 1.0) == [Spawn(0, job(1), {})]  # its slot is free again at once; its result is held
    assert tick(core, 1.0 + STOP_SIGNAL_HOLD_SECONDS) == [SendResults((done(job(0), outcome(-SIGINT)),))]


def test_a_held_result_leaves_with_the_goodbye() -> None:
    core, _ = engine(1, run(0), Drain())
    exit_task(core, 0, outcome(-SIGTERM), now=1.0)
    tick(core, 1.0)
    assert leave(core) == [SendGoodbye((done(job(0), outcome(-SIGTERM)),), 'finished')]


def test_a_signal_to_the_engine_aborts_it() -> None:
    core, _ = engine(1, run(0))
    assert core.handle(Signalled(0.5)) == [
        Log(logging.INFO, 'aborting: engine received a signal'),
        SignalGroup(0, SIGTERM),
        SignalLeftovers(SIGTERM),
    ]
    assert core.handle(Signalled(0.6)) == []  # aborting already
    assert receive(core, Abort('again'), now=0.7) == []
    assert receive(core, run(1), Drain(), now=0.8) == []
    assert core.queued == 0
    exit_task(core, 0, outcome(-SIGTERM), now=0.9)
    tick(core, 0.9)
    assert leave(core) == [SendGoodbye((), 'engine received a signal')]


def test_an_abort_in_the_welcome_batch_ends_the_engine_at_once() -> None:
    core, actions = engine(1, run(0), Abort('no'), run(1))
    assert actions == [Log(logging.INFO, 'aborting: driver: no'), SignalLeftovers(SIGTERM)]
    assert core.stage is EngineStage.DONE


def test_an_abort_while_starting_stops_the_start_task_and_skips_the_rest() -> None:
    core, _ = engine(1, run(0), start=(start_spec(10), start_spec(11)), stop=(stop_spec(20),))
    assert receive(core, Abort('x'), now=0.5)[1:] == [SignalGroup(PER_ENGINE_SLOT, SIGTERM), SignalLeftovers(SIGTERM)]
    exit_task(core, PER_ENGINE_SLOT, outcome(-SIGTERM), now=0.6)
    assert tick(core, 0.6) == [SendResults((done(start_job(10), outcome(-SIGTERM), interrupted=True),))]
    assert core.stage is EngineStage.DONE  # no START 11, no task, no STOP task


# ---------------------------------------------------------------- a lost driver


def test_a_lost_driver_means_kill_everything_now_and_report_nothing() -> None:
    core, _ = engine(2, run(0), run(1), run(2))
    exit_task(core, 1, now=0.1)  # its result is never sent
    core.handle(Tick(0.1))
    assert core.handle(DriverGone()) == [
        Log(logging.ERROR, 'the driver has exited; stopping every task'),
        SignalGroup(0, SIGKILL),
        SignalGroup(1, SIGKILL),
        KillLeftovers(),
    ]
    assert core.stage is EngineStage.DONE and core.driver_gone
    assert core.handle(Tick(0.2)) == []  # no second 'gone' when silent too
    assert leave(core) == []


# ---------------------------------------------------------------- a spawn that fails


def test_a_failed_spawn_is_reported_and_its_slot_takes_the_next_task_in_the_same_turn() -> None:
    core, actions = engine(1, run(0), run(1))
    assert actions == [Spawn(0, job(0))]
    assert core.handle(SpawnFailed(0, failed_spawn(), 0.0)) == [Spawn(0, job(1))]
    assert core.handle(TurnEnded(0.0)) == [SendResults((done(job(0), failed_spawn()),))]
    assert core.running == {0: job(1)}


def test_a_failed_spawn_in_a_batch_of_starts() -> None:
    core, actions = engine(2, run(0), run(1), run(2), run(3))
    assert actions == [Spawn(0, job(0)), Spawn(1, job(1))]
    assert core.handle(SpawnFailed(0, failed_spawn(), 0.0)) == [Spawn(0, job(2))]
    assert core.handle(SpawnFailed(0, failed_spawn(7), 0.0)) == [Spawn(0, job(3))]
    assert core.handle(TurnEnded(0.0)) == [
        SendResults((done(job(0), failed_spawn()), done(job(2), failed_spawn(7)))),
    ]


def test_a_failed_spawn_gives_its_share_and_timeout_back() -> None:
    gpus = Resource('GPUs', ('0', '1'), 1, ('CUDA_VISIBLE_DEVICES',))
    core, actions = engine(2, run(0), run(1), run(2), resources=(gpus,), timeout=5.0)
    assert actions[0] == Spawn(0, job(0), {'CUDA_VISIBLE_DEVICES': '0'})
    assert core.handle(SpawnFailed(1, failed_spawn(), 0.1)) == [Spawn(1, job(2), {'CUDA_VISIBLE_DEVICES': '1'})]
    exit_task(core, 0, now=0.2)
    core.handle(SpawnFailed(1, failed_spawn(), 0.3))
    core.handle(TurnEnded(0.3))
    assert core.next_deadline() == 2.0  # no timeout left for either slot
    assert core.running == {}


def test_a_failed_start_task_lets_the_next_one_start_at_the_next_turn() -> None:
    core, actions = engine(1, run(0), start=(start_spec(10), start_spec(11)))
    assert actions == [Spawn(PER_ENGINE_SLOT, start_job(10))]
    assert core.handle(SpawnFailed(PER_ENGINE_SLOT, failed_spawn(), 0.0)) == []
    assert core.stage is EngineStage.STARTING
    assert tick(core, 0.01) == [
        Spawn(PER_ENGINE_SLOT, start_job(11)),
        SendResults((done(start_job(10), failed_spawn()),)),
    ]


def test_a_failed_last_start_task_lets_the_tasks_start_in_the_same_turn() -> None:
    core, _ = engine(1, run(0), start=(start_spec(10),))
    assert core.handle(SpawnFailed(PER_ENGINE_SLOT, failed_spawn(), 0.0)) == [Spawn(0, job(0))]
    assert core.stage is EngineStage.RUNNING


def test_a_failed_last_stop_task_ends_the_engine_in_the_same_turn() -> None:
    core, _ = engine(1, Drain(), stop=(stop_spec(20), stop_spec(21)))
    assert core.handle(SpawnFailed(PER_ENGINE_SLOT, failed_spawn(), 0.0)) == []  # STOP 21 waits for the next turn
    assert tick(core, 0.1) == [Spawn(PER_ENGINE_SLOT, stop_job(21)), SendResults((done(stop_job(20), failed_spawn()),))]
    assert core.handle(SpawnFailed(PER_ENGINE_SLOT, failed_spawn(), 0.1)) == []
    assert core.stage is EngineStage.DONE
    assert leave(core) == [SendGoodbye((done(stop_job(21), failed_spawn()),), 'finished')]


def test_every_spawn_failing_while_draining_goes_on_to_the_stop_tasks() -> None:
    core, actions = engine(2, run(0), run(1), Drain(), stop=(stop_spec(20),))
    assert actions == [Spawn(0, job(0)), Spawn(1, job(1))]
    assert core.handle(SpawnFailed(0, failed_spawn(), 0.0)) == []
    assert core.handle(SpawnFailed(1, failed_spawn(), 0.0)) == [Spawn(PER_ENGINE_SLOT, stop_job(20))]
    assert core.stage is EngineStage.STOPPING
