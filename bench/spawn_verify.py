"""Before a spawner is timed: does it really run every task, and land each status (and output) on its own task?

The check batch: task i runs `echo task-I; exit i % 7` (I = $DISBATCH_TASKID for spawners that set the per-task
variables, so those are checked too). For spawners that claim a process group per task, one task runs
`kill -TERM 0` (a kill of its own group, as the engine kills a task): it must end by SIGTERM and nothing else
may (the tasks after it on the same slot still run).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from bench.spawn_base import Batch, RunFailed, Spawner

CHECK_TASKS = 30
KILLED = 10  # the index of the task that kills its own process group
CHECK_TIMEOUT = 60


def check_batch(spawner: Spawner, slots: int, scratch: Path) -> tuple[Batch, list[int], list[str]]:
    """The batch, the expected statuses and the expected stdout of each task ('' for the killing one)."""
    commands, statuses, outputs = [], [], []
    for index in range(CHECK_TASKS):
        if index == KILLED and spawner.own_group:
            commands.append('kill -TERM 0; sleep 5')
            statuses.append(-signal.SIGTERM if spawner.signal_status < 0 else 128 + signal.SIGTERM)
            outputs.append('')
            continue
        name = '$DISBATCH_TASKID' if spawner.task_variables else str(index)
        commands.append(f'echo task-{name}; exit {index % 7}')
        statuses.append(index % 7)
        outputs.append(f'task-{index}\n')
    return Batch(tuple(commands), slots, time.monotonic() + CHECK_TIMEOUT, scratch, capture=True), statuses, outputs


def verify(spawner: Spawner, slots: int, scratch: Path) -> list[str]:
    """What is wrong with `spawner` at `slots` slots (empty: nothing)."""
    batch, statuses, outputs = check_batch(spawner, slots, scratch)
    try:
        collected = spawner.run(batch)
    except (RunFailed, OSError) as error:
        return [f'{slots} slots: the check batch did not run: {error}']
    problems = []
    if len(collected.statuses) != len(statuses):
        problems.append(f'{slots} slots: {len(collected.statuses)} statuses for {len(statuses)} tasks')
    elif spawner.per_task_status:
        wrong = [
            (index, got)
            for index, (got, want) in enumerate(zip(collected.statuses, statuses, strict=True))
            if got != want
        ]
        if wrong:
            problems.append(f'{slots} slots: wrong statuses (task, status): {wrong[:5]}; expected {statuses[:8]}…')
    elif collected.exit_code in (0, None):
        problems.append(f'{slots} slots: exit code {collected.exit_code}, though tasks exited non-zero')
    if collected.stdout is not None:
        wrong_outputs = [index for index, text in enumerate(outputs) if collected.stdout[index] != text.encode()]
        if wrong_outputs:
            problems.append(f'{slots} slots: wrong stdout of tasks {wrong_outputs[:5]}')
    elif collected.shared_stdout is not None:
        lines = sorted(collected.shared_stdout.decode(errors='replace').splitlines(keepends=True))
        if lines != sorted(text for text in outputs if text):
            problems.append(f'{slots} slots: stdout of the tasks together is not one line per task: {lines[:5]}')
    else:
        problems.append(f'{slots} slots: nothing captured of stdout')
    return problems


def sigpipe_in_tasks(spawner: Spawner, scratch: Path) -> str:
    """'default' when a task's writer to a closed pipe dies of SIGPIPE (as under a shell, xargs or
    subprocess.Popen), 'ignored' when it gets EPIPE instead (the signal stayed ignored from Python), else '?'."""
    probe = 'seq 100000 | head -1 >/dev/null; echo "pipe ${PIPESTATUS[0]}"'
    batch = Batch((probe,), 1, time.monotonic() + CHECK_TIMEOUT, scratch, capture=True)
    try:
        collected = spawner.run(batch)
    except (RunFailed, OSError):
        return '?'
    output = collected.stdout[0] if collected.stdout is not None else collected.shared_stdout or b''
    return {b'pipe 141\n': 'default', b'pipe 1\n': 'ignored'}.get(output, '?')
