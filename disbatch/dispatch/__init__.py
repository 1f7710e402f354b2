"""`disbatch.dispatch`: submit tasks from anywhere, in dpdispatcher's vocabulary; each batch job is a disbatch run.

    from disbatch.dispatch import Machine, Resources, Task, Submission

    machine = Machine.load_from_json('machine.json')
    resources = Resources.load_from_json('resources.json')
    tasks = [Task(command='lmp -i in.lammps', task_work_path=f'run{i}/', forward_files=['in.lammps'],
                  backward_files=['log.lammps']) for i in range(6)]
    Submission('md/', machine, resources, task_list=tasks).run_submission()

Modules: `submission_parts` (Machine, Resources, Task and their JSON), `submission` (Submission, its hash and JSON),
`batch_systems` (PURE: headers and scheduler commands), `job_script` (PURE: the task file and the batch script),
`tracking` (PURE: status records and scheduler phase → what to do with a job), `remote` (ssh/bash, tar streams),
`state` (the saved state, results), `runner` (check, stage, submit, follow, fetch), `command` (`disbatch submit`).
"""

from disbatch.dispatch.state import TaskResult
from disbatch.dispatch.submission import Submission
from disbatch.dispatch.submission_parts import BatchType, ContextType, Machine, RemoteProfile, Resources, Task
from disbatch.errors import SubmissionError, TasksFailedError

__all__ = [
    'BatchType',
    'ContextType',
    'Machine',
    'RemoteProfile',
    'Resources',
    'Submission',
    'SubmissionError',
    'Task',
    'TaskResult',
    'TasksFailedError',
]
