"""The owner watch of a run a DisBatcher started: readable when the owner (this process's parent) has ended."""

from __future__ import annotations

import os
import select
import subprocess
import sys

from disbatch.driver.run.signals import owner_watch


def _readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def test_the_watch_stays_quiet_while_the_parent_lives() -> None:
    with owner_watch(os.getppid()) as watch:
        assert not _readable(watch)


def test_a_pid_that_is_not_the_parent_counts_as_gone() -> None:
    """The owner died before the watch began, and its pid now names another live process: not watched, gone."""
    with owner_watch(os.getpid()) as watch:
        assert _readable(watch)


def test_a_pid_that_no_process_has_counts_as_gone() -> None:
    child = subprocess.Popen([sys.executable, '-c', 'pass'])
    child.wait()
    with owner_watch(child.pid) as watch:
        assert _readable(watch)
