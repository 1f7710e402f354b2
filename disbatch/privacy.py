"""Who can read a run's files: only the user who ran it.

A run's status file, driver log, engine and context logs and `_kvsinfo.txt` hold its commands, snippets of their
output and where its servers listen; the secrets (`_dbUtil.sh`, `_url`) are private already. So every file a run
creates is created mode 0600 (0700 for the script), whatever the umask: a user who wants to share one runs `chmod`.
A file that already exists (a `--logfile` the user named, a status file appended to) keeps the mode it has.
"""

from __future__ import annotations

import os

FILE_MODE = 0o600


def create_private(path: str) -> None:
    """Create `path` empty with mode 0600 if it does not exist yet; an existing file is left as it is."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        return
    os.close(descriptor)
