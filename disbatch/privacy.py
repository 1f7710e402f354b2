"""Creating a run's files safely: only the user who ran it can read them, and nobody can plant one.

A run's status file, driver log, engine and context logs, `_kvsinfo.txt`, `--json` events and `--results` files hold
its commands, snippets of their output and where its servers listen; `_dbUtil.sh` and `_url` hold its secrets. Runs
often write into shared directories (`-p /shared/myrun`, `/tmp`), where another user can put a symbolic link or a
file of their own at a name the run is about to write. So every run file is made here, and only here:

- `create_file` makes a new file with `O_CREAT | O_EXCL | O_NOFOLLOW`, mode 0600 (0700 for a script) from the start,
  whatever the umask. A file of the user's own from an earlier run with the same name (a regular file they own, with
  one link) is replaced: unlinked, then created anew, so nothing written through an old link reaches another file.
- `open_append` opens a log the run adds to (created as above when missing) with `O_NOFOLLOW`, and checks that what
  it opened is a regular file of the user's own with one link, before anything is written.
- `make_directory` makes a directory 0700.
- `LogFile` is a logging handler on a log opened by `open_append`; a line it cannot write (a full disk) is told
  once, in one line, not as a traceback per line.
- `check_run_files` looks at every name a run will write before the run writes any, so a planted file stops the
  run before it has touched anything.

Anything else at a run file's name (a symbolic link, another user's file, a hard link to some file elsewhere) is a
`RunFileError`: one line naming the file, and nothing written. A path the user named themselves (`--logfile`,
`--json`) that is an existing device or pipe (`/dev/stderr`, a FIFO) is opened as it is: they chose it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import sys

from disbatch.contract import RunFiles
from disbatch.errors import OutputLostError, RunFileError

FILE_MODE = 0o600
SCRIPT_MODE = 0o700
DIRECTORY_MODE = 0o700

_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_APPEND = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC


def create_file(path: str, mode: int = FILE_MODE, *, named: bool = False) -> int:
    """A write-only descriptor on a new file at `path` with `mode`; RunFileError if something else is there.

    `named`: the user named this path (not derived from `-p`); an existing device or pipe there is opened as it is.
    """
    if named and _is_special(path):
        return _open_special(path)
    for _ in range(3):  # a name freed by `_replace_own` can be taken again before our create: then we look again
        try:
            descriptor = os.open(path, _NEW, mode)
        except FileExistsError:
            _replace_own(path)
            continue
        except OSError as error:
            raise RunFileError(_cannot(path, error)) from None
        _set_mode(descriptor, path, mode)
        return descriptor
    raise RunFileError(f'{path}: something keeps appearing at this name; refusing to write there')


def open_append(path: str, *, named: bool = False) -> int:
    """A descriptor appending to the log at `path`, created 0600 when missing; RunFileError unless it is ours."""
    if named and _is_special(path):
        return _open_special(path, os.O_APPEND)
    try:
        descriptor = os.open(path, _APPEND, FILE_MODE)
    except OSError as error:
        raise RunFileError(_cannot(path, error)) from None
    problem = _not_ours(os.fstat(descriptor))
    if problem:
        os.close(descriptor)
        raise RunFileError(_planted(path, problem))
    return descriptor


def write_file(path: str, text: str, mode: int = FILE_MODE) -> None:
    """Create `path` as `create_file` does and write `text` to it; OutputLostError if it cannot all be written."""
    try:
        with os.fdopen(create_file(path, mode), 'w', encoding='utf-8') as handle:
            handle.write(text)
    except RunFileError:
        raise
    except OSError as error:
        raise OutputLostError(f'{path}: cannot write it: {error.strerror or error}') from None


def make_directory(path: str) -> None:
    """Make the directory `path` (and its missing parents) 0700; one already there is used as it is."""
    os.makedirs(path, mode=DIRECTORY_MODE, exist_ok=True)


def check_run_files(files: RunFiles) -> None:
    """RunFileError naming the first of the run's file names that holds something not the user's own; run before
    the run writes anything. Later opens check again, so a file planted after this is refused too."""
    names = files.fixed_names
    with contextlib.suppress(OSError), os.scandir(os.path.dirname(files.stem) or '.') as entries:
        names += [entry.path for entry in entries if files.is_log_name(entry.name)]
    for name in names:
        try:
            status = os.lstat(name)
        except FileNotFoundError:
            continue
        except OSError as error:
            raise RunFileError(_cannot(name, error)) from None
        problem = _not_ours(status)
        if problem:
            raise RunFileError(_planted(name, problem))


def _replace_own(path: str) -> None:
    """Remove the file at `path` if it is the user's own from an earlier run; RunFileError if it is anything else."""
    try:
        status = os.lstat(path)
    except FileNotFoundError:
        return
    problem = _not_ours(status)
    if problem:
        raise RunFileError(_planted(path, problem))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _not_ours(status: os.stat_result) -> str:
    """Why a file is not one the run may write to ('' when it may): a regular file of ours with one link."""
    if stat.S_ISLNK(status.st_mode):
        return 'a symbolic link'
    if not stat.S_ISREG(status.st_mode):
        return 'not a regular file'
    if status.st_uid != os.geteuid():
        return f'owned by another user (uid {status.st_uid})'
    if status.st_nlink != 1:
        return f'a file with {status.st_nlink} hard links'
    return ''


def _planted(path: str, problem: str) -> str:
    return f'{path} is already there and is {problem}: refusing to write to it (remove it, or write the run elsewhere)'


def _cannot(path: str, error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return _planted(path, 'a symbolic link')
    return f'{path}: cannot create it: {error.strerror or error}'


def _set_mode(descriptor: int, path: str, mode: int) -> None:
    """The mode asked for, whatever the umask took away."""
    try:
        os.fchmod(descriptor, mode)
    except OSError as error:
        os.close(descriptor)
        raise RunFileError(_cannot(path, error)) from None


def _is_special(path: str) -> bool:
    """An existing device, pipe or socket (followed through links): a stream the user pointed a flag at."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _open_special(path: str, extra: int = 0) -> int:
    try:
        return os.open(path, os.O_WRONLY | os.O_CLOEXEC | extra)
    except OSError as error:
        raise RunFileError(f'{path}: cannot open it: {error.strerror or error}') from None


class LogFile(logging.StreamHandler):  # type: ignore[type-arg]
    """A run's log (`open_append`). The first line it cannot write (a full disk, a quota) sets `failure` and, once
    `tell_failure` is set, is told on stderr in one line; later lines are dropped, not each met with a traceback."""

    def __init__(self, path: str, *, named: bool = False) -> None:
        super().__init__(os.fdopen(open_append(path, named=named), 'a', encoding='utf-8', errors='backslashreplace'))
        self.path = path
        self.failure: str | None = None
        self.tell_failure = True

    def emit(self, record: logging.LogRecord) -> None:
        if self.failure is None:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            super().handleError(record)
            return
        if self.failure is None:
            self.failure = f'the log {self.path}: cannot write: {error.strerror or error}'
            if self.tell_failure:
                print(f'disbatch: {self.failure}; its later lines are lost', file=sys.stderr, flush=True)

    def close(self) -> None:
        with contextlib.suppress(OSError):  # what a full disk kept in the buffer is lost, and told already
            self.stream.close()
        super().close()
