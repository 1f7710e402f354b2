"""The engine's supervisor: the process a launcher starts, which outlives its engine and ends what the engine left.

`python -m disbatch.engine` forks once it has read its arguments, before it opens anything: the child goes on as
the engine, the parent stays behind as its supervisor. The supervisor is the child subreaper of everything below it
(`PR_SET_CHILD_SUBREAPER`), so when the engine dies without ending its tasks (SIGKILL, the OOM killer, a crash),
those tasks, each the leader of a session of its own, are re-parented to the supervisor and not to init. It then
ends every process still below it (SIGTERM and SIGCONT, SIGKILL after END_GRACE_SECONDS, again until none is left),
reaps them, and exits with an ordinary status that says what happened: the engine's own exit code, or
`ENGINE_KILLED_EXIT + N` (protocol/messages.py) when signal N killed it. So

* a dead engine's tasks never run on beside the copies the driver starts elsewhere: the launcher's exit, which is
  how the driver learns of the death, comes only once they are ended, and its code tells the driver so;
* whatever launched the engine sees an ordinary exit, never a death by a signal (under Grid Engine, a `qrsh -inherit`
  task that dies of a signal makes qmaster kill the whole job).

While the engine lives the supervisor sleeps in `sigwaitinfo()` and costs nothing per task: it wakes when a child
of its own exits (the engine, or a process a task left behind whose parent has exited: it reaps it), or when it is
asked to stop (SIGTERM, SIGINT, SIGHUP: passed on to the engine as SIGTERM, and SIGKILL if the engine has not exited
ENGINE_STOP_SECONDS later). If the supervisor itself dies, the kernel sends the engine SIGTERM (`PR_SET_PDEATHSIG`),
and the engine stops its tasks as for any signal.

The supervisor reads and writes nothing of the run: one line in the engine's log when it had something to end.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import time

from disbatch.engine import sessions
from disbatch.protocol.messages import SUPERVISOR_NAME, engine_killed_exit

log = logging.getLogger('disbatch.supervisor')

# prctl(2) options (linux/prctl.h)
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36

STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
WAITED_SIGNALS = STOP_SIGNALS | {signal.SIGCHLD}
# After a stop signal is passed on, the engine's own abort (TERM, KILL 1 s later, the same for leftovers) has this
# long before the supervisor kills it and ends its tasks itself.
ENGINE_STOP_SECONDS = 5.0
END_GRACE_SECONDS = 1.0  # between the SIGTERM and the SIGKILL to what a dead engine left
END_ROUNDS = 20  # scans for what is left (a process may fork while it is being ended); each waits END_GRACE_SECONDS


def fork_engine() -> int | None:
    """Split this process in two: return None in the child, which goes on as the engine; in the parent, supervise
    the child and return, once it and everything below it have ended, the exit code the parent is to exit with.

    Call it before any thread or socket exists. Where the kernel refuses a subreaper, nothing forks and the engine
    runs unsupervised (None), as it did before supervisors."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        log.warning('no supervisor for this engine: %s', os.strerror(ctypes.get_errno()))
        return None
    # Blocked before the fork, so a signal in between is waited for, not acted on; the engine unblocks them.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, WAITED_SIGNALS)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # nothing buffered is written twice
    supervisor = os.getpid()
    engine = os.fork()
    if engine == 0:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        if os.getppid() != supervisor:  # the supervisor died before the line above: no one would end the tasks
            os._exit(1)
        return None
    libc.prctl(PR_SET_NAME, SUPERVISOR_NAME, 0, 0, 0)
    return Supervisor(engine).run()


class Supervisor:
    """The parent half of `fork_engine`: waits for the engine, then ends and reaps what is left below it."""

    def __init__(self, engine: int) -> None:
        self.engine = engine

    def run(self) -> int:
        status = self._wait_for_engine()
        ended = end_descendants()
        code = os.waitstatus_to_exitcode(status)
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else f'signal {-code}'
            self._say(f'the engine (pid {self.engine}) was killed by {name}', ended)
            return engine_killed_exit(-code)
        if ended:
            self._say(f'the engine (pid {self.engine}) exited with {code}', ended)
        return code

    def _wait_for_engine(self) -> int:
        """The engine's wait status, once it has exited; children of ours that exit meanwhile are reaped."""
        stopping = False  # a stop signal was passed on
        kill_at: float | None = None  # when the engine, asked to stop, is killed if it has not exited
        while True:
            status = self._reap()
            if status is not None:
                return status
            if kill_at is None:
                received: int | None = signal.sigwaitinfo(WAITED_SIGNALS).si_signo
            else:
                info = signal.sigtimedwait(WAITED_SIGNALS, max(0.0, kill_at - time.monotonic()))
                received = info.si_signo if info is not None else None
            if received is None:  # it did not stop in time
                _signal(self.engine, signal.SIGKILL)
                kill_at = None
            elif received in STOP_SIGNALS and not stopping:
                stopping = True
                _signal(self.engine, signal.SIGTERM)
                _signal(self.engine, signal.SIGCONT)
                kill_at = time.monotonic() + ENGINE_STOP_SECONDS

    def _reap(self) -> int | None:
        """Reap every exited child; the engine's wait status if it was among them."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return None
            if pid == 0:
                return None
            if pid == self.engine:
                return status

    @staticmethod
    def _say(what: str, ended: list[int]) -> None:
        left = (
            f'ended the {len(ended)} process(es) it left: pid {" ".join(map(str, ended))}' if ended else 'it left none'
        )
        with contextlib.suppress(OSError):
            log.warning('%s; %s', what, left)


def end_descendants(grace: float = END_GRACE_SECONDS, rounds: int = END_ROUNDS) -> list[int]:
    """End every process below this one (SIGTERM, SIGKILL after `grace`), scanning again until none is left or
    `rounds` scans have found some; reap the children among them. Returns the pids ended."""
    ended: list[int] = []
    for _ in range(rounds):
        found = sessions.descendants(os.getpid())
        if not found:
            break
        ended.extend(pid for pid in found if pid not in ended)
        sessions.terminate(found, grace)
        _reap_all()
    else:
        if left := sessions.descendants(os.getpid()):
            log.error('could not end pid %s', ' '.join(map(str, left)))
    _reap_all()
    return ended


def _reap_all() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] != 0:
            pass


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
