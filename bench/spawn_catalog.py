"""The spawners `python -m bench.spawners` compares, by key, with what each one means for a task."""

from __future__ import annotations

import shutil

from bench.spawn_base import BASH, Spawner
from bench.spawn_exec import ExecSpawner, ToolSpawner, popen_starter, posix_spawn_starter
from bench.spawn_fork import SlotShellSpawner

XARGS = ('xargs', '-P', '{slots}', '-d', '\\n', '-n', '1', '-a', '{tasks}')


def all_spawners() -> list[Spawner]:
    return [
        ToolSpawner(
            'xargs-sh',
            'floor: `xargs -P P -d "\\n" -n 1 -a TASKS /bin/sh -c` (dash)',
            argv=(*XARGS, '/bin/sh', '-c'),
            per_task_status=False,
        ),
        ToolSpawner(
            'xargs-bash', 'floor: the same with `/bin/bash -c`', argv=(*XARGS, BASH, '-c'), per_task_status=False
        ),
        ToolSpawner(
            'parallel',
            'GNU parallel: `parallel --will-cite -j P -a TASKS`, PARALLEL_SHELL=/bin/bash',
            argv=('parallel', '--will-cite', '-j', '{slots}', '-a', '{tasks}'),
            per_task_status=False,
        ),
        ExecSpawner(
            'spawn',
            'what the engine does: os.posix_spawn of `/bin/bash -c CMD` per task, setsid, SIGPIPE and SIGXFSZ '
            'back to default (setsigdef), per-task environment, stdout/stderr pipes, pidfd + epoll, wait4',
            own_group=True,
            task_variables=True,
            starter=posix_spawn_starter(),
        ),
        ExecSpawner(
            'spawn-sigign',
            '`spawn` without setsigdef (the engine before its SIGPIPE fix): tasks inherit SIGPIPE and SIGXFSZ ignored',
            own_group=True,
            task_variables=True,
            starter=posix_spawn_starter(default_signals=False),
        ),
        ExecSpawner(
            'spawn-pgroup',
            '`spawn` with setpgroup=0 (a process group of its own, not a session)',
            own_group=True,
            task_variables=True,
            starter=posix_spawn_starter(session=False),
        ),
        ExecSpawner(
            'spawn-norc',
            '`spawn` of `/bin/bash --norc --noprofile -c CMD`, BASH_ENV left out of the environment',
            own_group=True,
            task_variables=True,
            starter=posix_spawn_starter(),
            bash_flags=('--norc', '--noprofile'),
            drop=('BASH_ENV',),
        ),
        ExecSpawner(
            'popen',
            '`spawn` through subprocess.Popen(close_fds=False, start_new_session=True) (its vfork path)',
            own_group=True,
            task_variables=True,
            starter=popen_starter,
        ),
        SlotShellSpawner(
            'fork',
            'one bash per slot reads commands from a pipe, runs each as `( eval "$cmd" )`, reports $?: the task '
            "shares the slot shell's process group, stdout and stderr; no per-task variables",
            signal_status=128,
            protocol='plain',
        ),
        SlotShellSpawner(
            'fork-pgrp',
            '`fork` with `set -m`: each task a background job in a process group of its own, waited for; '
            'reports its PID at the start',
            own_group=True,
            signal_status=128,
            protocol='group',
        ),
        SlotShellSpawner(
            'fork-engine',
            '`fork-pgrp` plus what the engine gives a task: per-task DISBATCH_* variables (exported in the '
            'subshell) and stdout/stderr on per-task pipes (the slot shell opens /proc/PARENT/fd/N)',
            own_group=True,
            task_variables=True,
            signal_status=128,
            protocol='engine',
        ),
    ]


def catalog(keys: str | None, *, parallel: bool) -> tuple[list[Spawner], list[str]]:
    """The spawners asked for (comma-separated keys; None: all) that can run here, and notes on the others."""
    spawners = all_spawners()
    known = [spawner.key for spawner in spawners]
    wanted = known if keys is None else [key.strip() for key in keys.split(',') if key.strip()]
    notes = [f'unknown spawner {key!r} (known: {", ".join(known)})' for key in wanted if key not in known]
    chosen = [spawner for spawner in spawners if spawner.key in wanted]
    if not parallel:
        chosen = [spawner for spawner in chosen if spawner.key != 'parallel']
    for tool in ('xargs', 'parallel'):
        if shutil.which(tool) is None and any(spawner.key.startswith(tool) for spawner in chosen):
            notes.append(f'{tool} not on PATH: left out')
            chosen = [spawner for spawner in chosen if not spawner.key.startswith(tool)]
    return chosen, notes
