"""`disbatch submit` and `disbatch.dispatch` on this machine: batch type Shell with the LazyLocal and Local contexts,
end to end through real disbatch runs (each job one), real bash and tar; the saved state, re-attaching, a job killed
mid-way, Ctrl-C, --status and --cancel, the dry run and the one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import Processes
from .submit_helpers import (
    TASKS,
    check_all_fetched,
    make_project,
    runs,
    saved_job_ids,
    saved_states,
    spawn_submit,
    submission_data,
    submit,
    task_command,
    wait_until,
    write_submission,
)

SHELL_LAZY = {'batch_type': 'Shell', 'context_type': 'LazyLocal'}

API_SCRIPT = """
import sys
from disbatch.dispatch import Machine, Resources, Submission, Task, TasksFailedError

local_root, remote_root, markers = sys.argv[1:4]
machine = Machine(batch_type='Shell', context_type='{context}', local_root=local_root, remote_root=remote_root)
resources = Resources(cpu_per_node=2, para_deg=2, group_size=3)
tasks = [
    Task(command={command}, task_work_path=f'run{{i}}/', forward_files=['conf'], backward_files=['result'],
         outlog='log', errlog='err')
    for i in range({tasks})
]
submission = Submission(work_base='md/', machine=machine, resources=resources, task_list=tasks,
                        forward_common_files=['graph.pb'], backward_common_files=[])
results = submission.run_submission(check_interval=0.5)
print(' '.join(f'{{result.index}}:{{result.state}}:{{result.job}}' for result in results))
"""


def run_api_script(procs: Processes, tmp_path: Path, context: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
    local_root = make_project(tmp_path)
    command = f"'echo run >> {tmp_path / 'markers'}/runs.' + str(i) + '; cat conf ../graph.pb; echo made-by-' + str(i) + ' > result; echo to-stderr >&2'"  # noqa: E501
    script = tmp_path / 'submit.py'
    script.write_text(API_SCRIPT.format(context=context, command=command, tasks=TASKS))
    arguments = [sys.executable, str(script), str(local_root), str(tmp_path / 'remote'), str(tmp_path / 'markers')]
    done = procs.run(arguments, cwd=tmp_path, env={'XDG_STATE_HOME': str(tmp_path / 'state')}, timeout=100)
    return local_root / 'md', done


@pytest.mark.timeout(120)
def test_python_api_shell_lazy_local_runs_every_task_in_place(procs: Processes, tmp_path: Path) -> None:
    work, done = run_api_script(procs, tmp_path, 'LazyLocal')
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [f'{i}:succeeded:{i // 3}' for i in range(TASKS)]
    check_all_fetched(work)
    assert [runs(tmp_path / 'markers', i) for i in range(TASKS)] == [1] * TASKS
    assert 'all 6 tasks succeeded' in done.stderr
    assert not list(work.glob('.disbatch_*')), 'the job files stay after success'
    assert saved_states(tmp_path / 'state') == [], 'the state of a finished submission stays'


@pytest.mark.timeout(120)
def test_python_api_shell_local_copies_forward_and_fetches_backward(procs: Processes, tmp_path: Path) -> None:
    work, done = run_api_script(procs, tmp_path, 'Local')
    assert done.returncode == 0, done.stderr
    check_all_fetched(work)
    assert list((tmp_path / 'remote').iterdir()) == [], 'the run directory stays under remote_root after success'


@pytest.mark.timeout(120)
def test_cli_keep_leaves_the_run_directory_with_the_forward_files(procs: Processes, tmp_path: Path) -> None:
    local_root = make_project(tmp_path)
    machine = {'batch_type': 'Shell', 'context_type': 'LocalContext', 'remote_root': str(tmp_path / 'remote')}
    path = write_submission(tmp_path, submission_data(local_root, tmp_path / 'markers', machine))
    done = submit(procs, tmp_path, tmp_path / 'state', str(path), '--check-interval', '0.5', '--keep')
    assert done.returncode == 0, done.stderr
    check_all_fetched(local_root / 'md')
    [run_directory] = (tmp_path / 'remote').iterdir()
    assert (run_directory / 'graph.pb').read_text() == 'graph\n'
    assert (run_directory / 'run4' / 'conf').read_text() == 'conf 4\n'
    jobs = sorted(path.name for path in next(run_directory.glob('.disbatch_*')).iterdir())
    assert 'job0.tasks' in jobs and 'job1.a1.sh' in jobs and 'job1.a1_status.txt' in jobs, jobs


@pytest.mark.timeout(60)
def test_dry_run_prints_scripts_and_files_and_touches_nothing(procs: Processes, tmp_path: Path) -> None:
    local_root = make_project(tmp_path)
    machine = {
        'batch_type': 'Slurm',
        'context_type': 'SSH',
        'remote_root': '/scratch/never',
        'remote_profile': {'hostname': 'no-such-host.invalid'},
    }
    path = write_submission(tmp_path, submission_data(local_root, tmp_path / 'markers', machine))
    done = submit(procs, tmp_path, tmp_path / 'state', str(path), '--dry-run')
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.count('#!/bin/bash') == 2 and out.count('#SBATCH --ntasks-per-node=2') == 2
    [submission] = [line.split()[2] for line in out.splitlines() if line.startswith('# submission ')]
    run_directory = f'/scratch/never/{submission}'
    assert f'disbatch --batch-system slurm -p {run_directory}/.disbatch_{submission[:12]}/job1.a1 -c 1 ' in out
    assert f'cd {run_directory}/run5 && ( echo run' in out
    for name in ('graph.pb', 'run0/conf', 'run5/conf', 'run5/result', 'run5/log', 'run5/err'):
        assert f'  {name}\n' in out, name
    assert not (tmp_path / 'state').exists()


@pytest.mark.timeout(60)
def test_missing_forward_file_one_line_nothing_submitted(procs: Processes, tmp_path: Path) -> None:
    local_root = make_project(tmp_path)
    (local_root / 'md' / 'run4' / 'conf').unlink()
    machine = {'batch_type': 'Shell', 'context_type': 'Local', 'remote_root': str(tmp_path / 'remote')}
    path = write_submission(tmp_path, submission_data(local_root, tmp_path / 'markers', machine))
    done = submit(procs, tmp_path, tmp_path / 'state', str(path))
    assert done.returncode == 1
    assert done.stderr == f'disbatch submit: forward file run4/conf (task 4) is missing in {local_root / "md"}\n'
    assert not (tmp_path / 'remote').exists()
    assert saved_states(tmp_path / 'state') == []


@pytest.mark.timeout(60)
def test_unknown_key_one_line(procs: Processes, tmp_path: Path) -> None:
    local_root = make_project(tmp_path)
    data = submission_data(local_root, tmp_path / 'markers', SHELL_LAZY)
    data['resources']['cpus_per_node'] = 4
    done = submit(procs, tmp_path, tmp_path / 'state', str(write_submission(tmp_path, data)))
    assert done.returncode == 1
    assert done.stderr.startswith("disbatch submit: resources: unknown key 'cpus_per_node' (known: number_node, ")
    assert done.stderr.count('\n') == 1


@pytest.mark.timeout(120)
def test_read_only_remote_root_one_line_nothing_submitted(procs: Processes, tmp_path: Path) -> None:
    local_root = make_project(tmp_path)
    machine = {'batch_type': 'Shell', 'context_type': 'Local', 'remote_root': '/proc/disbatch-test'}
    path = write_submission(tmp_path, submission_data(local_root, tmp_path / 'markers', machine))
    done = submit(procs, tmp_path, tmp_path / 'state', str(path))
    assert done.returncode == 1
    assert done.stderr.startswith(
        'disbatch submit: remote_root /proc/disbatch-test on this machine cannot be written: '
    )
    assert done.stderr.count('\n') == 1
    assert saved_states(tmp_path / 'state') == []
    assert [runs(tmp_path / 'markers', i) for i in range(TASKS)] == [0] * TASKS


@pytest.mark.timeout(120)
def test_failed_task_and_missing_backward_file_are_reported_others_fetched(procs: Processes, tmp_path: Path) -> None:
    local_root = make_project(tmp_path)
    markers = tmp_path / 'markers'
    machine = {'batch_type': 'Shell', 'context_type': 'Local', 'remote_root': str(tmp_path / 'remote')}
    data = submission_data(local_root, markers, machine)
    data['task_list'][1]['command'] = task_command(1, markers) + '; exit 1'
    data['task_list'][4]['backward_files'] = ['result', 'never-made.*']
    done = submit(procs, tmp_path, tmp_path / 'state', write_submission(tmp_path, data).name, '--check-interval', '0.5')
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert 'disbatch submit: 2 of 6 tasks did not succeed (submission ' in done.stderr
    assert any(line.endswith('failed with exit code 1') and 'task 1 (run1/' in line for line in lines), lines
    assert any(line.endswith('did not make backward file run4/never-made.*') for line in lines), lines
    check_all_fetched(local_root / 'md')  # the failed task's files too
    assert [runs(markers, i) for i in range(TASKS)] == [1] * TASKS, 'a failed task caused a resubmission'
    assert [len(ids) for ids in saved_job_ids(tmp_path / 'state')] == [1, 1]


def shell_job_pids(state: Path) -> list[int]:
    return [int(ids[-1]) for ids in saved_job_ids(state)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.timeout(180)
def test_submitter_killed_then_run_again_reattaches(procs: Processes, tmp_path: Path) -> None:
    local_root = make_project(tmp_path)
    markers = tmp_path / 'markers'
    state = tmp_path / 'state'
    data = submission_data(local_root, markers, SHELL_LAZY, seconds=3)
    path = write_submission(tmp_path, data)
    first = spawn_submit(procs, tmp_path, state, str(path), '--check-interval', '0.5')
    assert wait_until(lambda: len([ids for ids in saved_job_ids(state) if ids]) == 2, 30), first.stderr
    jobs = saved_job_ids(state)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert all(alive(pid) for pid in shell_job_pids(state)), 'the jobs died with their submitter'
    done = submit(procs, tmp_path, state, str(path), '--check-interval', '0.5')
    assert done.returncode == 0, done.stderr
    assert 're-attaching to submission ' in done.stderr and 'submitted' not in done.stderr, done.stderr
    assert ' '.join(ids[0] for ids in jobs) in done.stderr
    check_all_fetched(local_root / 'md')
    assert [runs(markers, i) for i in range(TASKS)] == [1] * TASKS


@pytest.mark.timeout(180)
def test_job_killed_midway_is_resubmitted_with_r_and_no_finished_task_runs_again(
    procs: Processes, tmp_path: Path
) -> None:
    local_root = make_project(tmp_path)
    markers = tmp_path / 'markers'
    state = tmp_path / 'state'
    data = submission_data(local_root, markers, SHELL_LAZY, resources={'para_deg': 1, 'cpu_per_node': 1})
    for index in range(3):  # job 0: a quick task, then two slow ones (one at a time)
        data['task_list'][index]['command'] = task_command(index, markers, 0 if index == 0 else 4)
    path = write_submission(tmp_path, data)
    submitter = spawn_submit(procs, tmp_path, state, str(path), '--check-interval', '0.5')
    assert wait_until(lambda: runs(markers, 1) == 1, 60), 'the second task of job 0 never started'
    [job0, _] = shell_job_pids(state)
    os.killpg(job0, signal.SIGKILL)  # the job dies at once: nothing records the running task
    _, stderr = submitter.communicate(timeout=120)
    assert submitter.returncode == 0, stderr
    assert f'job 0 (Shell job {job0}) ended with 2 tasks left: resubmitted with -r as job ' in stderr, stderr
    check_all_fetched(local_root / 'md')
    assert [runs(markers, i) for i in range(TASKS)] == [1, 2, 1, 1, 1, 1]  # task 1 was killed; task 0 ran once
    scripts = sorted(local_root.glob('md/.disbatch_*/*.sh'))
    assert scripts == [], 'cleaned after success'


@pytest.mark.timeout(180)
def test_ctrl_c_leaves_jobs_running_status_then_cancel(procs: Processes, tmp_path: Path) -> None:
    local_root = make_project(tmp_path)
    state = tmp_path / 'state'
    path = write_submission(tmp_path, submission_data(local_root, tmp_path / 'markers', SHELL_LAZY, seconds=30))
    submitter = spawn_submit(procs, tmp_path, state, str(path), '--check-interval', '0.5')
    assert wait_until(lambda: len([ids for ids in saved_job_ids(state) if ids]) == 2, 30)
    submitter.send_signal(signal.SIGINT)
    _, stderr = submitter.communicate(timeout=30)
    assert submitter.returncode == 130, stderr
    [saved] = saved_states(state)
    short = saved['hash'][:12]
    assert 'interrupted: the jobs keep running.' in stderr and f'disbatch submit --cancel {short}' in stderr, stderr
    pids = shell_job_pids(state)
    assert all(alive(pid) for pid in pids)
    status = submit(procs, tmp_path, state, '--status', str(path))
    assert status.returncode == 0, status.stderr
    assert f'job 0: Shell {pids[0]}: running; 0/3 tasks ended, 0 failed' in status.stdout, status.stdout
    cancelled = submit(procs, tmp_path, state, '--cancel', short)
    assert cancelled.returncode == 0, cancelled.stderr
    assert f'cancelled Shell jobs {pids[0]} {pids[1]}' in cancelled.stdout
    assert wait_until(lambda: not any(alive(pid) for pid in pids), 20), 'the jobs outlived --cancel'
    assert saved_states(state) == []
    again = submit(procs, tmp_path, state, '--status', short)
    assert again.returncode == 1 and 'no saved submission' in again.stderr


@pytest.mark.timeout(120)
def test_plain_task_file_with_machine_and_resources(procs: Processes, tmp_path: Path) -> None:
    project = tmp_path / 'project'
    project.mkdir()
    (project / 'input').write_text('in\n')
    (project / 'Tasks').write_text('# a comment\ncat input; echo one > out1\n\necho two > out2\n')
    (tmp_path / 'machine.json').write_text(
        json.dumps({'batch_type': 'Shell', 'context_type': 'Local', 'remote_root': str(tmp_path / 'remote')})
    )
    (tmp_path / 'resources.json').write_text(json.dumps({'cpu_per_node': 2, 'para_deg': 2, 'group_size': 0}))
    done = submit(
        procs,
        tmp_path,
        tmp_path / 'state',
        *('--machine', 'machine.json', '--resources', 'resources.json', '--forward', 'input'),
        *('--backward', 'out*', '--check-interval', '0.5', 'project/Tasks'),
    )
    assert done.returncode == 0, done.stderr
    assert (project / 'Tasks.0.out').read_text() == 'in\n'
    assert (project / 'out1').read_text() == 'one\n' and (project / 'out2').read_text() == 'two\n'


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 kB tmpfs (this machine's root mounts it; skipped where it cannot)."""
    mount_point = tmp_path / 'small'
    mount_point.mkdir()
    mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', str(mount_point)], check=False)
    if mounted.returncode != 0:
        pytest.skip('cannot mount a tmpfs here')
    try:
        yield mount_point
    finally:
        subprocess.run(['umount', '-l', str(mount_point)], check=False)


@pytest.mark.timeout(120)
def test_local_disk_full_while_fetching_one_line_and_nothing_lost(
    procs: Processes, tmp_path: Path, small_disk: Path
) -> None:
    local_root = make_project(small_disk)
    state = tmp_path / 'state'
    machine = {'batch_type': 'Shell', 'context_type': 'Local', 'remote_root': str(tmp_path / 'remote')}
    data = submission_data(local_root, small_disk / 'markers', machine)
    data['task_list'][0]['command'] += '; head -c 1000000 /dev/zero > big'
    data['task_list'][0]['backward_files'] = ['result', 'big']
    path = write_submission(tmp_path, data)
    done = submit(procs, tmp_path, state, str(path), '--check-interval', '0.5')
    assert done.returncode == 1
    last = done.stderr.splitlines()[-1]
    assert last.startswith(f'disbatch submit: cannot write the downloaded files into {local_root / "md"}: '), last
    assert 'No space left on device' in last and last.endswith('(run the same submission again to fetch them)')
    subprocess.run(['mount', '-o', 'remount,size=4m', str(small_disk)], check=True)
    again = submit(procs, tmp_path, state, str(path), '--check-interval', '0.5')
    assert again.returncode == 0, again.stderr
    assert 're-attaching to submission' in again.stderr
    assert (local_root / 'md' / 'run0' / 'big').stat().st_size == 1000000
    check_all_fetched(local_root / 'md')
    assert [runs(small_disk / 'markers', i) for i in range(TASKS)] == [1] * TASKS


@pytest.mark.timeout(120)
def test_exit_on_submit_then_run_again_to_follow(procs: Processes, tmp_path: Path) -> None:
    local_root = make_project(tmp_path)
    state = tmp_path / 'state'
    path = write_submission(tmp_path, submission_data(local_root, tmp_path / 'markers', SHELL_LAZY, seconds=1))
    submitted = submit(procs, tmp_path, state, str(path), '--exit-on-submit')
    assert submitted.returncode == 0, submitted.stderr
    assert submitted.stderr.count(' submitted: Shell job ') == 2
    assert 're-attach by running the same submission again' in submitted.stderr
    followed = submit(procs, tmp_path, state, str(path), '--check-interval', '0.5')
    assert followed.returncode == 0, followed.stderr
    assert 'submitted' not in followed.stderr
    check_all_fetched(local_root / 'md')
    assert [runs(tmp_path / 'markers', i) for i in range(TASKS)] == [1] * TASKS
