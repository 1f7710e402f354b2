"""Where the run listens: as narrowly as its engines allow.

Engines on this machine only: 127.0.0.1. Engines on other hosts: the local address this machine uses to reach
them (found by routing, not by resolving our own hostname, which often maps to a loopback address), or every
interface when different hosts are reached through different addresses. `--use-address` overrides all of it.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from disbatch.contexts.base import is_this_machine
from disbatch.errors import ContextError

LOOPBACK = '127.0.0.1'
ANY = '0.0.0.0'


def route_source(host: str) -> str:
    """The local IPv4 address whose packets reach `host` (no packet is sent)."""
    try:
        address = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_DGRAM)[0][4][0]
    except socket.gaierror as error:
        raise ContextError(f'host {host}: cannot resolve its name ({error.strerror})') from None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((address, 9))
        except OSError as error:
            raise ContextError(f'host {host} ({address}): no route to it ({error.strerror})') from None
        return str(probe.getsockname()[0])


def listen_address(hosts: list[str], warn: Callable[[str], None]) -> str:
    """The address to bind for engines on `hosts`; a host that cannot be reached is left to fail on its own
    (its engine will not start, and the others carry on), with a warning."""
    sources = set()
    for host in hosts:
        if is_this_machine(host):
            continue
        try:
            sources.add(route_source(host))
        except ContextError as error:
            warn(str(error))
    if not sources:
        return LOOPBACK
    if len(sources) == 1:
        return sources.pop()
    return ANY


def advertised(bind_host: str) -> str:
    """The host name engines and tasks are told to connect to."""
    return socket.gethostname() if bind_host == ANY else bind_host
