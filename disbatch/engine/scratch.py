"""The engine's scratch directory: where a task command too long for the kernel's argument limit is written, to run
as `bash FILE` (`task_process.py`); nothing else goes there.

It is made only when such a command comes, as `<temp dir>/disbatch-engine-<pid>-XXXXXXXX` (only the user can read
it), and the engine holds a lock on it (`flock`) for as long as it lives; the lock goes with the process, however it
ends. An engine that dies without removing its directory (SIGKILL, a crashed node) leaves it behind: the next engine
on the machine that makes one sweeps every such directory whose lock is free, its engine being dead. A directory
made within the last minute is left alone (its engine may not have locked it yet), and so is one that cannot be
locked at all (a file system without locks): a sweep never removes the directory of a live engine. (The age is
the directory's modification time, which making a file in it only moves forward.)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import stat
import tempfile
import time

PREFIX = 'disbatch-engine-'
# <prefix><pid>-<mkdtemp's random part>; older engines' names (<prefix><random part>, no lock) never match.
NAME = re.compile(re.escape(PREFIX) + r'[0-9]+-[a-z0-9_]+')
# A directory younger than this is not swept: its engine may be between making it and locking it.
FRESH_SECONDS = 60.0


class ScratchDirectory:
    """One engine's scratch directory, made on first use and removed by `remove()`."""

    def __init__(self, parent: str | None = None) -> None:
        self.parent = parent  # None: the temp directory (`$TMPDIR`, else /tmp)
        self._path: str | None = None
        self._lock = -1

    def path(self) -> str:
        """The directory: made, and the directories of dead engines swept, on the first call."""
        if self._path is None:
            parent = self.parent or tempfile.gettempdir()
            sweep(parent, time.time())
            path = tempfile.mkdtemp(prefix=f'{PREFIX}{os.getpid()}-', dir=parent)
            self._lock = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
            with contextlib.suppress(OSError):  # no locks on this file system: a sweep cannot lock it either
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._path = path
        return self._path

    def remove(self) -> None:
        """Remove the directory if it was made (the engine is leaving)."""
        if self._path is not None:
            shutil.rmtree(self._path, ignore_errors=True)
            os.close(self._lock)
            self._path, self._lock = None, -1


def sweep(parent: str, now: float) -> list[str]:
    """Remove the scratch directories in `parent` whose engine is dead (nothing holds their lock) and that were made
    over `FRESH_SECONDS` before `now`; only the user's own. Returns the paths removed."""
    try:
        entries = [entry for entry in os.scandir(parent) if NAME.fullmatch(entry.name)]
    except OSError:
        return []
    removed = []
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or now - info.st_mtime < FRESH_SECONDS:
            continue
        try:
            lock = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # held: its engine lives (or the file system has no locks)
        else:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
        finally:
            os.close(lock)
    return removed
