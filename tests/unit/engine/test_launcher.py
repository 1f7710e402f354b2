"""The compiled task launcher's cache: a program another user could have put or changed there is never run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from disbatch.engine.launcher import launcher_program


@pytest.mark.skipif(shutil.which('cc') is None, reason='no C compiler here')
def test_the_launcher_is_built_once_into_a_cache_only_the_user_may_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
    program = launcher_program()
    assert program is not None and Path(program).parent == tmp_path / 'disbatch'
    assert Path(program).parent.stat().st_mode & 0o777 == 0o700
    assert launcher_program() == program  # the cached one


def test_a_launcher_in_a_cache_others_may_write_is_not_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
    cache = tmp_path / 'disbatch'
    cache.mkdir()
    os.chmod(cache, 0o777)  # a shared cache: anyone could have planted a program here
    assert launcher_program() is None
    os.chmod(cache, 0o700)
    if shutil.which('cc') is not None:
        program = launcher_program()
        assert program is not None
        os.chmod(program, 0o777)  # the program itself writable by others
        assert launcher_program() is None
