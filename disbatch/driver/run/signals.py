"""Signals as input to the driver loop: SIGINT, SIGTERM and SIGHUP only write to a pipe the loop's poller watches,
and each becomes a stop with the shell's exit code for that signal."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

SIGNAL_EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}


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
