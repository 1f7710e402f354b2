"""`disbatch submit`: a submission from JSON (dpdispatcher's `dpdisp submit` file) or from a plain task file, run,
dry-run, or looked at and cancelled once saved.

    disbatch submit SUBMISSION.json [--dry-run] [--exit-on-submit] [--check-interval S] [--keep]
    disbatch submit --machine M.json --resources R.json [--forward F]... [--backward G]... TASKFILE
    disbatch submit --status SUBMISSION.json|HASH      disbatch submit --cancel SUBMISSION.json|HASH

Exit codes: 0 every task succeeded (or: submitted, shown, cancelled); 1 a task failed or never ran, or the
submission could not start (one line saying why); 2 bad flags; 130 Ctrl-C (the jobs keep running).
"""

from __future__ import annotations

import argparse
import os
import sys

from disbatch.dispatch.runner import Runner
from disbatch.dispatch.state import SubmissionState, find_saved
from disbatch.dispatch.submission import Submission
from disbatch.dispatch.submission_parts import Machine, Resources, Task
from disbatch.errors import SubmissionError

EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='disbatch submit',
        description='Run tasks as batch jobs on a machine (this one, or one reached over ssh), each job a disbatch '
        'run; stage their files, follow the jobs, resubmit a job that ended with tasks left (-r), fetch results.',
    )
    add = parser.add_argument
    add(
        'file',
        nargs='?',
        metavar='SUBMISSION.json|TASKFILE',
        help="the submission (dpdispatcher's JSON), or with --machine a task file (one command per line)",
    )
    add(
        '--dry-run', action='store_true', help='Print the job scripts and the files to upload and fetch; touch nothing.'
    )
    add('--exit-on-submit', action='store_true', help='Return once the jobs are submitted.')
    add(
        '--check-interval',
        type=float,
        default=30.0,
        metavar='SECONDS',
        help='How often to ask the scheduler about the jobs (default: 30).',
    )
    add('--keep', action='store_true', help='Keep the run directory on the machine after success.')
    add('--machine', metavar='M.json', help="A task file's machine (dpdispatcher's machine JSON).")
    add('--resources', metavar='R.json', help="A task file's resources (dpdispatcher's resources JSON).")
    add(
        '--forward',
        action='append',
        default=[],
        metavar='FILE',
        help="A task file's forward file (a glob; repeatable).",
    )
    add(
        '--backward',
        action='append',
        default=[],
        metavar='FILE',
        help="A task file's backward file (a glob; repeatable).",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--status', metavar='SUBMISSION.json|HASH', help="Show a saved submission's jobs.")
    group.add_argument('--cancel', metavar='SUBMISSION.json|HASH', help="Cancel a saved submission's jobs.")
    return parser


def task_file_submission(arguments: argparse.Namespace) -> Submission:
    """A plain task file as a submission: each command a task in the file's directory, its output in
    `<file>.<n>.out` / `.err` there; the --forward / --backward files are common files."""
    if not arguments.resources:
        raise SubmissionError('--machine needs --resources too')
    path = arguments.file
    try:
        with open(path, encoding='utf-8') as stream:
            lines = [line.strip() for line in stream]
    except OSError as error:
        raise SubmissionError(f'{path}: cannot read the task file: {error.strerror}') from None
    commands = [line for line in lines if line and not line.startswith('#')]
    name = os.path.basename(path)
    tasks = [Task(command, './', [], [], f'{name}.{n}.out', f'{name}.{n}.err') for n, command in enumerate(commands)]
    machine = Machine.load_from_json(arguments.machine)
    return Submission(
        os.path.dirname(os.path.abspath(path)),
        machine,
        Resources.load_from_json(arguments.resources),
        arguments.forward,
        arguments.backward,
        tasks,
    )


def saved_state(name: str) -> tuple[Runner, SubmissionState]:
    """The saved submission named by its JSON file or (a prefix of) its hash, with a runner for its machine."""
    submission_hash = Submission.load_from_json(name).hash if os.path.isfile(name) else find_saved(name)
    state = SubmissionState.load(submission_hash)
    if state is None:
        raise SubmissionError(f'{name}: no saved submission (it has not run, or it ended and was cleaned up)')
    return Runner(Submission.deserialize(state.submission), state.hash), state


def main(argv: list[str]) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        if arguments.status or arguments.cancel:
            runner, state = saved_state(arguments.status or arguments.cancel)
            for line in runner.status(state) if arguments.status else runner.cancel(state):
                print(line)
            return 0
        if not arguments.file:
            build_parser().error('give a SUBMISSION.json (or --machine, --resources and a TASKFILE)')
        from_task_file = bool(arguments.machine)
        submission = task_file_submission(arguments) if from_task_file else Submission.load_from_json(arguments.file)
        submission.run_submission(
            dry_run=arguments.dry_run,
            exit_on_submit=arguments.exit_on_submit,
            clean=not arguments.keep,
            check_interval=arguments.check_interval,
        )
    except SubmissionError as error:
        for line in str(error).splitlines():
            print(f'disbatch submit: {line}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return 0
