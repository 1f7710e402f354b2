"""The engine core at work: feed events, compare the exact list of actions it answers with.

Slots and the queue beyond them, result batches and the report delay, per-engine tasks, Drain, the heartbeat and
the driver's silence. Stopping tasks (timeouts, the abort, a lost driver, a failed spawn) is in test_core_stopping.
"""

from __future__ import annotations

import logging

import pytest

from disbatch.engine.core import (
    REPORT_DELAY_SECONDS,
    EngineCore,
    EngineStage,
    task_environment,
)
from disbatch.engine.core_events import (
    PER_ENGINE_SLOT,
    DriverGone,
    Joined,
    Leaving,
    Log,
    Received,
    SendGoodbye,
    SendHeartbeat,
    SendResults,
    Spawn,
    TaskExited,
    Tick,
    TurnEnded,
)
from disbatch.engine.shares import Resource
from disbatch.protocol.codec import CodecError
from disbatch.protocol.messages import HEARTBEAT_SECONDS, SILENCE_SECONDS, Drain, Heartbeat, Leftover, Welcome

from .core_support import (
    done,
    engine,
    exit_task,
    job,
    leave,
    outcome,
    receive,
    run,
    start_job,
    start_spec,
    stop_job,
    stop_spec,
    turn,
    welcome,
)

# ---------------------------------------------------------------- slots and the queue


def test_the_first_tasks_start_on_join_lowest_slot_first() -> None:
    core, actions = engine(2, run(0), run(1), run(2))
    assert actions == [Spawn(0, job(0)), Spawn(1, job(1))]
    assert core.stage is EngineStage.RUNNING
    assert core.queued == 1
    assert core.running == {0: job(0), 1: job(1)}


def test_tasks_received_start_at_the_tick_not_before() -> None:
    core, _ = engine(2)
    assert receive(core, run(0), run(1), now=0.5) == []
    assert core.running == {}
    assert core.handle(Tick(0.5)) == [Spawn(0, job(0)), Spawn(1, job(1))]


def test_a_task_beyond_the_slots_waits_for_one_to_free() -> None:
    core, _ = engine(1, run(0), run(1))
    assert turn(core, 0.1) == []  # the slot is busy: task 1 stays queued
    assert exit_task(core, 0, now=0.2) == []  # a task's end changes no slot before the tick
    assert core.handle(Tick(0.2)) == [Spawn(0, job(1))]
    assert core.queued == 0


def test_a_freed_slot_is_taken_again_first() -> None:
    core, _ = engine(3, run(0), run(1), run(2), run(3), run(4))
    exit_task(core, 1)
    exit_task(core, 0)
    assert core.handle(Tick(0.1)) == [Spawn(0, job(3)), Spawn(1, job(4))]


def test_the_queue_keeps_the_order_of_the_driver() -> None:
    core, _ = engine(1)
    receive(core, run(5), run(3))
    receive(core, run(4))
    order = []
    for step in range(3):
        (spawn,) = core.handle(Tick(0.1 * step))
        assert isinstance(spawn, Spawn)
        order.append(spawn.job.task_id)
        exit_task(core, 0)
    assert order == [5, 3, 4]


def test_attempts_pass_through_to_the_job_and_the_result() -> None:
    core, actions = engine(1, run(7, attempt=3))
    assert actions == [Spawn(0, job(7, attempt=3))]
    exit_task(core, 0, now=0.1)
    assert core.handle(TurnEnded(0.1)) == [SendResults((done(job(7, attempt=3)),))]


def test_task_environment() -> None:
    assert task_environment(job(41, attempt=2), 3) == {
        'DISBATCH_CYLINDER_RANK': '3',
        'DISBATCH_REPEAT_INDEX': '-1',
        'DISBATCH_REPEAT_INDEX_ZP': '-00001',
        'DISBATCH_STREAM_INDEX': '42',
        'DISBATCH_STREAM_INDEX_ZP': '000042',
        'DISBATCH_TASKID': '41',
        'DISBATCH_TASKID_ZP': '000041',
        'DISBATCH_ATTEMPT': '2',
    }


def test_each_task_gets_its_own_share_and_gives_it_back() -> None:
    gpus = Resource('GPUs', ('0', '1', '2', '3'), 2, ('CUDA_VISIBLE_DEVICES',))
    core, actions = engine(2, run(0), run(1), run(2), resources=(gpus,))
    assert actions == [
        Spawn(0, job(0), {'CUDA_VISIBLE_DEVICES': '0,1'}),
        Spawn(1, job(1), {'CUDA_VISIBLE_DEVICES': '2,3'}),
    ]
    exit_task(core, 0)
    assert core.handle(Tick(0.1)) == [Spawn(0, job(2), {'CUDA_VISIBLE_DEVICES': '0,1'})]


def test_a_per_engine_task_sees_every_share() -> None:
    gpus = Resource('GPUs', ('0', '1'), 1, ('CUDA_VISIBLE_DEVICES',))
    _, actions = engine(2, resources=(gpus,), start=(start_spec(9),))
    assert actions == [Spawn(PER_ENGINE_SLOT, start_job(9), {'CUDA_VISIBLE_DEVICES': '0,1'})]


# ---------------------------------------------------------------- results


def test_a_result_goes_at_the_end_of_its_turn_when_nothing_is_queued() -> None:
    core, _ = engine(2, run(0), run(1))
    exit_task(core, 1, outcome(3), now=0.1)
    assert core.handle(Tick(0.1)) == []
    assert core.handle(TurnEnded(0.1)) == [SendResults((done(job(1), outcome(3)),))]
    assert core.handle(TurnEnded(0.2)) == []  # sent once


def test_results_of_one_turn_go_in_one_batch_in_the_order_tasks_ended() -> None:
    core, _ = engine(2, run(0), run(1))
    exit_task(core, 1, now=0.1)
    exit_task(core, 0, outcome(1), now=0.1)
    assert turn(core, 0.1) == [SendResults((done(job(1)), done(job(0), outcome(1))))]


def test_results_are_held_while_more_is_queued_until_the_report_delay() -> None:
    core, _ = engine(1, *(run(i) for i in range(6)))  # 1 running, 5 queued
    exit_task(core, 0, now=1.0)
    assert turn(core, 1.0) == [Spawn(0, job(1))]  # 1 result waiting < 4 queued: held
    assert core.next_deadline() == pytest.approx(1.0 + REPORT_DELAY_SECONDS)
    exit_task(core, 0, now=1.03)
    assert turn(core, 1.03) == [Spawn(0, job(2))]  # 2 < 3: held; the delay runs from the first result
    assert turn(core, 1.0 + REPORT_DELAY_SECONDS) == [SendResults((done(job(0)), done(job(1))))]


def test_held_results_go_once_they_are_as_many_as_the_queue() -> None:
    core, _ = engine(1, *(run(i) for i in range(5)))  # 1 running, 4 queued
    exit_task(core, 0, now=1.0)
    assert turn(core, 1.0) == [Spawn(0, job(1))]  # 1 < 3
    exit_task(core, 0, now=1.01)
    # 2 results, and after this tick's start 2 queued: not fewer, so they go at once.
    assert turn(core, 1.01) == [Spawn(0, job(2)), SendResults((done(job(0)), done(job(1))))]


def test_results_are_not_held_once_the_engine_drains() -> None:
    core, _ = engine(1, *(run(i) for i in range(6)))
    receive(core, Drain(), now=0.5)
    exit_task(core, 0, now=1.0)
    assert turn(core, 1.0) == [Spawn(0, job(1)), SendResults((done(job(0)),))]


def test_what_a_task_left_running_is_told_after_its_result() -> None:
    core, _ = engine(1, run(0))
    core.handle(TaskExited(0, outcome(), (77, 78), 0.1))
    assert core.handle(TurnEnded(0.1)) == [SendResults((done(job(0)), Leftover(0, '', [77, 78])))]


# ---------------------------------------------------------------- per-engine tasks, Drain


def test_start_tasks_run_one_at_a_time_before_any_task() -> None:
    core, actions = engine(2, run(0), start=(start_spec(10), start_spec(11)))
    assert actions == [Spawn(PER_ENGINE_SLOT, start_job(10))]
    assert core.stage is EngineStage.STARTING
    exit_task(core, PER_ENGINE_SLOT, now=0.1)
    assert turn(core, 0.1) == [Spawn(PER_ENGINE_SLOT, start_job(11)), SendResults((done(start_job(10)),))]
    exit_task(core, PER_ENGINE_SLOT, now=0.2)
    assert turn(core, 0.2) == [Spawn(0, job(0)), SendResults((done(start_job(11)),))]
    assert core.stage is EngineStage.RUNNING


def test_a_per_engine_result_has_its_phase_and_attempt_0() -> None:
    core, _ = engine(1, start=(start_spec(10),))
    exit_task(core, PER_ENGINE_SLOT, outcome(5), now=0.1)
    (send,) = turn(core, 0.1)
    assert isinstance(send, SendResults)
    (result,) = send.batch
    assert (result, result.phase, result.attempt) == (done(start_job(10), outcome(5)), 'START', 0)


def test_drain_waits_for_running_and_queued_tasks_then_runs_the_stop_tasks() -> None:
    core, _ = engine(1, run(0), run(1), stop=(stop_spec(20), stop_spec(21)))
    receive(core, Drain(), now=0.1)
    assert turn(core, 0.1) == []
    exit_task(core, 0, now=0.2)
    assert turn(core, 0.2) == [Spawn(0, job(1)), SendResults((done(job(0)),))]
    exit_task(core, 0, now=0.3)
    assert turn(core, 0.3) == [Spawn(PER_ENGINE_SLOT, stop_job(20)), SendResults((done(job(1)),))]
    assert core.stage is EngineStage.STOPPING
    assert receive(core, run(2), now=0.35) == []  # a task sent while stopping is not run
    exit_task(core, PER_ENGINE_SLOT, now=0.4)
    assert turn(core, 0.4) == [Spawn(PER_ENGINE_SLOT, stop_job(21)), SendResults((done(stop_job(20)),))]
    exit_task(core, PER_ENGINE_SLOT, now=0.5)
    assert turn(core, 0.5) == [SendResults((done(stop_job(21)),))]
    assert core.stage is EngineStage.DONE
    assert leave(core) == [SendGoodbye((), 'finished')]


def test_drain_in_the_welcome_batch_without_stop_tasks_is_done_at_once() -> None:
    core, actions = engine(2, Drain())
    assert actions == []
    assert core.stage is EngineStage.DONE
    assert leave(core) == [SendGoodbye((), 'finished')]


def test_drain_while_starting_waits_for_the_start_tasks() -> None:
    core, _ = engine(1, Drain(), start=(start_spec(10),), stop=(stop_spec(20),))
    assert core.stage is EngineStage.STARTING
    exit_task(core, PER_ENGINE_SLOT, now=0.1)
    assert turn(core, 0.1) == [Spawn(PER_ENGINE_SLOT, stop_job(20)), SendResults((done(start_job(10)),))]


def test_leaving_sends_what_is_left_with_the_goodbye() -> None:
    core, _ = engine(1, run(0))
    exit_task(core, 0, now=0.1)
    assert core.handle(Leaving(clean=False)) == [SendResults((done(job(0)),))]
    assert core.handle(Leaving(clean=False)) == []
    assert leave(core) == [SendGoodbye((), 'finished')]


# ---------------------------------------------------------------- messages, heartbeat, silence


def test_heartbeats_go_every_heartbeat_seconds() -> None:
    core, _ = engine(1, now=10.0)
    assert core.next_deadline() == 10.0 + HEARTBEAT_SECONDS
    assert turn(core, 11.9) == []
    assert turn(core, 12.0) == [SendHeartbeat()]
    assert turn(core, 13.0) == []
    assert core.next_deadline() == 12.0 + HEARTBEAT_SECONDS
    assert turn(core, 14.5) == [SendHeartbeat()]


def test_a_silent_driver_is_taken_for_gone() -> None:
    core, _ = engine(2, run(0), now=0.0)
    receive(core, Heartbeat(), now=3.0)  # heard: the silence runs from here
    assert core.next_deadline() == 2.0
    turn(core, 2.0)
    turn(core, 4.0)
    turn(core, 6.0)
    turn(core, 8.0)
    turn(core, 10.0)
    assert core.next_deadline() == pytest.approx(3.0 + SILENCE_SECONDS)
    assert turn(core, 11.0) == []  # exactly SILENCE_SECONDS: not yet
    actions = turn(core, 11.5)
    assert actions == [
        Log(logging.ERROR, 'nothing heard from the driver for 8 s'),
        Log(logging.ERROR, 'the driver has exited; stopping every task'),
        *[a for a in actions if not isinstance(a, Log)],
    ]
    assert [type(a).__name__ for a in actions[2:]] == ['SignalGroup', 'KillLeftovers']
    assert core.stage is EngineStage.DONE and core.driver_gone


def test_the_welcome_batch_does_not_count_as_hearing_from_the_driver() -> None:
    core = EngineCore(1, (), 0.0)
    core.handle(Joined(welcome(), [Heartbeat()], 5.0))
    assert core.next_deadline() == HEARTBEAT_SECONDS
    # Silent from the engine's start (0.0), not from the welcome (5.0).
    assert Log(logging.ERROR, 'nothing heard from the driver for 9 s') in core.handle(Tick(9.0))
    assert core.driver_gone


def test_stdin_ending_means_the_driver_is_gone_and_nothing_more_is_sent() -> None:
    core, _ = engine(1, run(0))
    exit_task(core, 0, now=0.1)
    assert [type(a).__name__ for a in core.handle(DriverGone())] == ['Log', 'KillLeftovers']
    assert core.stage is EngineStage.DONE
    assert core.handle(Leaving(clean=True)) == []
    assert core.handle(Leaving(clean=False)) == []


def test_malformed_and_unexpected_messages_are_logged_and_dropped() -> None:
    core, _ = engine(1)
    bad = CodecError('not a JSON message: JSONDecodeError')
    actions = core.handle(Received([bad, Heartbeat(), Welcome(1, '/', {}, [], [], 0.0, False, ''), run(0)], 1.0))
    assert actions == [
        Log(logging.WARNING, 'dropped a malformed message from the driver: not a JSON message: JSONDecodeError'),
        Log(logging.WARNING, 'unexpected Welcome from the driver'),
    ]
    assert core.queued == 1
