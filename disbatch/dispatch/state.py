"""A submission's state on this machine: which jobs were submitted with which ids, in how many attempts, and what
became of each task once its job was done; saved after every change, keyed by the submission's hash.

The file is `$XDG_STATE_HOME/disbatch/submissions/<hash>.json` (`~/.local/state/...` by default), written to a
temporary name and renamed, so a submitter killed at any point leaves the last state whole. Running the same
submission again reads it and re-attaches to the jobs it names instead of submitting twice. It also holds the
submission itself, so `disbatch submit --status HASH` / `--cancel HASH` work without the files that made it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from disbatch.errors import SubmissionError

_STATE_VERSION = 1


def state_directory() -> Path:
    base = os.environ.get('XDG_STATE_HOME') or os.path.join(os.path.expanduser('~'), '.local', 'state')
    return Path(base) / 'disbatch' / 'submissions'


@dataclass
class TaskResult:
    """What became of one task: `succeeded`, `failed` (it ran and failed, or a backward file is missing), or
    `not run` (its job ended without running it, every attempt)."""

    index: int  # in the submission's task list
    command: str
    task_work_path: str
    state: str
    return_code: int | None = None
    job: int = 0  # which job of the submission
    job_ids: list[str] = field(default_factory=list)  # the scheduler's ids of that job's attempts
    message: str = ''

    @property
    def succeeded(self) -> bool:
        return self.state == 'succeeded'

    def describe(self) -> str:
        where = f'task {self.index} ({self.task_work_path}: {self.command})'
        return f'{where}: {self.message or self.state}'


@dataclass
class JobState:
    index: int
    task_indices: list[int]
    job_ids: list[str] = field(default_factory=list)  # one per attempt submitted, in order
    done: bool = False  # its tasks' results are in `results` and their files are fetched
    results: list[TaskResult] = field(default_factory=list)

    @property
    def attempts(self) -> int:
        return len(self.job_ids)

    @property
    def live_id(self) -> str | None:
        return self.job_ids[-1] if self.job_ids and not self.done else None


@dataclass
class SubmissionState:
    hash: str
    submission: dict[str, Any]  # Submission.serialize(): what --status / --cancel rebuild it from
    run_directory: str = ''  # absolute, on the machine; known once it is prepared
    uploaded: bool = False
    jobs: list[JobState] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return state_directory() / f'{self.hash}.json'

    def save(self) -> None:
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix('.json.tmp')
        data = {'version': _STATE_VERSION, **asdict(self)}
        temporary.write_text(json.dumps(data, indent=1) + '\n')
        os.replace(temporary, path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    @classmethod
    def load(cls, submission_hash: str) -> SubmissionState | None:
        """The saved state of the submission, or None if there is none."""
        path = state_directory() / f'{submission_hash}.json'
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise SubmissionError(f'{path}: cannot read the saved submission: {error}') from None
        if data.pop('version', None) != _STATE_VERSION:
            raise SubmissionError(f'{path}: saved by another version of disbatch; remove it to start afresh')
        jobs = [
            JobState(**{**job, 'results': [TaskResult(**result) for result in job['results']]})
            for job in data.pop('jobs')
        ]
        return cls(**data, jobs=jobs)


def find_saved(prefix: str) -> str:
    """The hash of the one saved submission whose hash starts with `prefix`."""
    names = sorted(path.stem for path in state_directory().glob(f'{prefix}*.json'))
    if len(names) != 1:
        problem = 'no saved submission' if not names else f'{len(names)} saved submissions'
        raise SubmissionError(f'{problem} with a hash starting {prefix!r} in {state_directory()}')
    return names[0]
