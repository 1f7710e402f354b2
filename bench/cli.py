"""`python -m bench`: flags → tools and workloads → interleaved runs → report on stdout (+ bench/RESULTS.md).

Exit codes: 0 done (whatever the targets say: PASS/MISS is printed, not asserted); 1 ours was selected but could not
run, or one of our runs was wrong (exit code, status-file lines, return codes, time limit); 2 bad flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.leftovers import become_subreaper
from bench.peers import find_peers
from bench.remote import (
    CLUSTER_SETTINGS,
    Context,
    RemotePlan,
    RemoteRun,
    cluster_hosts,
    measure_context,
    run_remote_suite,
    stale_shim_lock,
)
from bench.remote_report import remote_markdown, remote_text
from bench.report import FOOTNOTES, Comparison, compare, markdown_table, memory_report, text_report
from bench.suite import MemoryRun, Run, Settings, run_memory, run_suite
from bench.tools import (
    OURS_KINDS,
    Tool,
    ToolKind,
    default_cache,
    find_ours,
    find_parallel,
    find_reference,
    find_xargs,
    machine_parts,
)
from bench.workloads import full_suite, smoke_suite

REPO_ROOT = Path(__file__).resolve().parent.parent
TOOL_NAMES = ('ours', 'ours-fork', 'xargs-sh', 'xargs', 'parallel', 'hyperqueue', 'hypershell')
DEFAULT_SLURM_NODES = 3


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='python -m bench',
        description=(
            'Side-by-side benchmark: disbatch (ours) vs xargs -P (sh and bash) vs GNU parallel, HyperQueue and '
            'HyperShell, interleaved reps.'
        ),
    )
    parser.add_argument('--reps', type=int, help='reps of every workload (default 5; 1 with --smoke)')
    parser.add_argument('--smoke', action='store_true', help='CI-sized run: tiny workloads, 1 rep, a few seconds')
    parser.add_argument(
        '--tools',
        default=','.join(TOOL_NAMES),
        help=f'comma-separated subset of {",".join(TOOL_NAMES)} (default: all)',
    )
    parser.add_argument('--reference', action='store_true', help='also run disbatch 3.0 from PyPI (slow; capped)')
    parser.add_argument(
        '--reference-tasks', type=int, default=100, help='at most this many tasks per workload for the reference'
    )
    parser.add_argument(
        '--no-memory',
        dest='memory',
        action='store_false',
        help='leave out the driver-memory workload (d), which a full run includes (1,000,000 tasks: ~15 minutes)',
    )
    parser.add_argument('--memory-only', action='store_true', help='run only the driver-memory workload (d)')
    parser.add_argument('--memory-tasks', type=int, default=1_000_000, help='tasks of workload (d) (default 1000000)')
    parser.add_argument('--memory-slots', type=int, default=8, help='slots of workload (d) (default 8)')
    parser.add_argument('--timeout', type=float, default=300, help='seconds before one run is killed (default 300)')
    append = parser.add_mutually_exclusive_group()
    append.add_argument('--append', action='store_true', default=None, help='append the results to bench/RESULTS.md')
    append.add_argument('--no-append', dest='append', action='store_false', help='do not append (default for --smoke)')
    parser.add_argument('--results', type=Path, default=REPO_ROOT / 'bench' / 'RESULTS.md', help=argparse.SUPPRESS)
    parser.add_argument(
        '--no-install',
        action='store_true',
        help='do not install GNU parallel (apt-get) or the PyPI peers (pip) when missing',
    )
    parser.add_argument(
        '--ours-from-checkout',
        action='store_true',
        help='run ours from this checkout with this interpreter, instead of pip-installed into a venv of its own',
    )
    parser.add_argument('--keep', action='store_true', help='keep the scratch directory (task files, outputs)')
    remote = parser.add_argument_group(
        'workload (e): ours through SSH hosts and Slurm vs ours locally',
        f'By default a full run (not --smoke) includes both when the test cluster is up ({CLUSTER_SETTINGS} '
        'exists: its nodes are the SSH hosts and Slurm nodes); --ssh / --slurm choose explicitly.',
    )
    remote.add_argument('--ssh', metavar='HOSTS', help='comma-separated SSH hosts for ours (e.g. node1,node2,node3)')
    remote.add_argument('--slurm', action='store_true', help='run ours inside sbatch -N NODES -n NODES*SLOTS')
    remote.add_argument('--remote-slots', type=int, default=2, help='slots per SSH host / Slurm node (default 2)')
    remote.add_argument('--slurm-nodes', type=int, help='nodes of the Slurm job (default: as many as SSH hosts, or 3)')
    remote.add_argument('--remote-tasks', type=int, help='tasks of workload (e) (default 2000; 50 with --smoke)')
    remote.add_argument('--remote-only', action='store_true', help='run only workload (e)')
    remote.add_argument('--no-cluster', action='store_true', help='leave workload (e) out of a full run')
    arguments = parser.parse_args(argv)
    unknown = set(arguments.tools.split(',')) - set(TOOL_NAMES)
    if unknown:
        parser.error(f'--tools: unknown {sorted(unknown)}; choose from {",".join(TOOL_NAMES)}')
    if arguments.reps is not None and arguments.reps < 1:
        parser.error('--reps must be at least 1')
    if arguments.remote_slots < 1 or (arguments.remote_tasks is not None and arguments.remote_tasks < 1):
        parser.error('--remote-slots and --remote-tasks must be at least 1')
    hosts = [host for host in (arguments.ssh or '').split(',') if host]
    if arguments.ssh is not None and not hosts:
        parser.error('--ssh needs at least one host')
    if arguments.slurm_nodes is not None:
        if arguments.slurm_nodes < 1:
            parser.error('--slurm-nodes must be at least 1')
        if hosts and arguments.slurm_nodes != len(hosts):
            parser.error('--slurm-nodes must equal the number of --ssh hosts (both are compared with one local run)')
    return arguments


def remote_plan(arguments: argparse.Namespace) -> tuple[RemotePlan | None, str]:
    """Workload (e) as the flags and the test cluster decide, and a note when it is left out."""
    if 'ours' not in arguments.tools.split(','):
        return None, ''
    tasks = arguments.remote_tasks or (50 if arguments.smoke else 2000)
    hosts = tuple(host for host in (arguments.ssh or '').split(',') if host)
    explicit = bool(hosts) or arguments.slurm
    if not explicit:
        if arguments.smoke or arguments.memory_only or (arguments.no_cluster and not arguments.remote_only):
            return None, ''
        found = cluster_hosts()
        if not found:
            return None, (
                f'workload (e) (SSH hosts and Slurm) skipped: the test cluster is not up (no {CLUSTER_SETTINGS}; '
                'start it with: sudo bash tests/cluster/ci-up.sh)'
            )
        hosts = found
    nodes = arguments.slurm_nodes or len(hosts) or len(cluster_hosts() or ()) or DEFAULT_SLURM_NODES
    slurm = arguments.slurm or not explicit
    return RemotePlan(tasks, hosts, nodes if slurm else 0, arguments.remote_slots), ''


def find_tools(arguments: argparse.Namespace, scratch: Path) -> tuple[list[Tool], list[str], bool]:
    """The tools to run, notes about the ones skipped or installed, and whether ours was wanted but is missing."""
    wanted = arguments.tools.split(',')
    found: list[tuple[Tool | None, str]] = []
    if 'ours' in wanted or 'ours-fork' in wanted:
        ours, note = find_ours(REPO_ROOT, scratch, None if arguments.ours_from_checkout else default_cache())
        if 'ours' in wanted:
            found.append((ours, note))
        if 'ours-fork' in wanted:
            fork = dataclasses.replace(ours, kind=ToolKind.OURS_FORK, label='ours --fork-tasks') if ours else None
            found.append((fork, '' if 'ours' in wanted else note))
    if 'xargs-sh' in wanted:
        found.append(find_xargs(scratch, ToolKind.XARGS_SH))
    if 'xargs' in wanted:
        found.append(find_xargs(scratch, ToolKind.XARGS))
    if 'parallel' in wanted:
        found.append(find_parallel(scratch, install=not arguments.no_install))
    if peers := {'hyperqueue', 'hypershell'} & set(wanted):
        found.extend(find_peers(default_cache(), scratch, peers, install=not arguments.no_install))
    if arguments.reference:
        found.append(find_reference(default_cache(), scratch, arguments.reference_tasks))
    tools = [tool for tool, _ in found if tool is not None]
    notes = [note for _, note in found if note]
    if arguments.reference and any(tool.kind is ToolKind.REFERENCE for tool in tools):
        notes.append(
            f'reference (disbatch 3.0, ~7 tasks/s) capped to {arguments.reference_tasks} tasks per workload: '
            'compare its tasks/s, not its wall time'
        )
    ours_missing = any(kind.value in wanted and not any(tool.kind is kind for tool in tools) for kind in OURS_KINDS)
    return tools, notes, ours_missing


def machine_description(tools: Sequence[Tool]) -> str:
    parts = machine_parts(REPO_ROOT)
    parts.extend(f'{tool.label}: {tool.version}' for tool in tools)
    return '; '.join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    reps = arguments.reps or (1 if arguments.smoke else 5)
    append = arguments.append if arguments.append is not None else not arguments.smoke
    command = shlex.join(['python', '-m', 'bench', *(sys.argv[1:] if argv is None else argv)])
    scratch = Path(tempfile.mkdtemp(prefix='disbatch-bench-'))
    try:
        return _run(arguments, scratch, reps, append, command)
    finally:
        if arguments.keep:
            print(f'scratch directory kept: {scratch}', file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def _run(arguments: argparse.Namespace, scratch: Path, reps: int, append: bool, command: str) -> int:
    tools, notes, ours_missing = find_tools(arguments, scratch)
    if not become_subreaper():
        notes.append('not a child subreaper: processes a run orphans are neither counted nor cleaned up')
    for note in notes:
        print(f'note: {note}', file=sys.stderr)
    settings = Settings(scratch=scratch, timeout=arguments.timeout, keep=arguments.keep)
    only_other = arguments.memory_only or arguments.remote_only
    workloads = [] if only_other else (smoke_suite() if arguments.smoke else full_suite())
    plan, remote_note = remote_plan(arguments)
    if remote_note:
        print(f'note: {remote_note}', file=sys.stderr)
        notes.append(remote_note)
    runs: list[Run] = run_suite(settings, tools, workloads, reps, progress=sys.stderr) if tools else []
    memory: MemoryRun | None = None
    ours = next((tool for tool in tools if tool.kind is ToolKind.OURS), None)
    memory_wanted = arguments.memory_only or (arguments.memory and not arguments.smoke and not arguments.remote_only)
    if memory_wanted and ours is not None:
        # a cap for the whole run, not a target: allow down to 50 tasks/s
        memory_settings = dataclasses.replace(settings, timeout=max(settings.timeout, arguments.memory_tasks / 50))
        print(f'[memory] {arguments.memory_tasks:,} x true, {arguments.memory_slots} slots …', file=sys.stderr)
        memory = run_memory(memory_settings, ours, arguments.memory_tasks, arguments.memory_slots)
    elif memory_wanted:
        notes.append('memory workload (d) skipped: it measures ours, which did not run')
    remote_runs: list[RemoteRun] = []
    context: Context | None = None
    if plan is not None and ours is not None:
        if lock := stale_shim_lock(Path.home()):
            print(f'note: {lock}', file=sys.stderr)
            notes.append(lock)
        if plan.ssh_hosts:
            context = measure_context(plan.ssh_hosts[0], ours.python, scratch)
        remote_runs = run_remote_suite(
            plan, ours, scratch, arguments.timeout, reps, arguments.keep, progress=sys.stderr
        )
        load = ' '.join(f'{value:.2f}' for value in os.getloadavg())
        notes.append(f'load {load} at the end of workload (e) (other users of the machine count too)')

    machine = machine_description(tools)
    comparisons = compare(runs, workloads, tools)
    print(f'Machine: {machine}')
    print(f'Command: {command}')
    for note in notes:
        print(f'Note: {note}')
    print()
    if comparisons:
        print(text_report(comparisons, reps))
        print('\n'.join(FOOTNOTES))
    if memory is not None:
        print()
        print(memory_report(memory))
    remote = remote_text(plan, remote_runs, context, reps) if plan is not None and remote_runs else ''
    if remote:
        print()
        print(remote)
    if append:
        remote_block = remote_markdown(plan, remote_runs, context, reps) if plan is not None and remote_runs else ''
        _append_results(arguments.results, command, machine, notes, comparisons, reps, memory, remote_block)
        print(f'\nappended to {arguments.results}')

    ours_failed = any(run.tool.kind in OURS_KINDS and not run.ok for run in runs)
    memory_failed = memory is not None and not (
        memory.check.ok(memory.figures.tasks) and memory.measurement.exit_code == 0
    )
    remote_failed = any(not run.ok for run in remote_runs)
    return 1 if ours_missing or ours_failed or memory_failed or remote_failed else 0


def _append_results(
    path: Path,
    command: str,
    machine: str,
    notes: Sequence[str],
    comparisons: Sequence[Comparison],
    reps: int,
    memory: MemoryRun | None,
    remote: str,
) -> None:
    when = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    blocks = [f'## {when}', '', f'Command: `{command}`', '', f'Machine: {machine}', '']
    blocks.extend(f'Note: {note}' for note in notes)
    if notes:
        blocks.append('')
    if comparisons:
        blocks.extend([markdown_table(comparisons, reps), ''])
    if memory is not None:
        blocks.extend([memory_report(memory), ''])
    if remote:
        blocks.extend([remote, ''])
    if not path.exists():
        path.write_text(RESULTS_HEADER, encoding='utf-8')
    with path.open('a', encoding='utf-8') as results:
        results.write('\n' + '\n'.join(blocks))


RESULTS_HEADER = """# Benchmark results (append-only)

Each entry is one run of `python -m bench` (see bench/README.md), appended by the tool itself: newest last.
Figures are medians over interleaved reps; targets are SPEC §5. Do not edit past entries.
"""
