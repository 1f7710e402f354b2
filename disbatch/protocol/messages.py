"""Messages between the driver and its engines: one small frozen dataclass per kind.

Each class has a wire `TAG`; `protocol/codec.py` is the only code that turns them into bytes and back. Fields are
plain JSON values (str, int, float, bool, lists of those), or an `Outcome` (`results/record.py`: plain values
too), so no message can carry code.

    engine → driver:   Hello, TaskDone, Leftover, Goodbye, Heartbeat
    driver → engine:   Welcome, TaskAttempt, Drain, Abort, Heartbeat
    context → driver:  ContextHello, ContextGoodbye
    driver → context:  ContextWelcome

Every part of a run must speak the same `PROTOCOL_VERSION`: `Hello` and `ContextHello` say which they speak, and the
driver refuses a peer that speaks another (with an `Abort` saying why). So that a driver can still read that much of
a hello whose shape it does not know, both hellos begin with the same fields in every version from 2 on: `secret`,
`protocol_version`, `software`, then `hostname` (Hello) or `label` (ContextHello) (`codec.read_greeting`; version 1
had no version field: `secret`, then `hostname` or `label`). `Abort(reason)` keeps its shape too, so a refused peer
of any version can read why.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import ClassVar

from disbatch import __version__
from disbatch.results.record import Outcome

# The version of the wire protocol: bump it whenever the shape of a message changes (a field added, removed,
# retyped or moved), and say what changed in docs/architecture.md ("Wire messages").
#   1: no version in the hellos.
#   2: Hello and ContextHello begin with secret, protocol_version, software (then hostname or label, as before).
#   3: Welcome ends with fork_tasks (--fork-tasks); a ResourceUsage's max_rss_bytes may be null (unknown).
PROTOCOL_VERSION = 3


def this_software() -> str:
    """How a hello names the disbatch that sends it (for messages only): 'disbatch <version> at <python>'."""
    return f'disbatch {__version__} at {sys.executable}'


# A per-engine task on the wire: (task_id, line_number, command).
PerEngineSpec = tuple[int, int, str]


@dataclass(frozen=True, slots=True)
class Hello:
    """An engine asks to join the run, proving it knows the run's secret."""

    TAG: ClassVar[str] = 'hello'
    secret: str
    protocol_version: int  # PROTOCOL_VERSION of the engine
    software: str  # this_software() of the engine
    hostname: str
    pid: int
    slots: int
    cores_per_task: int
    context: str
    launch_id: str  # given by the context that started the engine, so it can tell which launcher is which


@dataclass(frozen=True, slots=True)
class Welcome:
    """The driver accepts an engine: its rank, the environment its tasks share, its per-engine tasks."""

    TAG: ClassVar[str] = 'welcome'
    engine_rank: int
    cwd: str
    environment: dict[str, str]
    start_tasks: list[PerEngineSpec]
    stop_tasks: list[PerEngineSpec]
    timeout: float  # seconds a task may run before it is stopped (--timeout); 0: no limit
    kill_leftovers: bool  # --kill-leftovers: end what a task left running when it exits, not when the engine leaves
    results_dir: str  # --results: the directory (absolute) for each task's complete stdout and stderr; '' for none
    fork_tasks: bool = False  # --fork-tasks: each slot is a long-lived bash that forks a subshell per task


@dataclass(frozen=True, slots=True)
class TaskAttempt:
    """One attempt of a task, to run on the engine's next free slot (wire tag 'run', as before)."""

    TAG: ClassVar[str] = 'run'
    task_id: int
    line_number: int
    repeat_index: int
    command: str
    attempt: int  # 1 for the first run of the task; more when it is run again (--retries, a lost engine)


@dataclass(frozen=True, slots=True)
class TaskDone:
    """A task (or per-engine task: phase 'START'/'STOP') has finished on an engine, and how."""

    TAG: ClassVar[str] = 'done'
    task_id: int
    phase: str  # '' for a normal task
    outcome: Outcome
    timed_out: bool  # stopped by the engine after --timeout seconds
    interrupted: bool  # stopped by the engine because the run stopped it (Abort, or a signal to the engine)
    attempt: int  # the TaskAttempt's attempt (0 for a per-engine task)


@dataclass(frozen=True, slots=True)
class Leftover:
    """A task's main process exited, and these processes of its session are still running (for the driver log)."""

    TAG: ClassVar[str] = 'leftover'
    task_id: int
    phase: str  # '' for a normal task, 'START'/'STOP' for a per-engine one
    pids: list[int]


@dataclass(frozen=True, slots=True)
class Drain:
    """No more work for this engine: finish what it has, run its STOP tasks, say Goodbye and exit."""

    TAG: ClassVar[str] = 'drain'


@dataclass(frozen=True, slots=True)
class Abort:
    """Stop now: kill every running task's process group, report each, say Goodbye and exit."""

    TAG: ClassVar[str] = 'abort'
    reason: str


@dataclass(frozen=True, slots=True)
class Goodbye:
    """The engine has nothing left to run and is exiting."""

    TAG: ClassVar[str] = 'goodbye'
    reason: str


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Sent both ways every `HEARTBEAT_SECONDS` when nothing else is: each side knows the other is alive."""

    TAG: ClassVar[str] = 'heartbeat'


HEARTBEAT_SECONDS = 2.0
# A peer silent this long is taken for dead (a crashed host, a cut network): four heartbeats missed.
SILENCE_SECONDS = 8.0
# The longest a lost engine's tasks may run on after the driver sent it its last message: an engine kills its tasks
# when the driver has been silent for SILENCE_SECONDS (SIGKILL at once), or when an Abort comes (SIGTERM, SIGKILL
# 1 s later, the same for what they left 1 s after that); 3 s more for a message still in flight and a loaded node.
# The driver runs a lost engine's tasks again no sooner, unless the engine's goodbye or its supervisor's exit says
# they are over (`ENGINE_KILLED_EXIT`).
LOST_TASKS_END_SECONDS = SILENCE_SECONDS + 3.0
# Every engine runs under a supervisor that outlives it (`engine/supervisor.py`). When signal N kills the engine,
# the supervisor ends every process the engine left and exits with ENGINE_KILLED_EXIT + N (N < 32; + 0 for a
# real-time signal): an ordinary exit, which ssh, srun and `qrsh -inherit` pass on to the driver as it is.
ENGINE_KILLED_EXIT = 64
# The supervisor's name in /proc/PID/comm (what `ps -o comm` and top show; its command line is the engine's).
SUPERVISOR_NAME = b'disbatch-superv'


def engine_killed_exit(signum: int) -> int:
    """The supervisor's exit code once signal `signum` killed its engine and the engine's processes are ended."""
    return ENGINE_KILLED_EXIT + (signum if 0 < signum < 32 else 0)


def killing_signal(exit_code: int) -> int | None:
    """The signal that killed an engine, from its launcher's exit code (0: a real-time one); None when that exit
    code is not a supervisor's report of a killed engine."""
    signum = exit_code - ENGINE_KILLED_EXIT
    return signum if 0 <= signum < 32 else None


@dataclass(frozen=True, slots=True)
class ContextHello:
    """A context process (started through `<stem>_dbUtil.sh`) asks to add engines to the run."""

    TAG: ClassVar[str] = 'context-hello'
    secret: str
    protocol_version: int  # PROTOCOL_VERSION of the context process
    software: str  # this_software() of the context process
    label: str  # the one asked for with -l, or '' for the default
    kind: str  # 'SSH', 'SLURM', 'SGE', 'PBS' or 'LSF'
    job_id: str  # the Slurm job, for the default label
    task_limit: int  # -C; 0: no limit


@dataclass(frozen=True, slots=True)
class ContextWelcome:
    """The driver accepts a context: its unique label, and the run's -c/-t/--gpus-per-task/-E for flags the context
    left unset."""

    TAG: ClassVar[str] = 'context-welcome'
    label: str
    cpus_per_task: float  # 0: not given to the driver either
    tasks_per_node: int  # 0: not given
    gpus_per_task: int  # 0: not given
    env_resources: str  # the -E variables, comma-joined ('' for none)


@dataclass(frozen=True, slots=True)
class ContextGoodbye:
    """A context process has no engine left and is exiting."""

    TAG: ClassVar[str] = 'context-goodbye'
    label: str


Message = (
    Hello
    | Welcome
    | TaskAttempt
    | TaskDone
    | Leftover
    | Drain
    | Abort
    | Goodbye
    | Heartbeat
    | ContextHello
    | ContextWelcome
    | ContextGoodbye
)
MESSAGE_TYPES: tuple[type[Message], ...] = (
    Hello,
    Welcome,
    TaskAttempt,
    TaskDone,
    Leftover,
    Drain,
    Abort,
    Goodbye,
    Heartbeat,
    ContextHello,
    ContextWelcome,
    ContextGoodbye,
)
