"""What a task's peak memory reads, and what measuring it truly costs: `python -m bench.spawn_memory` (issue 28).

An engine starts each task with `posix_spawn` (vfork, then exec). Linux records the high-water mark of the memory
the process had before exec (the engine's, shared by vfork) into the task's `ru_maxrss`: every task reads at least
the engine's size. Only a process forked from a small one starts with a small mark. This study runs N tasks one
after the other (an engine's slot, without the rest of the engine) through three spawners, from a Python process
made as big as an engine (`--ballast`), and prints, per spawner, the `ru_maxrss` that `wait4` gives for the tasks
and the CPU they cost (the spawner's process, its helpers and the tasks, all reaped: user + system per task):

* `exec` — today's path: `posix_spawn(/bin/bash -c CMD)` in a session of its own, pipes for stdout and stderr.
* `bash-launcher` — a long-lived bash per engine is the task's grandparent: per task it sources a request (a
  memfd), opens the task's pipes through `/proc/<engine>/fd/N`, forks a subshell that forks the task and exits, so
  the task is re-parented to the engine (a child subreaper), which `wait4`s it. The task waits, on a pipe held
  by the launcher until it has reaped the subshell, before it execs: else the subshell's SIGCHLD handler can reap
  a task that ends first, and its usage is lost (seen in this study). Its own process group (`set -m`), not a
  session (bash has no `setsid`; the `setsid` program would cost another exec).
* `perl-launcher` — a long-lived perl per engine makes the task with `clone(CLONE_PARENT)`: the engine is its
  parent from the start, one fork per task, its own session (`setsid`). x86-64 system call numbers only.
* `c-launcher` — `spawn_launcher.c`, compiled with `cc` into a temporary directory (left out without `cc`): the
  perl launcher's protocol, but the task is made with `clone(CLONE_VM | CLONE_VFORK | CLONE_PARENT)`: no copy of
  anything, as the engine's `posix_spawn`, from a process of a few hundred KiB.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import os
import platform
import resource
import select
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

BASH = '/bin/bash'
PERL = shutil.which('perl') or '/usr/bin/perl'
DEFAULT_SIGNALS = (13, 25)  # SIGPIPE, SIGXFSZ
PR_SET_CHILD_SUBREAPER = 36
HIGH_FD = 100  # where a helper's descriptors wait before they are moved to their numbers (no collision)

BASH_LAUNCHER = """
exec 5<&0 0</dev/null
while read -r -u 5 _; do . /dev/fd/6; done
"""
BASH_REQUEST = (
    'exec 8</proc/{engine}/fd/{sync_read} 9>/proc/{engine}/fd/{sync_write}; '
    '( set -m; exec 1>/proc/{engine}/fd/{out} 2>/proc/{engine}/fd/{err}; '
    '{{ exec 9>&-; read -u 8; exec 8<&-; exec {bash} -c {command} 5<&- 6<&- 7>&-; }} & echo $! >&7 ); '
    'exec 8<&- 9>&-\n'
)
PERL_LAUNCHER = r"""
use strict;
my ($engine) = @ARGV;
open(my $reply, '>&=', 3) or die;
select((select($reply), $| = 1)[0]);
binmode STDIN;
while (defined(my $header = <STDIN>)) {
    my $length = int($header);
    my $request = '';
    while (length($request) < $length) {
        read(STDIN, $request, $length - length($request), length($request)) or exit 0;
    }
    my ($out, $err, $argc, @rest) = split /\0/, $request, -1;
    my @argv = splice(@rest, 0, $argc);
    open(my $o, '>', "/proc/$engine/fd/$out") or die;
    open(my $e, '>', "/proc/$engine/fd/$err") or die;
    my $pid = syscall(56, 0x8000 | 17, 0, 0, 0, 0);  # clone(CLONE_PARENT | SIGCHLD)
    if ($pid == 0) {
        open(STDOUT, '>&', $o); open(STDERR, '>&', $e);
        syscall(112);  # setsid
        while (@rest) { my ($k, $v) = split /=/, shift(@rest), 2; $ENV{$k} = $v; }
        exec { $argv[0] } @argv;
        exit 127;
    }
    close $o; close $e;
    print $reply "$pid\n";
}
"""

Spawn = Callable[[str], tuple[int, int, int]]  # command -> (pid, stdout pipe, stderr pipe)


def high(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, HIGH_FD)
    os.close(fd)
    return moved


def read_line(fd: int) -> bytes:
    line = b''
    while not line.endswith(b'\n'):
        chunk = os.read(fd, 64)
        if not chunk:
            raise RuntimeError('the launcher died')
        line += chunk
    return line


def spawn_exec(command: str) -> tuple[int, int, int]:
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    pid = os.posix_spawn(
        BASH,
        [BASH, '-c', command],
        dict(os.environ),
        file_actions=[(os.POSIX_SPAWN_DUP2, out_write, 1), (os.POSIX_SPAWN_DUP2, err_write, 2)],
        setsid=True,
        setsigdef=DEFAULT_SIGNALS,
    )
    os.close(out_write)
    os.close(err_write)
    return pid, out_read, err_read


class Launcher:
    """A long-lived helper process that makes the tasks (bash or perl, as above)."""

    def __init__(self, kind: str, program: str = '') -> None:
        self.kind = kind
        request_read, self.request_write = os.pipe()
        self.reply_read, reply_write = os.pipe()
        request_read, reply_write = high(request_read), high(reply_write)
        actions: list[tuple[int, int, int]] = [
            (os.POSIX_SPAWN_DUP2, request_read, 0),
            (os.POSIX_SPAWN_DUP2, reply_write, 7 if kind == 'bash' else 3),
        ]
        self.memfd = -1
        if kind == 'perl':
            arguments = [PERL, '-e', PERL_LAUNCHER, str(os.getpid())]
        elif kind == 'c':
            arguments = [program, str(os.getpid())]
        else:
            self.memfd = os.memfd_create('request', os.MFD_CLOEXEC)
            moved = fcntl.fcntl(self.memfd, fcntl.F_DUPFD_CLOEXEC, HIGH_FD)
            actions.append((os.POSIX_SPAWN_DUP2, moved, 6))
            arguments = [BASH, '-c', BASH_LAUNCHER]
        self.pid = os.posix_spawn(
            arguments[0], arguments, dict(os.environ), file_actions=actions, setsid=True, setsigdef=DEFAULT_SIGNALS
        )
        os.close(request_read)
        os.close(reply_write)
        if kind == 'bash':
            os.close(moved)

    def spawn(self, command: str) -> tuple[int, int, int]:
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        held = [out_write, err_write]
        if self.kind != 'bash':
            fields = [str(out_write), str(err_write), '3', BASH, '-c', command, 'DISBATCH_TASKID=1']
            payload = '\0'.join(fields).encode()
            os.write(self.request_write, b'%d\n' % len(payload) + payload)
        else:
            sync_read, sync_write = os.pipe()
            held += [sync_read, sync_write]
            request = BASH_REQUEST.format(
                engine=os.getpid(), out=out_write, err=err_write, sync_read=sync_read, sync_write=sync_write,
                bash=BASH, command=shlex.quote(command),
            )  # fmt: skip
            os.ftruncate(self.memfd, 0)
            os.pwrite(self.memfd, request.encode(), 0)
            os.write(self.request_write, b'\n')
        pid = int(read_line(self.reply_read))
        for fd in held:
            os.close(fd)
        return pid, out_read, err_read

    def close(self) -> None:
        os.close(self.request_write)
        os.waitpid(self.pid, 0)
        os.close(self.reply_read)
        if self.memfd >= 0:
            os.close(self.memfd)


def run_tasks(spawn: Spawn, command: str, count: int) -> list[int]:
    """Run `command` `count` times, one after the other; the ru_maxrss (KiB) of each."""
    peaks = []
    for _ in range(count):
        pid, out_read, err_read = spawn(command)
        pidfd = os.pidfd_open(pid)
        for fd in (out_read, err_read):
            while os.read(fd, 65536):
                pass
        select.select([pidfd], [], [])
        _, _, usage = os.wait4(pid, 0)
        peaks.append(usage.ru_maxrss)
        for fd in (pidfd, out_read, err_read):
            os.close(fd)
    return peaks


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime


def compile_launcher(directory: str) -> str:
    """`spawn_launcher.c` compiled into `directory`, or '' without a working `cc`."""
    program = os.path.join(directory, 'spawn_launcher')
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'spawn_launcher.c')
    try:
        subprocess.run(['cc', '-O2', '-o', program, source], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return ''
    return program


def measure(kind: str, command: str, count: int, program: str) -> tuple[float, float, int]:
    """(CPU ms per task, wall ms per task, largest ru_maxrss KiB) of `count` runs of `command` through `kind`."""
    cpu, wall = cpu_seconds(), time.perf_counter()
    launcher = None if kind == 'exec' else Launcher(kind.split('-')[0], program)
    peaks = run_tasks(spawn_exec if launcher is None else launcher.spawn, command, count)
    if launcher is not None:
        launcher.close()  # its usage (and its subshells') is counted once it is reaped
    return (cpu_seconds() - cpu) / count * 1e3, (time.perf_counter() - wall) / count * 1e3, max(peaks)


def main() -> int:
    parser = argparse.ArgumentParser(prog='python -m bench.spawn_memory', description=__doc__.split('\n\n')[0])
    parser.add_argument('--tasks', type=int, default=200, help='tasks per measurement (default 200)')
    parser.add_argument('--reps', type=int, default=5, help='interleaved reps (default 5)')
    parser.add_argument('--ballast', type=int, default=20, help='MiB this process holds, as an engine (default 20)')
    options = parser.parse_args()
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    ballast = bytearray(options.ballast << 20)
    for offset in range(0, len(ballast), 4096):
        ballast[offset] = 1
    kinds = ['exec', 'bash-launcher']
    if platform.machine() == 'x86_64' and os.path.exists(PERL):
        kinds.append('perl-launcher')
    program = compile_launcher(tempfile.mkdtemp(prefix='spawn-memory-'))
    if program:
        kinds.append('c-launcher')
    print(f'peak memory (ru_maxrss, KiB) from a {options.ballast} MiB spawner:')
    probes = {'true': 'true', 'ls': 'ls /', '200 MB': 'python3 -c "b = bytearray(200_000_000)"'}
    for kind in kinds:
        peaks = {name: measure(kind, command, 3, program)[2] for name, command in probes.items()}
        print(f'  {kind:14}' + '  '.join(f'{name} {peak:,}' for name, peak in peaks.items()))
    results: dict[str, list[tuple[float, float, int]]] = {kind: [] for kind in kinds}
    for _ in range(options.reps):
        for kind in kinds:
            results[kind].append(measure(kind, 'true', options.tasks, program))
    base = statistics.median(cpu for cpu, _, _ in results['exec'])
    print(f'{options.tasks} x true, one at a time, {options.reps} interleaved reps, medians:')
    for kind in kinds:
        cpu = statistics.median(cpu for cpu, _, _ in results[kind])
        wall = statistics.median(wall for _, wall, _ in results[kind])
        print(f'  {kind:14} CPU {cpu:.3f} ms/task ({cpu / base:.0%} of exec)  wall {wall:.3f} ms/task')
    if program:
        shutil.rmtree(os.path.dirname(program))
    return 0


if __name__ == '__main__':
    sys.exit(main())
