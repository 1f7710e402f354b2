"""The one exception tree of disbatch.

    DisbatchError                 anything disbatch reports to the user as a one-line message
    ├── UsageError                a bad flag or flag combination, a bad `-s` item (exit 2)
    ├── TaskFileError             a bad line in a task file: carries source and line number
    │   └── TaskFileErrors        several bad lines, one `SOURCE:LINE: message` line each
    ├── StatusFileError           a `-r` file that is not a status file: carries path and line number
    ├── ResumeMismatchError       a `-r` record that does not match the task it names
    ├── OutputPathError           `-p` or `--logfile` names a place where the run's files cannot be made
    ├── ContextError              a context cannot start (bad `-s` item, no environment, no slot on a node, ...)
    ├── ListenError               the run cannot listen where it must (`--use-address` in use or not here)
    ├── OutsideKVSError           the outside KVS server (`--kvsserver`, `--taskserver HOST:PORT`) cannot be used
    ├── RunFileError              a run file cannot be created safely: something (a symbolic link, another user's
    │                             file) is at its name; also an OSError, so the engine records a task it stops
    ├── OutputLostError           a write the run promised failed (a full disk): what, where, what was lost, how to
    │                             resume
    └── SubmissionError           `disbatch submit` / `disbatch.dispatch`: a submission that cannot start or go on
        └── TasksFailedError      a submission whose jobs ended with tasks failed or not run (lists them)

Every error's `str()` is the whole message the user sees; the CLI maps classes to exit codes.
"""

from __future__ import annotations


class DisbatchError(Exception):
    """Base of every error disbatch reports as a one-line message."""


class UsageError(DisbatchError):
    """A flag, or a combination of flags, that cannot work."""


class TaskFileError(DisbatchError):
    """A task-file line that cannot be understood; `str()` is `SOURCE:LINE: message` (`SOURCE: message` for the
    whole file, line 0: it could not be read)."""

    def __init__(self, source: str, line_number: int, message: str) -> None:
        super().__init__(f'{_where(source, line_number)}: {message}')
        self.source = source
        self.line_number = line_number
        self.message = message


class TaskFileErrors(TaskFileError):
    """Every bad line found in a task file (up to a cap), reported together as a compiler would; `str()` has one
    `SOURCE:LINE: message` line per error (the first error's fields are this error's own)."""

    def __init__(self, errors: list[TaskFileError], more: bool = False) -> None:
        first = errors[0]
        super().__init__(first.source, first.line_number, first.message)
        self.errors = errors
        lines = [str(error) for error in errors]
        if more:
            lines.append(f'{first.source}: more bad lines follow; only the first {len(errors)} are shown')
        self.args = ('\n'.join(lines),)


class StatusFileError(DisbatchError):
    """A file given to `-r` that is not a disbatch status file; `str()` is `PATH:LINE: message` (`PATH: message`
    for line 0: the whole file)."""

    def __init__(self, path: str, line_number: int, message: str) -> None:
        super().__init__(f'{_where(path, line_number)}: {message}')
        self.path = path
        self.line_number = line_number
        self.message = message


class ResumeMismatchError(DisbatchError):
    """A task whose earlier record (from `-r`) names a different line, repeat index or command."""


class OutputPathError(DisbatchError):
    """`-p` or `--logfile` names a place where the run's files cannot be made (a directory that cannot be made,
    /proc/, a full device); the message names the flag."""


class ContextError(DisbatchError):
    """A context cannot find or start its engines."""


class ListenError(DisbatchError):
    """The engine endpoint or the KVS cannot listen on the address the run must use."""


class OutsideKVSError(DisbatchError):
    """The outside KVS server the run was pointed at does not answer, or refuses the token presented."""


class RunFileError(DisbatchError, OSError):
    """A run file that cannot be created safely (`disbatch/privacy.py`); nothing was written to it."""


class OutputLostError(DisbatchError):
    """A write of the run's own output failed (no space left, quota, I/O error): the message says what was lost."""


class SubmissionError(DisbatchError):
    """A submission (`disbatch.dispatch`) that cannot start or go on: a bad JSON key, a missing forward file, an
    unreachable host, a remote root that cannot be written, a job the scheduler refused."""


class TasksFailedError(SubmissionError):
    """Every job of a submission ended, and some tasks failed or never ran; `results` holds every task's result
    (a `disbatch.dispatch.TaskResult`), `str()` one line per task that did not succeed."""

    def __init__(self, message: str, results: list[object]) -> None:
        super().__init__(message)
        self.results = results


def _where(path: str, line_number: int) -> str:
    """`path:line`, or `path` alone when the problem is the whole file (line 0)."""
    return f'{path}:{line_number}' if line_number > 0 else path
