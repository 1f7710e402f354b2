"""What the engine core hears (events) and what it asks for (actions): small frozen dataclasses, no behaviour.

The engine's I/O shell (`engine.py`) turns the driver socket, task pidfds, the signal pipe, stdin and the clock into
events, and carries actions out; `core.py` maps one to the other. Kept apart so both sides can read the vocabulary
without the state machine. Time arrives inside events (`now`, `time.monotonic()`); the core reads no clock.

A turn of the shell's loop is: the I/O events of that turn (`TaskExited`, `Received`, `Signalled`, `DriverGone`),
then `Tick` (timers, then start what can start), then `TurnEnded` (send the results that are due). A `Spawn` the
shell cannot carry out comes back at once as `SpawnFailed`, before the turn goes on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from disbatch.protocol.messages import Leftover, Message, TaskDone, Welcome
from disbatch.results.record import Outcome

PER_ENGINE_SLOT = -1  # the slot of a per-engine task (PERENGINE START/STOP): it runs alone, outside the N slots


@dataclass(frozen=True, slots=True)
class Job:
    """What a slot runs: a task, or a per-engine task (phase START/STOP, repeat index -1)."""

    task_id: int
    line_number: int
    repeat_index: int
    command: str
    phase: str = ''
    attempt: int = 1


# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Joined:
    """The driver's Welcome, and the messages that came in its batch (the first tasks, maybe).

    The messages of this batch do not count as hearing from the driver (the silence clock runs from the start)."""

    welcome: Welcome
    messages: Sequence[Message | ValueError]
    now: float


@dataclass(frozen=True, slots=True)
class Received:
    """One batch of messages from the driver (a malformed one arrives as the codec's ValueError): it is alive."""

    messages: Sequence[Message | ValueError]
    now: float


@dataclass(frozen=True, slots=True)
class TaskExited:
    """The main process of the task in `slot` was reaped; `leftovers`: the pids still running in its session."""

    slot: int
    outcome: Outcome
    leftovers: tuple[int, ...]
    now: float


@dataclass(frozen=True, slots=True)
class SpawnFailed:
    """The process of a `Spawn` could not be created; `outcome` is what is recorded for it (`spawn_failure`)."""

    slot: int
    outcome: Outcome
    now: float


@dataclass(frozen=True, slots=True)
class Signalled:
    """The engine received SIGINT, SIGTERM or SIGHUP: it aborts."""

    now: float


@dataclass(frozen=True, slots=True)
class DriverGone:
    """The engine's stdin (the launcher's pipe) ended: the driver is gone."""


@dataclass(frozen=True, slots=True)
class Tick:
    """Once a turn, after its I/O events: heartbeat, driver silence, the abort's and tasks' kill timers; then start
    what can start and move through the stages."""

    now: float


@dataclass(frozen=True, slots=True)
class TurnEnded:
    """The turn's actions are carried out: send the results that are due."""

    now: float


@dataclass(frozen=True, slots=True)
class Leaving:
    """The engine is leaving: `clean` after the loop ended (the results left and Goodbye), else on the way out of an
    error (the results left, if any)."""

    clean: bool


Event = Joined | Received | TaskExited | SpawnFailed | Signalled | DriverGone | Tick | TurnEnded | Leaving

# ---------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Spawn:
    """Start `job` in `slot`; `shares`: the variables of its share of the node's GPUs and -E lists."""

    slot: int
    job: Job
    shares: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SignalGroup:
    """Send `signum` to the process group (the session) of the task in `slot`."""

    slot: int
    signum: int


@dataclass(frozen=True, slots=True)
class SignalLeftovers:
    """Send `signum` to whatever every task of this engine left running (with an abort's signals to the tasks)."""

    signum: int


@dataclass(frozen=True, slots=True)
class KillLeftovers:
    """The driver is gone: SIGKILL every leftover at once, and forget the ones waiting for their KILL."""


@dataclass(frozen=True, slots=True)
class SendResults:
    """One message to the driver: these results (and leftovers' news), in the order they happened."""

    batch: tuple[TaskDone | Leftover, ...]


@dataclass(frozen=True, slots=True)
class SendHeartbeat:
    pass


@dataclass(frozen=True, slots=True)
class SendGoodbye:
    """The last message: the results not sent yet, then Goodbye(reason)."""

    batch: tuple[TaskDone | Leftover, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Log:
    """A line for the engine's log (`level` as in `logging`)."""

    level: int
    text: str


Action = Spawn | SignalGroup | SignalLeftovers | KillLeftovers | SendResults | SendHeartbeat | SendGoodbye | Log
