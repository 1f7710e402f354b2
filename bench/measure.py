"""Running one tool once and measuring it: wall time, CPU time, exit code, leftovers, optional sampling.

The measured process is started in its own session. We wait for it to exit *without reaping it*
(`waitid(..., WNOWAIT)`), read its own CPU time from `/proc/PID/stat` while it is a zombie (that is the
process alone), then reap it with `wait4`, whose rusage is the process plus every descendant it waited for.
A timer kills the whole process group if the run exceeds its time limit. Processes the run leaves behind are found,
reaped (their CPU time added to the tree's) and reported by `bench.leftovers`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path

from bench.leftovers import Leftovers, collect

Sampler = Callable[[int, threading.Event], None]  # (pid, stop) -> None; runs in a thread until stop is set


@dataclass(frozen=True)
class Invocation:
    argv: tuple[str, ...]
    env: dict[str, str]
    stdin: Path | None = None  # a file to read as standard input; None = /dev/null


@dataclass(frozen=True)
class Measurement:
    wall: float  # seconds from just before the spawn to the observed exit
    exit_code: int  # negative: killed by that signal
    timed_out: bool
    self_cpu: float  # user + system seconds of the process alone (/proc/PID/stat at exit; 1 clock tick resolution)
    tree_cpu: float  # user + system seconds of the process, every descendant it reaped (wait4) and its leftovers
    leftovers: Leftovers  # descendants orphaned when it exited (needs bench.leftovers.become_subreaper())
    strays: bool  # processes of its group were still alive after that (we killed them)
    stderr_tail: str  # the last lines it wrote on standard error


def run_measured(
    invocation: Invocation,
    *,
    cwd: Path,
    stderr_path: Path,
    timeout: float,
    sampler: Sampler | None = None,
) -> Measurement:
    """Run `invocation` to its end (or kill it after `timeout` seconds) and measure it."""
    timed_out = threading.Event()
    stop_sampling = threading.Event()
    with ExitStack() as stack:
        stdin = stack.enter_context(invocation.stdin.open('rb')) if invocation.stdin else subprocess.DEVNULL
        stderr = stack.enter_context(stderr_path.open('wb'))
        start = time.perf_counter()
        process = subprocess.Popen(
            invocation.argv,
            cwd=cwd,
            env=invocation.env,
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
        timer = threading.Timer(timeout, _kill_on_timeout, (process.pid, timed_out))
        timer.start()
        sampling = threading.Thread(target=sampler, args=(process.pid, stop_sampling)) if sampler else None
        if sampling:
            sampling.start()
        try:
            os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
            wall = time.perf_counter() - start
            self_cpu = _zombie_cpu_seconds(process.pid)
        except BaseException:  # e.g. Ctrl-C: the run is in its own session, so it did not see the signal
            _kill_group(process.pid)
            raise
        finally:
            timer.cancel()
            stop_sampling.set()
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            if sampling:
                sampling.join()
    leftovers = collect()
    return Measurement(
        wall=wall,
        exit_code=process.returncode,
        timed_out=timed_out.is_set(),
        self_cpu=self_cpu,
        tree_cpu=usage.ru_utime + usage.ru_stime + leftovers.cpu,
        leftovers=leftovers,
        strays=_kill_strays(process.pid),
        stderr_tail=_tail(stderr_path),
    )


def _kill_on_timeout(group: int, timed_out: threading.Event) -> None:
    timed_out.set()
    _kill_group(group)


def _kill_group(group: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


def _zombie_cpu_seconds(pid: int) -> float:
    """utime + stime of an exited, not yet reaped process: itself only, not its children."""
    try:
        text = Path(f'/proc/{pid}/stat').read_text(encoding='ascii', errors='replace')
    except OSError:
        return float('nan')
    fields = text[text.rindex(')') + 2 :].split()  # fields[0] is field 3 (state) of proc(5)
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def _kill_strays(group: int) -> bool:
    """After the group leader was reaped: kill what is left of its process group; say whether anything was."""
    try:
        os.killpg(group, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding='utf-8', errors='replace')
    except OSError:
        return ''
    return '\n'.join(text.splitlines()[-lines:])


def probe(argv: Sequence[str], *, cwd: Path, env: dict[str, str], timeout: float = 60) -> tuple[bool, str]:
    """Run a short command (e.g. `--version`); return (exited 0, its output stripped)."""
    try:
        done = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, str(error)
    return done.returncode == 0, (done.stdout + done.stderr).strip()
