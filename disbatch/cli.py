"""The `disbatch` command: flags (the reference's, with the same meanings) → RunConfig → a run → an exit code.

Exit codes:

    0    the run finished (failed tasks too, unless -e)
    1    -e and a task failed; --fail-fast stopped the run; the run could not go on (a DisbatchError)
    2    bad flags (argparse, UsageError)
    3    the run stopped for the end of its allocation (--walltime, or the Slurm job's time limit) with tasks left;
         none is lost: `-r STATUSFILE` runs them (with --resubmit, the follow-up job does, and the code is 0)
    130  SIGINT (Ctrl-C), 143 SIGTERM: running tasks were stopped and recorded

`disbatch report STATUS_OR_JSON [-o FILE]` summarises a finished run instead (`report/render.py`), unless a file
named `report` is in the current directory (then it is the task file, as it always was); `disbatch submit ...`
runs tasks as batch jobs from anywhere (`dispatch/command.py`), likewise.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from typing import NoReturn

from disbatch import __version__
from disbatch.config import RunConfig
from disbatch.contexts.flags import add_context_arguments, deprecation_warnings
from disbatch.contract import NAMED_IN_MESSAGES, RunFiles
from disbatch.driver.core.walltime import DEFAULT_MARGIN_SECONDS, DEFAULT_RESUBMITS, EXIT_WALLTIME, STOP_LEAD_SECONDS
from disbatch.errors import DisbatchError, UsageError
from disbatch.exiting import exit_now

EXIT_CODES: dict[type[DisbatchError], int] = {UsageError: 2}


class _Parser(argparse.ArgumentParser):
    """argparse, with a one-line error that names the flag a misspelled one was probably meant to be, instead of
    the whole usage block (which hides the message under thirty lines of flags)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f'{self.prog}: error: {message}{self._suggestion(message)}; {self.prog} --help lists the flags\n')

    def _suggestion(self, message: str) -> str:
        known = [
            option
            for action in self._actions
            if action.help != argparse.SUPPRESS
            for option in action.option_strings
            if option.startswith('--')
        ]
        unknown = message.partition('unrecognized arguments: ')[2].split()
        guesses = []
        for word in unknown:
            if word.startswith('-'):
                flag = '--' + word.lstrip('-').split('=', 1)[0]
                guesses += difflib.get_close_matches(flag, known, n=1, cutoff=0.7)
        return f' (did you mean {" or ".join(guesses)}?)' if guesses else ''


_EVERY_RUN = RunFiles('Tasks_disBatch_*')  # the glob of every run's files of the task file `Tasks`
_EXAMPLES = f"""\
examples:
  disbatch -s localhost:8 Tasks                  8 tasks at a time on this machine
  sbatch -n 20 -c 4 --wrap 'disbatch Tasks'     20 tasks of 4 cores each in a Slurm job
  disbatch -s localhost:8 -r {_EVERY_RUN.status} Tasks
                                                 resume: skip what earlier runs finished (add -R to run the
                                                 failed ones again); the newest status file alone is enough
  disbatch -s node1:16,node2:16 --retries 2 --timeout 600 Tasks
                                                 SSH hosts; a failing task runs up to 3 times, 10 min at most

other commands:
  disbatch report STATUS_OR_EVENTS_FILE [-o FILE]  summarise a finished run (HTML with -o)
  disbatch submit ...                              run a task file on a remote machine or batch system
  {NAMED_IN_MESSAGES.dbutil + ' --help':<47}  add engines to a live run, watch it (--mon)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog='disbatch',
        usage='%(prog)s [options] TASKFILE  (or --taskcommand COMMAND, --taskserver [HOST:PORT])',
        description='Use batch resources to process a file of tasks, one task per line.',
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    everyday = parser.add_argument_group('everyday')
    batch = parser.add_argument_group('batch systems and contexts')
    watching = parser.add_argument_group('watching a run')
    results = parser.add_argument_group('results and logs')
    advanced = parser.add_argument_group('task streams, the KVS and other reference features')

    add = everyday.add_argument
    add('taskfile', nargs='?', help='File with tasks, one task per line ("-" for stdin)')
    add_context_arguments(batch, '1 core; all of them under Slurm', everyday)
    add(
        '-r',
        '--resume-from',
        metavar='STATUSFILE',
        nargs='+',
        action='append',
        default=[],
        help='Read status files of earlier runs and skip the tasks they finished. One -r takes several files '
        f'(-r {_EVERY_RUN.status} Tasks: the last word is the task file) and may be given more than once; a '
        "resumed run's status file also holds every record it carried over, so the newest one alone is enough.",
    )
    add(
        '-R',
        '--retry',
        action='store_true',
        help='With -r, also retry any tasks which failed in previous runs (non-zero return). '
        'For more attempts of a failing task, see --retries.',
    )
    add(
        '-f',
        '--fail-fast',
        action='store_true',
        help='Exit on first task failure. Running tasks are stopped and recorded; the exit code is non-zero.',
    )
    add(
        '--retries',
        type=int,
        default=0,
        metavar='N',
        help='Run a task that fails (or times out) up to N more times; every attempt is recorded (default: 0).',
    )
    add(
        '--timeout',
        type=float,
        default=0.0,
        metavar='SECONDS',
        help='Stop a task that runs longer than this (SIGTERM to its process group, SIGKILL 1 s later); it is '
        'recorded as timed out (flag T) and counts as failed (default: no limit).',
    )
    add(
        '-e',
        '--exit-code',
        action='store_true',
        help='When any task fails, exit with non-zero status (default: only if disbatch itself fails)',
    )
    add(
        '-p',
        '--prefix',
        metavar='PATH',
        default='.',
        help='Path for log, dbUtil, and status files (default: "."). A path ending in "/" is a directory (made if '
        'missing); if it ends with a non-directory component, it is the prefix of these files '
        '(default: <Taskfile>_disBatch_<yyMMddHHmmss>_<Random>).',
    )
    add('--version', action='store_true', help='Print the version and exit')

    add = batch.add_argument
    add(
        '--walltime',
        metavar='DURATION',
        help="The run must end this long after it starts, in Slurm's forms (minutes, M:S, H:M:S, D-H:M:S) or with "
        "a unit (90m, 20s); under Slurm the job's own end is used without it. Near the end no task starts that is "
        f'not expected to finish in time, what still runs {STOP_LEAD_SECONDS:g} s before the end is stopped '
        f'(recorded as interrupted), and the exit code is {EXIT_WALLTIME} when tasks are left.',
    )
    add(
        '--drain-margin',
        type=float,
        metavar='SECONDS',
        help='No task expected to end later than this before the end of the allocation starts (default: '
        f'{DEFAULT_MARGIN_SECONDS:g} s, or a tenth of the allocation when that is shorter).',
    )
    add(
        '--resubmit',
        type=int,
        nargs='?',
        const=DEFAULT_RESUBMITS,
        default=0,
        metavar='N',
        help="Under Slurm: when the job's end leaves tasks undone, submit a follow-up job (sbatch "
        '--dependency=afterany:JOBID, same resources) that resumes the run with -r; at most N follow-ups in a '
        f'chain (default: {DEFAULT_RESUBMITS}).',
    )
    add(
        '-S',
        '--startup-only',
        action='store_true',
        help='Start only the disbatch server; use the dbUtil script to add execution contexts.',
    )

    add = watching.add_argument
    shown = watching.add_mutually_exclusive_group()
    shown.add_argument(
        '--progress',
        action='store_true',
        help='Show the progress and the end-of-run summary even when stderr is not a terminal (now the default).',
    )
    shown.add_argument('--quiet', action='store_true', help='Never show the progress line or the end-of-run summary.')
    add(
        '--progress-every',
        type=float,
        default=60.0,
        metavar='SECONDS',
        help='When stderr is not a terminal (a batch log), print a plain progress line this often (default: 60).',
    )
    add('-w', '--web', action='store_true', help='Enable web interface.')
    add('--mailTo', metavar='ADDR', help='Mail address for task completion notification(s).')
    add('--mailFreq', type=int, metavar='N', help='Send email every N task completions (default: 1).')
    add(
        '--mail-server',
        metavar='HOST[:PORT]',
        default='localhost',
        help='SMTP server for --mailTo (default: localhost:25).',
    )

    add = results.add_argument
    add(
        '--results',
        metavar='DIR',
        help="Keep every task's complete stdout and stderr in DIR (made if missing), streamed as they come: "
        'DIR/<taskid>.<attempt>.out and .err, the task id zero-padded to 6 digits.',
    )
    add(
        '--json',
        metavar='FILE',
        help="Write the run's events (run start, engines, tasks started and finished with their resource usage) "
        f'to FILE as JSON lines, flushed line by line (FILE "auto": {NAMED_IN_MESSAGES.events} beside the status '
        'file). '
        '`disbatch report` reads it back.',
    )
    add('--status-header', action='store_true', help='Add header line to status file.')
    add('--logfile', metavar='FILE', help='Log file.')
    add(
        '--loglevel',
        choices=['CRITICAL', 'ERROR', 'WARNING', 'INFO', 'DEBUG'],
        default='INFO',
        help='Logging level (default: INFO).',
    )

    add = advanced.add_argument
    add('--taskcommand', metavar='COMMAND', help='Tasks will come from the command specified via the KVS server.')
    add('--taskserver', nargs='?', const='', metavar='HOST:PORT', help='Tasks will come from the KVS server.')
    add('--kvsserver', nargs='?', const='', metavar='HOST:PORT', help='Use a running KVS server.')
    add('--force-resume', action='store_true', help='With -r, proceed even if task commands/lines are different.')
    add(
        '--kill-leftovers',
        action='store_true',
        help='End what a task leaves running in the background (SIGTERM, SIGKILL 1 s later) as soon as its main '
        'process exits, PERENGINE START tasks excepted. Without it such processes are logged and run on until their '
        'engine leaves, which ends them the same way.',
    )
    add(
        '--fork-tasks',
        action='store_true',
        help='Faster starts for many short tasks: each slot is a long-lived bash that forks a subshell per task '
        'instead of executing bash for each (see the Readme for what differs: $$, 128+N statuses, no peak memory).',
    )
    add('--use-address', metavar='HOST:PORT', help='Specify hostname and port to use for this run.')
    add('--address-fd', type=int, metavar='FD', help=argparse.SUPPRESS)  # DisBatcher: where the KVS address goes
    add('--owner-pid', type=int, metavar='PID', help=argparse.SUPPRESS)  # DisBatcher: its end ends the run
    add('--tasks-name', metavar='NAME', help=argparse.SUPPRESS)  # DisBatcher(tasksname=...): names the run's files
    return parser


_SOURCES = (('taskfile', 'TASKFILE'), ('taskcommand', '--taskcommand'), ('taskserver', '--taskserver'))


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """The flags of `argv`, the task source settled: one `-r` takes several status files, so in `-r A B Tasks` the
    last word is the task file (of the first `-r` that names several words, when no task file comes after them);
    exactly one of a task file, --taskcommand and --taskserver (or --version)."""
    parser = build_parser()
    arguments, unknown = parser.parse_known_args(_bare_resubmit(argv))
    if _retry_count(argv, arguments):
        parser.error(
            f'--retry {arguments.taskfile}: --retry is the long form of -R (with -r, run the tasks that failed in '
            f'earlier runs again); for {arguments.taskfile} more attempts of a failing task give --retries '
            f'{arguments.taskfile}'
        )
    if unknown:
        parser.error(f'unrecognized arguments: {" ".join(unknown)}')
    given = [flag for name, flag in _SOURCES if getattr(arguments, name) is not None]
    groups: list[list[str]] = arguments.resume_from  # one list per -r
    several = [group for group in groups if len(group) > 1]
    if not given and several and not arguments.version:
        arguments.taskfile = several[0].pop()  # `-r A B Tasks`: the last word of the first -r naming several
        given = ['TASKFILE']
    arguments.resume_from = [path for group in groups for path in group]
    if len(given) > 1:
        parser.error(f'{given[0]} and {given[1]}: give one source of tasks')
    if not given and not arguments.version:
        parser.error('give a task file (or --taskcommand COMMAND, --taskserver [HOST:PORT])')
    return arguments


def _bare_resubmit(argv: list[str]) -> list[str]:
    """`--resubmit Tasks`: the word after a bare --resubmit is not its count (argparse would take it for one)."""
    words = list(argv)
    for position, word in enumerate(words[:-1]):
        if word == '--resubmit' and not words[position + 1].lstrip('-').isdigit():
            words[position] = f'--resubmit={DEFAULT_RESUBMITS}'
    return words


def _retry_count(argv: list[str], arguments: argparse.Namespace) -> bool:
    """`--retry 2` taken as -R with `2` the task file, when what was meant is --retries 2."""
    if '--retry' not in argv or arguments.taskfile is None:
        return False
    after = argv[argv.index('--retry') + 1 : argv.index('--retry') + 2]
    return after == [arguments.taskfile] and after[0].isdigit() and not os.path.exists(after[0])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['report'] and not os.path.isfile('report'):  # a task file named `report` still runs
        from disbatch.report.render import main as report

        return report(argv[1:])
    if argv[:1] == ['submit'] and not os.path.isfile('submit'):  # likewise: `disbatch submit` (disbatch/dispatch/)
        from disbatch.dispatch.command import main as submit

        return submit(argv[1:])
    arguments = parse_arguments(argv)
    if arguments.version:
        print(__version__)
        return 0
    for warning in deprecation_warnings(arguments):
        print(f'disbatch: warning: {warning}', file=sys.stderr)
    try:
        config = RunConfig.from_arguments(arguments)
        from disbatch.driver.run.prepare import run

        return run(config)
    except DisbatchError as error:
        for line in str(error).splitlines():  # several bad task-file lines: one line each
            print(f'disbatch: {line}', file=sys.stderr)
        return EXIT_CODES.get(type(error), 1)


def entry() -> NoReturn:
    """The `disbatch` command (console script and `python -m disbatch`): a run, then a quick exit."""
    exit_now(main())


if __name__ == '__main__':
    entry()
