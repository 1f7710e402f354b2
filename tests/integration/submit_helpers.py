"""Shared by the `disbatch submit` tests (this machine's and the test cluster's): a project of tasks with their own
work paths, forward and backward files; the submission JSON; marker files that count how often each task ran."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..conftest import Processes, disbatch_cmd
from .helpers import REPO_ROOT

TASKS = 6
# Every job's disbatch must be this checkout's: on the cluster's nodes the PATH would find another one first.
THIS_DISBATCH = f'export PATH={Path(sys.executable).parent}:$PATH PYTHONPATH={REPO_ROOT}'


def make_project(root: Path, tasks: int = TASKS) -> Path:
    """`root/project/md/`: a common `graph.pb`, and `run<i>/conf` per task; `root/markers/` for `task_command`.
    Returns local_root (`root/project`)."""
    work = root / 'project' / 'md'
    work.mkdir(parents=True)
    (root / 'markers').mkdir()
    (work / 'graph.pb').write_text('graph\n')
    for index in range(tasks):
        (work / f'run{index}').mkdir()
        (work / f'run{index}' / 'conf').write_text(f'conf {index}\n')
    return root / 'project'


def task_command(index: int, markers: Path, seconds: float = 0) -> str:
    """Counts its runs in `markers/runs.<i>` (one line per run; the cluster's nodes share this file system), prints
    its input, makes its backward file `result`."""
    return (
        f'echo run >> {markers}/runs.{index}; cat conf ../graph.pb; sleep {seconds}; echo made-by-{index} > result; '
        'echo to-stderr >&2'
    )


def submission_data(
    local_root: Path,
    markers: Path,
    machine: dict[str, Any],
    tasks: list[dict[str, Any]] | None = None,
    resources: dict[str, Any] | None = None,
    seconds: float = 0,
) -> dict[str, Any]:
    return {
        'work_base': 'md/',
        'machine': {'local_root': str(local_root), **machine},
        'resources': {
            'cpu_per_node': 2,
            'para_deg': 2,
            'group_size': 3,
            'prepend_script': [THIS_DISBATCH],
            **(resources or {}),
        },
        'task_list': tasks
        if tasks is not None
        else [
            {
                'command': task_command(index, markers, seconds),
                'task_work_path': f'run{index}/',
                'forward_files': ['conf'],
                'backward_files': ['result'],
                'outlog': 'log',
                'errlog': 'err',
            }
            for index in range(TASKS)
        ],
        'forward_common_files': ['graph.pb'],
        'backward_common_files': [],
    }


def write_submission(directory: Path, data: dict[str, Any]) -> Path:
    path = directory / 'submission.json'
    path.write_text(json.dumps(data, indent=1))
    return path


def submit(
    procs: Processes, cwd: Path, state: Path, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`disbatch submit ARGS` to its end, with its saved state under `state`."""
    return procs.run(disbatch_cmd('submit', *args), cwd=cwd, env={'XDG_STATE_HOME': str(state)}, timeout=timeout)


def spawn_submit(procs: Processes, cwd: Path, state: Path, *args: str) -> subprocess.Popen[str]:
    return procs.spawn(
        disbatch_cmd('submit', *args),
        cwd=cwd,
        env={'XDG_STATE_HOME': str(state)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def saved_states(state: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted((state / 'disbatch' / 'submissions').glob('*.json'))]


def saved_job_ids(state: Path) -> list[list[str]]:
    """The job ids of each job of the one saved submission (empty when none is saved)."""
    states = saved_states(state)
    return [job['job_ids'] for job in states[0]['jobs']] if states else []


def wait_until(predicate: Any, seconds: float, interval: float = 0.3) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def runs(markers: Path, index: int) -> int:
    """How many times task `index` ran (its marker file's lines)."""
    marker = markers / f'runs.{index}'
    return len(marker.read_text().splitlines()) if marker.exists() else 0


def check_all_fetched(work: Path, tasks: int = TASKS) -> None:
    """Every task's outlog holds its output, its errlog its errors, and its backward file is back."""
    for index in range(tasks):
        directory = work / f'run{index}'
        assert (directory / 'log').read_text() == f'conf {index}\ngraph\n', index
        assert (directory / 'err').read_text() == 'to-stderr\n', index
        assert (directory / 'result').read_text() == f'made-by-{index}\n', index
