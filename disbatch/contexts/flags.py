"""The context flags, shared by `disbatch` (for the context it starts itself) and `<stem>_dbUtil.sh` (a context
added to a live run): the reference's names and meanings. `default_hint` says where an unset -c/-t comes from.

Beyond the reference: `--gpus-per-task N`, `--launch-concurrency N` and `--connect-timeout SECONDS`. The
reference's hidden `-E/--env-resource VAR` works (one item of $VAR per slot); its deprecated `-g/--gpu` still does
nothing, and says so (`deprecation_warnings`).
"""

from __future__ import annotations

import argparse
import math
import re

from disbatch.contexts.launch import DEFAULT_AT_ONCE, DEFAULT_CONNECT_TIMEOUT_SECONDS, JOIN_MARGIN_SECONDS, LaunchLimits
from disbatch.errors import UsageError

_VARIABLE_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
# What --gpus-per-task writes: a -E of one of these would fight over the same variable.
GPU_VARIABLES = frozenset(
    {'CUDA_VISIBLE_DEVICES', 'ROCR_VISIBLE_DEVICES', 'HIP_VISIBLE_DEVICES', 'GPU_DEVICE_ORDINAL', 'DISBATCH_GPUS'}
)


def add_context_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    default_hint: str,
    everyday: argparse.ArgumentParser | argparse._ArgumentGroup | None = None,
) -> None:
    """The context flags on `parser` (a parser or one of its groups of `--help`); `-s`, `-t` and `-c` on
    `everyday` when given (`disbatch --help` shows them first)."""
    add = parser.add_argument
    first = (everyday or parser).add_argument
    add(
        '-C',
        '--context-task-limit',
        type=int,
        default=0,
        metavar='TASK_LIMIT',
        help='Shutdown after running COUNT tasks (0 => no limit).',
    )
    first(
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
    first(
        '-s',
        '--ssh-node',
        action='append',
        default=[],
        metavar='HOST:CORECOUNT',
        help='Run tasks on the given nodes (may be given more than once; equivalent to DISBATCH_SSH_NODELIST)',
    )
    first(
        '-t',
        '--tasksPerNode',
        type=int,
        default=None,
        metavar='N',
        help=f'Maximum concurrently executing tasks per node (up to cores/cpusPerTask; default: {default_hint}).',
    )
    add(
        '--gpus-per-task',
        type=int,
        default=None,
        metavar='N',
        help="Give each task N of its node's GPUs, its own (in CUDA_VISIBLE_DEVICES or its vendor's variable, and "
        'DISBATCH_GPUS); a node runs at most GPUs/N tasks at once.',
    )
    add(
        '--launch-concurrency',
        type=int,
        default=DEFAULT_AT_ONCE,
        metavar='N',
        help='Start at most N engines at once over ssh, qrsh -inherit or blaunch; the next starts as one joins '
        f'(default: {DEFAULT_AT_ONCE}; Slurm starts its srun steps together).',
    )
    add(
        '--connect-timeout',
        type=float,
        default=DEFAULT_CONNECT_TIMEOUT_SECONDS,
        metavar='SECONDS',
        help='ssh gives up on a host that does not answer after this long, and an engine that has not joined '
        f'{JOIN_MARGIN_SECONDS:g} s later is reported (default: {DEFAULT_CONNECT_TIMEOUT_SECONDS:g}).',
    )
    add('-E', '--env-resource', action='append', default=None, metavar='VAR', help=argparse.SUPPRESS)
    add('-g', '--gpu', action='store_true', help=argparse.SUPPRESS)


MIN_CPUS_PER_TASK = 0.001  # -c: at most a thousand tasks per core


def check_resource_arguments(arguments: argparse.Namespace) -> None:
    """UsageError for a -c, --label, --gpus-per-task or -E that cannot work."""
    cpus = arguments.cpusPerTask
    if cpus is not None and not (math.isfinite(cpus) and cpus >= MIN_CPUS_PER_TASK):
        raise UsageError(f'-c {cpus:g}: give the cores per task, a number from {MIN_CPUS_PER_TASK:g} up')
    label = arguments.label
    if label is not None and (not label or '/' in label or label in ('.', '..') or '\0' in label):
        raise UsageError(f'--label {label!r}: a label is part of file names: give one without "/"')
    if arguments.gpus_per_task is not None and arguments.gpus_per_task < 1:
        raise UsageError(f'--gpus-per-task {arguments.gpus_per_task}: give 1 or more')
    for variable in arguments.env_resource or []:
        if not _VARIABLE_NAME.match(variable):
            raise UsageError(f'-E {variable!r}: give the name of an environment variable that holds a comma list')
        if arguments.gpus_per_task and variable in GPU_VARIABLES:
            raise UsageError(f'-E {variable} and --gpus-per-task both set {variable}: give one of them')


def launch_limits(arguments: argparse.Namespace, joins_seen: bool = True) -> LaunchLimits:
    """--launch-concurrency and --connect-timeout, checked (UsageError)."""
    if arguments.launch_concurrency < 1:
        raise UsageError(f'--launch-concurrency {arguments.launch_concurrency}: give 1 or more')
    if not math.isfinite(arguments.connect_timeout) or arguments.connect_timeout <= 0:
        raise UsageError(f'--connect-timeout {arguments.connect_timeout:g}: give a number of seconds over 0')
    return LaunchLimits(arguments.launch_concurrency, arguments.connect_timeout, joins_seen)


def deprecation_warnings(arguments: argparse.Namespace) -> list[str]:
    """Flags accepted for the reference's sake that do nothing: say so rather than ignore them silently."""
    if arguments.gpu:
        return ['-g/--gpu is deprecated and has no effect (give --gpus-per-task N to give each task its own GPUs)']
    return []
