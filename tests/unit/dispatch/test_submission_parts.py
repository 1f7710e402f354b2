"""Machine / Resources / Task from Python and from JSON: dpdispatcher's names, strict keys, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from disbatch.dispatch import BatchType, ContextType, Machine, Resources, Submission, Task
from disbatch.errors import SubmissionError


def test_machine_accepts_dpdispatcher_spellings() -> None:
    machine = Machine(batch_type='slurm', context_type='SSHContext', remote_root='/r', remote_profile={'hostname': 'h'})
    assert machine.batch is BatchType.SLURM
    assert machine.context is ContextType.SSH
    assert machine.profile is not None and machine.profile.hostname == 'h' and machine.profile.timeout == 10
    assert Machine(batch_type='PBS', context_type='lazylocalcontext').context is ContextType.LAZY_LOCAL
    assert Machine(batch_type='Torque', context_type='LazyLocal').batch is BatchType.TORQUE


def test_machine_json_round_trip(tmp_path: Path) -> None:
    data = {
        'batch_type': 'SGE',
        'context_type': 'SSHContext',
        'local_root': './',
        'remote_root': '/scratch/me',
        'remote_profile': {'hostname': 'login', 'username': 'me', 'port': 2222, 'timeout': 5},
        'retry_count': 1,
    }
    path = tmp_path / 'machine.json'
    path.write_text(json.dumps(data))
    machine = Machine.load_from_json(path)
    assert machine.serialize()['remote_profile']['port'] == 2222
    assert Machine.load_from_dict(machine.serialize()) == machine


@pytest.mark.parametrize(
    ('data', 'message'),
    [
        ({'batch_type': 'Slurm', 'context_type': 'LazyLocal', 'remot_root': '/x'}, "machine: unknown key 'remot_root'"),
        ({'batch_type': 'Bohrium', 'context_type': 'LazyLocal'}, "batch_type 'Bohrium' is not supported"),
        ({'batch_type': 'Condor', 'context_type': 'LazyLocal'}, "unknown batch_type 'Condor'"),
        ({'batch_type': 'Slurm', 'context_type': 'HDFS'}, "unknown context_type 'HDFS'"),
        ({'batch_type': 'Slurm', 'context_type': 'SSH', 'remote_root': '/x'}, 'needs a remote_profile'),
        ({'batch_type': 'Slurm', 'context_type': 'Local'}, 'needs a remote_root'),
        ({'batch_type': 'Slurm', 'context_type': 'LazyLocal', 'retry_count': '3'}, 'retry_count must be an integer'),
        (
            {
                'batch_type': 'Slurm',
                'context_type': 'SSH',
                'remote_root': '/x',
                'remote_profile': {'hostname': 'h', 'password': 'p'},
            },
            'password is not supported',
        ),
        (
            {'batch_type': 'Slurm', 'context_type': 'SSH', 'remote_root': '/x', 'remote_profile': {'host': 'h'}},
            "machine.remote_profile: unknown key 'host'",
        ),
        ({'context_type': 'LazyLocal'}, "machine: missing key 'batch_type'"),
    ],
)
def test_machine_errors_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(SubmissionError, match=message.replace('(', r'\(')) as caught:
        Machine.load_from_dict(data)
    assert '\n' not in str(caught.value)


def test_resources_keys_and_defaults() -> None:
    resources = Resources.load_from_dict(
        {
            'number_node': 1,
            'cpu_per_node': 4,
            'gpu_per_node': 2,
            'queue_name': 'gpu',
            'group_size': 5,
            'custom_flags': ['#SBATCH --mem=1G'],
            'strategy': {'if_cuda_multi_devices': True},
            'para_deg': 2,
            'source_list': ['/opt/env.sh'],
            'module_list': ['deepmd'],
            'envs': {'OMP_NUM_THREADS': 2},
        }
    )
    assert resources.if_cuda_multi_devices and resources.para_deg == 2
    assert Resources.load_from_dict(resources.serialize()) == resources
    with pytest.raises(SubmissionError, match="resources: unknown key 'cpus_per_node'"):
        Resources.load_from_dict({'cpus_per_node': 4})
    with pytest.raises(SubmissionError, match=r"resources\.strategy: unknown key 'if_cuda'"):
        Resources.load_from_dict({'strategy': {'if_cuda': True}})
    with pytest.raises(SubmissionError, match='para_deg must be 1 or more'):
        Resources(para_deg=0)
    with pytest.raises(SubmissionError, match='custom_flags must be a list of strings'):
        Resources.load_from_dict({'custom_flags': '#SBATCH -t 1'})


def test_task_keys_and_checks() -> None:
    task = Task.load_from_dict({'command': 'lmp -i in', 'task_work_path': 'a/', 'forward_files': ['in']})
    assert (task.outlog, task.errlog, task.backward_files) == ('log', 'err', [])
    with pytest.raises(SubmissionError, match="task: unknown key 'work_path'"):
        Task.load_from_dict({'command': 'x', 'work_path': 'a'})
    with pytest.raises(SubmissionError, match='must lie in work_base'):
        Task('x', '../elsewhere')
    with pytest.raises(SubmissionError, match='a command is one line'):
        Task('x\ny')


def test_submission_json_hash_and_jobs(tmp_path: Path) -> None:
    data = {
        'work_base': 'w',
        'machine': {'batch_type': 'Shell', 'context_type': 'LazyLocal', 'local_root': str(tmp_path)},
        'resources': {'group_size': 2},
        'task_list': [{'command': f'echo {n}', 'task_work_path': f't{n}'} for n in range(5)],
        'forward_common_files': ['common'],
    }
    submission = Submission.deserialize(data)
    assert submission.jobs() == [[0, 1], [2, 3], [4]]
    assert Submission.deserialize(submission.serialize()).hash == submission.hash
    changed = Submission.deserialize({**data, 'forward_common_files': []})
    assert changed.hash != submission.hash
    everything = Submission.deserialize({**data, 'resources': {'group_size': 0}})
    assert everything.jobs() == [[0, 1, 2, 3, 4]]
    with pytest.raises(SubmissionError, match="submission: unknown key 'tasks'"):
        Submission.deserialize({**data, 'tasks': []})
