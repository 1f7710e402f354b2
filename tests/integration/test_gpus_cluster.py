"""GPUs under the test cluster's Slurm: fake `gres/gpu` (tests/cluster/start-slurm.sh: `Gres=gpu:4` per node, files in
gres.conf with AutoDetect=off). `sbatch --gpus-per-node 4` and `disbatch --gpus-per-task 1`: every engine's step
asks for its node's 4 GPUs, and every running task on a node holds its own one.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ..conftest import Processes
from .helpers import by_task_id, disbatch_job_script, no_traceback, read_status, status_path
from .test_contexts_cluster import job_fields, slurm_output

pytestmark = pytest.mark.cluster

RECORD = (
    'start=$(date +%s.%N); sleep 1; '
    'echo "$start $(date +%s.%N) $CUDA_VISIBLE_DEVICES $DISBATCH_GPUS $SLURMD_NODENAME" > seen.$DISBATCH_TASKID\n'
)


@pytest.fixture
def gpu_nodes(procs: Processes, tmp_path: Path, cluster: dict[str, str]) -> None:
    gres = slurm_output(procs, tmp_path, 'sinfo', '-h', '-N', '-o', '%G')
    if 'gpu:4' not in gres:
        pytest.skip(f'the test cluster has no fake GPUs (sinfo %G: {gres.split()}): restart it with start-slurm.sh')


@pytest.mark.timeout(120)
def test_each_task_holds_its_own_gpu_and_the_step_asks_for_them(
    procs: Processes, gpu_nodes: None, tmp_path: Path
) -> None:
    count = 12
    (tmp_path / 'Tasks').write_text(RECORD * count)
    job_script = disbatch_job_script(
        tmp_path,
        '--gpus-per-task',
        '1',
        '-p',
        'run',
        'Tasks',
        prelude='env | grep -E "^(SLURM_.*GPU|SLURM_GRES|SLURM_TRES|CUDA|GPU_DEVICE)" | sort\n',
    )
    submit = [
        'sbatch', '--parsable', '-N', '2', '-n', '8', '--gpus-per-node', '4', '-D', str(tmp_path), '-o', 'job.out',
        str(job_script),
    ]  # fmt: skip
    job = slurm_output(procs, tmp_path, *submit).strip().split(';')[0]
    assert job.isdigit(), job
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            state = job_fields(slurm_output(procs, tmp_path, 'scontrol', 'show', 'job', job))
            if state.get('JobState') not in ('PENDING', 'CONFIGURING', 'RUNNING', 'COMPLETING'):
                break
            time.sleep(0.5)
        job_output = (tmp_path / 'job.out').read_text(errors='replace')
        assert state['JobState'] == 'COMPLETED' and state['ExitCode'] == '0:0', f'{state}\n{job_output}'
        assert no_traceback(job_output), job_output
    finally:
        procs.run(['scancel', job], cwd=tmp_path, timeout=15)

    records = by_task_id(read_status(status_path(tmp_path)))
    assert sorted(records) == list(range(count)) and all(r.return_code == 0 for r in records.values())
    # The engine steps asked for the node's GPUs, as the job did.
    context_log = next(tmp_path.glob('run_*.context.log'), None) or Path(f'{tmp_path}/run_driver.log')
    launches = [line for line in context_log.read_text().splitlines() if 'starting the engine of' in line]
    assert len(launches) == 2 and all('--gpus-per-node=4' in line for line in launches), launches
    engine_logs = ''.join(path.read_text() for path in tmp_path.glob('run_*engine_wrap.log'))
    assert engine_logs.count('GPUs from CUDA_VISIBLE_DEVICES: 0,1,2,3, 1 per task') == 2, engine_logs
    # Every task saw one GPU of its node; two tasks on one node at the same time never saw the same one.
    seen = []
    for path in tmp_path.glob('seen.*'):
        start, end, devices, gpus, node = path.read_text().split()
        assert devices == gpus and ',' not in devices, path.read_text()
        seen.append((float(start), float(end), devices, node))
    assert len(seen) == count
    for a in seen:
        for b in seen:
            if a is not b and a[3] == b[3] and a[0] < b[1] and b[0] < a[1]:
                assert a[2] != b[2], (a, b)
    assert len({node for *_, node in seen}) == 2
