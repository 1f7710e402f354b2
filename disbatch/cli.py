"""The `disbatch` command: flags (the reference's, with the same meanings) → RunConfig → a run → an exit code.

Exit codes:

    0    the run finished (failed tasks too, unless -e)
    1    -e and a task failed; --fail-fast stopped the run; the run could not go on (a DisbatchError)
    2    bad flags (argparse, UsageError)
    130  SIGINT (Ctrl-C), 143 SIGTERM: running tasks were stopped and recorded
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from disbatch import __version__
from disbatch.config import RunConfig
from disbatch.contexts.flags import add_context_arguments, deprecation_warnings
from disbatch.errors import DisbatchError, UsageError
from disbatch.exiting import exit_now

EXIT_CODES: dict[type[DisbatchError], int] = {UsageError: 2}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='disbatch', description='Use batch resources to process a file of tasks, one task per line.'
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('taskfile', nargs='?', help='File with tasks, one task per line ("-" for stdin)')
    source.add_argument(
        '--taskcommand', metavar='COMMAND', help='Tasks will come from the command specified via the KVS server.'
    )
    source.add_argument(
        '--taskserver', nargs='?', const='', metavar='HOST:PORT', help='Tasks will come from the KVS server.'
    )
    source.add_argument('--version', action='store_true', help='Print the version and exit')
    add = parser.add_argument
    add(
        '-e',
        '--exit-code',
        action='store_true',
        help='When any task fails, exit with non-zero status (default: only if disbatch itself fails)',
    )
    add('--force-resume', action='store_true', help='With -r, proceed even if task commands/lines are different.')
    add('--kvsserver', nargs='?', const='', metavar='HOST:PORT', help='Use a running KVS server.')
    add('--logfile', metavar='FILE', help='Log file.')
    add(
        '--loglevel',
        choices=['CRITICAL', 'ERROR', 'WARNING', 'INFO', 'DEBUG'],
        default='INFO',
        help='Logging level (default: INFO).',
    )
    add('--mailFreq', type=int, metavar='N', help='Send email every N task completions (default: 1).')
    add('--mailTo', metavar='ADDR', help='Mail address for task completion notification(s).')
    add(
        '--mail-server',
        metavar='HOST[:PORT]',
        default='localhost',
        help='SMTP server for --mailTo (default: localhost:25).',
    )
    add(
        '-p',
        '--prefix',
        metavar='PATH',
        default='.',
        help='Path for log, dbUtil, and status files (default: "."). If it ends with a non-directory component, '
        'use it as the prefix of these files (default: <Taskfile>_disBatch_<yyMMddHHmmss>_<Random>).',
    )
    add(
        '-r',
        '--resume-from',
        metavar='STATUSFILE',
        action='append',
        default=[],
        help='Read the status file from a previous run and skip any completed tasks (may be given more than once).',
    )
    add(
        '-R',
        '--retry',
        action='store_true',
        help='With -r, also retry any tasks which failed in previous runs (non-zero return).',
    )
    add(
        '-S',
        '--startup-only',
        action='store_true',
        help='Start only the disbatch server; use the dbUtil script to add execution contexts.',
    )
    add('--status-header', action='store_true', help='Add header line to status file.')
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument(
        '--progress',
        action='store_true',
        help='Show the progress line and the end-of-run summary even when stderr is not a terminal.',
    )
    shown.add_argument('--quiet', action='store_true', help='Never show the progress line or the end-of-run summary.')
    add('--use-address', metavar='HOST:PORT', help='Specify hostname and port to use for this run.')
    add('-w', '--web', action='store_true', help='Enable web interface.')
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
        '-f',
        '--fail-fast',
        action='store_true',
        help='Exit on first task failure. Running tasks are stopped and recorded; the exit code is non-zero.',
    )
    add_context_arguments(parser, default_hint='1 core; all of them under Slurm')
    add('--address-file', metavar='PATH', help=argparse.SUPPRESS)  # DisBatcher: where the KVS address goes
    return parser  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    if arguments.version:
        print(__version__)
        return 0
    for warning in deprecation_warnings(arguments):
        print(f'disbatch: warning: {warning}', file=sys.stderr)
    try:
        config = RunConfig.from_arguments(arguments)
        from disbatch.driver.run import run

        return run(config)
    except DisbatchError as error:
        print(f'disbatch: {error}', file=sys.stderr)
        return EXIT_CODES.get(type(error), 1)


def entry() -> NoReturn:
    """The `disbatch` command (console script and `python -m disbatch`): a run, then a quick exit."""
    exit_now(main())


if __name__ == '__main__':
    entry()
