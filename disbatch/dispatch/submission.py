"""`Submission`: dpdispatcher's submission object (work_base, machine, resources, tasks, common files), its hash,
its JSON (`dpdisp submit`'s file), and the entry points `run_submission`, `status` and `cancel`.

The tasks are cut into jobs of `group_size` in the order given (0: one job for all). What a run does, step by
step, is `runner.py`'s; this module is the user's object and what identifies it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from disbatch.dispatch.state import TaskResult
from disbatch.dispatch.submission_parts import Machine, Resources, Task, check_keys, read_json
from disbatch.errors import SubmissionError

_SUBMISSION_KEYS = (
    'work_base',
    'machine',
    'resources',
    'task_list',
    'forward_common_files',
    'backward_common_files',
)


class Submission:
    """A list of tasks to run as batch jobs on a machine, with the files they need and make."""

    def __init__(
        self,
        work_base: str,
        machine: Machine | None = None,
        resources: Resources | None = None,
        forward_common_files: Sequence[str] | None = None,
        backward_common_files: Sequence[str] | None = None,
        task_list: Sequence[Task] | None = None,
    ) -> None:
        self.work_base = work_base
        self.machine = machine
        self.resources = resources
        self.forward_common_files = list(forward_common_files or [])
        self.backward_common_files = list(backward_common_files or [])
        self.task_list: list[Task] = list(task_list or [])

    def register_task(self, task: Task) -> None:
        self.task_list.append(task)

    def register_task_list(self, task_list: Sequence[Task]) -> None:
        self.task_list.extend(task_list)

    # ------------------------------------------------------------ identity and JSON

    @property
    def local_directory(self) -> str:
        """local_root/work_base, absolute: where the tasks' files are on this machine."""
        return os.path.abspath(os.path.join(self.parts[0].local_root, self.work_base))

    @property
    def parts(self) -> tuple[Machine, Resources]:
        if self.machine is None or self.resources is None:
            raise SubmissionError('the submission needs a machine and resources')
        return self.machine, self.resources

    def serialize(self) -> dict[str, Any]:
        machine, resources = self.parts
        return {
            'work_base': self.work_base,
            'machine': machine.serialize(),
            'resources': resources.serialize(),
            'task_list': [task.serialize() for task in self.task_list],
            'forward_common_files': self.forward_common_files,
            'backward_common_files': self.backward_common_files,
        }

    @classmethod
    def deserialize(cls, data: Any) -> Submission:
        """A submission from `dpdisp submit`'s JSON object (keys: work_base, machine, resources, task_list, ...)."""
        if not isinstance(data, dict):
            raise SubmissionError(f'submission: expected a JSON object, not {type(data).__name__}')
        check_keys(data, _SUBMISSION_KEYS, 'submission')
        for key in ('work_base', 'machine', 'resources', 'task_list'):
            if key not in data:
                raise SubmissionError(f'submission: missing key {key!r}')
        tasks = data['task_list']
        if not isinstance(tasks, list):
            raise SubmissionError('submission: task_list must be a list of tasks')
        for key in ('forward_common_files', 'backward_common_files'):
            value = data.get(key, [])
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise SubmissionError(f'submission: {key} must be a list of strings')
        if not isinstance(data['work_base'], str):
            raise SubmissionError('submission: work_base must be a string')
        return cls(
            data['work_base'],
            Machine.load_from_dict(data['machine']),
            Resources.load_from_dict(data['resources']),
            data.get('forward_common_files', []),
            data.get('backward_common_files', []),
            [Task.load_from_dict(task) for task in tasks],
        )

    @classmethod
    def load_from_json(cls, path: str | Path) -> Submission:
        return cls.deserialize(read_json(path, 'submission'))

    @property
    def hash(self) -> str:
        """What identifies the submission: its content and the absolute directory of its files."""
        content = json.dumps({'directory': self.local_directory, **self.serialize()}, sort_keys=True)
        return hashlib.sha256(content.encode()).hexdigest()[:40]

    def jobs(self) -> list[list[int]]:
        """The task indices of each job: `group_size` tasks per job, in order (0: every task in one job)."""
        _, resources = self.parts
        count = len(self.task_list)
        size = resources.group_size or max(count, 1)
        return [list(range(start, min(start + size, count))) for start in range(0, count, size)]

    # ------------------------------------------------------------ running

    def run_submission(
        self, dry_run: bool = False, exit_on_submit: bool = False, clean: bool = True, check_interval: float = 30
    ) -> list[TaskResult]:
        """Stage, submit and follow the jobs until every task has ended; a result per task. Raises
        `TasksFailedError` (listing them) when a task failed or never ran, `SubmissionError` when the submission
        cannot start. With `dry_run`, print the job scripts and file lists and touch nothing; with
        `exit_on_submit`, return (no results) once the jobs are submitted."""
        from disbatch.dispatch.runner import Runner

        if not self.task_list:
            raise SubmissionError('the submission has no task')
        runner = Runner(self)
        if dry_run:
            runner.dry_run()
            return []
        return runner.run(exit_on_submit=exit_on_submit, clean=clean, check_interval=check_interval)

    async def async_run_submission(
        self, dry_run: bool = False, exit_on_submit: bool = False, clean: bool = True, check_interval: float = 30
    ) -> list[TaskResult]:
        """`run_submission` in a worker thread, for an asyncio program."""
        return await asyncio.to_thread(self.run_submission, dry_run, exit_on_submit, clean, check_interval)
