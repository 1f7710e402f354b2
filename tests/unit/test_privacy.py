"""`disbatch.privacy`: run files made new, 0600, never through a link; anything planted refused, nothing written."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from disbatch.contract import RunFiles
from disbatch.errors import RunFileError
from disbatch.privacy import LogFile, check_run_files, create_file, make_directory, open_append, write_file


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_a_new_file_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_file(str(tmp_path / 'a'), 'x')
        write_file(str(tmp_path / 'script'), 'x', 0o700)
        make_directory(str(tmp_path / 'd' / 'e'))
    finally:
        os.umask(old)
    assert (mode(tmp_path / 'a'), mode(tmp_path / 'script'), mode(tmp_path / 'd' / 'e')) == (0o600, 0o700, 0o700)


def test_a_file_of_ones_own_from_an_earlier_run_is_replaced_anew(tmp_path: Path) -> None:
    path = tmp_path / 'status'
    path.write_text('old run\n')
    path.chmod(0o644)
    write_file(str(path), 'new\n')
    assert path.read_text() == 'new\n' and mode(path) == 0o600


@pytest.mark.parametrize('opener', [create_file, open_append])
def test_a_symbolic_link_is_refused_and_its_target_untouched(tmp_path: Path, opener: Callable[[str], int]) -> None:
    victim = tmp_path / 'precious'
    victim.write_text('keep\n')
    (tmp_path / 'run_status.txt').symlink_to(victim)
    with pytest.raises(RunFileError, match=r'symbolic link.*refusing'):
        opener(str(tmp_path / 'run_status.txt'))
    assert victim.read_text() == 'keep\n' and (tmp_path / 'run_status.txt').is_symlink()


@pytest.mark.parametrize('opener', [create_file, open_append])
def test_a_hard_link_to_another_file_is_refused(tmp_path: Path, opener: Callable[[str], int]) -> None:
    victim = tmp_path / 'precious'
    victim.write_text('keep\n')
    os.link(victim, tmp_path / 'run.log')
    with pytest.raises(RunFileError, match='2 hard links'):
        opener(str(tmp_path / 'run.log'))
    assert victim.read_text() == 'keep\n'


def test_a_file_of_another_user_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip('giving a file away needs root')
    planted = tmp_path / 'run.log'
    planted.write_text('')
    os.chown(planted, 65534, 65534)
    for opener in (create_file, open_append):
        with pytest.raises(RunFileError, match='owned by another user'):
            opener(str(planted))
    assert planted.read_text() == ''


def test_a_log_is_appended_to(tmp_path: Path) -> None:
    path = tmp_path / 'run.log'
    for text in (b'one\n', b'two\n'):
        descriptor = open_append(str(path))
        os.write(descriptor, text)
        os.close(descriptor)
    assert path.read_bytes() == b'one\ntwo\n' and mode(path) == 0o600


def test_a_named_device_is_opened_as_it_is() -> None:
    descriptor = create_file('/dev/null', named=True)
    os.close(descriptor)
    with pytest.raises(RunFileError):
        create_file('/dev/null')  # not named: a run file's name holding a device is planted


def test_check_run_files_looks_at_every_name_of_the_run(tmp_path: Path) -> None:
    files = RunFiles(str(tmp_path / 'myrun'))
    check_run_files(files)
    (tmp_path / 'myrun_other_notes.txt').symlink_to('/etc/passwd')  # not a run's name: none of its business
    check_run_files(files)
    (tmp_path / 'myrun_J42_node7_engine_wrap.log').symlink_to('/etc/passwd')
    with pytest.raises(RunFileError, match=r'myrun_J42_node7_engine_wrap\.log'):
        check_run_files(files)


def test_a_log_that_cannot_be_written_is_told_once(capsys: pytest.CaptureFixture[str]) -> None:
    handler = LogFile('/dev/full', named=True)
    logger = logging.getLogger('test_privacy')
    logger.addHandler(handler)
    try:
        for number in range(5):
            logger.warning('line %d', number)
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert handler.failure is not None and 'No space left on device' in handler.failure
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'Traceback' not in err, err
