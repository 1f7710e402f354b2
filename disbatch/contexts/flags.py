"""The context flags, shared by `disbatch` (for the context it starts itself) and `<stem>_dbUtil.sh` (a context
added to a live run): the reference's names and meanings. `default_hint` says where an unset -c/-t comes from."""

from __future__ import annotations

import argparse


def add_context_arguments(parser: argparse.ArgumentParser, default_hint: str) -> None:  # fmt: skip
    add = parser.add_argument
    add(
        '-C',
        '--context-task-limit',
        type=int,
        default=0,
        metavar='TASK_LIMIT',
        help='Shutdown after running COUNT tasks (0 => no limit).',
    )
    add(
        '-c',
        '--cpusPerTask',
        type=float,
        default=None,
        metavar='N',
        help=f'Number of cores used per task; may be fractional (default: {default_hint}).',
    )
    add(
        '--batch-system',
        choices=['slurm', 'sge', 'pbs', 'lsf', 'none'],
        default=None,
        help="Take the nodes from this batch system's job instead of detecting it (none: only -s or "
        'DISBATCH_SSH_NODELIST); detection order: Slurm, Grid Engine, PBS, LSF.',
    )
    add('--fill', action='store_true', help='Try to use extra cores if allocated cores exceeds requested cores.')
    add('--no-retire', action='store_true', help="Don't retire nodes from the batch system.")
    add('-l', '--label', metavar='LABEL', help='Label for this context. Should be unique.')
    add(
        '--retire-cmd',
        metavar='COMMAND',
        help='Shell command to run to retire a node (environment includes $NODES, $RETCODES, $ACTIVE, $RETIRED).',
    )
    add(
        '-s',
        '--ssh-node',
        action='append',
        default=[],
        metavar='HOST:CORECOUNT',
        help='Run tasks on the given nodes (may be given more than once; equivalent to DISBATCH_SSH_NODELIST)',
    )
    add(
        '-t',
        '--tasksPerNode',
        type=int,
        default=None,
        metavar='N',
        help=f'Maximum concurrently executing tasks per node (up to cores/cpusPerTask; default: {default_hint}).',
    )
