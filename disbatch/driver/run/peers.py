"""The driver loop's peers: its engines as socket peers (`EnginePeer`), the context processes added through
`_dbUtil.sh` (with the run-unique labels they are given), and the `Outbox` of what they are sent each turn.

An `EnginePeer` is the loop's side of an engine (its ZeroMQ identity, its launch, its PID, when it was last
heard); the scheduler's side of the same engine is its `EngineLoad` (`driver/core/engines.py`). Both go by rank.

An engine taken for lost while its tasks may still run is `lost` here until they have certainly ended (see
`LOST_TASKS_END_SECONDS`): no longer watched for silence or sent heartbeats, but still found by rank, peer and
launch, so what it still says (results, its goodbye) and its launcher's exit are heard.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from disbatch.driver.observers.snapshot_builder import EngineFacts
from disbatch.protocol.messages import ContextHello, Hello, Leftover, Message
from disbatch.protocol.transport import DriverEndpoint


@dataclass(slots=True)
class EnginePeer:
    rank: int
    peer: bytes
    hostname: str
    launch_id: str
    pid: int
    last_heard: float  # time.monotonic() of its last message


@dataclass(frozen=True, slots=True)
class LostEngine:
    engine: EnginePeer
    lost_at: float  # time.time() when it was taken for lost: the finish its tasks' lost records give
    over_at: float  # time.monotonic() by which its tasks have certainly ended


def leftover_line(engine: EnginePeer, leftover: Leftover, kill_leftovers: bool) -> str:
    """The driver log's line for what a task of `engine` left running."""
    phase = f' ({leftover.phase})' if leftover.phase else ''
    when = '; ended now' if kill_leftovers and leftover.phase != 'START' else '; they are ended when the engine leaves'
    return (
        f'task {leftover.task_id}{phase} on engine {engine.rank} ({engine.hostname}) exited leaving '
        f'{len(leftover.pids)} process(es) running: pid {" ".join(map(str, leftover.pids))}{when}'
    )


class EnginePeers:
    """The engines in the run, by rank, by peer identity and by launch; and what is remembered of engines gone."""

    def __init__(self) -> None:
        self._by_rank: dict[int, EnginePeer] = {}
        self._by_peer: dict[bytes, EnginePeer] = {}
        self._by_launch: dict[str, EnginePeer] = {}
        self.joined: set[str] = set()  # launch ids of every engine that ever joined
        self.given_up: set[bytes] = set()  # peers of engines gone for lost: what they still send gets an Abort
        self._lost: dict[int, LostEngine] = {}  # by rank: taken for lost, its tasks may still run
        self._next_rank = 0

    def join(self, peer: bytes, hello: Hello, now: float) -> EnginePeer:
        """A new engine, with the next rank."""
        engine = EnginePeer(self._next_rank, peer, hello.hostname, hello.launch_id, hello.pid, now)
        self._next_rank += 1
        self._by_rank[engine.rank] = engine
        self._by_peer[peer] = engine
        if hello.launch_id:
            self._by_launch[hello.launch_id] = engine
            self.joined.add(hello.launch_id)
        return engine

    def __getitem__(self, rank: int) -> EnginePeer:
        if (lost := self._lost.get(rank)) is not None:
            return lost.engine
        return self._by_rank[rank]

    def __iter__(self) -> Iterator[EnginePeer]:
        """The engines in the run (not the lost ones)."""
        return iter(list(self._by_rank.values()))  # a copy: forgetting while iterating is fine

    def __bool__(self) -> bool:
        return bool(self._by_rank) or bool(self._lost)

    def by_peer(self, peer: bytes) -> EnginePeer | None:
        return self._by_peer.get(peer)

    def by_launch(self, launch_id: str) -> EnginePeer | None:
        return self._by_launch.get(launch_id)

    def forget(self, engine: EnginePeer) -> None:
        self._by_rank.pop(engine.rank, None)
        self._by_peer.pop(engine.peer, None)
        self._by_launch.pop(engine.launch_id, None)
        self._lost.pop(engine.rank, None)

    def give_up(self, engine: EnginePeer) -> None:
        """Forget an engine gone for lost; what its peer still sends is answered with an Abort."""
        self.given_up.add(engine.peer)
        self.forget(engine)

    def lose(self, engine: EnginePeer, lost_at: float, over_at: float) -> None:
        """`engine` is taken for lost; its tasks may run until `over_at` (time.monotonic())."""
        self._by_rank.pop(engine.rank, None)
        self._lost[engine.rank] = LostEngine(engine, lost_at, over_at)

    def lost(self, engine: EnginePeer) -> LostEngine | None:
        return self._lost.get(engine.rank)

    def lost_over(self, now: float) -> list[LostEngine]:
        """The lost engines whose tasks have certainly ended at `now` (time.monotonic())."""
        return [lost for lost in self._lost.values() if lost.over_at <= now]

    def next_lost_over(self) -> float | None:
        return min((lost.over_at for lost in self._lost.values()), default=None)

    def every_lost(self) -> list[LostEngine]:
        return list(self._lost.values())

    def heard_before(self, limit: float) -> tuple[list[EnginePeer], float | None]:
        """The engines last heard before `limit` (time.monotonic()), and when the one heard from longest ago among
        the others was last heard (None if there is none)."""
        silent = [engine for engine in self._by_rank.values() if engine.last_heard < limit]
        heard = [engine.last_heard for engine in self._by_rank.values() if engine.last_heard >= limit]
        return silent, min(heard, default=None)

    def facts(self, now: float) -> dict[int, EngineFacts]:
        """What the snapshot shows of each engine that only the loop knows, at `now` (time.monotonic())."""
        engines = [*self._by_rank.values(), *(lost.engine for lost in self._lost.values())]
        return {engine.rank: EngineFacts(engine.pid, now - engine.last_heard) for engine in engines}


class ContextPeers:
    """The context processes still in the run, and the label of every context the run has had."""

    def __init__(self, labels: Iterable[str]) -> None:
        self._by_peer: dict[bytes, str] = {}
        self._labels = set(labels)

    def __bool__(self) -> bool:
        return bool(self._by_peer)

    def join(self, peer: bytes, hello: ContextHello) -> str:
        """A new context process: its label, unique in the run (the one asked for, else `J<job>` or `SSH<n>`, with
        `.2`, `.3`, ... when taken)."""
        wanted = hello.label or (f'J{hello.job_id}' if hello.kind != 'SSH' and hello.job_id else '')
        if not wanted:
            number = 0
            while f'SSH{number}' in self._labels:
                number += 1
            wanted = f'SSH{number}'
        label, number = wanted, 1
        while label in self._labels:
            number += 1
            label = f'{wanted}.{number}'
        self._labels.add(label)
        self._by_peer[peer] = label
        return label

    def leave(self, peer: bytes) -> str | None:
        """The label of the context process at `peer`, which has left; None if it is not one."""
        return self._by_peer.pop(peer, None)


class Outbox:
    """What the loop sends its peers in one turn: queued, then one batch (one multi-frame message) per peer."""

    def __init__(self) -> None:
        self._queued: dict[bytes, list[Message]] = {}

    def put(self, peer: bytes, message: Message) -> None:
        self._queued.setdefault(peer, []).append(message)

    def flush(self, endpoint: DriverEndpoint) -> None:
        for peer, messages in self._queued.items():
            endpoint.send(peer, *messages)
        self._queued.clear()
