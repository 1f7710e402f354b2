"""The task file and the batch script of a job (pure)."""

from __future__ import annotations

from disbatch.dispatch.batch_systems import batch_system
from disbatch.dispatch.job_script import JobFiles, cores_per_task, disbatch_arguments, job_script, task_file_text
from disbatch.dispatch.submission_parts import BatchType, Resources, Task


def test_task_lines_cd_then_command_with_its_redirections() -> None:
    tasks = [
        Task('lmp -i in; echo done', 'run0/', outlog='log', errlog='err'),
        Task('true', 'a b', outlog=None, errlog=None),
    ]
    assert task_file_text('/scratch/h', tasks) == (
        "cd /scratch/h/run0 && ( lmp -i in; echo done ) >log 2>err\ncd '/scratch/h/a b' && ( true )\n"
    )


def test_cores_and_gpus_per_task() -> None:
    assert cores_per_task(Resources(cpu_per_node=4, para_deg=2)) == '2'
    assert cores_per_task(Resources(cpu_per_node=4, para_deg=3)) == '1.33333'  # rounded down: 3 tasks still fit
    assert cores_per_task(Resources(cpu_per_node=2, para_deg=3)) == '0.666666'
    files = JobFiles('/r/.d', 0)
    slurm = batch_system(BatchType.SLURM)
    resources = Resources(cpu_per_node=8, gpu_per_node=4, para_deg=2)
    arguments = disbatch_arguments(slurm, resources, files, 2, ['/r/.d/job0.a1_status.txt'])
    assert arguments == [
        '--batch-system',
        'slurm',
        '-p',
        '/r/.d/job0.a2',
        '-r',
        '/r/.d/job0.a1_status.txt',
        '-c',
        '4',
        '--gpus-per-task',
        '2',
        '/r/.d/job0.tasks',
    ]
    no_split = Resources(cpu_per_node=8, gpu_per_node=4, strategy={'if_cuda_multi_devices': False})
    assert '--gpus-per-task' not in disbatch_arguments(slurm, no_split, files, 1, [])


def test_shell_job_runs_disbatch_on_this_machine_with_the_node_cores() -> None:
    shell = batch_system(BatchType.SHELL)
    arguments = disbatch_arguments(shell, Resources(cpu_per_node=3, walltime='0:10:00'), JobFiles('/d', 1), 1, [])
    assert arguments[:6] == ['--batch-system', 'none', '-p', '/d/job1.a1', '-s', 'localhost:3']
    assert '--walltime' in arguments and '600s' in arguments


def test_script_order_header_flags_setup_disbatch_append() -> None:
    resources = Resources(
        cpu_per_node=2,
        queue_name='debug',
        custom_flags=['#SBATCH --mem=1G'],
        module_purge=True,
        module_unload_list=['old'],
        module_list=['new'],
        source_list=['/env.sh'],
        envs={'A': '1', 'PATH': '/x:$PATH'},
        prepend_script=['echo start'],
        append_script=['echo end'],
    )
    script = job_script(batch_system(BatchType.SLURM), resources, JobFiles('/r/.d', 0), 1, '/r', 'disbatch', [])
    lines = script.splitlines()
    assert lines[0] == '#!/bin/bash'
    assert lines.index('#SBATCH --partition=debug') < lines.index('#SBATCH --mem=1G') < lines.index('module purge')
    assert lines[lines.index('module purge') :] == [
        'module purge',
        'module unload old',
        'module load new',
        'source /env.sh',
        'export A=1',
        'export PATH=/x:$PATH',
        'echo start',
        'cd /r || exit 1',
        'disbatch --batch-system slurm -p /r/.d/job0.a1 -c 2 /r/.d/job0.tasks',
        'code=$?',
        'echo $code > /r/.d/job0.a1.exit',
        'echo end',
        'exit $code',
    ]


def test_header_template_replaces_the_generated_header() -> None:
    template = '#SBATCH -N {number_node}\n#SBATCH -p {queue_name}\n'
    script = job_script(
        batch_system(BatchType.SLURM),
        Resources(queue_name='big'),
        JobFiles('/r/.d', 0),
        1,
        '/r',
        'disbatch',
        [],
        template,
    )
    assert script.splitlines()[1:3] == ['#SBATCH -N 1', '#SBATCH -p big']
    assert '--job-name' not in script
