"""ZeroMQ sockets for the driver's links: the driver binds a ROUTER; each engine and each context process connects
a DEALER.

This module owns socket options and framing (ROUTER frames are `[peer identity, payload]`); what the payload means
is the codec's business. Frames larger than `codec.MAX_FRAME_BYTES` are refused by libzmq before they reach us.
"""

from __future__ import annotations

import zmq

from disbatch.protocol import codec
from disbatch.protocol.messages import Message


def _configure(socket: zmq.Socket[bytes]) -> None:
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.MAXMSGSIZE, codec.MAX_FRAME_BYTES)
    socket.setsockopt(zmq.SNDHWM, 0)
    socket.setsockopt(zmq.RCVHWM, 0)


class DriverEndpoint:
    """The driver's end: one ROUTER socket that every engine of the run talks to."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], host: str, port: int = 0) -> None:
        self.socket: zmq.Socket[bytes] = context.socket(zmq.ROUTER)
        _configure(self.socket)
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        if port:
            self.socket.bind(f'tcp://{host}:{port}')
        else:
            self.socket.bind(f'tcp://{host}:*')
        endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.address = endpoint.removeprefix('tcp://')

    def receive(self) -> tuple[bytes, bytes]:
        """One `(peer, payload)`; the payload is not decoded here so the caller can log garbage with its peer."""
        frames = self.socket.recv_multipart(zmq.NOBLOCK)
        if len(frames) != 2:
            return frames[0], b''
        return frames[0], frames[1]

    def send(self, peer: bytes, message: Message) -> bool:
        """Send to one engine; False when the engine is no longer connected."""
        try:
            self.socket.send_multipart([peer, codec.encode(message)], zmq.NOBLOCK)
        except zmq.ZMQError:
            return False
        return True

    def close(self) -> None:
        self.socket.close(linger=0)


class PeerLink:
    """The end of an engine or a context process: one DEALER socket connected to the driver."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], address: str) -> None:
        self.socket: zmq.Socket[bytes] = context.socket(zmq.DEALER)
        _configure(self.socket)
        self.socket.connect(f'tcp://{address}')

    def receive(self) -> Message:
        """Decode one waiting message; raises codec.CodecError for a frame that is not one."""
        return codec.decode(self.socket.recv(zmq.NOBLOCK))

    def send(self, message: Message) -> None:
        self.socket.send(codec.encode(message))

    def close(self, linger_ms: int = 0) -> None:
        self.socket.close(linger=linger_ms)
