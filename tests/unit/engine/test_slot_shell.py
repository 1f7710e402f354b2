"""The slot shell of --fork-tasks: which tasks may be forked, the script a task's subshell sources, `times` read in
seconds, and one real slot shell forking tasks (its replies, a task's status and pipes, its death)."""

from __future__ import annotations

import os
import signal

import pytest

from disbatch.engine.slot_shell import (
    FORK_COMMAND_BYTES,
    ForkedTask,
    SlotShell,
    SlotShellGone,
    _seconds,
    can_fork,
    task_script,
)


def test_which_tasks_are_forked() -> None:
    assert can_fork('echo hi', '', {'DISBATCH_TASKID': '3'})
    assert not can_fork('echo hi', 'START', {})  # PERENGINE tasks run as by default
    assert not can_fork('x' * (FORK_COMMAND_BYTES + 1), '', {})  # over ~2 KB: bash -c
    assert can_fork('x' * FORK_COMMAND_BYTES, '', {})
    assert not can_fork('echo hi', '', {'NOT A NAME': '1'})


def test_the_script_unsets_the_loop_and_exports_the_task_variables() -> None:
    script = task_script('echo "$A"', {'DISBATCH_TASKID': '7', 'A': "it's"}).decode()
    assert script.splitlines() == [
        'exec 7<&-',
        'unset -v _dbo _dbe _dbs _dbp',
        'export DISBATCH_TASKID=7',
        "export A='it'\"'\"'s'",
        'echo "$A"',
    ]


@pytest.mark.parametrize(('text', 'seconds'), [('0m0.004s', 0.004), ('2m1.500s', 121.5), ('0m0,250s', None)])
def test_times_are_read_in_seconds(text: str, seconds: float | None) -> None:
    if seconds is None:
        with pytest.raises(ValueError):
            _seconds(text)
    else:
        assert _seconds(text) == pytest.approx(seconds)


def test_a_real_slot_shell_forks_tasks_in_their_own_groups() -> None:
    shell = SlotShell({'PATH': os.environ.get('PATH', '/usr/bin:/bin')}, null_stdin=True)
    try:
        task = ForkedTask.fork(shell, 'echo "$$ $BASHPID $(ps -o pgid= $BASHPID)"; exit 3', {'X': '1'}, None)
        outcome = task.reap()
        assert outcome.return_code == 3
        shell_pid, own, group = outcome.out_snippet.strip("'").removesuffix('\\n').split()
        assert (int(shell_pid), int(own), int(group)) == (shell.pid, task.pid, task.pid)
        assert outcome.usage is not None and outcome.usage.max_rss_bytes is None
        killed = ForkedTask.fork(shell, 'sleep 30', {}, None)
        killed.signal_group(signal.SIGTERM)
        assert killed.reap().return_code == -signal.SIGTERM  # a signal the engine sent: minus its number
        own_death = ForkedTask.fork(shell, 'kill -USR1 $BASHPID', {}, None)
        assert own_death.reap().return_code == 128 + signal.SIGUSR1
        lost = ForkedTask.fork(shell, 'kill -9 $$; sleep 30', {}, None)
        outcome = lost.reap()
        assert lost.lost and outcome.is_unreported
        with pytest.raises(SlotShellGone):
            ForkedTask.fork(shell, 'true', {}, None)
    finally:
        shell.close(kill=True)
