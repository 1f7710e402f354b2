"""`--results DIR`: the names of the files that keep each task's complete stdout and stderr. Pure.

The engine writes them (streaming each chunk as it reads it from the task's pipes, see `engine/task_process.py`); the
driver names them in `--json` and `disbatch report`. One pair per attempt, so a retried task keeps every attempt:

    DIR/000042.1.out   DIR/000042.1.err      task 42, attempt 1 (task ids zero-padded like DISBATCH_TASKID_ZP)
    DIR/perengine_line000003_engine2.out     the PERENGINE START or STOP task of line 3, as engine 2 ran it
"""

from __future__ import annotations

import os


def output_paths(directory: str, task_id: int, attempt: int) -> tuple[str, str]:
    """The (stdout, stderr) files of one attempt of a task."""
    return _paths(directory, f'{task_id:06d}.{attempt}')


def per_engine_output_paths(directory: str, line_number: int, engine_rank: int) -> tuple[str, str]:
    """The (stdout, stderr) files of a per-engine task on one engine (their ids count per phase: the line is
    what tells a START task from a STOP task)."""
    return _paths(directory, f'perengine_line{line_number:06d}_engine{engine_rank}')


def _paths(directory: str, stem: str) -> tuple[str, str]:
    base = os.path.join(directory, stem)
    return f'{base}.out', f'{base}.err'
