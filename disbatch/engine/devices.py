"""Finding the GPUs of an engine's node, and the resources (`--gpus-per-task`, `-E VAR`) an engine shares out.

The GPUs are looked for in this order, and the first place that names any (or is set at all, for the variables)
is the answer:

    1. CUDA_VISIBLE_DEVICES      what the batch system (or the user) already narrowed this engine to: NVIDIA,
    2. ROCR_VISIBLE_DEVICES      AMD (ROCm runtime),
    3. HIP_VISIBLE_DEVICES       AMD (HIP);
    4. SLURM_STEP_GPUS           the GPUs of the Slurm step the engine runs in,
    5. SLURM_JOB_GPUS            or of its job;
    6. `nvidia-smi -L`           every GPU the driver of the machine sees;
    7. /dev/nvidia0, /dev/nvidia1, ...

A variable set to the empty string means "no GPU" (the usual way to hide them); Slurm's placeholder `NoDevFiles` is
not a list and is skipped. A task's share goes to the variable its vendor's runtime reads (the variable the GPUs were
found in; CUDA_VISIBLE_DEVICES for nvidia-smi and /dev/nvidia*; for Slurm's lists CUDA_VISIBLE_DEVICES, or
ROCR_VISIBLE_DEVICES on a node with /dev/kfd and no /dev/nvidia*), to every other of these variables that lists the
same devices (Slurm sets GPU_DEVICE_ORDINAL beside CUDA_VISIBLE_DEVICES), and to DISBATCH_GPUS.

Everything here is pure but `SystemProbe`, which asks the machine (through `engine.task_process.probe_output`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from disbatch.engine.shares import Resource, split_items

VENDOR_VARIABLES = ('CUDA_VISIBLE_DEVICES', 'ROCR_VISIBLE_DEVICES', 'HIP_VISIBLE_DEVICES')
SLURM_VARIABLES = ('SLURM_STEP_GPUS', 'SLURM_JOB_GPUS')
# Variables that may list the same devices as the one they were found in: each is narrowed to the task's share too.
COMPANION_VARIABLES = (*VENDOR_VARIABLES, 'GPU_DEVICE_ORDINAL')
GPUS_VARIABLE = 'DISBATCH_GPUS'
NOT_A_LIST = 'NoDevFiles'
NVIDIA_SMI = ('nvidia-smi', '-L')
_SMI_GPU = re.compile(r'^GPU (\d+):')
_DEVICE_FILE = re.compile(r'^nvidia(\d+)$')


class Probe(Protocol):
    """What discovery asks the machine, when the environment does not say."""

    def nvidia_smi(self) -> str | None:
        """The output of `nvidia-smi -L`, or None when it is not installed or fails."""

    def device_files(self) -> list[str]:
        """The names in /dev."""


@dataclass(frozen=True, slots=True)
class FoundGpus:
    items: tuple[str, ...]
    source: str  # where they were found, for the log
    variables: tuple[str, ...]  # where a task's share goes, DISBATCH_GPUS included


def parse_nvidia_smi(text: str) -> tuple[str, ...]:
    """The GPU indexes in `nvidia-smi -L` output ("GPU 0: NVIDIA A100 (UUID: GPU-…)"; MIG lines are not GPUs)."""
    return tuple(match.group(1) for line in text.splitlines() if (match := _SMI_GPU.match(line.strip())))


def nvidia_device_numbers(names: list[str]) -> tuple[str, ...]:
    """`['nvidia1', 'nvidiactl', 'nvidia0']` → ('0', '1'): the numbered NVIDIA device files, in number order."""
    numbers = sorted(int(match.group(1)) for name in names if (match := _DEVICE_FILE.match(name)))
    return tuple(str(number) for number in numbers)


def find_gpus(environ: Mapping[str, str], probe: Probe) -> FoundGpus | None:
    """The node's GPUs (see the module docstring for the order), or None if nothing names any."""
    for variable in (*VENDOR_VARIABLES, *SLURM_VARIABLES):
        value = environ.get(variable)
        if value is None or value.strip() == NOT_A_LIST:
            continue
        items = split_items(value)
        if variable in VENDOR_VARIABLES:
            vendor = variable
        else:
            files = probe.device_files()
            amd = 'kfd' in files and not nvidia_device_numbers(files)
            vendor = 'ROCR_VISIBLE_DEVICES' if amd else 'CUDA_VISIBLE_DEVICES'
        return FoundGpus(items, variable, _targets(vendor, items, environ))
    listed = probe.nvidia_smi()
    if listed is not None and (items := parse_nvidia_smi(listed)):
        return FoundGpus(items, ' '.join(NVIDIA_SMI), _targets('CUDA_VISIBLE_DEVICES', items, environ))
    if items := nvidia_device_numbers(probe.device_files()):
        return FoundGpus(items, '/dev/nvidia*', _targets('CUDA_VISIBLE_DEVICES', items, environ))
    return None


def _targets(vendor: str, items: tuple[str, ...], environ: Mapping[str, str]) -> tuple[str, ...]:
    companions = [
        name
        for name in COMPANION_VARIABLES
        if name != vendor and name in environ and split_items(environ[name]) == items
    ]
    return (vendor, *companions, GPUS_VARIABLE)


def engine_resources(
    gpus_per_task: int, env_resources: list[str], environ: Mapping[str, str], probe: Probe
) -> tuple[tuple[Resource, ...], list[str]]:
    """The resources an engine shares among its slots, and problems that leave it no slot (one line each).

    `-E VAR`: the comma list in the engine's own $VAR, one item per task. `--gpus-per-task N`: the node's GPUs
    (`find_gpus`), N per task."""
    resources: list[Resource] = []
    problems: list[str] = []
    if gpus_per_task > 0:
        found = find_gpus(environ, probe)
        if found is None:
            problems.append(
                f'--gpus-per-task {gpus_per_task}: no GPU found (looked at {", ".join(VENDOR_VARIABLES)}, '
                f'{", ".join(SLURM_VARIABLES)}, `{" ".join(NVIDIA_SMI)}` and /dev/nvidia*)'
            )
        elif not found.items:
            problems.append(f'--gpus-per-task {gpus_per_task}: {found.source} is empty here: no GPU to share')
        else:
            resources.append(Resource(f'GPUs from {found.source}', found.items, gpus_per_task, found.variables))
    for variable in env_resources:
        items = split_items(environ.get(variable, ''))
        if not items:
            problems.append(f'-E {variable}: ${variable} is {"empty" if variable in environ else "not set"} here')
        resources.append(Resource(f'items of -E {variable}', items, 1, (variable,)))
    for resource in resources:
        if resource.capacity == 0 and resource.items:
            problems.append(
                f'{resource.name}: {",".join(resource.items)} — not enough for one task ({resource.per_task} each)'
            )
    return tuple(resources), problems


class SystemProbe:
    """The real machine: `nvidia-smi -L` (at most a few seconds) and a listing of /dev."""

    def nvidia_smi(self) -> str | None:
        from disbatch.engine.task_process import probe_output  # the one module that starts processes

        return probe_output(list(NVIDIA_SMI), timeout=10.0)

    def device_files(self) -> list[str]:
        try:
            return os.listdir('/dev')
        except OSError:
            return []
