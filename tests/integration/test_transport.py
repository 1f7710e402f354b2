"""The transport over real ZeroMQ on loopback: batches go as one message, in order, both ways, encrypted."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import zmq

from disbatch.protocol import codec
from disbatch.protocol.messages import Drain, Goodbye, Heartbeat, TaskAttempt, TaskDone
from disbatch.protocol.transport import Credentials, DriverEndpoint, PeerLink
from disbatch.results.record import Outcome

WAIT_MS = 5000


def done(task_id: int) -> TaskDone:
    return TaskDone(task_id, '', Outcome(100 + task_id, 0, 1.0, 2.0, 1.0), False, False, 1)


@pytest.fixture
def ends() -> Iterator[tuple[DriverEndpoint, PeerLink]]:
    """A driver endpoint on loopback and one engine-side link connected to it with the run's credentials."""
    credentials = Credentials.create()
    with DriverEndpoint('127.0.0.1', credentials) as endpoint:
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        link = PeerLink(context, endpoint.address, Credentials(credentials.secret, credentials.server_key))
        try:
            yield endpoint, link
        finally:
            link.close()
            context.term()


@pytest.mark.timeout(30)
def test_a_batch_is_one_message_both_ways_and_keeps_its_order(ends: tuple[DriverEndpoint, PeerLink]) -> None:
    endpoint, link = ends
    link.send(done(1), done(2), Goodbye('finished'))
    assert endpoint.socket.poll(WAIT_MS)
    peer, payloads = endpoint.receive()
    assert [codec.decode(payload) for payload in payloads] == [done(1), done(2), Goodbye('finished')]
    assert not endpoint.socket.poll(100)  # nothing more: the three came as one message

    runs = [TaskAttempt(task_id, task_id + 1, -1, f'echo {task_id}', 1) for task_id in range(20)]
    assert endpoint.send(peer, *runs, Drain())
    assert link.socket.poll(WAIT_MS)
    assert link.readable()
    assert link.receive() == [*runs, Drain()]
    assert not link.readable()


@pytest.mark.timeout(30)
def test_a_malformed_frame_in_a_batch_spoils_only_itself(ends: tuple[DriverEndpoint, PeerLink]) -> None:
    endpoint, link = ends
    link.send(Heartbeat())
    assert endpoint.socket.poll(WAIT_MS)
    peer, _ = endpoint.receive()
    endpoint.socket.send_multipart([peer, codec.encode(Drain()), b'["run", "not a number"]', b'\xff'])
    assert link.socket.poll(WAIT_MS)
    first, second, third = link.receive()
    assert first == Drain()
    assert isinstance(second, codec.CodecError)
    assert isinstance(third, codec.CodecError)


def test_the_driver_endpoint_queues_a_join_storm_of_connections(ends: tuple[DriverEndpoint, PeerLink]) -> None:
    """Thousands of engines connect at once: ZeroMQ's listen backlog of 100 dropped their SYNs (retried after 1, 3,
    7 s: joins took half a minute with 4,000 engines, bench.scale)."""
    endpoint, _ = ends
    assert endpoint.socket.getsockopt(zmq.BACKLOG) >= 4096
