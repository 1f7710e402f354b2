"""How --gpus-per-task and -E reach the engines: flags checked, engine options, the Slurm step's GPU request."""

from __future__ import annotations

import argparse

import pytest

from disbatch.contexts.flags import add_context_arguments, check_resource_arguments, deprecation_warnings
from disbatch.contexts.nodes import EngineResources, NodePlan, engine_command
from disbatch.contexts.slurm import srun_launcher_for, step_gpu_options
from disbatch.errors import UsageError


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_context_arguments(parser, default_hint='test')
    return parser.parse_args(list(argv))


def test_flags_unset_stay_unset_for_the_drivers_values() -> None:
    arguments = parse()
    assert arguments.gpus_per_task is None and arguments.env_resource is None and not arguments.gpu
    arguments = parse('--gpus-per-task', '2', '-E', 'LIC', '--env-resource', 'PORTS', '-g')
    assert (arguments.gpus_per_task, arguments.env_resource, arguments.gpu) == (2, ['LIC', 'PORTS'], True)
    check_resource_arguments(arguments)


@pytest.mark.parametrize(
    ('argv', 'message'),
    [
        (['--gpus-per-task', '0'], 'give 1 or more'),
        (['-E', 'NOT-A-NAME'], 'name of an environment variable'),
        (['-E', 'CUDA_VISIBLE_DEVICES', '--gpus-per-task', '1'], 'both set CUDA_VISIBLE_DEVICES'),
    ],
)
def test_bad_resource_flags(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        check_resource_arguments(parse(*argv))


def test_minus_g_says_it_does_nothing() -> None:
    assert deprecation_warnings(parse()) == []
    assert 'deprecated and has no effect' in deprecation_warnings(parse('-g'))[0]


def test_engine_command_carries_the_resources() -> None:
    plan = NodePlan('node1', 4, 1)
    plain = engine_command('run', plan, 'SSH0', 'SSH0/0')
    assert not any('gpus' in word or 'env-resource' in word for word in plain)
    command = engine_command('run', plan, 'SSH0', 'SSH0/0', EngineResources(2, ('LIC', 'PORTS')))
    assert command[len(plain) :] == ['--gpus-per-task', '2', '--env-resource=LIC', '--env-resource=PORTS']


@pytest.mark.parametrize(
    ('environ', 'options'),
    [
        ({}, []),
        ({'SLURM_GPUS_PER_NODE': '4'}, ['--gpus-per-node=4']),
        ({'SLURM_GPUS_PER_NODE': 'a100:2', 'SLURM_GPUS_ON_NODE': '2'}, ['--gpus-per-node=a100:2']),
        ({'SLURM_GPUS_ON_NODE': '4', 'SLURM_JOB_GPUS': '0,1,2,3'}, ['--gres=gpu:4']),
        ({'SLURM_JOB_GPUS': '1,3'}, ['--gres=gpu:2']),
        ({'SLURM_GPUS_ON_NODE': '0'}, []),
        ({'SLURM_GPUS': '6', 'SLURM_GPUS_ON_NODE': '4'}, []),  # a total: nodes may differ; Slurm's default
    ],
)
def test_the_engine_step_asks_for_the_nodes_gpus_as_the_job_did(environ: dict[str, str], options: list[str]) -> None:
    assert step_gpu_options(environ) == options
    srun = srun_launcher_for({'node1': 4}, options)(NodePlan('node1', 4, 1), ['ENGINE'])
    assert srun[-1] == 'ENGINE' and srun[-1 - len(options) : -1] == options
