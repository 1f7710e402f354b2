"""Task processes: the only place that spawns, watches, signals and reaps the commands a run executes.

Each task is `/bin/bash -c COMMAND`, made by the engine's launcher (`launcher.py`, so that its peak memory is its
own) or, without one, by the engine itself (`posix_spawn`); either way the engine's child, in a session of its own
(so its whole process group can be signalled without touching the engine), with stdout and stderr on pipes the
engine drains, and a pidfd that becomes readable the moment the child exits: the engine's event loop waits on these
file descriptors, so nothing here polls.

With `--results`, each chunk read from a pipe is also written at once to the task's output file (`OutputFile`):
the complete output goes to disk as it comes, and the engine holds no more of it than one chunk. The files are
created by `disbatch.privacy` (mode 0600, never through a planted link: a task whose file is planted is not run). A
task whose output could not all be written (a full disk) is recorded failed: its return code is the write's errno
(28 for ENOSPC) unless it failed on its own, and its error snippet says which file lost what.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import tempfile
import time

from disbatch.engine.launcher import Launcher
from disbatch.engine.scratch import ScratchDirectory
from disbatch.privacy import create_file
from disbatch.results.record import Outcome, ResourceUsage
from disbatch.results.snippet import OutputCapture

log = logging.getLogger('disbatch.engine')

BASH = '/bin/bash'
READ_CHUNK = 65536
# Linux refuses any single argument longer than 128 KiB; longer commands go to bash through a private file.
LONG_COMMAND_BYTES = 100_000
# Python ignores these two; a task gets them back at their default, as under a shell, xargs or `subprocess`: the
# writer of `seq 1000000 | head -1` dies of SIGPIPE (status 141) instead of failing with 'Broken pipe'.
DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)


class OutputFile:
    """One task stream's complete output file (`--results`). A write that fails (a full disk) is logged once, ends
    this file and sets `lost` (why) and `errno`; the task runs on, and its snippet and byte count stay right."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = create_file(path)
        self.lost: str | None = None
        self.errno = 0

    def write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view and self.fd is not None:
            try:
                view = view[os.write(self.fd, view) :]
            except OSError as error:
                self._lose(error)
                self.close()

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError as error:  # a file system that reports a failed write only now (NFS, a quota)
                self._lose(error)

    def _lose(self, error: OSError) -> None:
        if self.lost is None:
            self.lost = f'--results: cannot write {self.path}: {error.strerror or error}; the output is incomplete'
            self.errno = error.errno or errno.EIO
            log.error('%s', self.lost)


def open_outputs(paths: tuple[str, str] | None) -> tuple[OutputFile, OutputFile] | None:
    """The stdout and stderr files of a task (`--results`), or None; OSError when one cannot be created."""
    if paths is None:
        return None
    out = OutputFile(paths[0])
    try:
        return out, OutputFile(paths[1])
    except OSError:
        out.close()
        raise


class TaskProcess:
    """One running task. Create with `spawn`; feed readable fds to `read` (and `close` one at its end); call `reap`
    once `pidfd` is readable."""

    def __init__(
        self, pid: int, pidfd: int, stdout_fd: int, stderr_fd: int, start: float, script: str | None = None
    ) -> None:
        self.pid = pid
        self.script = script
        self.pidfd = pidfd
        self.stdout_fd: int | None = stdout_fd
        self.stderr_fd: int | None = stderr_fd
        self.start = start
        self.stdout = OutputCapture()
        self.stderr = OutputCapture()
        self.outputs: tuple[OutputFile, OutputFile] | None = None  # --results: the complete output files

    @classmethod
    def spawn(
        cls,
        command: str,
        environment: dict[str, str],
        scratch: ScratchDirectory,
        null_stdin: bool = False,
        output_paths: tuple[str, str] | None = None,
        launcher: Launcher | None = None,
    ) -> TaskProcess:
        """Start `/bin/bash -c command`; raises OSError when the process (or an output file) cannot be created.

        A command too long for the kernel's argument limit is written to a file in `scratch` (a directory only the
        user can read, made then) and run as `/bin/bash FILE`; the file is removed when the task is reaped. The task
        inherits the engine's stdin unless `null_stdin` (engines whose stdin is their link to the driver). With
        `output_paths` (`--results`), the complete stdout and stderr also go to these two files. Through `launcher`
        when given (`LauncherGone` when it has exited: nothing was started).
        """
        outputs = open_outputs(output_paths)
        try:
            process = cls._spawn(command, environment, scratch, null_stdin, launcher)
        except BaseException:
            for sink in outputs or ():
                sink.close()
            raise
        process.outputs = outputs
        return process

    @classmethod
    def _spawn(
        cls,
        command: str,
        environment: dict[str, str],
        scratch: ScratchDirectory,
        null_stdin: bool,
        launcher: Launcher | None,
    ) -> TaskProcess:
        script = None
        arguments = [BASH, '-c', command]
        # A character is at most 4 bytes in UTF-8: a command this short is never long, and need not be encoded.
        if len(command) * 4 > LONG_COMMAND_BYTES:
            encoded = command.encode('utf-8', 'surrogateescape')
            if len(encoded) > LONG_COMMAND_BYTES:
                descriptor, script = tempfile.mkstemp(dir=scratch.path(), suffix='.sh')
                with os.fdopen(descriptor, 'wb') as handle:
                    handle.write(encoded + b'\n')
                arguments = [BASH, script]
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        try:
            start = time.time()
            if launcher is not None:
                pid = launcher.spawn(arguments, environment, out_write, err_write, null_stdin)
            else:
                pid = os.posix_spawn(
                    BASH,
                    arguments,
                    environment,
                    file_actions=[
                        (os.POSIX_SPAWN_DUP2, out_write, 1),
                        (os.POSIX_SPAWN_DUP2, err_write, 2),
                        *([(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)] if null_stdin else []),
                    ],
                    setsid=True,
                    setsigdef=DEFAULT_SIGNALS,
                )
        except BaseException:
            for fd in (out_read, err_read):
                os.close(fd)
            if script is not None:
                os.unlink(script)
            raise
        finally:
            os.close(out_write)
            os.close(err_write)
        os.set_blocking(out_read, False)
        os.set_blocking(err_read, False)
        return cls(pid, os.pidfd_open(pid), out_read, err_read, start, script)

    @property
    def open_fds(self) -> list[int]:
        return [fd for fd in (self.stdout_fd, self.stderr_fd) if fd is not None]

    def read(self, fd: int) -> bool:
        """Drain whatever `fd` (one of this task's pipes) holds now; True at its end (then `close` it)."""
        capture = self.stdout if fd == self.stdout_fd else self.stderr
        sink = None if self.outputs is None else self.outputs[0 if fd == self.stdout_fd else 1]
        while True:
            try:
                chunk = os.read(fd, READ_CHUNK)
            except BlockingIOError:
                return False
            if not chunk:
                return True
            capture.add(chunk)
            if sink is not None:
                sink.write(chunk)

    def reap(self) -> Outcome:
        """Collect the exited child (pidfd readable): drain what its pipes still hold, then close everything.

        Output written later by processes the task left running in the background is not waited for.
        """
        _, status, usage = os.wait4(self.pid, 0)
        finish = time.time()
        for fd in self.open_fds:
            self.read(fd)
            self.close(fd)
        os.close(self.pidfd)
        for sink in self.outputs or ():
            sink.close()
        if self.script is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.script)
        return_code, err_snippet = os.waitstatus_to_exitcode(status), self.stderr.snippet()
        lost = [sink for sink in self.outputs or () if sink.lost is not None]
        if lost:  # the output the run promised is not all on disk: not a clean success
            return_code = return_code or lost[0].errno
            err_snippet = repr('; '.join(sink.lost or '' for sink in lost))
        return Outcome.ran(
            pid=self.pid,
            return_code=return_code,
            start=self.start,
            finish=finish,
            out_bytes=self.stdout.total,
            out_snippet=self.stdout.snippet(),
            err_bytes=self.stderr.total,
            err_snippet=err_snippet,
            usage=ResourceUsage(usage.ru_maxrss * 1024, usage.ru_utime, usage.ru_stime),  # ru_maxrss is in KiB
        )

    def signal_group(self, signum: int) -> None:
        """Signal the task's whole process group (its session); a group already gone is not an error."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def close(self, fd: int) -> None:
        """Close one of this task's pipes."""
        if fd == self.stdout_fd:
            self.stdout_fd = None
        elif fd == self.stderr_fd:
            self.stderr_fd = None
        else:
            return
        os.close(fd)


def spawn_failure(error: OSError | ValueError, start: float) -> Outcome:
    """The outcome recorded for a task whose process could not be created: return code = errno (200 if none), the
    reason as its error output."""
    code = getattr(error, 'errno', None) or 200
    reason = os.strerror(code) if code != 200 else str(error)
    return Outcome.spawn_failure(code, reason, start)


def probe_output(arguments: list[str], timeout: float) -> str | None:
    """The stdout of a short probe of the machine (`nvidia-smi -L`), or None if it is missing, fails or hangs."""
    import subprocess

    try:
        done = subprocess.run(
            arguments, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None
