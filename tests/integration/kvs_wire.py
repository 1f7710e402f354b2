"""The kvsstcp wire protocol spelled out byte by byte, for tests that talk to a server on a raw socket (the way a
client written for disBatch 3.0 does): requests as bytes, replies as the bytes expected, and exact reads."""

from __future__ import annotations

import socket


def key(name: bytes) -> bytes:
    return b'%10d' % len(name) + name


def put(name: bytes, value: bytes, encoding: bytes = b'ASTR') -> bytes:
    return b'put_' + key(name) + encoding + b'%10d' % len(value) + value


def get(name: bytes) -> bytes:
    return b'get_' + key(name)


def view(name: bytes) -> bytes:
    return b'view' + key(name)


def reply(value: bytes, encoding: bytes = b'ASTR') -> bytes:
    return encoding + b'%10d' % len(value) + value


def receive(sock: socket.socket, size: int) -> bytes:
    data = b''
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f'connection closed after {data!r}'
        data += chunk
    return data


def receive_value(sock: socket.socket) -> bytes:
    """One `get_`/`view` reply, whole: encoding(4) + length(10) + bytes."""
    head = receive(sock, 14)
    return head + receive(sock, int(head[4:]))
