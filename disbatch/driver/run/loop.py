"""The driver's I/O shell: sockets, pidfds and signals in; scheduler events out; scheduler actions carried out.

One thread, one `zmq.Poller` over the engine endpoint, the contexts' engine pidfds, a signal wake-up pipe and, for a
run a `DisBatcher` started, its owner's pidfd.
Nothing here decides anything: every decision is `Scheduler.handle`. The loop only translates.

The status lines of a turn are written together at its end (`_write_records`), before the observers hear of those
tasks, the snapshot counts them or the run ends: a task is never reported done before its line is in the file.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from collections.abc import Callable

import zmq

from disbatch.contexts.base import Context
from disbatch.driver.core import events as ev
from disbatch.driver.core.scheduler import RunState, Scheduler
from disbatch.driver.observers.journal import Journal
from disbatch.driver.observers.publisher import Publisher, RunObserver
from disbatch.driver.observers.snapshot_builder import EngineFacts
from disbatch.driver.run.admission import Admission
from disbatch.driver.run.peers import ContextPeers, EnginePeer, EnginePeers, Outbox, leftover_line
from disbatch.driver.run.settings import DriverSettings
from disbatch.driver.run.signals import OWNER_GONE_EXIT_CODE, owner_watch, received, signal_pipe
from disbatch.driver.stream.feeder import Feeder
from disbatch.driver.stream.source import NOT_YET
from disbatch.errors import DisbatchError, OutputLostError
from disbatch.kvsstcp.outside import KVSStore
from disbatch.protocol import codec
from disbatch.protocol.messages import (
    HEARTBEAT_SECONDS,
    LOST_TASKS_END_SECONDS,
    SILENCE_SECONDS,
    Abort,
    ContextGoodbye,
    ContextHello,
    Drain,
    Goodbye,
    Heartbeat,
    Hello,
    Leftover,
    Message,
    TaskAttempt,
    TaskDone,
    killing_signal,
)
from disbatch.protocol.transport import DriverEndpoint
from disbatch.results.record import StatusRecord
from disbatch.results.status_file import StatusFileWriter

log = logging.getLogger('disbatch.driver')

# After Ctrl-C / SIGTERM / --fail-fast, engines get this long to stop their tasks and report before they are killed.
STOP_GRACE_SECONDS = 1.5
# With no engine left (and no context that could start one), the run waits this long before it gives up on them.
NO_ENGINE_GRACE_SECONDS = 3.0
# The longest one poll waits (zmq_poll takes a C int of milliseconds; a far walltime end must not overflow it).
MAX_POLL_MS = 60_000
# The most batches of messages one turn of the loop reads (see _receive).
RECEIVE_PER_TURN = 256
# How often the Slurm job's end is read again, for a time limit changed with `scontrol update`.
END_CHECK_SECONDS = 60.0


class DriverLoop:
    def __init__(
        self,
        settings: DriverSettings,
        scheduler: Scheduler,
        feeder: Feeder,
        contexts: list[Context],
        endpoint: DriverEndpoint,
        status: StatusFileWriter,
        kvs: KVSStore,
        observers: list[RunObserver],
        report: Callable[[str], None],
        journal: Journal | None = None,
        before_close: Callable[[int], tuple[int, str | None]] | None = None,
    ) -> None:
        self.settings = settings
        self.journal = journal  # --json: sees every event and the actions it led to
        self.scheduler = scheduler
        self.feeder = feeder
        self.contexts = contexts
        self.status = status
        self.kvs = kvs
        self.report = report
        # At the end, before the summary: (the exit code, maybe changed; the follow-up job, --resubmit)
        self.before_close = before_close
        self.publisher = Publisher(
            settings.task_environment['DISBATCH_JOBID'], kvs, observers, self._facts, settings.expected_total
        )
        self.endpoint = endpoint
        self._engines = EnginePeers()
        self._context_peers = ContextPeers(context.label for context in contexts)  # added through dbUtil.sh
        self._outbox = Outbox()  # what goes to each peer at the end of this turn, as one batch
        self._recorded: list[StatusRecord] = []  # final records of this turn: told to observers once in the file
        self._barrier_keys: list[ev.PutBarrierKey] = []  # this turn's barrier keys: put once their lines are in it
        self._admission = Admission(settings, self._outbox, report)  # the secret and the protocol version of hellos
        self._next_heartbeat = time.monotonic() + HEARTBEAT_SECONDS
        self._next_silence_check = time.monotonic() + SILENCE_SECONDS  # no engine can be silent too long before
        self._next_end_check = time.monotonic() + END_CHECK_SECONDS
        self._exit_code: int | None = None
        self._stop_deadline: float | None = None
        self._alone_since: float | None = None  # time.monotonic() since when no engine or context is left
        self._status_lost: str | None = None  # why the status file cannot be written, once it cannot
        self._status_lost_told = False
        self._starting_is_news = True  # say so when an engine had not joined by the end
        self._reported_late: set[str] = set()  # launch ids of engines reported as not joined in time
        self._said_none_started = False  # that no engine could start, said once

    def run(self) -> int:
        """Run to the end; returns the exit code the scheduler decided."""
        owner_pid = self.settings.owner_pid
        with signal_pipe() as wake_read, contextlib.ExitStack() as stack:
            owner = stack.enter_context(owner_watch(owner_pid)) if owner_pid is not None else None
            return self._run(wake_read, owner)

    def _run(self, wake_read: int, owner: int | None) -> int:
        poller = zmq.Poller()
        try:
            poller.register(self.endpoint.socket, zmq.POLLIN)
            poller.register(wake_read, zmq.POLLIN)
            if owner is not None:
                poller.register(owner, zmq.POLLIN)
            poller.register(self.publisher.fd, zmq.POLLIN)
            for fd in self.feeder.source.fds:
                poller.register(fd, zmq.POLLIN)
            watched: dict[int, Context] = {}
            self._tick_clock()
            self._feed()
            self._write_records()
            while self._exit_code is None:
                self._watch_contexts(poller, watched)  # engines start a window at a time: new launchers to watch
                ready_now = poller.poll(self._poll_timeout())
                self._tick_clock()
                for ready, _ in ready_now:
                    if ready is self.endpoint.socket:
                        self._receive()
                    elif ready == wake_read:
                        self._on_signals(wake_read)
                    elif ready == owner:
                        poller.unregister(owner)
                        self._on_owner_gone()
                    elif ready == self.publisher.fd:
                        for event in self.publisher.commands():
                            self._dispatch(event)
                    elif isinstance(ready, int) and ready in watched:
                        self._on_engine_process(watched.pop(ready), ready, poller)
                    elif isinstance(ready, int) and ready in self.feeder.source.fds:
                        self._on_source(ready, poller)
                self._feed()
                self._run_timers()
                self._check_deadline()
                self._check_contexts()
                self._write_records()
                self._check_status_file()
                self._outbox.flush(self.endpoint)
                self.publisher.tick(self.scheduler)
            follow_up = None
            if self.before_close is not None:
                self._exit_code, follow_up = self.before_close(self._exit_code)
            self.publisher.close(self.scheduler, self._exit_code, follow_up)
            return self._exit_code
        finally:
            for context in self.contexts:
                for launch_id, host, log_tail in context.still_running():
                    if launch_id not in self._engines.joined | self._reported_late and self._starting_is_news:
                        self.report(
                            f'the engine on {host} had not joined when the run ended'
                            + (f': {log_tail}' if log_tail else ' (it was still starting)')
                        )
                context.terminate()

    # ------------------------------------------------------------ inputs

    def _receive(self, everything: bool = False) -> None:
        """Read what peers sent, at most RECEIVE_PER_TURN batches: under a flood of results the turn still ends soon,
        so the tasks they freed go out and their lines are written while the rest waits for the next turn. With
        `everything`, all there is (an engine's launcher has exited: what it said before it went must be read)."""
        read = 0
        while everything or read < RECEIVE_PER_TURN:
            read += 1
            if not self.endpoint.socket.poll(0, zmq.POLLIN):
                return
            peer, payloads = self.endpoint.receive()
            if not payloads:
                log.warning('dropped an empty message from peer %s', peer.hex())
                continue
            engine = self._engines.by_peer(peer)
            if engine is not None:
                engine.last_heard = time.monotonic()
            for payload in payloads:
                try:
                    message = codec.decode(payload)
                except codec.CodecError as error:
                    if (joined := self._engines.by_peer(peer)) is not None:  # its result is lost, so is the engine
                        log.error('engine %d on %s sent a malformed message: %s', joined.rank, joined.hostname, error)
                        self._take_for_lost(joined, 'sent a message this driver cannot read (from another disbatch?)')
                        break
                    self._admission.on_unreadable(peer, payload, error)
                    continue
                self._on_message(peer, message)

    def _on_message(self, peer: bytes, message: Message) -> None:
        engine = self._engines.by_peer(peer)
        if isinstance(message, Hello):
            self._on_hello(peer, message)
        elif isinstance(message, ContextHello):
            self._on_context_hello(peer, message)
        elif isinstance(message, ContextGoodbye) and (label := self._context_peers.leave(peer)) is not None:
            log.info('context %s left', label)
        elif engine is None:
            log.warning('dropped %s from a peer that is not an engine of the run (%s)', message.TAG, peer.hex())
            if peer in self._engines.given_up:
                self._outbox.put(peer, Abort('this engine was given up for lost; its tasks went elsewhere'))
        elif isinstance(message, TaskDone):
            self._on_task_done(engine, message)
        elif isinstance(message, Heartbeat):
            pass
        elif isinstance(message, Leftover):
            log.warning('%s', leftover_line(engine, message, self.settings.kill_leftovers))
        elif isinstance(message, Goodbye):
            log.info('engine %d on %s left: %s', engine.rank, engine.hostname, message.reason)
            if self._engines.lost(engine) is not None:
                self._gone(engine)  # it ended its tasks before it said goodbye
            else:
                self._engines.forget(engine)
                self._dispatch(ev.EngineGone(engine.rank, lost=False, now=time.time()))
        else:
            log.warning('unexpected %s from engine %d', message.TAG, engine.rank)

    def _on_hello(self, peer: bytes, hello: Hello) -> None:
        if self._admission.refuses_engine(peer, hello):
            return
        known = self._engines.by_peer(peer)
        if known is not None:
            log.warning('engine %d said hello twice', known.rank)
            return
        engine = self._engines.join(peer, hello, time.monotonic())
        for context in self.contexts:
            context.engine_joined(hello.launch_id)  # its place in the launch window goes to the next engine
        self._outbox.put(peer, self.settings.welcome(engine.rank, self.feeder.start_tasks, self.feeder.stop_tasks))
        log.info('engine %d joined from %s (pid %d, %d slots)', engine.rank, hello.hostname, hello.pid, hello.slots)
        self._dispatch(ev.EngineJoined(engine.rank, hello.hostname, hello.slots, hello.context))

    def _on_context_hello(self, peer: bytes, hello: ContextHello) -> None:
        if self._admission.refuses_context(peer, hello):
            return
        label = self._context_peers.join(peer, hello)
        self._outbox.put(peer, self.settings.context_welcome(label))
        log.info(
            'context %s joined (%s%s)',
            label,
            hello.kind,
            f', task limit {hello.task_limit}' if hello.task_limit else '',
        )
        self._dispatch(ev.ContextJoined(label, hello.task_limit))

    def _on_task_done(self, engine: EnginePeer, done: TaskDone) -> None:
        self._dispatch(
            ev.TaskFinished(engine.rank, done.task_id, done.outcome, done.timed_out, done.interrupted, done.phase)
        )
        if self._engines.lost(engine) is not None and not self.scheduler.holds_tasks(engine.rank):
            self._gone(engine)  # a lost engine that still reached us has reported every task it held

    def _on_signals(self, wake_read: int) -> None:
        for name, code in received(wake_read):
            self._begin_stop()
            self._dispatch(ev.StopRequested(f'{name} received: stopping every running task', code))

    def _on_owner_gone(self) -> None:
        self._begin_stop()
        reason = (
            f'the program that started this run (pid {self.settings.owner_pid}) has ended: stopping every running task'
        )
        self._dispatch(ev.StopRequested(reason, OWNER_GONE_EXIT_CODE))

    def _on_engine_process(self, context: Context, fd: int, poller: zmq.Poller) -> None:
        poller.unregister(fd)
        exited = context.on_ready(fd, time.time())
        if exited is None:
            return
        engine = self._engines.by_launch(exited.launch_id)
        if engine is None:
            if exited.launch_id in self._engines.joined or exited.launch_id in self._admission.refused:
                return  # it said goodbye first, or was refused (and that said)
            if exited.exit_code != 0 or self.scheduler.more_tasks:
                self.report(
                    f'the engine on {exited.host} exited with {exited.exit_code} before joining the run: '
                    f'{exited.log_tail or "(no output)"}'
                )
            return
        self._receive(everything=True)  # what it said before it went: results, its goodbye
        if self._engines.by_launch(exited.launch_id) is None:
            return
        signum = killing_signal(exited.exit_code)
        if signum is not None:  # its supervisor ended what it left
            name = signal.Signals(signum).name if signum else 'a real-time signal'
            log.info('engine %d on %s was killed by %s; its tasks are ended', engine.rank, engine.hostname, name)
            self._gone(engine)
        elif self._engines.lost(engine) is None:
            log.info('engine %d process exited with %d', engine.rank, exited.exit_code)
            if self.scheduler.holds_tasks(engine.rank):
                self._take_for_lost(engine, f'ended with {exited.exit_code} and no goodbye', end_launcher=False)
            else:
                self._gone(engine)

    # ------------------------------------------------------------ progress

    def _feed(self) -> None:
        """Give the scheduler as many items as it wants, one at a time (a live source may have none for now)."""
        while self._exit_code is None and self.scheduler.wants_item():
            try:
                event = self.feeder.next_event(time.time())
            except DisbatchError as error:
                self._begin_stop()
                self._dispatch(ev.StopRequested(str(error), exit_code=1))
                return
            if event is NOT_YET:
                return
            self._dispatch(event if event is not None else ev.StreamEnded(time.time()))

    def _on_source(self, fd: int, poller: zmq.Poller) -> None:
        try:
            self.feeder.source.on_ready(fd)
        except DisbatchError as error:  # the --taskcommand producer failed: nothing more is handed out
            self._starting_is_news = False  # engines still starting are no news then: the error is the message
            self._begin_stop()
            self._dispatch(ev.StopRequested(str(error), exit_code=1))
        if fd not in self.feeder.source.fds:
            poller.unregister(fd)  # the producer of --taskcommand has exited

    def _dispatch(self, event: ev.Event) -> None:
        actions = self.scheduler.handle(event)
        if self.journal is not None:
            self.journal.on_step(event, actions)
        for action in actions:
            self._carry_out(action)
        self.publisher.changed()

    def _carry_out(self, action: ev.Action) -> None:
        if isinstance(action, ev.SendTask):
            task = action.task
            engine = self._engines[action.engine_rank]
            self._outbox.put(
                engine.peer,
                TaskAttempt(task.task_id, task.line_number, task.repeat_index, task.command, action.attempt),
            )
        elif isinstance(action, ev.WriteRecord):
            if self._status_lost is None and not action.carried:  # carried: on file since the run began
                self.status.add(action.record)
            if action.final:
                self._recorded.append(action.record)  # observers see each task's result, not every attempt
        elif isinstance(action, ev.DrainEngine):
            self._outbox.put(self._engines[action.engine_rank].peer, Drain())
        elif isinstance(action, ev.AbortEngine):
            self._begin_stop()
            self._outbox.put(self._engines[action.engine_rank].peer, Abort(action.reason))
        elif isinstance(action, ev.PutBarrierKey):
            self._barrier_keys.append(action)  # a barrier is done for the world once its line is in the file
        elif isinstance(action, ev.Report):
            self.report(action.message)
        elif isinstance(action, ev.LogWarning):
            log.warning('%s', action.message)
        elif isinstance(action, ev.Finish):
            self._exit_code = action.exit_code

    def _write_records(self) -> None:
        """The turn's status lines go in the file in one write; then the observers hear of the tasks they record,
        and the barrier keys of the barriers they record are put.

        Lines that cannot be written (a full disk) stop the run: nothing after them is recorded (a resume runs those
        tasks again), and the reason is the run's last word (`_check_status_file`)."""
        recorded, self._recorded = self._recorded, []
        barrier_keys, self._barrier_keys = self._barrier_keys, []
        if self._status_lost is not None:
            return
        try:
            self.status.flush()
        except OutputLostError as error:
            self._status_lost = str(error)
            return
        for record in recorded:
            self.publisher.record(record)
        for barrier in barrier_keys:
            self.kvs.put(barrier.key.encode(), str(barrier.task_id).encode())

    def _check_status_file(self) -> None:
        if self._status_lost is None or self._status_lost_told:
            return
        self._status_lost_told = True
        if self.scheduler.state in (RunState.STOPPING, RunState.FINISHED):
            self.report(self._status_lost)  # already stopping: the scheduler says nothing more, so it is said here
        self._begin_stop()
        self._dispatch(ev.StopRequested(self._status_lost, exit_code=1))
        if self._exit_code is not None:  # the run had just ended: it ends failed
            self._exit_code = max(self._exit_code, 1)

    def _begin_stop(self) -> None:
        if self._stop_deadline is None:
            self._stop_deadline = time.monotonic() + STOP_GRACE_SECONDS

    def _poll_timeout(self) -> int | None:
        """Milliseconds until the next timer: the stop deadline, or a context's (node retirement)."""
        waits = [
            context_deadline - time.time()
            for context in self.contexts
            if (context_deadline := context.deadline()) is not None
        ]
        if self._stop_deadline is not None:
            waits.append(self._stop_deadline - time.monotonic())
        if self._engines:
            waits.append(self._next_heartbeat - time.monotonic())
            waits.append(self._next_silence_check - time.monotonic())
        lost_over = self._engines.next_lost_over()
        if lost_over is not None:
            waits.append(lost_over - time.monotonic())
        if self._alone_since is not None and time.monotonic() < self._alone_since + NO_ENGINE_GRACE_SECONDS:
            waits.append(self._alone_since + NO_ENGINE_GRACE_SECONDS - time.monotonic())
        if self.scheduler.drain is not None and self._stop_deadline is None:
            waits.append(self.scheduler.drain.allocation.stop_at - time.time())
        publish = self.publisher.deadline()
        if publish is not None:
            waits.append(publish - time.monotonic())
        if not waits:
            return None
        return max(0, min(int(min(waits) * 1000) + 1, MAX_POLL_MS))

    def _tick_clock(self) -> None:
        """A run with an allocation end hears the time once a turn (the walltime decisions go by it), and the end
        itself now and then."""
        if self.scheduler.drain is None or self._exit_code is not None:
            return
        read_end = self.settings.allocation_end
        if read_end is not None and time.monotonic() >= self._next_end_check:
            self._next_end_check = time.monotonic() + END_CHECK_SECONDS
            end = read_end()
            if end is not None and abs(end - self.scheduler.drain.allocation.end) >= 1:
                self._dispatch(ev.AllocationEndChanged(end))
        self._dispatch(ev.ClockTick(time.time()))

    def _run_timers(self) -> None:
        now = time.time()
        for context in self.contexts:
            deadline = context.deadline()
            if deadline is not None and deadline <= now:
                context.on_timer(now)
                self._report_late(context, now)
        monotonic = time.monotonic()
        if monotonic >= self._next_silence_check:
            self._check_silence(monotonic)
        for lost in self._engines.lost_over(monotonic):
            log.info('the tasks of engine %d, lost, have ended by now: they run again', lost.engine.rank)
            self._gone(lost.engine)
        if monotonic >= self._next_heartbeat:
            self._next_heartbeat = monotonic + HEARTBEAT_SECONDS
            for engine in self._engines:
                self._outbox.put(engine.peer, Heartbeat())

    def _report_late(self, context: Context, now: float) -> None:
        """One line for each engine still starting past its join deadline (the others carry on meanwhile)."""
        for late in context.overdue(now):
            self._reported_late.add(late.launch_id)
            self.report(
                f'the engine on {late.host} has not joined {late.seconds:.0f} s after its start: '
                + (late.log_tail or 'no word from it yet')
            )

    def _check_silence(self, monotonic: float) -> None:
        """Engines not heard from for SILENCE_SECONDS are given up. One look at every engine, when the one heard
        from longest ago could be silent that long (a message only moves an engine's time later), not every turn."""
        silent, earliest = self._engines.heard_before(monotonic - SILENCE_SECONDS)
        if silent and self.endpoint.socket.poll(0, zmq.POLLIN):  # what waits unread may be from them (a flood)
            self._receive(everything=True)
            silent, earliest = self._engines.heard_before(monotonic - SILENCE_SECONDS)
        for engine in silent:
            self._take_for_lost(engine, f'has not been heard from for {monotonic - engine.last_heard:.0f} s')
        self._next_silence_check = (monotonic if earliest is None else earliest) + SILENCE_SECONDS

    def _take_for_lost(self, engine: EnginePeer, why: str, end_launcher: bool = True) -> None:
        """Take a joined engine for lost: it is told (an Abort, in case it still listens) and gets no new task; its
        launcher is ended (`end_launcher`).

        Its tasks are never run again while a copy may still run: at once if it holds none; else once it says they
        are over (its results, its goodbye), or its launcher's exit does (its supervisor's report of a killed
        engine), or LOST_TASKS_END_SECONDS have passed, by which time the engine has ended them itself (it does when
        the driver is silent or sends an Abort).
        """
        if self._engines.lost(engine) is not None:
            return
        holds = self.scheduler.holds_tasks(engine.rank)
        then = f'; its tasks run again once surely ended ({LOST_TASKS_END_SECONDS:.0f} s at most)' if holds else ''
        self.report(f'engine {engine.rank} on {engine.hostname} {why}: taken for lost{then}')
        if end_launcher:
            for context in self.contexts:
                context.abandon(engine.launch_id)
        self._outbox.put(engine.peer, Abort(f'the driver took this engine for lost: it {why}'))
        if not holds:
            self._gone(engine)
            return
        self._engines.lose(engine, time.time(), time.monotonic() + LOST_TASKS_END_SECONDS)
        self._dispatch(ev.EngineLost(engine.rank))

    def _gone(self, engine: EnginePeer) -> None:
        """A joined engine is gone, and no task of it runs any more: what it still held is recorded lost (at the
        time it was taken for lost) and run again."""
        lost = self._engines.lost(engine)
        self._engines.give_up(engine)
        self._dispatch(ev.EngineGone(engine.rank, lost=True, now=lost.lost_at if lost is not None else time.time()))

    def _check_deadline(self) -> None:
        """Engines that have not stopped by the deadline are killed, and their running tasks recorded as lost."""
        if self._stop_deadline is None or time.monotonic() < self._stop_deadline or self._exit_code is not None:
            return
        for context in self.contexts:
            context.terminate()
        for engine in self._engines:
            log.warning('engine %d did not stop in time; killed', engine.rank)
            self._engines.forget(engine)
            self._dispatch(ev.EngineGone(engine.rank, lost=True, now=time.time()))
        for lost in self._engines.every_lost():
            log.warning('engine %d, lost, did not say its tasks ended; the run stops without waiting', lost.engine.rank)
            self._gone(lost.engine)
        self._dispatch(ev.NoMoreEngines(time.time()))

    def _check_contexts(self) -> None:
        """No engine and no context left: after a short grace (a context being added may say hello), tell the
        scheduler, which waits for more (engines left on purpose, -S) or ends the run."""
        alone = not self._engines and not self._context_peers and all(c.finished for c in self.contexts)
        if self._exit_code is not None or not alone:
            self._alone_since = None
        elif self._alone_since is None:
            self._alone_since = time.monotonic()
        elif time.monotonic() - self._alone_since >= NO_ENGINE_GRACE_SECONDS:
            if not self._engines.joined and self.contexts and self.scheduler.more_tasks and not self._said_none_started:
                self._said_none_started = True
                self.report('no engine could start: every engine the run launched ended before joining it (why: above)')
            self._dispatch(ev.NoMoreEngines(time.time()))

    def _watch_contexts(self, poller: zmq.Poller, watched: dict[int, Context]) -> None:
        for context in self.contexts:
            for fd in context.new_fds():
                watched[fd] = context
                poller.register(fd, zmq.POLLIN)

    def _facts(self) -> dict[int, EngineFacts]:
        return self._engines.facts(time.monotonic())
