"""PURE: a job's two files, the disbatch task file (one line per task) and the batch script that runs disbatch on it.

A task's line: `cd <its directory> && ( <command> ) >outlog 2>errlog` (the parentheses keep `;`, `&&` and `|`
inside the command under the redirections). The script: `#!/bin/bash`, the batch system's header (or the user's
header template), the custom flags, then the set-up (`module purge/unload/load`, `source`, `export`, the prepend
lines), then disbatch over the task file, with `-r` on the status files of the job's earlier attempts, then the
append lines; it exits with disbatch's code. Paths are the machine's (POSIX), absolute.
"""

from __future__ import annotations

import math
import posixpath
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from disbatch.contract import RunFiles
from disbatch.dispatch.batch_systems import BatchSystem, walltime_seconds
from disbatch.dispatch.submission_parts import BatchType, Resources, Task


@dataclass(frozen=True)
class JobFiles:
    """Where one job's files are on the machine: `<jobs directory>/job<N>.*`; one status file per attempt."""

    directory: str  # absolute, on the machine
    index: int
    submission: str = ''  # the submission's hash: its first characters tell its jobs from others in the queue

    @property
    def name(self) -> str:
        return f'job{self.index}'

    @property
    def job_name(self) -> str:
        """The name the scheduler shows: `job<N>-<hash prefix>`."""
        return f'{self.name}-{self.submission[:8]}' if self.submission else self.name

    @property
    def task_file(self) -> str:
        return posixpath.join(self.directory, f'{self.name}.tasks')

    def script(self, attempt: int) -> str:
        return posixpath.join(self.directory, f'{self.name}.a{attempt}.sh')

    def log(self, attempt: int) -> str:
        return posixpath.join(self.directory, f'{self.name}.a{attempt}.log')

    def exit_file(self, attempt: int) -> str:
        """The attempt's disbatch exit code, written when disbatch returns (never when the job is killed)."""
        return posixpath.join(self.directory, f'{self.name}.a{attempt}.exit')

    def carried(self, attempt: int) -> str:
        """The status file the attempt resumes from (`-r`): the records of the tasks earlier attempts ended."""
        return RunFiles(posixpath.join(self.directory, f'{self.name}.a{attempt}.carried')).status

    def stem(self, attempt: int) -> str:
        """The `-p` of the attempt's disbatch run: its status file is `<stem>_status.txt` (`contract.RunFiles`)."""
        return posixpath.join(self.directory, f'{self.name}.a{attempt}')


def task_directory(run_directory: str, task: Task) -> str:
    return posixpath.normpath(posixpath.join(run_directory, task.task_work_path))


def task_line(run_directory: str, task: Task) -> str:
    line = f'cd {shlex.quote(task_directory(run_directory, task))} && ( {task.command} )'
    if task.outlog:
        line += f' >{shlex.quote(task.outlog)}'
    if task.errlog:
        line += f' 2>{shlex.quote(task.errlog)}'
    return line


def task_file_text(run_directory: str, tasks: Sequence[Task]) -> str:
    """The task file of a job: task id i (disbatch counts from 0) is `tasks[i]`."""
    return ''.join(task_line(run_directory, task) + '\n' for task in tasks)


def cores_per_task(resources: Resources) -> str:
    """`-c`: the node's cores shared by `para_deg` tasks; rounded down, so a node still runs `para_deg` at once."""
    cores = math.floor(resources.cpu_per_node / resources.para_deg * 10**6) / 10**6
    return f'{cores:g}'


def disbatch_arguments(
    system: BatchSystem, resources: Resources, files: JobFiles, attempt: int, earlier_status_files: Sequence[str]
) -> list[str]:
    """The flags of the disbatch run inside an attempt of a job (after the disbatch command itself)."""
    arguments = ['--batch-system', system.disbatch_flag, '-p', files.stem(attempt)]
    if system.batch_type is BatchType.SHELL:
        arguments += ['-s', f'localhost:{resources.cpu_per_node}']
    for status_file in earlier_status_files:
        arguments += ['-r', status_file]
    arguments += ['-c', cores_per_task(resources)]
    if resources.gpu_per_node and resources.if_cuda_multi_devices:
        arguments += ['--gpus-per-task', str(max(1, resources.gpu_per_node // resources.para_deg))]
    if resources.walltime and system.batch_type is not BatchType.SLURM:  # under Slurm disbatch reads the job's end
        arguments += ['--walltime', f'{walltime_seconds(resources.walltime)}s']
    return [*arguments, files.task_file]


def setup_lines(resources: Resources) -> list[str]:
    """What runs before disbatch: modules, sourced files, exported variables, the prepend lines (verbatim)."""
    lines = ['module purge'] if resources.module_purge else []
    lines += [f'module unload {module}' for module in resources.module_unload_list]
    lines += [f'module load {module}' for module in resources.module_list]
    lines += [f'source {path}' for path in resources.source_list]
    lines += [f'export {name}={value}' for name, value in resources.envs.items()]  # verbatim: "$PATH:..." expands
    return lines + list(resources.prepend_script)


def job_script(
    system: BatchSystem,
    resources: Resources,
    files: JobFiles,
    attempt: int,
    run_directory: str,
    disbatch_command: str,
    earlier_status_files: Sequence[str],
    header_template: str | None = None,
) -> str:
    """The batch script of one attempt of a job. `header_template` (the text of the strategy's
    `customized_script_header_template_file`) replaces the generated header; `{name}` fields are the resources'."""
    log = posixpath.basename(files.log(attempt))
    if header_template is not None:
        header = header_template.format(**resources.serialize()).rstrip('\n').splitlines()
    else:
        header = system.header(resources, files.job_name, log)
    arguments = disbatch_arguments(system, resources, files, attempt, earlier_status_files)
    lines = [
        '#!/bin/bash',
        *header,
        *resources.custom_flags,
        '',
        *setup_lines(resources),
        f'cd {shlex.quote(run_directory)} || exit 1',
        f'{disbatch_command} {shlex.join(arguments)}',
        'code=$?',
        f'echo $code > {shlex.quote(files.exit_file(attempt))}',
        *resources.append_script,
        'exit $code',
    ]
    return '\n'.join(lines) + '\n'
