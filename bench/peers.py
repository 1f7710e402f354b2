"""The peers from PyPI: HyperQueue and HyperShell, pinned, in one venv of their own under the bench cache.

* hyperqueue: `bench/hyperqueue_job.py TASKFILE N DIR` with the venv's interpreter: HyperQueue's Python API
  (`LocalCluster`: server and one worker of N cores, both shipped in the wheel), one program task per line.
* hypershell: `hs cluster TASKFILE -N N --no-db --no-confirm -b 16 -w 1 -p PORT`: one local client of N executor
  threads, tasks sent straight to it (no database), in bundles of 16 with a 1 s bundle wait (its defaults, 1 and 5 s,
  add seconds of idle time to a 2,000-task file). HyperShell runs each line through its own shell (`/bin/sh`).

Both are installed with pip on first use (unless --no-install) and reused afterwards.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench.measure import probe
from bench.tools import Tool, ToolKind, base_environment, last_line

PEER_REQUIREMENTS = ('hyperqueue==0.27.0', 'hypershell==2.8.2')


def find_peers(cache: Path, scratch: Path, wanted: set[str], install: bool) -> list[tuple[Tool | None, str]]:
    """HyperQueue and/or HyperShell (as `wanted` names them) from the peers' venv, created when missing."""
    venv = cache / 'peers'
    python = venv / 'bin' / 'python'
    if not python.exists():
        if not install:
            return [(None, f'{name} skipped: not installed in {venv} (--no-install)') for name in sorted(wanted)]
        steps = [
            [sys.executable, '-m', 'venv', str(venv)],
            [str(python), '-m', 'pip', 'install', '--quiet', *PEER_REQUIREMENTS],
        ]
        for step in steps:
            ok, output = probe(step, cwd=scratch, env=base_environment(), timeout=900)
            if not ok:
                return [
                    (None, f'{name} skipped: `{" ".join(step)}` failed: {last_line(output)}') for name in sorted(wanted)
                ]
    found: list[tuple[Tool | None, str]] = []
    if 'hyperqueue' in wanted:
        version = 'import hyperqueue, importlib.metadata as m; print("HyperQueue", m.version("hyperqueue"))'
        ok, output = probe([str(python), '-c', version], cwd=scratch, env=base_environment())
        tool = Tool(ToolKind.HYPERQUEUE, 'HyperQueue', last_line(output), python=str(python))
        found.append((tool, '') if ok else (None, f'hyperqueue skipped: {last_line(output)}'))
    if 'hypershell' in wanted:
        ok, output = probe([str(venv / 'bin' / 'hs'), '--version'], cwd=scratch, env=base_environment())
        tool = Tool(ToolKind.HYPERSHELL, 'HyperShell', last_line(output), python=str(python))
        found.append((tool, '') if ok else (None, f'hypershell skipped: {last_line(output)}'))
    return found
