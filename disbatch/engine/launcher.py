"""The task launcher: a small long-lived process per engine that makes each task, so its peak memory is its own.

Linux keeps, in a process's `ru_maxrss`, the high-water mark of the memory it had before it executed a program. A
task made by the engine itself (`posix_spawn`: vfork, then exec) starts with the engine's ~20 MiB, and every task
read at least that. The launcher is a program of a few hundred KiB, compiled from `SOURCE` with the machine's `cc`
once per user, machine, C library and source (kept under `~/.cache/disbatch`); for each task it does what
`posix_spawn` did — `clone(CLONE_VM | CLONE_VFORK)`, no copy of anything — with `CLONE_PARENT`, so the engine is
the task's parent from its first instant and `wait4`s it, with its pidfd, as before. Measured (`python -m
bench.spawn_memory`): a task of `true` reads 3.1 MiB (bash's own size), and costs what `posix_spawn` cost.

The engine keeps everything else: it makes the task's stdout and stderr pipes, the launcher opens their write ends
through `/proc/<engine>/fd/N` (it has no other way to receive them) before it makes the task, and the engine closes
its own once it has the reply. A request carries the whole command line and environment (no byte-wise reading:
a length, then that many bytes), the reply the task's pid and the errno of an exec that failed.

Where there is no `cc`, or the launcher cannot be built or started, the engine makes its tasks itself, as before
(their peak memory then has the engine's size as its floor; the engine says so once in its log).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import zlib

log = logging.getLogger('disbatch.engine')

# Python ignores these two; a task gets them back at their default (see task_process.DEFAULT_SIGNALS).
DEFAULT_SIGNALS = (13, 25)  # SIGPIPE, SIGXFSZ
COMPILE_TIMEOUT_SECONDS = 60.0
REQUEST_FD, REPLY_FD = 3, 4  # the launcher's request pipe and reply pipe (its stdin is the engine's)
HIGH_FD = 100  # where its descriptors wait while the launcher is spawned, clear of the numbers they go to

SOURCE = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* fd 3: requests, each "LENGTH\n" then LENGTH bytes of NUL-terminated fields: the engine's fd of the task's stdout
 * pipe, of its stderr pipe, 1 for a null stdin (else 0), the argument count, the arguments, the environment.
 * fd 4: one line per request, "PID ERRNO": ERRNO 0 when the task was made, else why (PID 0: not made; PID > 0: it
 * was made, its exec failed, and it has exited 127 for the engine to reap). argv[1]: the engine's pid. A task gets
 * this process's stdin (the engine's) unless told otherwise, and its signal dispositions (all default). */
static char request[1 << 24];
static char *arguments[1 << 16], *environment[1 << 16];
static int task_out, task_err, null_stdin;
static volatile int exec_errno;
static char stack[1 << 16];

static int task(void *unused) {
    (void)unused;
    if (null_stdin) {
        int null = open("/dev/null", O_RDONLY);
        if (null < 0 || dup2(null, 0) < 0) { exec_errno = errno; _exit(127); }
        if (null != 0) close(null);
    }
    if (dup2(task_out, 1) < 0 || dup2(task_err, 2) < 0 || setsid() < 0) { exec_errno = errno; _exit(127); }
    execve(arguments[0], arguments, environment);
    exec_errno = errno;
    _exit(127);
}

static int open_engine_fd(const char *engine, const char *fd) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%s/fd/%s", engine, fd);
    return open(path, O_WRONLY | O_CLOEXEC);
}

static char *next(char **field, char *end) {
    char *this = *field;
    if (this >= end) return NULL;
    *field += strlen(this) + 1;
    return this;
}

int main(int argc, char **argv) {
    size_t length;
    int fd;
    if (argc != 2) return 2;
    while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= 2) {}  /* 0, 1 and 2 taken: never a task's pipe */
    if (fd > 2) close(fd);
    if (fcntl(3, F_SETFD, FD_CLOEXEC) < 0 || fcntl(4, F_SETFD, FD_CLOEXEC) < 0) return 2;
    FILE *in = fdopen(3, "r");
    while (in && fscanf(in, "%zu", &length) == 1 && fgetc(in) == '\n') {
        if (length >= sizeof request || fread(request, 1, length, in) != length) return 1;
        request[length] = 0;
        char *field = request, *end = request + length, *out = next(&field, end), *err = next(&field, end);
        char *null = next(&field, end), *count_text = next(&field, end);
        if (!count_text) return 1;
        null_stdin = atoi(null);
        long count = atol(count_text), i;
        for (i = 0; i < count && i < (1 << 16) - 1; i++) arguments[i] = next(&field, end);
        arguments[i] = NULL;
        for (i = 0; field < end && i < (1 << 16) - 1; i++) environment[i] = next(&field, end);
        environment[i] = NULL;
        int pid = 0, error = 0;
        exec_errno = 0;
        task_out = open_engine_fd(argv[1], out);
        task_err = open_engine_fd(argv[1], err);
        if (task_out < 0 || task_err < 0 || !arguments[0]) {
            error = task_out < 0 || task_err < 0 ? errno : EINVAL;
        } else {
            pid = clone(task, stack + sizeof stack, CLONE_VM | CLONE_VFORK | CLONE_PARENT | SIGCHLD, NULL);
            error = pid < 0 ? errno : exec_errno;
            if (pid < 0) pid = 0;
        }
        if (task_out >= 0) close(task_out);
        if (task_err >= 0) close(task_err);
        if (dprintf(4, "%d %d\n", pid, error) < 0) return 1;
    }
    return 0;
}
"""


class LauncherGone(Exception):
    """The launcher exited (or answered nonsense): the engine starts another, or makes its tasks itself."""


def _cache_directory() -> str:
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'disbatch')


def _libc_version() -> str:
    try:
        return os.confstr('CS_GNU_LIBC_VERSION') or 'libc'
    except (ValueError, OSError):  # not glibc
        return 'libc'


def launcher_program() -> str | None:
    """The compiled launcher (built now when it is not in the cache), or None when it cannot be built here."""
    digest = f'{zlib.crc32(SOURCE.encode()):08x}'  # a cache key, not a check: the cache is the user's own
    libc = _libc_version().replace(' ', '-')  # built against one C library, run against that one
    program = os.path.join(_cache_directory(), f'task-launcher-{os.uname().machine}-{libc}-{digest}')
    if os.access(program, os.X_OK):
        if _ours_alone(program) and _ours_alone(os.path.dirname(program)):
            return program
        log.warning('not running the task launcher %s: it or its directory is not yours alone', program)
        return None
    try:
        os.makedirs(os.path.dirname(program), mode=0o700, exist_ok=True)
        if not _ours_alone(os.path.dirname(program)):
            log.warning('no task launcher: %s is not yours alone: tasks are made by the engine', _cache_directory())
            return None
        descriptor, building = tempfile.mkstemp(dir=os.path.dirname(program), prefix='.building-')
        os.close(descriptor)
    except OSError as error:
        log.info('no task launcher (cache %s: %s): tasks are made by the engine', _cache_directory(), error.strerror)
        return None
    import subprocess  # only to build it: an engine's start-up stays light

    try:
        subprocess.run(
            ['cc', '-O2', '-x', 'c', '-o', building, '-'],
            input=SOURCE.encode(),
            capture_output=True,
            timeout=COMPILE_TIMEOUT_SECONDS,
            check=True,
        )
        os.chmod(building, 0o755)
        os.replace(building, program)  # atomic: engines building it at once on a shared home each get a whole one
    except (OSError, subprocess.SubprocessError) as error:
        log.info('no task launcher (cannot compile it: %s): tasks are made by the engine', error)
        with contextlib.suppress(OSError):
            os.unlink(building)
        return None
    return program


def _ours_alone(path: str) -> bool:
    """Whether `path` is the user's and no one else may write it: a program another user could have put or changed
    in the cache (a shared `XDG_CACHE_HOME`) is never run."""
    try:
        status = os.stat(path)
    except OSError:
        return False
    return status.st_uid == os.getuid() and not status.st_mode & 0o022


def _encode(text: str) -> bytes:
    encoded = text.encode('utf-8', 'surrogateescape')
    if b'\0' in encoded:
        raise ValueError('embedded null byte')
    return encoded


def _high(fd: int) -> int:
    import fcntl

    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, HIGH_FD)
    os.close(fd)
    return moved


class Launcher:
    """One running launcher. `start` one; `spawn` tasks through it; `close` it when the engine leaves."""

    def __init__(self, program: str) -> None:
        request_read, self._request = os.pipe()
        self._reply, reply_write = os.pipe()
        request_read, reply_write = _high(request_read), _high(reply_write)
        try:
            self.pid = os.posix_spawn(
                program,
                [program, str(os.getpid())],
                {},
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, request_read, REQUEST_FD),
                    (os.POSIX_SPAWN_DUP2, reply_write, REPLY_FD),
                ],
                setsid=True,  # not in the terminal's foreground group: Ctrl-C reaches the engine, which decides
                setsigdef=DEFAULT_SIGNALS,  # inherited by every task it makes
            )
        except BaseException:
            for fd in (self._request, self._reply):
                os.close(fd)
            raise
        finally:
            os.close(request_read)
            os.close(reply_write)
        self._buffer = b''

    @classmethod
    def start(cls, program: str | None) -> Launcher | None:
        if program is None:
            return None
        try:
            return cls(program)
        except OSError as error:
            log.warning('cannot start the task launcher %s: %s; tasks are made by the engine', program, error)
            return None

    def spawn(
        self, arguments: list[str], environment: dict[str, str], out_fd: int, err_fd: int, null_stdin: bool
    ) -> int:
        """Make a task (`arguments[0]` executed with `environment`, stdout/stderr on these fds of the engine, its own
        session); its pid. OSError when it could not be made (its errno); LauncherGone when the launcher is."""
        fields = [str(out_fd), str(err_fd), '1' if null_stdin else '0', str(len(arguments))]
        payload = b'\0'.join(
            [*(field.encode() for field in fields), *map(_encode, arguments)]
            + [_encode(f'{key}={value}') for key, value in environment.items()]
        )
        try:
            os.write(self._request, b'%d\n' % (len(payload) + 1) + payload + b'\0')
        except BrokenPipeError as broken:
            raise LauncherGone('the task launcher has exited') from broken
        while b'\n' not in self._buffer:
            chunk = os.read(self._reply, 64)
            if not chunk:
                raise LauncherGone('the task launcher has exited')
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b'\n')
        try:
            pid, errno = map(int, line.split())
        except ValueError as malformed:
            raise LauncherGone(f'the task launcher answered {line!r}') from malformed
        if errno:
            if pid > 0:
                os.waitpid(pid, 0)  # the engine's child (CLONE_PARENT): it exited 127 at once
            raise OSError(errno, os.strerror(errno))
        return pid

    def close(self) -> None:
        """End the launcher (its requests' end) and reap it."""
        with contextlib.suppress(OSError):
            os.close(self._request)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        with contextlib.suppress(OSError):
            os.close(self._reply)
