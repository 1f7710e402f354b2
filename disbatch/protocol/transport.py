"""ZeroMQ sockets for the driver's links: the driver binds a ROUTER; each engine and each context process connects
a DEALER.

This module owns socket options, encryption and framing: one ZeroMQ message carries one or more protocol messages,
a frame each (ROUTER adds the peer identity in front), so a batch of results or assignments costs one send; what a
frame means is the codec's business. Frames larger than `codec.MAX_FRAME_BYTES` are refused by libzmq before they
reach us.

Every link is encrypted with CURVE: the driver makes a key pair per run and hands the public half, with the run's
secret, only to the run's own parts (on an engine's stdin, in the user-only dbUtil script). Without the public key
a connection cannot complete its handshake; with it but without the secret, the driver refuses the Hello.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import zmq

from disbatch.protocol import codec
from disbatch.protocol.messages import Message


@dataclass(frozen=True, slots=True)
class Credentials:
    """What proves a process belongs to a run."""

    secret: str  # said in Hello; also the KVS token
    server_key: str  # the public CURVE key of the driver's endpoint (Z85)
    server_secret_key: str = ''  # only the driver has it

    @classmethod
    def create(cls) -> Credentials:
        import secrets  # only the driver makes credentials; engines start faster without it

        public, private = zmq.curve_keypair()
        return cls(secrets.token_urlsafe(32), public.decode('ascii'), private.decode('ascii'))


# Plain ints: pyzmq's enum members make every `&` a slow Python call, and this is asked every turn of a loop.
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)


# Connections the driver's endpoint queues before it accepts them (the kernel caps it at net.core.somaxconn). ZeroMQ's
# 100 made a thousand engines joining at once lose their SYNs and retry after 1, 3, 7 s...: joins took half a minute.
CONNECTION_BACKLOG = 4096


def _configure(socket: zmq.Socket[bytes]) -> None:
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.MAXMSGSIZE, codec.MAX_FRAME_BYTES)
    socket.setsockopt(zmq.SNDHWM, 0)
    socket.setsockopt(zmq.RCVHWM, 0)


class DriverEndpoint:
    """The driver's end: one ROUTER socket (with a ZeroMQ context of its own) that every engine of the run talks to."""

    def __init__(self, host: str, credentials: Credentials, port: int = 0) -> None:
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.socket: zmq.Socket[bytes] = self._context.socket(zmq.ROUTER)
        _configure(self.socket)
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.socket.setsockopt(zmq.BACKLOG, CONNECTION_BACKLOG)
        self.socket.setsockopt(zmq.CURVE_SERVER, 1)
        self.socket.setsockopt(zmq.CURVE_SECRETKEY, credentials.server_secret_key.encode('ascii'))
        if port:
            self.socket.bind(f'tcp://{host}:{port}')
        else:
            self.socket.bind(f'tcp://{host}:*')
        endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.address = endpoint.removeprefix('tcp://')

    def __enter__(self) -> DriverEndpoint:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def receive(self) -> tuple[bytes, list[bytes]]:
        """One `(peer, payloads)`; payloads are not decoded here so the caller can log garbage with its peer."""
        frames = self.socket.recv_multipart(zmq.NOBLOCK)
        return frames[0], frames[1:]

    def send(self, peer: bytes, *messages: Message) -> bool:
        """Send messages to one engine, in one batch; False when the engine is no longer connected."""
        try:
            self.socket.send_multipart([peer, *(codec.encode(message) for message in messages)], zmq.NOBLOCK)
        except zmq.ZMQError:
            return False
        return True

    def close(self) -> None:
        self.socket.close(linger=0)
        self._context.term()


class PeerLink:
    """The end of an engine or a context process: one DEALER socket connected to the driver."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], address: str, credentials: Credentials) -> None:
        self.socket: zmq.Socket[bytes] = context.socket(zmq.DEALER)
        _configure(self.socket)
        public, private = zmq.curve_keypair()
        self.socket.setsockopt(zmq.CURVE_SERVERKEY, credentials.server_key.encode('ascii'))
        self.socket.setsockopt(zmq.CURVE_PUBLICKEY, public)
        self.socket.setsockopt(zmq.CURVE_SECRETKEY, private)
        self.socket.connect(f'tcp://{address}')

    def readable(self) -> bool:
        """Whether a batch is waiting."""
        return bool(cast(int, self.socket.getsockopt(_EVENTS)) & _POLLIN)

    @property
    def fd(self) -> int:
        """A file descriptor that becomes readable when the socket may have changed (then ask `readable`)."""
        return cast(int, self.socket.getsockopt(zmq.FD))

    def receive(self) -> list[Message | codec.CodecError]:
        """Decode the waiting batch, in order; a frame that is not a message comes back as its CodecError."""
        return [_decode(frame) for frame in self.socket.recv_multipart(zmq.NOBLOCK)]

    def send(self, *messages: Message) -> None:
        """Send messages to the driver, in one batch."""
        self.socket.send_multipart([codec.encode(message) for message in messages])

    def close(self, linger_ms: int = 0) -> None:
        self.socket.close(linger=linger_ms)


def _decode(frame: bytes) -> Message | codec.CodecError:
    try:
        return codec.decode(frame)
    except codec.CodecError as error:
        return error
