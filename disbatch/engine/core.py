"""The engine core: an engine's whole decision logic, as a pure state machine.

`EngineCore.handle(event) -> list[Action]` (the vocabulary is in `core_events.py`). It owns the engine's stages, the
queue of tasks the driver sent, the slots and their shares of the node's GPUs and -E lists (`shares.py`), the
per-task timeouts and their TERM → KILL_GRACE_SECONDS → KILL escalation, the abort (TERM, KILL after the grace, KILL
again every ABORT_KILL_AGAIN_SECONDS), a result's timed-out and interrupted flags, result batching, and the
heartbeat and driver-silence timers. `next_deadline()` says when the shell's wait must end. Time arrives inside
events; nothing here reads a clock, a socket or a process, so tests feed events and compare action lists.

    STARTING ──(PERENGINE START tasks done)──▶ RUNNING ──(Drain, slots idle)──▶ STOPPING ──(STOP tasks done)──▶ DONE
        └──────────────(Abort, signal, driver gone)──────────▶ ABORTING ──(every task reaped)──────────────────▶ DONE

(A driver gone, by stdin's end or its silence, is DONE at once: its tasks get SIGKILL and nothing is reported.)

Results go back in batches: at the end of the turn that produced them (`TurnEnded`), or, while the driver has
queued more short tasks here than results are waiting, after at most REPORT_DELAY_SECONDS, so the driver hears of
about half the queue in one message and answers with the next tasks in one message.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import replace
from signal import SIGHUP, SIGINT, SIGKILL, SIGTERM
from types import MappingProxyType

from disbatch.engine.core_events import (
    PER_ENGINE_SLOT,
    Action,
    DriverGone,
    Event,
    Job,
    Joined,
    KillLeftovers,
    Leaving,
    Log,
    Received,
    SendGoodbye,
    SendHeartbeat,
    SendResults,
    SignalGroup,
    Signalled,
    SignalLeftovers,
    Spawn,
    SpawnFailed,
    TaskExited,
    Tick,
    TurnEnded,
)
from disbatch.engine.shares import Resource, SlotShares
from disbatch.protocol.messages import (
    HEARTBEAT_SECONDS,
    SILENCE_SECONDS,
    Abort,
    Drain,
    Heartbeat,
    Leftover,
    Message,
    TaskAttempt,
    TaskDone,
)
from disbatch.results.record import Outcome

KILL_GRACE_SECONDS = 1.0  # between a TERM (a timeout, an abort) and the KILL that follows it
ABORT_KILL_AGAIN_SECONDS = 5.0  # an aborting engine sends SIGKILL again this often while a task is not reaped
# A result held back because the slots still have queued work (see `_on_turn_ended`) goes out after this long.
REPORT_DELAY_SECONDS = 0.05
# A task that died of a stop signal the engine did not send (a batch system ending the job signals every process of
# it: `scancel`, `qdel`) is reported this much later, so that the engine's own copy of that signal, arriving in the
# same instant, can still make it what it is: interrupted, which a plain `-r` runs again, not failed.
STOP_SIGNAL_HOLD_SECONDS = 0.5
STOP_SIGNAL_RETURN_CODES = frozenset(-signum.value for signum in (SIGTERM, SIGINT, SIGHUP))


class _TimedOut(enum.Enum):
    TIMED_OUT = 'timed out'


TIMED_OUT = _TimedOut.TIMED_OUT  # a slot's task was stopped for running too long (its group got SIGKILL)


class EngineStage(enum.Enum):
    STARTING = 'starting'
    RUNNING = 'running'
    STOPPING = 'stopping'
    ABORTING = 'aborting'
    DONE = 'done'


class EngineCore:
    """One engine's state. `slots`: how many tasks run at once; `now`: the clock when the engine started."""

    def __init__(self, slots: int, resources: tuple[Resource, ...] = (), now: float = 0.0) -> None:
        self.stage = EngineStage.STARTING
        self.driver_gone = False  # by stdin's end or its silence: nothing more is sent
        self._queue: deque[Job] = deque()
        self._per_engine: deque[Job] = deque()
        self._stop_jobs: list[Job] = []
        self._free_slots = list(range(slots - 1, -1, -1))  # the lowest is taken first, a freed one next
        self._shares = SlotShares(resources) if resources else None  # None: nothing to share out
        self._no_shares: Mapping[str, str] = MappingProxyType({})
        self._running: dict[int, Job] = {}  # slot -> job, in the order they started
        self._task_timeout = 0.0
        self._timeouts: dict[int, float | _TimedOut] = {}  # slot -> when its task is to be stopped (--timeout)
        self._terminated: set[int] = set()  # slots whose task was sent SIGTERM for running too long
        self._interrupted: set[int] = set()  # slots whose task was stopped because the run is stopping (_abort)
        self._abort_deadline: float | None = None
        self._next_heartbeat = now + HEARTBEAT_SECONDS
        self._last_heard = now
        self._draining = False
        self._outbox: list[TaskDone | Leftover] = []  # results (and leftovers' news) not yet sent
        self._held: list[tuple[float, Job, Outcome]] = []  # deaths by a stop signal, until their hold ends
        self._outbox_deadline = 0.0
        self._goodbye = 'finished'

    def handle(self, event: Event) -> list[Action]:
        actions: list[Action] = []
        match event:
            case Joined():
                self._on_joined(event, actions)
            case Received():
                self._on_received(event, actions)
            case TaskExited():
                self._on_task_exited(event, actions)
            case SpawnFailed():
                self._on_spawn_failed(event, actions)
            case Signalled():
                self._on_signalled(event, actions)
            case DriverGone():
                self._on_driver_gone(event, actions)
            case Tick():
                self._on_tick(event, actions)
            case TurnEnded():
                self._on_turn_ended(event, actions)
            case Leaving():
                self._on_leaving(event, actions)
        return actions

    def next_deadline(self) -> float:
        """The earliest time a `Tick` or `TurnEnded` has something to do (without new events)."""
        deadline = min(self._next_heartbeat, self._last_heard + SILENCE_SECONDS)
        if self._outbox and self._outbox_deadline < deadline:
            deadline = self._outbox_deadline
        if self._abort_deadline is not None and self._abort_deadline < deadline:
            deadline = self._abort_deadline
        if self._held and self._held[0][0] < deadline:
            deadline = self._held[0][0]
        for timeout in self._timeouts.values():
            if isinstance(timeout, float) and timeout < deadline:
                deadline = timeout
        return deadline

    @property
    def running(self) -> dict[int, Job]:
        """Slot → the job it runs (a copy)."""
        return dict(self._running)

    @property
    def queued(self) -> int:
        return len(self._queue)

    # ------------------------------------------------------------ events

    def _on_joined(self, event: Joined, actions: list[Action]) -> None:
        welcome = event.welcome
        self._per_engine.extend(Job(i, line, -1, command, 'START') for i, line, command in welcome.start_tasks)
        self._stop_jobs = [Job(i, line, -1, command, 'STOP') for i, line, command in welcome.stop_tasks]
        self._task_timeout = welcome.timeout
        self._take(event.messages, event.now, actions)
        self._step(event.now, actions)

    def _on_received(self, event: Received, actions: list[Action]) -> None:
        self._last_heard = event.now
        self._take(event.messages, event.now, actions)

    def _take(self, messages: Sequence[Message | ValueError], now: float, actions: list[Action]) -> None:
        for message in messages:
            if isinstance(message, TaskAttempt):
                if self.stage is EngineStage.STARTING or self.stage is EngineStage.RUNNING:
                    self._queue.append(
                        Job(
                            message.task_id,
                            message.line_number,
                            message.repeat_index,
                            message.command,
                            attempt=message.attempt,
                        )
                    )
            elif isinstance(message, Drain):
                self._draining = True
            elif isinstance(message, Abort):
                self._abort(f'driver: {message.reason}', now, actions)
            elif isinstance(message, ValueError):
                actions.append(Log(logging.WARNING, f'dropped a malformed message from the driver: {message}'))
            elif not isinstance(message, Heartbeat):
                actions.append(Log(logging.WARNING, f'unexpected {type(message).__name__} from the driver'))

    def _on_task_exited(self, event: TaskExited, actions: list[Action]) -> None:
        slot = event.slot
        job = self._running.pop(slot)
        self._timeouts.pop(slot, None)
        timed_out = slot in self._terminated
        self._terminated.discard(slot)
        outcome = event.outcome
        if timed_out and outcome.return_code == 0:
            # It caught SIGTERM and exited 0, but it did not finish in time: record the signal that stopped it.
            outcome = replace(outcome, return_code=-SIGTERM.value)
        # Stopped by the abort: interrupted, unless it exited 0 (it finished, or says it did) or had timed out.
        interrupted = slot in self._interrupted and not timed_out and outcome.return_code != 0
        self._interrupted.discard(slot)
        if not (timed_out or interrupted) and outcome.return_code in STOP_SIGNAL_RETURN_CODES:
            self._held.append((event.now + STOP_SIGNAL_HOLD_SECONDS, job, outcome))
        else:
            self._report(job, outcome, event.now, timed_out, interrupted)
        if event.leftovers:
            self._outbox.append(Leftover(job.task_id, job.phase, list(event.leftovers)))
        self._free(slot)

    def _on_spawn_failed(self, event: SpawnFailed, actions: list[Action]) -> None:
        """The start of `_step` that failed is undone, and the step goes on from there, as if it had been told at
        once: the freed slot can take the next queued task now; a failed per-engine task's successor waits for the
        next turn (one per-engine start per stage and turn)."""
        job = self._running.pop(event.slot)
        self._timeouts.pop(event.slot, None)
        self._report(job, event.outcome, event.now)
        self._free(event.slot)
        self._step(event.now, actions, per_engine_tried=self.stage if event.slot == PER_ENGINE_SLOT else None)

    def _on_signalled(self, event: Signalled, actions: list[Action]) -> None:
        self._abort('engine received a signal', event.now, actions)

    def _on_driver_gone(self, event: DriverGone, actions: list[Action]) -> None:
        self._driver_lost(actions)

    def _on_tick(self, event: Tick, actions: list[Action]) -> None:
        now = event.now
        while self._held and self._held[0][0] <= now:  # no stop signal came: the task's own death, as it was
            _, job, outcome = self._held.pop(0)
            self._report(job, outcome, now)
        if now >= self._next_heartbeat:
            actions.append(SendHeartbeat())
            self._next_heartbeat = now + HEARTBEAT_SECONDS
        if now - self._last_heard > SILENCE_SECONDS and self.stage is not EngineStage.DONE:
            actions.append(Log(logging.ERROR, f'nothing heard from the driver for {now - self._last_heard:.0f} s'))
            self._driver_lost(actions)
        if self._abort_deadline is not None and now >= self._abort_deadline:
            actions.extend(SignalGroup(slot, SIGKILL) for slot in self._running)
            actions.append(SignalLeftovers(SIGKILL))
            self._abort_deadline = now + ABORT_KILL_AGAIN_SECONDS
        if self._timeouts:
            self._stop_overdue_tasks(now, actions)
        self._step(now, actions)

    def _on_turn_ended(self, event: TurnEnded, actions: list[Action]) -> None:
        """Send the results gathered so far, in one batch.

        At once, unless the driver has queued short tasks here and more of that queue is left than results are
        waiting: then the slots have work for a while yet, and the driver hears of the first half of the queue in
        one message instead of a message a task (it answers with the next tasks in one message too).
        """
        if not self._outbox:
            return
        holding = self.stage is EngineStage.RUNNING and not self._draining and len(self._outbox) < len(self._queue)
        if holding and event.now < self._outbox_deadline:
            return
        actions.append(SendResults(tuple(self._outbox)))
        self._outbox.clear()

    def _on_leaving(self, event: Leaving, actions: list[Action]) -> None:
        for when, job, outcome in self._held:
            self._report(job, outcome, when)
        self._held.clear()
        batch = tuple(self._outbox)
        self._outbox.clear()
        if self.driver_gone:
            return
        if event.clean:
            actions.append(SendGoodbye(batch, self._goodbye))
        elif batch:
            actions.append(SendResults(batch))

    # ------------------------------------------------------------ stopping

    def _stop_overdue_tasks(self, now: float, actions: list[Action]) -> None:
        """--timeout: SIGTERM to the task's process group when its time is up, SIGKILL after KILL_GRACE_SECONDS."""
        for slot, deadline in list(self._timeouts.items()):
            if deadline is TIMED_OUT or now < deadline:
                continue
            if slot in self._terminated:
                actions.append(SignalGroup(slot, SIGKILL))
                self._timeouts[slot] = TIMED_OUT
            else:
                job = self._running[slot]
                actions.append(
                    Log(logging.INFO, f'task {job.task_id} ran past {self._task_timeout:.0f} s: stopping it')
                )
                actions.append(SignalGroup(slot, SIGTERM))
                self._terminated.add(slot)
                self._timeouts[slot] = now + KILL_GRACE_SECONDS

    def _abort(self, reason: str, now: float, actions: list[Action]) -> None:
        if self.stage is EngineStage.ABORTING or self.stage is EngineStage.DONE:
            return
        actions.append(Log(logging.INFO, f'aborting: {reason}'))
        self.stage = EngineStage.ABORTING
        self._goodbye = reason
        self._queue.clear()
        self._per_engine.clear()
        self._interrupted.update(self._running)
        for _, job, outcome in self._held:  # the stop signal that killed them was the run's end reaching them first
            self._report(job, outcome, now, interrupted=True)
        self._held.clear()
        actions.extend(SignalGroup(slot, SIGTERM) for slot in self._running)
        actions.append(SignalLeftovers(SIGTERM))
        self._abort_deadline = now + KILL_GRACE_SECONDS

    def _driver_lost(self, actions: list[Action]) -> None:
        actions.append(Log(logging.ERROR, 'the driver has exited; stopping every task'))
        actions.extend(SignalGroup(slot, SIGKILL) for slot in self._running)
        actions.append(KillLeftovers())
        self.stage = EngineStage.DONE
        self.driver_gone = True

    # ------------------------------------------------------------ progress

    def _step(self, now: float, actions: list[Action], per_engine_tried: EngineStage | None = None) -> None:
        """Start whatever can start now, and move through the engine's stages.

        `per_engine_tried`: the stage whose per-engine start this turn failed (`_on_spawn_failed`), not tried again.
        """
        if self.stage is EngineStage.STARTING:
            if per_engine_tried is not EngineStage.STARTING:
                self._start_per_engine(now, actions)
            if not self._per_engine and PER_ENGINE_SLOT not in self._running:
                self.stage = EngineStage.RUNNING
        if self.stage is EngineStage.RUNNING:
            while self._queue and self._free_slots:
                self._start(self._free_slots.pop(), self._queue.popleft(), now, actions)
            if self._draining and not self._queue and not self._running:
                self.stage = EngineStage.STOPPING
                self._per_engine.extend(self._stop_jobs)
        if self.stage is EngineStage.STOPPING:
            if per_engine_tried is not EngineStage.STOPPING:
                self._start_per_engine(now, actions)
            if not self._per_engine and not self._running:
                self.stage = EngineStage.DONE
        if self.stage is EngineStage.ABORTING and not self._running:
            self.stage = EngineStage.DONE

    def _start_per_engine(self, now: float, actions: list[Action]) -> None:
        if self._per_engine and PER_ENGINE_SLOT not in self._running:
            self._start(PER_ENGINE_SLOT, self._per_engine.popleft(), now, actions)

    def _start(self, slot: int, job: Job, now: float, actions: list[Action]) -> None:
        # A task gets its own share of the GPUs and -E lists; a per-engine task runs alone and sees all of them.
        if self._shares is None:
            shares = self._no_shares
        else:
            shares = self._shares.everything() if slot == PER_ENGINE_SLOT else self._shares.take(slot)
        self._running[slot] = job
        if self._task_timeout:
            self._timeouts[slot] = now + self._task_timeout
        actions.append(Spawn(slot, job, shares))

    def _free(self, slot: int) -> None:
        if slot != PER_ENGINE_SLOT:
            if self._shares is not None:
                self._shares.give_back(slot)
            self._free_slots.append(slot)

    def _report(
        self, job: Job, outcome: Outcome, now: float, timed_out: bool = False, interrupted: bool = False
    ) -> None:
        if not self._outbox:
            self._outbox_deadline = now + REPORT_DELAY_SECONDS
        self._outbox.append(
            TaskDone(job.task_id, job.phase, outcome, timed_out, interrupted, job.attempt if not job.phase else 0)
        )


def task_environment(job: Job, slot: int) -> dict[str, str]:
    """The per-task DISBATCH_* variables (reference §3); `_ZP` forms are printf `%06d`."""
    return {
        'DISBATCH_CYLINDER_RANK': str(slot),
        'DISBATCH_REPEAT_INDEX': str(job.repeat_index),
        'DISBATCH_REPEAT_INDEX_ZP': f'{job.repeat_index:06d}',
        'DISBATCH_STREAM_INDEX': str(job.line_number),
        'DISBATCH_STREAM_INDEX_ZP': f'{job.line_number:06d}',
        'DISBATCH_TASKID': str(job.task_id),
        'DISBATCH_TASKID_ZP': f'{job.task_id:06d}',
        'DISBATCH_ATTEMPT': str(job.attempt),
    }
