"""Signals as input to the driver loop: SIGINT, SIGTERM and SIGHUP only write to a pipe the loop's poller watches,
and each becomes a stop with the shell's exit code for that signal. The end of the run's owner (`--owner-pid`: the
program whose `DisBatcher` started this driver) is a pidfd the poller watches, and becomes the same stop."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

SIGNAL_EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}
# The owner's end is a hangup in the old sense (the process in charge of the run is gone): SIGHUP's exit code.
OWNER_GONE_EXIT_CODE = SIGNAL_EXIT_CODES[signal.SIGHUP]


@contextlib.contextmanager
def signal_pipe() -> Iterator[int]:
    """While inside, the run's signals do nothing but wake the pipe whose reading end this yields; the previous
    handlers are put back at the end."""
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    os.set_blocking(wake_read, False)
    previous_wakeup = signal.set_wakeup_fd(wake_write)
    previous_handlers = {signum: signal.signal(signum, lambda *_: None) for signum in SIGNAL_EXIT_CODES}
    try:
        yield wake_read
    finally:
        signal.set_wakeup_fd(previous_wakeup)
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
        os.close(wake_read)
        os.close(wake_write)


def received(wake_read: int) -> list[tuple[str, int]]:
    """The signals the pipe says arrived, in order: each one's name and the exit code it gives the run."""
    with contextlib.suppress(BlockingIOError):
        return [
            (signal.Signals(signum).name, SIGNAL_EXIT_CODES.get(signal.Signals(signum), 128 + signum))
            for signum in os.read(wake_read, 64)
        ]
    return []


@contextlib.contextmanager
def owner_watch(owner_pid: int) -> Iterator[int]:
    """While inside, yields a descriptor that becomes readable when `owner_pid`, this process's parent, has ended
    (however it ended: exit, exception, SIGKILL); readable at once when it has ended already.

    The pidfd is checked against the parent: when the owner died before it was opened, its pid may already name
    another process, but this process then has another parent (the one it was handed to)."""
    try:
        watch = os.pidfd_open(owner_pid)
    except ProcessLookupError:
        watch = -1
    if watch >= 0 and os.getppid() != owner_pid:
        os.close(watch)
        watch = -1
    if watch < 0:  # gone already: a pipe at its end is readable at once
        watch, write_end = os.pipe()
        os.close(write_end)
    try:
        yield watch
    finally:
        os.close(watch)
