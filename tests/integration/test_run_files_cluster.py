"""A Slurm job's run files are the user's only (issue 22 item 7): the context log that the node retirement writes
was 0644 under the usual umask; every file the run writes is 0600, the dbUtil script 0700."""

from __future__ import annotations

import shlex
import stat
import sys
import time
from pathlib import Path

import pytest

from ..conftest import Processes
from .helpers import REPO_ROOT
from .test_contexts_cluster import job_fields, slurm_output

pytestmark = pytest.mark.cluster


@pytest.mark.timeout(120)
def test_a_slurm_jobs_run_files_are_the_users_only(procs: Processes, cluster: dict[str, str], tmp_path: Path) -> None:
    # one task per node: the one on the other node than the driver's retires its own engine (as the monitor
    # does), so the node retirement runs `scontrol` mid-run and writes the context log; the other task waits
    python = shlex.quote(sys.executable)
    retire = (f'{python} -m disbatch.kvsstcp client "$DISBATCH_KVSSTCP_HOST" put "DisBatch control" '
              '"{\\"retire engine\\": $DISBATCH_ENGINE_RANK}"')  # fmt: skip
    task = f'if [ "$(hostname -s)" != "$DRIVER_NODE" ]; then {retire}; else sleep 8; fi\n'
    (tmp_path / 'Tasks').write_text(task * 2)
    disbatch = (f'umask 022; export DRIVER_NODE=$(hostname -s) PYTHONPATH={shlex.quote(str(REPO_ROOT))}; '
                f'{python} -m disbatch Tasks')  # fmt: skip
    submit = ['sbatch', '--parsable', '-N', '2', '-n', '2', '-D', str(tmp_path), '--wrap', disbatch]
    job = slurm_output(procs, tmp_path, *submit).strip().split(';')[0]
    assert job.isdigit(), job
    try:
        deadline, state = time.monotonic() + 100, {}
        while time.monotonic() < deadline:
            state = job_fields(slurm_output(procs, tmp_path, 'scontrol', 'show', 'job', job))
            if state.get('JobState') not in ('PENDING', 'CONFIGURING', 'RUNNING', 'COMPLETING'):
                break
            time.sleep(0.5)
        log = (tmp_path / f'slurm-{job}.out').read_text(errors='replace')
        assert state.get('JobState') == 'COMPLETED', f'{state}\n{log}'
    finally:
        procs.run(['scancel', job], cwd=tmp_path, timeout=15)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in tmp_path.glob('Tasks_disBatch_*')}
    assert any(name.endswith(f'_J{job}.context.log') for name in modes), (sorted(modes), log)
    wrong = {name: oct(mode) for name, mode in modes.items()
             if mode != (0o700 if name.endswith('_dbUtil.sh') else 0o600)}  # fmt: skip
    assert not wrong, wrong
