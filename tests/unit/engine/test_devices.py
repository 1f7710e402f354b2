"""Finding a node's GPUs in the documented order, and the resources an engine shares out."""

from __future__ import annotations

from dataclasses import dataclass, field

from disbatch.engine.devices import (
    engine_resources,
    find_gpus,
    nvidia_device_numbers,
    parse_nvidia_smi,
)

SMI = """GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5ab3a4c2-0000-0000-0000-000000000000)
  MIG 1g.5gb      Device  0: (UUID: MIG-1f2c0000-0000-0000-0000-000000000000)
GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-5ab3a4c2-0000-0000-0000-000000000001)
"""


@dataclass
class FakeProbe:
    smi: str | None = None
    files: list[str] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)

    def nvidia_smi(self) -> str | None:
        self.asked.append('nvidia-smi')
        return self.smi

    def device_files(self) -> list[str]:
        self.asked.append('/dev')
        return self.files


def test_parse_nvidia_smi_lists_gpus_not_mig_devices() -> None:
    assert parse_nvidia_smi(SMI) == ('0', '1')
    assert parse_nvidia_smi('No devices were found\n') == ()


def test_device_files_in_number_order() -> None:
    names = ['nvidia10', 'nvidiactl', 'nvidia2', 'nvidia-uvm', 'null', 'nvidia0']
    assert nvidia_device_numbers(names) == ('0', '2', '10')


def test_the_documented_order() -> None:
    probe = FakeProbe(smi=SMI, files=['nvidia0'])
    everything = {
        'CUDA_VISIBLE_DEVICES': '3',
        'ROCR_VISIBLE_DEVICES': '4',
        'HIP_VISIBLE_DEVICES': '5',
        'SLURM_STEP_GPUS': '6',
        'SLURM_JOB_GPUS': '7',
    }
    order = list(everything)
    while order:
        found = find_gpus({name: everything[name] for name in order}, probe)
        assert found is not None and found.source == order[0] and found.items == (everything[order[0]],)
        order.pop(0)
    assert probe.asked.count('nvidia-smi') == 0
    found = find_gpus({}, probe)
    assert found is not None and (found.source, found.items) == ('nvidia-smi -L', ('0', '1'))
    found = find_gpus({}, FakeProbe(smi=None, files=['nvidia1', 'nvidia0']))
    assert found is not None and (found.source, found.items) == ('/dev/nvidia*', ('0', '1'))
    assert find_gpus({}, FakeProbe(smi='', files=['null'])) is None


def test_a_task_share_goes_to_the_vendor_variable_its_companions_and_disbatch_gpus() -> None:
    environ = {'CUDA_VISIBLE_DEVICES': '0,1', 'GPU_DEVICE_ORDINAL': '0,1', 'ROCR_VISIBLE_DEVICES': '7'}
    found = find_gpus(environ, FakeProbe())
    assert found is not None
    assert found.variables == ('CUDA_VISIBLE_DEVICES', 'GPU_DEVICE_ORDINAL', 'DISBATCH_GPUS')
    found = find_gpus({'HIP_VISIBLE_DEVICES': '0'}, FakeProbe())
    assert found is not None and found.variables == ('HIP_VISIBLE_DEVICES', 'DISBATCH_GPUS')


def test_slurm_lists_go_to_the_vendor_the_node_has() -> None:
    nvidia = find_gpus({'SLURM_STEP_GPUS': '0,1'}, FakeProbe(files=['nvidia0', 'nvidia1', 'kfd']))
    amd = find_gpus({'SLURM_JOB_GPUS': '0,1'}, FakeProbe(files=['kfd', 'dri']))
    assert nvidia is not None and nvidia.variables[0] == 'CUDA_VISIBLE_DEVICES'
    assert amd is not None and amd.variables[0] == 'ROCR_VISIBLE_DEVICES'


def test_empty_means_none_and_nodevfiles_is_skipped() -> None:
    found = find_gpus({'CUDA_VISIBLE_DEVICES': ''}, FakeProbe(smi=SMI))
    assert found is not None and found.items == ()
    found = find_gpus({'CUDA_VISIBLE_DEVICES': 'NoDevFiles', 'SLURM_JOB_GPUS': '2,3'}, FakeProbe())
    assert found is not None and (found.source, found.items) == ('SLURM_JOB_GPUS', ('2', '3'))


def test_engine_resources() -> None:
    environ = {'CUDA_VISIBLE_DEVICES': 'GPU-a,GPU-b,GPU-c', 'LIC': 'x,y'}
    resources, problems = engine_resources(2, ['LIC'], environ, FakeProbe())
    assert problems == []
    assert [(r.items, r.per_task, r.variables) for r in resources] == [
        (('GPU-a', 'GPU-b', 'GPU-c'), 2, ('CUDA_VISIBLE_DEVICES', 'DISBATCH_GPUS')),
        (('x', 'y'), 1, ('LIC',)),
    ]
    assert engine_resources(0, [], {}, FakeProbe()) == ((), [])


def test_engine_resources_problems_leave_no_slot() -> None:
    _, problems = engine_resources(1, [], {}, FakeProbe())
    assert problems and 'no GPU found' in problems[0]
    _, problems = engine_resources(1, [], {'CUDA_VISIBLE_DEVICES': ''}, FakeProbe())
    assert problems == ['--gpus-per-task 1: CUDA_VISIBLE_DEVICES is empty here: no GPU to share']
    _, problems = engine_resources(4, ['NOPE', 'EMPTY'], {'CUDA_VISIBLE_DEVICES': '0,1', 'EMPTY': ''}, FakeProbe())
    assert problems == [
        '-E NOPE: $NOPE is not set here',
        '-E EMPTY: $EMPTY is empty here',
        'GPUs from CUDA_VISIBLE_DEVICES: 0,1 — not enough for one task (4 each)',
    ]
