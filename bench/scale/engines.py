"""Simulated engines: many engines in one process, on the real wire, running no process.

`python -m bench.scale.engines --engines K --slots S --delay SECONDS --out FILE`, with the run's credentials and
the driver's address in the environment as `<stem>_dbUtil.sh` exports them (DISBATCH_RUN_SECRET, DISBATCH_RUN_KEY,
DISBATCH_DRIVER_ADDRESS): what a context process added to a live run reads.

Each engine is what `disbatch.engine` is, less the processes: its own DEALER socket with its own CURVE key pair
(`PeerLink`), the real codec, and the real pure engine core (`EngineCore`: hello and welcome, the queue ahead of
the slots, result batches, heartbeats, drain and goodbye). Only `Spawn` is simulated: the task "exits" `--delay`
seconds later with return code 0 (`TaskExited`). One epoll loop serves every engine of the process; a turn feeds
each engine that had news the same events, in the same order, as the real engine's turn (`engine/engine.py`).

Measured, and written to `--out` as JSON when every engine has left: when each engine was welcomed (wall clock),
and every wait from a slot freeing to its next task starting (seconds).
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import select
import time
from dataclasses import dataclass, field

import zmq

from disbatch.engine.core import EngineCore, EngineStage
from disbatch.engine.core_events import (
    Action,
    Joined,
    Leaving,
    Received,
    SendGoodbye,
    SendHeartbeat,
    SendResults,
    SignalGroup,
    Spawn,
    TaskExited,
    Tick,
    TurnEnded,
)
from disbatch.protocol.messages import PROTOCOL_VERSION, Abort, Goodbye, Heartbeat, Hello, Welcome, this_software
from disbatch.protocol.transport import Credentials, PeerLink
from disbatch.results.record import Outcome, ResourceUsage

NO_USAGE = ResourceUsage(0, 0.0, 0.0)
FAKE_PID = 1  # no process ran; the status file shows this pid
# The most simulated task exits one turn handles: with more short tasks than this process can simulate, a turn still
# ends soon, so no engine waits long for its Welcome or its heartbeat (a real engine has a node of its own).
EXITS_PER_TURN = 2000


@dataclass(slots=True)
class SimulatedEngine:
    name: str
    link: PeerLink
    core: EngineCore
    welcomed: float | None = None  # time.time() of its Welcome
    freed: dict[int, float] = field(default_factory=dict)  # slot -> time.monotonic() it freed at
    started: dict[int, float] = field(default_factory=dict)  # slot -> time.time() its task started
    deadline: float = 0.0  # the core's next deadline as last pushed on the timer heap
    done: bool = False
    sent: bool = False  # it sent something this turn


class Simulation:
    def __init__(self, count: int, first: int, slots: int, delay: float, address: str, credentials: Credentials):
        self.delay = delay
        self.slots = slots
        self.credentials = credentials
        self.zmq = zmq.Context()
        self.zmq.setsockopt(zmq.MAX_SOCKETS, count + 16)
        self.epoll = select.epoll()
        self.engines: list[SimulatedEngine] = []
        self.by_fd: dict[int, int] = {}  # ZeroMQ's fd of its socket -> engine index
        self.finishing: list[tuple[float, int, int, int]] = []  # (monotonic, order, engine index, slot)
        self.timers: list[tuple[float, int]] = []  # (the core's deadline, engine index)
        self.waits: list[float] = []  # slot freed -> its next task started, seconds
        self._order = 0
        now = time.monotonic()
        for index in range(first, first + count):
            link = PeerLink(self.zmq, address, credentials)
            engine = SimulatedEngine(f'sim{index}', link, EngineCore(slots, (), now))
            self.by_fd[link.fd] = len(self.engines)
            self.engines.append(engine)
            self.epoll.register(link.fd, select.EPOLLIN)
        self.left = count

    def run(self) -> None:
        secret = self.credentials.secret
        for engine in self.engines:  # as `EngineLoop._join`: a Hello, then wait for the Welcome
            engine.link.send(
                Hello(secret, PROTOCOL_VERSION, this_software(), engine.name, os.getpid(), self.slots, 1, 'SIM', '')
            )
        check = set(range(len(self.engines)))  # sockets to look at: ZeroMQ's fd is edge-triggered
        while self.left:
            timeout = 0.0 if check else self._timeout()
            check.update(self.by_fd[fd] for fd, _ in self.epoll.poll(timeout))
            turn = time.monotonic()
            exits: dict[int, list[int]] = {}  # engine index -> its slots whose task is over, in order
            for _ in range(EXITS_PER_TURN):  # the rest wait for the next turn: every engine's messages are read
                if not self.finishing or self.finishing[0][0] > turn:  # and heartbeats sent in time
                    break
                _, _, index, slot = heapq.heappop(self.finishing)
                exits.setdefault(index, []).append(slot)
            due = set()
            while self.timers and self.timers[0][0] <= turn:
                deadline, index = heapq.heappop(self.timers)
                if self.engines[index].deadline == deadline:
                    due.add(index)
            looked_at, check = check, set()
            # Each engine has its own turn, as a real one on its own node: its exits, its messages, then Tick and
            # TurnEnded (which sends its results at once, before the next engine's turn).
            for index in [*exits, *(looked_at - exits.keys()), *(due - looked_at - exits.keys())]:
                engine = self.engines[index]
                if engine.done:
                    continue
                now = time.monotonic()
                for slot in exits.get(index, ()):
                    self._exited(index, slot, now)
                news = index in exits or index in due
                if index in looked_at and engine.link.readable():
                    self._receive(index, now)
                    news = True
                if news:
                    self._end_turn(index, now, check)

    def measurements(self) -> dict[str, object]:
        return {'welcomed': [engine.welcomed for engine in self.engines], 'waits': self.waits}

    def close(self) -> None:
        self.epoll.close()
        self.zmq.term()

    # ------------------------------------------------------------ a turn

    def _receive(self, index: int, now: float) -> None:
        engine = self.engines[index]
        while engine.link.readable():
            messages = engine.link.receive()
            if engine.welcomed is None:
                welcome, *more = messages
                if isinstance(welcome, Abort) or not isinstance(welcome, Welcome):
                    raise SystemExit(f'{engine.name}: the driver answered {welcome!r}')
                engine.welcomed = time.time()
                self._carry_out(index, engine.core.handle(Joined(welcome, more, now)), now)
            else:
                self._carry_out(index, engine.core.handle(Received(messages, now)), now)

    def _exited(self, index: int, slot: int, now: float) -> None:
        engine = self.engines[index]
        start = engine.started.pop(slot)
        finish = time.time()
        outcome = Outcome(FAKE_PID, 0, start, finish, finish - start, usage=NO_USAGE)
        engine.freed[slot] = now
        self._carry_out(index, engine.core.handle(TaskExited(slot, outcome, (), now)), now)

    def _end_turn(self, index: int, now: float, check: set[int]) -> None:
        engine = self.engines[index]
        if engine.done or engine.welcomed is None:
            return
        self._carry_out(index, engine.core.handle(Tick(now)), now)
        self._carry_out(index, engine.core.handle(TurnEnded(now)), now)
        if engine.core.stage is EngineStage.DONE:
            self._carry_out(index, engine.core.handle(Leaving(clean=True)), now)
            engine.done = True
            self.epoll.unregister(engine.link.fd)
            engine.link.close(linger_ms=2000)
            self.left -= 1
            return
        if engine.sent:  # a send may have taken ZeroMQ's fd edge of a message that came: look at its socket again
            engine.sent = False
            check.add(index)
        deadline = engine.core.next_deadline()
        if deadline != engine.deadline:
            engine.deadline = deadline
            heapq.heappush(self.timers, (deadline, index))

    def _carry_out(self, index: int, actions: list[Action], now: float) -> None:
        engine = self.engines[index]
        for action in actions:
            if isinstance(action, Spawn):
                freed = engine.freed.pop(action.slot, None)
                if freed is not None:
                    self.waits.append(now - freed)
                engine.started[action.slot] = time.time()
                self._order += 1
                heapq.heappush(self.finishing, (now + self.delay, self._order, index, action.slot))
            elif isinstance(action, SendResults):
                engine.link.send(*action.batch)
                engine.sent = True
            elif isinstance(action, SendHeartbeat):
                engine.link.send(Heartbeat())
                engine.sent = True
            elif isinstance(action, SendGoodbye):
                engine.link.send(*action.batch, Goodbye(action.reason))
            elif isinstance(action, SignalGroup):  # an abort: the task "dies" of the signal at once
                self._order += 1
                heapq.heappush(self.finishing, (now, self._order, index, action.slot))

    def _timeout(self) -> float:
        deadlines = [self.finishing[0][0]] if self.finishing else []
        if self.timers:
            deadlines.append(self.timers[0][0])
        return max(0.0, min(deadlines, default=time.monotonic() + 1.0) - time.monotonic())


def main() -> int:
    parser = argparse.ArgumentParser(prog='python -m bench.scale.engines', description=__doc__.split('\n')[0])
    parser.add_argument('--engines', type=int, required=True)
    parser.add_argument('--first', type=int, default=0, help='the number of the first engine (its name: simN)')
    parser.add_argument('--slots', type=int, default=16)
    parser.add_argument('--delay', type=float, default=0.0, help='seconds a task "runs"')
    parser.add_argument('--out', required=True, help='where the measurements go (JSON)')
    arguments = parser.parse_args()
    credentials = Credentials(os.environ.pop('DISBATCH_RUN_SECRET', ''), os.environ.pop('DISBATCH_RUN_KEY', ''))
    address = os.environ['DISBATCH_DRIVER_ADDRESS']
    simulation = Simulation(arguments.engines, arguments.first, arguments.slots, arguments.delay, address, credentials)
    try:
        simulation.run()
    finally:
        with open(arguments.out, 'w', encoding='utf-8') as handle:
            json.dump(simulation.measurements(), handle)
        simulation.close()
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
