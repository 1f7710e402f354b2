"""Per-slot devices through the real CLI: `--gpus-per-task N` (each running task its own GPUs) and the reference's
`-E VAR` (one item of $VAR per slot). The GPUs are the fake list `CUDA_VISIBLE_DEVICES=0,1,2,3`, the first place
an engine looks (engine/devices.py).

Every task records what it saw and when it started and ended, to a file named after it; the test then checks that
no two tasks that ran at the same time held the same device.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..conftest import Processes
from .helpers import by_task_id, read_status, run_disbatch, status_path, write_task_file

RECORD = (
    'start=$(date +%s.%N); sleep SECONDS; '
    'echo "$start $(date +%s.%N) $CUDA_VISIBLE_DEVICES ${DISBATCH_GPUS:--} $DISBATCH_CYLINDER_RANK" '
    '> seen.$DISBATCH_TASKID'
)


@dataclass(frozen=True)
class Seen:
    task_id: int
    start: float
    end: float
    devices: frozenset[str]
    gpus: str
    slot: int


def read_seen(directory: Path) -> list[Seen]:
    seen = []
    for path in sorted(directory.glob('seen.*')):
        start, end, devices, gpus, slot = path.read_text().split()
        task_id = int(path.suffix[1:])
        seen.append(Seen(task_id, float(start), float(end), frozenset(devices.split(',')), gpus, int(slot)))
    return seen


def overlapping(a: Seen, b: Seen) -> bool:
    return a.start < b.end and b.start < a.end


def most_at_once(seen: list[Seen]) -> int:
    events = sorted([(s.start, 1) for s in seen] + [(s.end, -1) for s in seen])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


@pytest.mark.timeout(60)
def test_two_gpus_per_task_on_four_gpus_runs_two_disjoint_pairs_at_once(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', ''.join(RECORD.replace('SECONDS', '0.4') + '\n' for _ in range(8)))
    finished = run_disbatch(
        procs, tmp_path, '-s', 'localhost:8', '--gpus-per-task', '2', 'Tasks', env={'CUDA_VISIBLE_DEVICES': '0,1,2,3'}
    )
    assert finished.returncode == 0, finished.describe()
    assert all(record.return_code == 0 for record in by_task_id(read_status(status_path(tmp_path))).values())
    seen = read_seen(tmp_path)
    assert sorted(s.task_id for s in seen) == list(range(8))
    for s in seen:
        assert len(s.devices) == 2 and s.devices <= {'0', '1', '2', '3'}
        assert s.gpus == ','.join(sorted(s.devices))  # DISBATCH_GPUS says the same
    assert most_at_once(seen) <= 2
    for a in seen:
        for b in seen:
            if a.task_id < b.task_id and overlapping(a, b):
                assert not a.devices & b.devices, (a, b)
    assert most_at_once(seen) == 2  # the two pairs were used side by side (4 x 0.4 s in turn would be slower)


@pytest.mark.timeout(60)
def test_env_resource_gives_each_slot_one_item(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', ''.join(RECORD.replace('SECONDS', '1') + '\n' for _ in range(4)))
    finished = run_disbatch(
        procs, tmp_path, '-s', 'localhost:4', '-E', 'CUDA_VISIBLE_DEVICES', 'Tasks',
        env={'CUDA_VISIBLE_DEVICES': '0,1,2,3'},
    )  # fmt: skip
    assert finished.returncode == 0, finished.describe()
    seen = read_seen(tmp_path)
    assert len(seen) == 4
    assert sorted(item for s in seen for item in s.devices) == ['0', '1', '2', '3']
    assert most_at_once(seen) == 4


@pytest.mark.timeout(60)
def test_env_resource_lowers_the_slots_to_the_items(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', ''.join('echo "$LIC $(date +%s.%N)"; sleep 0.3\n' for _ in range(4)))
    finished = run_disbatch(procs, tmp_path, '-s', 'localhost:4', '-E', 'LIC', 'Tasks', env={'LIC': 'red,blue'})
    assert finished.returncode == 0, finished.describe()
    records = by_task_id(read_status(status_path(tmp_path))).values()
    assert {record.out_snippet.strip("'").split()[0] for record in records} == {'red', 'blue'}
    driver_log = next(tmp_path.glob('*_driver.log')).read_text()
    assert '(pid' in driver_log and '2 slots)' in driver_log


@pytest.mark.timeout(60)
def test_per_engine_tasks_see_every_gpu(procs: Processes, tmp_path: Path) -> None:
    write_task_file(
        tmp_path / 'Tasks',
        '#DISBATCH PERENGINE START echo "$CUDA_VISIBLE_DEVICES $DISBATCH_GPUS" > start.seen\n'
        'echo "$CUDA_VISIBLE_DEVICES" > task.seen\n',
    )
    finished = run_disbatch(
        procs, tmp_path, '-s', 'localhost:2', '--gpus-per-task', '1', 'Tasks', env={'CUDA_VISIBLE_DEVICES': '4,5'}
    )
    assert finished.returncode == 0, finished.describe()
    assert (tmp_path / 'start.seen').read_text().split() == ['4,5', '4,5']
    assert (tmp_path / 'task.seen').read_text().strip() in {'4', '5'}


@pytest.mark.timeout(60)
def test_no_gpu_is_a_clear_error(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'true\n')
    finished = run_disbatch(
        procs, tmp_path, '-s', 'localhost:2', '--gpus-per-task', '1', 'Tasks', env={'CUDA_VISIBLE_DEVICES': ''}
    )
    assert finished.returncode != 0
    assert 'CUDA_VISIBLE_DEVICES is empty here: no GPU to share' in finished.stderr


@pytest.mark.timeout(60)
def test_bad_resource_flags_are_usage_errors(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'true\n')
    finished = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '--gpus-per-task', '0', 'Tasks')
    assert finished.returncode == 2 and '--gpus-per-task 0' in finished.stderr


@pytest.mark.timeout(60)
def test_minus_g_is_deprecated_and_says_so(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'echo "[$CUDA_VISIBLE_DEVICES]"\n')
    finished = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '-g', 'Tasks', env={'CUDA_VISIBLE_DEVICES': '0,1'})
    assert finished.returncode == 0, finished.describe()
    assert '-g/--gpu is deprecated and has no effect' in finished.stderr
    (record,) = read_status(status_path(tmp_path))
    assert record.out_snippet == repr('[0,1]\n')  # nothing was changed


@pytest.mark.timeout(60)
def test_a_context_added_through_dbutil_takes_the_drivers_gpus_per_task_unless_given(
    procs: Processes, tmp_path: Path
) -> None:
    from .test_live_contexts import LiveRun, finish_context

    tasks = ''.join(RECORD.replace('SECONDS', '0.3') + '\n' for _ in range(4))
    run = LiveRun(procs, tmp_path, tasks, '--gpus-per-task', '2')
    context = procs.spawn(
        [str(run.dbutil), '-s', 'localhost:4'], cwd=tmp_path, env={'CUDA_VISIBLE_DEVICES': '0,1,2,3'},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert run.wait(30) == 0, run.stderr
    code, stderr = finish_context(context)
    assert code == 0, stderr
    seen = read_seen(tmp_path)
    assert len(seen) == 4 and all(len(s.devices) == 2 for s in seen)
    assert most_at_once(seen) <= 2
