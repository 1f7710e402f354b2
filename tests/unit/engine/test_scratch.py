"""The engine's scratch directory: made on first use, locked while its engine lives, swept once its engine is dead."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from disbatch.engine.scratch import FRESH_SECONDS, ScratchDirectory, sweep


def later() -> float:
    """A time at which a sweep finds every directory made until now old enough (read at the test's own time: the
    suite can run for many minutes after this module is collected)."""
    return time.time() + FRESH_SECONDS + 60


def _dead_engines_directory(parent: Path) -> Path:
    """A scratch directory made by a process that then died without removing it (as a SIGKILLed engine does)."""
    code = f'from disbatch.engine.scratch import ScratchDirectory; print(ScratchDirectory({str(parent)!r}).path())'
    made = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    return Path(made.stdout.strip())


def test_nothing_is_made_until_a_command_needs_it(tmp_path: Path) -> None:
    scratch = ScratchDirectory(str(tmp_path))
    scratch.remove()
    assert list(tmp_path.iterdir()) == []
    path = Path(scratch.path())
    assert path.parent == tmp_path and path.name.startswith(f'disbatch-engine-{os.getpid()}-')
    assert path.stat().st_mode & 0o777 == 0o700
    assert scratch.path() == str(path)  # one directory for the engine's life
    scratch.remove()
    assert list(tmp_path.iterdir()) == []


def test_a_sweep_removes_the_directory_of_a_dead_engine_only(tmp_path: Path) -> None:
    dead = _dead_engines_directory(tmp_path)
    (dead / 'task.sh').write_text('echo long\n')
    live = ScratchDirectory(str(tmp_path))
    live_path = Path(live.path())
    older_kind = tmp_path / 'disbatch-engine-k2j4_x9q'  # an older disbatch's name: no lock to tell, never swept
    older_kind.mkdir()
    other = tmp_path / 'disbatch-bench-123-abc'
    other.mkdir()
    assert sweep(str(tmp_path), later()) == [str(dead)]
    assert sorted(tmp_path.iterdir()) == sorted([live_path, older_kind, other])
    live.remove()


def test_a_directory_just_made_is_not_swept_even_unlocked(tmp_path: Path) -> None:
    dead = _dead_engines_directory(tmp_path)
    assert sweep(str(tmp_path), time.time()) == []
    assert dead.exists()


def test_making_a_directory_sweeps_the_dead_ones(tmp_path: Path) -> None:
    dead = _dead_engines_directory(tmp_path)
    old = time.time() - FRESH_SECONDS - 1
    os.utime(dead, (old, old))
    scratch = ScratchDirectory(str(tmp_path))
    made = Path(scratch.path())
    assert list(tmp_path.iterdir()) == [made]
    scratch.remove()
