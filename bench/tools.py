"""The tools compared, how each is started on a task file, and making them available.

* ours-fork: the same with `--fork-tasks` (a long-lived bash per slot forks each task), beside it in every
  workload.
* ours: `python -m disbatch -s localhost:N -p OUTDIR/ TASKFILE`, as a user runs it: this checkout `pip install`ed (not
  editable) into a venv of its own under the user's cache directory, reinstalled at every bench run. (An editable
  install, as in the development venv, costs every Python process of a run ~15 ms for its import hook.) With
  --ours-from-checkout: the checkout itself with this interpreter (PYTHONPATH = repo root).
* xargs (bash): `xargs -P N -d '\\n' -n 1 /bin/bash -c < TASKFILE` — one `bash -c LINE` per line, the same work
  per task as ours (our tasks run under bash, as the reference's do).
* xargs (sh): the same with `/bin/sh -c` (dash on Debian, ~2x cheaper to start than bash): the floor SPEC §5's
  "share of the xargs rate" targets are judged against.
* parallel: `parallel -j N -a TASKFILE` (GNU parallel runs each line through a shell; PARALLEL_SHELL=/bin/bash).
  Installed with apt-get when missing and we are root.
* hyperqueue, hypershell: see bench/peers.py (installed from PyPI into a venv of their own).
* reference: disbatch 3.0 from PyPI, in its own venv under the user's cache directory, only with --reference.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import platform
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.measure import Invocation, probe

REFERENCE_REQUIREMENT = 'disbatch==3.0'
HYPERQUEUE_JOB = Path(__file__).resolve().with_name('hyperqueue_job.py')


class ToolKind(enum.Enum):
    OURS = 'ours'
    OURS_FORK = 'ours-fork'  # ours with --fork-tasks: a long-lived bash per slot forks each task
    XARGS = 'xargs'  # bash -c
    XARGS_SH = 'xargs-sh'  # sh -c: the floor of the share targets
    PARALLEL = 'parallel'
    HYPERQUEUE = 'hyperqueue'
    HYPERSHELL = 'hypershell'
    REFERENCE = 'reference'


OURS_KINDS = (ToolKind.OURS, ToolKind.OURS_FORK)  # ours in its two modes: exec per task (default), --fork-tasks


@dataclass(frozen=True)
class Tool:
    kind: ToolKind
    label: str  # as the tables print it
    version: str
    python: str = ''  # the interpreter that runs `-m disbatch` (ours and reference)
    task_cap: int | None = None  # runs at most this many tasks of a workload (the slow reference)
    pythonpath: str = ''  # the PYTHONPATH ours needs: the checkout when it runs from there, else none

    @property
    def writes_status(self) -> bool:
        return self.kind in (ToolKind.OURS, ToolKind.OURS_FORK, ToolKind.REFERENCE)

    def invocation(self, task_file: Path, slots: int, output_directory: Path) -> Invocation:
        argv: tuple[str, ...]
        if self.kind in (ToolKind.XARGS, ToolKind.XARGS_SH):
            shell = '/bin/bash' if self.kind is ToolKind.XARGS else '/bin/sh'
            argv = ('xargs', '-P', str(slots), '-d', '\n', '-n', '1', shell, '-c')
            return Invocation(argv, base_environment(), stdin=task_file)
        if self.kind is ToolKind.HYPERQUEUE:
            server = output_directory / 'hq-server'
            argv = (self.python, str(HYPERQUEUE_JOB), str(task_file), str(slots), str(server))
            return Invocation(argv, base_environment())
        if self.kind is ToolKind.HYPERSHELL:
            hs = str(Path(self.python).with_name('hs'))
            argv = (hs, 'cluster', str(task_file), '-N', str(slots), '--no-db', '--no-confirm', '-b', '16', '-w', '1')
            return Invocation((*argv, '-p', str(free_port())), base_environment())
        if self.kind is ToolKind.PARALLEL:
            argv = ('parallel', '--will-cite', '-j', str(slots), '-a', str(task_file))
            return Invocation(argv, {**base_environment(), 'PARALLEL_SHELL': '/bin/bash'})
        argv = (self.python, '-m', 'disbatch', '-s', f'localhost:{slots}', '-p', f'{output_directory}/', str(task_file))
        if self.kind is ToolKind.OURS_FORK:
            argv = (*argv[:3], '--fork-tasks', *argv[3:])
        if self.kind in OURS_KINDS:
            return Invocation(argv, ours_environment(self))
        return Invocation(argv, base_environment())


def base_environment() -> dict[str, str]:
    """This process's environment without DISBATCH_* and PYTHONPATH, so no run sees another's settings or code."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith('DISBATCH_') and name not in ('PYTHONPATH', 'PYTHONSTARTUP')
    }


def ours_environment(tool: Tool) -> dict[str, str]:
    if not tool.pythonpath:
        return base_environment()
    return {**base_environment(), 'PYTHONPATH': tool.pythonpath}


def find_ours(repo_root: Path, scratch: Path, cache: Path | None) -> tuple[Tool | None, str]:
    """Ours installed from this checkout into `cache`/ours (None: the checkout with this interpreter), if
    `python -m disbatch --version` works; else (None, why)."""
    python, pythonpath = sys.executable, str(repo_root)
    if cache is not None:
        pythonpath = ''
        venv = cache / 'ours'
        python = str(venv / 'bin' / 'python')
        pip = [python, '-m', 'pip', 'install', '--quiet']
        if not Path(python).exists():  # a new venv, with ours and its dependencies
            steps = [[sys.executable, '-m', 'venv', str(venv)], [*pip, str(repo_root)]]
        else:  # this checkout's code over the last one's (remove the venv when the dependencies change)
            steps = [[*pip, '--no-deps', '--force-reinstall', str(repo_root)]]
        for step in steps:
            ok, output = probe(step, cwd=scratch, env=base_environment(), timeout=900)
            if not ok:
                return None, f'ours skipped: `{" ".join(step)}` failed: {last_line(output)}'
    tool = Tool(ToolKind.OURS, 'ours', '', python=python, pythonpath=pythonpath)
    ok, output = probe([python, '-m', 'disbatch', '--version'], cwd=scratch, env=ours_environment(tool))
    if not ok:
        return None, f'ours skipped: `python -m disbatch --version` failed: {last_line(output)}'
    installed = ' (pip-installed in a venv of its own)' if cache is not None else ' (from the checkout)'
    return dataclasses.replace(tool, version=last_line(output) + installed), ''


def find_xargs(scratch: Path, kind: ToolKind) -> tuple[Tool | None, str]:
    """xargs -P running each line with bash (ToolKind.XARGS) or sh (ToolKind.XARGS_SH)."""
    if shutil.which('xargs') is None:
        return None, 'xargs skipped: not on PATH'
    _, output = probe(['xargs', '--version'], cwd=scratch, env=base_environment())
    label = 'xargs -P bash' if kind is ToolKind.XARGS else 'xargs -P sh'
    return Tool(kind, label, output.splitlines()[0] if output else 'xargs'), ''


def find_parallel(scratch: Path, install: bool) -> tuple[Tool | None, str]:
    """GNU parallel; installs it with apt-get when missing, allowed (`install`) and we are root."""
    note = ''
    if shutil.which('parallel') is None:
        if not install:
            return None, 'GNU parallel skipped: not on PATH (--no-install)'
        if os.geteuid() != 0:
            return None, 'GNU parallel skipped: not on PATH and not root, so not installed'
        note = _apt_install('parallel', scratch)
        if shutil.which('parallel') is None:
            return None, f'GNU parallel skipped: apt-get install failed: {note}'
        note = 'GNU parallel installed with apt-get'
    ok, output = probe(['parallel', '--version'], cwd=scratch, env=base_environment())
    first = output.splitlines()[0] if output else ''
    if not ok or not first.startswith('GNU parallel'):
        return None, f'parallel skipped: `parallel` on PATH is not GNU parallel ({first!r})'
    return Tool(ToolKind.PARALLEL, 'GNU parallel', first), note


def _apt_install(package: str, scratch: Path) -> str:
    environment = {**base_environment(), 'DEBIAN_FRONTEND': 'noninteractive'}
    install = ['apt-get', 'install', '-y', '--no-install-recommends', package]
    ok, output = probe(install, cwd=scratch, env=environment, timeout=600)
    if not ok:  # the package lists may be missing or stale: update them once and try again
        probe(['apt-get', 'update'], cwd=scratch, env=environment, timeout=600)
        ok, output = probe(install, cwd=scratch, env=environment, timeout=600)
    return '' if ok else last_line(output)


def find_reference(cache: Path, scratch: Path, task_cap: int) -> tuple[Tool | None, str]:
    """disbatch 3.0 in a venv of its own (created and pip-installed on first use)."""
    venv = cache / 'reference-disbatch-3.0'
    python = venv / 'bin' / 'python'
    environment = base_environment()
    if not python.exists():
        steps = [
            [sys.executable, '-m', 'venv', str(venv)],
            [str(python), '-m', 'pip', 'install', '--quiet', REFERENCE_REQUIREMENT],
        ]
        for step in steps:
            ok, output = probe(step, cwd=scratch, env=environment, timeout=900)
            if not ok:
                shutil.rmtree(venv, ignore_errors=True)
                return None, f'reference skipped: `{" ".join(step)}` failed: {last_line(output)}'
    ok, output = probe([str(python), '-m', 'disbatch', '--version'], cwd=scratch, env=environment)
    if not ok:
        return None, f'reference skipped: its --version failed: {last_line(output)}'
    label = 'disbatch 3.0'
    return Tool(ToolKind.REFERENCE, label, last_line(output), python=str(python), task_cap=task_cap), ''


def default_cache() -> Path:
    return Path(os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache') / 'disbatch-bench'


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else '(no output)'


def free_port() -> int:
    """A TCP port free on loopback right now (HyperShell's server needs one per run)."""
    with socket.socket() as probe_socket:
        probe_socket.bind(('127.0.0.1', 0))
        port: int = probe_socket.getsockname()[1]
        return port


def run_quietly(argv: list[str], cwd: Path) -> str:
    """Output of a read-only helper command (e.g. `git rev-parse`), or '' if it fails."""
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ''
    return done.stdout.strip() if done.returncode == 0 else ''


def machine_parts(repo: Path) -> list[str]:
    """What every results entry says of the machine: cores, Python, kernel, load, the checkout's revision."""
    load = ' '.join(f'{value:.2f}' for value in os.getloadavg())
    parts = [
        f'nproc {len(os.sched_getaffinity(0))}',
        f'Python {platform.python_version()}',
        platform.platform(terse=True),
        f'load {load} at start',
    ]
    revision = run_quietly(['git', 'rev-parse', '--short', 'HEAD'], repo)
    if revision:
        parts.append(f'repo at {revision} (+ uncommitted changes, if any)')
    return parts
