"""A run in a shared directory, against a second local user who plants files at its names (issue 22 items 4, 7).

The second user (`disbatch-planter`, made with `useradd` if missing; the tests run as root) puts a symbolic link to
the first user's precious file, or a world-writable file of their own, at one of the names a run writes, in a sticky
world-writable directory like /tmp. The run must refuse in one line naming the file, and touch nothing: no byte
through the link, no secret into the planted file, no file of its own, no task run. A run left alone makes every
file 0600 (scripts 0700, directories 0700), whatever the umask.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import Processes, disbatch_cmd
from .helpers import messages, no_traceback, run_disbatch, short_hostname

PLANTER = 'disbatch-planter'
PRECIOUS = 'the victim keeps this\n'

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='making a second local user needs root')


@pytest.fixture(scope='module')
def planter() -> str:
    """A second local user (made once, left for later runs: users are not made and removed per test)."""
    try:
        pwd.getpwnam(PLANTER)
    except KeyError:
        subprocess.run(['useradd', '--no-create-home', '--shell', '/usr/sbin/nologin', PLANTER], check=True)
    return PLANTER


@pytest.fixture
def shared() -> Iterator[Path]:
    """A sticky directory everyone can write to, like /tmp."""
    directory = Path(tempfile.mkdtemp(prefix='disbatch-shared-', dir='/tmp'))
    directory.chmod(0o1777)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def as_user(user: str, *command: str) -> None:
    subprocess.run(['runuser', '-u', user, '--', *command], check=True, timeout=10)


def plant(user: str, kind: str, path: Path, victim: Path) -> None:
    if kind == 'symlink':
        as_user(user, 'ln', '-s', str(victim), str(path))
    else:
        as_user(user, 'bash', '-c', 'umask 000; : > "$1"', 'plant', str(path))


# The names of a `-p SHARED/myrun -s localhost:1` run: every one of them is refused when planted.
NAMES = [
    'myrun_status.txt',
    'myrun_driver.log',
    'myrun_dbUtil.sh',
    'myrun_kvsinfo.txt',
    'myrun_events.jsonl',
    'myrun_SSH0.context.log',
    f'myrun_SSH0_{short_hostname()}_engine_wrap.log',
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize('kind', ['symlink', 'file'])
@pytest.mark.parametrize('name', NAMES)
def test_a_planted_name_makes_the_run_refuse_and_touch_nothing(
    procs: Processes, tmp_path: Path, planter: str, shared: Path, name: str, kind: str
) -> None:
    victim = tmp_path / 'precious.txt'
    victim.write_text(PRECIOUS)
    (tmp_path / 'Tasks').write_text(f'touch {tmp_path}/ran\n')
    planted = shared / name
    plant(planter, kind, planted, victim)
    before = sorted(os.listdir(shared))

    result = run_disbatch(procs, tmp_path, '-p', str(shared / 'myrun'), '-s', 'localhost:1', '--json=auto', 'Tasks')

    assert result.returncode != 0, result.describe()
    lines = messages(result.stderr)
    assert len(lines) == 1 and str(planted) in lines[0] and 'refusing' in lines[0], result.stderr
    assert no_traceback(result.stderr)
    assert victim.read_text() == PRECIOUS
    assert sorted(os.listdir(shared)) == before  # nothing of the run's own either
    if kind == 'file':
        assert planted.stat().st_size == 0  # no secret, no log line went into it
    assert not (tmp_path / 'ran').exists()


@pytest.mark.timeout(60)
@pytest.mark.parametrize('kind', ['symlink', 'file'])
def test_a_planted_results_file_fails_its_task_only(
    procs: Processes, tmp_path: Path, planter: str, shared: Path, kind: str
) -> None:
    # `--results` in a shared directory: the planted task is recorded failed with the reason, the others run
    victim = tmp_path / 'precious.txt'
    victim.write_text(PRECIOUS)
    (tmp_path / 'Tasks').write_text('echo one\necho two\n')
    results = shared / 'results'
    results.mkdir(mode=0o777)
    results.chmod(0o1777)
    plant(planter, kind, results / '000000.1.out', victim)

    result = run_disbatch(procs, tmp_path, '-p', str(tmp_path / 'run'), '-s', 'localhost:1', '--results',
                          str(results), '-e', 'Tasks')  # fmt: skip

    assert result.returncode != 0, result.describe()
    assert victim.read_text() == PRECIOUS
    status = (tmp_path / 'run_status.txt').read_text()
    assert 'refusing' in status and str(results / '000000.1.out') in status, status
    assert (results / '000001.1.out').read_text() == 'two\n'
    assert stat.S_IMODE((results / '000001.1.out').stat().st_mode) == 0o600


@pytest.mark.timeout(60)
def test_every_file_a_run_writes_is_the_users_only(procs: Processes, tmp_path: Path, shared: Path) -> None:
    # umask 000, as in a careless batch script: the events file, the --results directory and files were 0644 / 0755
    # before
    (tmp_path / 'Tasks').write_text('echo out; echo err >&2\n')
    command = [
        'bash', '-c', 'umask 000; exec "$@"', 'umask',
        *disbatch_cmd('-p', str(shared / 'myrun'), '-s', 'localhost:1', '--json=auto', '--results',
                      str(shared / 'myrun_results'), 'Tasks'),
    ]  # fmt: skip
    result = procs.run(command, cwd=tmp_path, timeout=30)
    assert result.returncode == 0, result.stderr
    written = {path.relative_to(shared).as_posix(): stat.S_IMODE(path.lstat().st_mode) for path in shared.rglob('*')}
    expected_private = {
        'myrun_status.txt', 'myrun_driver.log', 'myrun_events.jsonl', f'myrun_SSH0_{short_hostname()}_engine_wrap.log',
        'myrun_results/000000.1.out', 'myrun_results/000000.1.err',
    }  # fmt: skip
    assert expected_private <= written.keys(), sorted(written)
    wrong = {
        name: oct(mode)
        for name, mode in written.items()
        if mode != (0o700 if name in ('myrun_dbUtil.sh', 'myrun_results') else 0o600)
    }
    assert not wrong, wrong
    assert (shared / 'myrun_results' / '000000.1.out').read_text() == 'out\n'


@pytest.mark.timeout(60)
def test_a_second_run_at_the_same_stem_replaces_the_users_own_files(procs: Processes, tmp_path: Path) -> None:
    # the reference overwrote a run's files when `-p` named the same stem again; a file of the user's own is not
    # planted, so it is replaced (anew, 0600), not refused
    (tmp_path / 'Tasks').write_text('echo hello\n')
    for _ in range(2):
        result = run_disbatch(procs, tmp_path, '-p', str(tmp_path / 'again'), '-s', 'localhost:1', 'Tasks')
        assert result.returncode == 0, result.describe()
    assert len((tmp_path / 'again_status.txt').read_text().splitlines()) == 1
