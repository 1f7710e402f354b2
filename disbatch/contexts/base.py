"""What every context does: find nodes, start one engine per node, and say when its engines are gone.

A context is owned by the driver's loop (or by a context process started through `<stem>_dbUtil.sh`). It hands the
loop file descriptors (pidfds of the engine launchers it started) to wait on, and turns their readiness into
`EngineExited` notes. Slot arithmetic and `-s` list parsing
are pure functions here, shared by every kind of context.
"""

from __future__ import annotations

import abc
import math
import re
import socket
from dataclasses import dataclass

from disbatch.contexts.launch import EngineExited, LateEngine
from disbatch.contract.launch_line import LaunchLine
from disbatch.errors import ContextError, UsageError

# A host name as DNS allows it (letters, digits, '-', and '_' as some clusters use; dot-separated labels of at most
# 63 characters, 253 in all), not beginning with '-' (ssh would read it as an option). It goes into file names and
# onto ssh and srun command lines, so nothing else gets through.
MAX_HOST_CHARACTERS = 253
_HOST_LABEL = re.compile(r'^[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})$')
# More cores than any node has: a count past this is a typing slip, not a machine (each is a slot of an engine).
MAX_CORE_COUNT = 100_000


@dataclass(frozen=True, slots=True)
class Node:
    host: str
    cores: int


def parse_node_list(items: list[str], origin: str = '-s') -> list[Node]:
    """`['h1:4,h2:2', 'h3:1']` → nodes, in order; duplicate hosts are summed. UsageError (exit 2) names a bad item
    and what is wrong with it."""
    cores: dict[str, int] = {}
    for item in ','.join(items).split(','):
        item = item.strip()
        if not item:
            continue
        host, sep, count = item.rpartition(':')
        if not sep or not host or ':' in host or not count.isdigit() or int(count) < 1:
            raise UsageError(f'{origin} {item!r}: expected HOST:CORECOUNT with a core count of at least 1')
        problem = host_problem(host)
        if problem:
            raise UsageError(f'{origin} {item!r}: {problem}')
        if int(count) > MAX_CORE_COUNT:
            raise UsageError(f'{origin} {item!r}: core count {count} is over {MAX_CORE_COUNT}')
        cores[host] = cores.get(host, 0) + int(count)
    if not cores:
        raise UsageError(f'{origin}: no HOST:CORECOUNT items given')
    return [Node(host, count) for host, count in cores.items()]


def host_problem(host: str) -> str:
    """What makes `host` unusable as a host name ('' if nothing): see MAX_HOST_CHARACTERS and _HOST_LABEL."""
    if len(host) > MAX_HOST_CHARACTERS:
        return f'a host name is at most {MAX_HOST_CHARACTERS} characters, this one has {len(host)}'
    if host.startswith('-'):
        return 'a host name cannot begin with "-"'
    if not all(_HOST_LABEL.match(label) for label in host.split('.')):
        return 'a host name is dot-separated labels of letters, digits, "-" and "_" (at most 63 each)'
    return ''


def duplicate_hosts(items: list[str]) -> list[str]:
    seen: set[str] = set()
    duplicates: list[str] = []
    for item in ','.join(items).split(','):
        host = item.strip().rpartition(':')[0]
        if host in seen and host not in duplicates:
            duplicates.append(host)
        seen.add(host)
    return duplicates


def slots_for(cores: int, cpus_per_task: float, tasks_per_node: int | None) -> tuple[int, int]:
    """(slots, DISBATCH_CORES_PER_TASK) for a node: `-t` if given, else floor(cores / -c); cores // slots."""
    slots = tasks_per_node if tasks_per_node is not None else math.floor(cores / cpus_per_task)
    if slots < 1:
        raise ContextError(f'{cores} core(s) with -c {cpus_per_task:g} leave no slot to run a task')
    return slots, cores // slots


def is_this_machine(host: str) -> bool:
    names = {'localhost', socket.gethostname(), socket.gethostname().split('.')[0], socket.getfqdn()}
    return host in names or host == '::1' or host.startswith('127.')


def is_loopback(address: str) -> bool:
    """Whether `address` (HOST:PORT) can be reached from this machine only."""
    host = address.rpartition(':')[0]
    return host in ('localhost', '[::1]') or host.startswith('127.')


class Context(abc.ABC):
    """A source of engines: finds nodes, starts one engine per node, notices when they exit, retires nodes."""

    label: str

    @abc.abstractmethod
    def launch(self, run: str, log_path: str) -> None:
        """Start the engines of `run` (its DISBATCH_JOBID, on their command line for `ps` to show), logging to
        `log_path` (with '{context}' and '{host}' where the context label and node name go). They start up while
        the driver binds its endpoint, and wait for `admit` to say where it is."""

    @abc.abstractmethod
    def admit(self, line: LaunchLine) -> None:
        """Tell the engines where the driver is and how to prove they belong to the run."""

    @abc.abstractmethod
    def new_fds(self) -> list[int]:
        """File descriptors of the engine processes started since the last call, each once: one becomes readable
        when its process exits. Engines start a window at a time, so more come after `launch` (from `on_ready`,
        `engine_joined` and `on_timer`): ask again after each."""

    @abc.abstractmethod
    def on_ready(self, fd: int, now: float) -> EngineExited | None:
        """Handle a readable fd from `watched_fds`."""

    @property
    @abc.abstractmethod
    def finished(self) -> bool:
        """True once every engine this context started has exited and it will start no more."""

    def still_running(self) -> list[tuple[str, str, str]]:
        """(launch id, host, last line of its log) of every engine launcher that has not exited."""
        return []

    def deadline(self) -> float | None:
        """When `on_timer` wants to be called next (time.time() clock), if ever."""
        return None

    def engine_joined(self, launch_id: str) -> None:  # noqa: B027 - contexts without launchers have nothing to free
        """The engine `launch_id` joined the run (it may be another context's: then nothing happens)."""

    def overdue(self, now: float) -> list[LateEngine]:
        """Each engine still starting past its join deadline, handed out once."""
        return []

    def abandon(self, launch_id: str) -> None:  # noqa: B027 - contexts without launchers have nothing to end
        """The engine `launch_id` was given up for lost (silent too long): end its launcher, so that its exit retires
        the node; a context that owns no such launcher does nothing."""

    def on_timer(self, now: float) -> None:  # noqa: B027 - most contexts have no timers
        """Called once `deadline` has passed."""

    @abc.abstractmethod
    def terminate(self) -> None:
        """Stop every engine process still running (the last resort of a stopping driver)."""
