"""The environment of a task, variable by variable (reference §3): every DISBATCH_* value, the slot arithmetic of
`-s`, `-c`, `-t`, and that nothing else of disbatch's leaks into a task (the run's secret above all); cwd.

Each task writes `env | grep ^DISBATCH_ | sort` to a file named after it, then the test reads the files.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from disbatch.results.record import RecordKind

from ..conftest import MARKER_VARIABLE, Processes
from .helpers import by_task_id, dbutil_exports, read_status, run_disbatch, status_path, stem_of, write_task_file

DUMP = 'env | grep ^DISBATCH_ | sort > {name}; env > {name}.all; pwd -P > {name}.cwd'
# The reference's twelve, the token of the run's KVS (new: the KVS refuses clients without it), and the attempt
# number (new: 1 for a task's first run, more when --retries or a lost engine runs it again).
EXPECTED_NAMES = {
    'DISBATCH_ATTEMPT',
    'DISBATCH_CORES_PER_TASK',
    'DISBATCH_CYLINDER_RANK',
    'DISBATCH_ENGINE_RANK',
    'DISBATCH_JOBID',
    'DISBATCH_KVSSTCP_HOST',
    'DISBATCH_KVSSTCP_TOKEN',
    'DISBATCH_NAMETASKS',
    'DISBATCH_REPEAT_INDEX',
    'DISBATCH_REPEAT_INDEX_ZP',
    'DISBATCH_STREAM_INDEX',
    'DISBATCH_STREAM_INDEX_ZP',
    'DISBATCH_TASKID',
    'DISBATCH_TASKID_ZP',
}


@pytest.fixture(params=[(), ('--fork-tasks',)], ids=['exec', 'fork'])
def mode(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """Every test here runs twice: tasks executed by bash (the default) and forked by slot shells (--fork-tasks)."""
    return tuple(request.param)


def read_dump(path: Path) -> dict[str, str]:
    variables = {}
    for line in path.read_text().splitlines():
        name, _, value = line.partition('=')
        variables[name] = value
    variables.pop(MARKER_VARIABLE, None)  # the test harness's own marker, inherited from the test process
    return variables


def run_secret(stem: str) -> str:
    """The run's secret, from the dbUtil script (the only file that holds it)."""
    match = re.search(r'^export DISBATCH_RUN_SECRET=(\S+)$', Path(f'{stem}_dbUtil.sh').read_text(), re.MULTILINE)
    assert match is not None
    return match[1].strip("'")


def kvs_address(stem: str) -> str:
    match = re.search(r'^export DISBATCH_KVSSTCP_HOST=(\S+)$', Path(f'{stem}_dbUtil.sh').read_text(), re.MULTILINE)
    assert match is not None
    return match[1].strip("'")


@pytest.mark.timeout(30)
def test_every_variable_of_a_task(procs: Processes, tmp_path: Path, mode: tuple[str, ...]) -> None:
    tasks_dir = tmp_path / 'elsewhere'
    tasks_dir.mkdir()
    write_task_file(
        tasks_dir / 'MyTasks',
        '\n'.join(
            [
                '# environment',  # 1
                '#DISBATCH PERENGINE START ' + DUMP.format(name='env_pe_start'),  # 2: START id 0
                '#DISBATCH PERENGINE STOP ' + DUMP.format(name='env_pe_stop'),  # 3: STOP id 0
                DUMP.format(name='env_task_$DISBATCH_TASKID'),  # 4: task 0
                '',  # 5
                '#DISBATCH REPEAT 1 start 39 ' + DUMP.format(name='env_task_$DISBATCH_TASKID'),  # 6: task 1
                '#DISBATCH BARRIER',  # 7: task 2
                DUMP.format(name='env_task_$DISBATCH_TASKID'),  # 8: task 3
                '#DISBATCH REPEAT 2 start 0 step 10 ' + DUMP.format(name='env_task_$DISBATCH_TASKID'),  # 9: 4, 5
            ]
        )
        + '\n',
    )
    result = run_disbatch(procs, tmp_path, *mode, '-s', 'localhost:4', 'elsewhere/MyTasks')
    assert result.returncode == 0, result.describe()
    status = status_path(tmp_path)
    stem = stem_of(status)
    records = read_status(status)
    assert all(r.return_code == 0 for r in records), records
    assert set(by_task_id(records)) == {0, 1, 3, 4, 5}
    common = {
        'DISBATCH_CORES_PER_TASK': '1',
        'DISBATCH_ENGINE_RANK': '0',
        'DISBATCH_JOBID': os.path.basename(stem),
        'DISBATCH_KVSSTCP_HOST': kvs_address(stem),
        'DISBATCH_KVSSTCP_TOKEN': dbutil_exports(tmp_path)['DISBATCH_KVSSTCP_TOKEN'],
        'DISBATCH_NAMETASKS': 'MyTasks',
        'DISBATCH_ATTEMPT': '1',  # every task (per-engine ones too) ran once
    }
    assert re.fullmatch(r'[^:\s]+:[0-9]+', common['DISBATCH_KVSSTCP_HOST'])
    expected = {
        # name: (task id, line, repeat index, cylinder rank or None for 0..3)
        'env_pe_start': (0, 2, -1, -1),
        'env_pe_stop': (0, 3, -1, -1),
        'env_task_0': (0, 4, -1, None),
        'env_task_1': (1, 6, 39, None),
        'env_task_3': (3, 8, -1, None),
        'env_task_4': (4, 9, 0, None),
        'env_task_5': (5, 9, 10, None),
    }
    secret = run_secret(stem)
    for name, (task_id, line, repeat, cylinder) in expected.items():
        variables = read_dump(tmp_path / name)
        assert set(variables) == EXPECTED_NAMES, name
        rank = int(variables['DISBATCH_CYLINDER_RANK'])
        assert rank == cylinder if cylinder is not None else 0 <= rank < 4, (name, rank)
        assert {key: variables[key] for key in common} == common, name
        assert variables['DISBATCH_TASKID'] == str(task_id), name
        assert variables['DISBATCH_TASKID_ZP'] == f'{task_id:06d}', name
        assert variables['DISBATCH_STREAM_INDEX'] == str(line), name
        assert variables['DISBATCH_STREAM_INDEX_ZP'] == f'{line:06d}', name
        assert variables['DISBATCH_REPEAT_INDEX'] == str(repeat), name
        assert variables['DISBATCH_REPEAT_INDEX_ZP'] == f'{repeat:06d}', name
        everything = (tmp_path / f'{name}.all').read_text()
        assert secret not in everything, f'{name}: the run secret leaked into the task environment'
        assert 'DISBATCH_RUN_SECRET' not in everything
        assert 'DISBATCH_DRIVER_ADDRESS' not in everything
        assert (tmp_path / f'{name}.cwd').read_text().strip() == str(tmp_path.resolve()), name
    # spot-check the padding forms the reference documents
    assert read_dump(tmp_path / 'env_task_0')['DISBATCH_REPEAT_INDEX_ZP'] == '-00001'
    assert read_dump(tmp_path / 'env_task_1')['DISBATCH_REPEAT_INDEX_ZP'] == '000039'
    assert read_dump(tmp_path / 'env_task_3')['DISBATCH_STREAM_INDEX_ZP'] == '000008'


@pytest.mark.timeout(30)
def test_stdin_tasks_are_named_stdin(procs: Processes, tmp_path: Path, mode: tuple[str, ...]) -> None:
    result = run_disbatch(procs, tmp_path, *mode, '-s', 'localhost:2', '-', input=DUMP.format(name='env_stdin') + '\n')
    assert result.returncode == 0, result.describe()
    variables = read_dump(tmp_path / 'env_stdin')
    assert variables['DISBATCH_NAMETASKS'] == 'stdin'
    assert variables['DISBATCH_JOBID'] == os.path.basename(stem_of(status_path(tmp_path)))
    assert variables['DISBATCH_JOBID'].startswith('stdin_disBatch_')
    assert (variables['DISBATCH_TASKID'], variables['DISBATCH_STREAM_INDEX']) == ('0', '1')


# (flags, slots, DISBATCH_CORES_PER_TASK): slots = -t, else floor(cores / -c); cores per task = cores // slots
SLOT_CASES = {
    'localhost:4': (['-s', 'localhost:4'], 4, '1'),
    '-c 2': (['-s', 'localhost:4', '-c', '2'], 2, '2'),
    '-c 0.5': (['-s', 'localhost:4', '-c', '0.5'], 8, '0'),
    '-t 3': (['-s', 'localhost:4', '-t', '3'], 3, '1'),
    '-c 3 on 8 cores': (['-s', 'localhost:8', '-c', '3'], 2, '4'),
    'duplicate host': (['-s', 'localhost:1', '-s', 'localhost:1'], 2, '1'),
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize('case', list(SLOT_CASES))
def test_cores_per_task_and_cylinder_ranks(procs: Processes, tmp_path: Path, mode: tuple[str, ...], case: str) -> None:
    flags, slots, cores_per_task = SLOT_CASES[case]
    # slots tasks that all run at once: each must get its own slot, 0..slots-1
    line = 'env | grep ^DISBATCH_ | sort > env_$DISBATCH_TASKID; sleep 0.5'
    write_task_file(tmp_path / 'Tasks', (line + '\n') * slots)
    result = run_disbatch(procs, tmp_path, *mode, *flags, 'Tasks')
    assert result.returncode == 0, result.describe()
    records = by_task_id(read_status(status_path(tmp_path)))
    assert set(records) == set(range(slots))
    dumps = [read_dump(tmp_path / f'env_{task_id}') for task_id in range(slots)]
    assert {d['DISBATCH_CORES_PER_TASK'] for d in dumps} == {cores_per_task}
    assert sorted(int(d['DISBATCH_CYLINDER_RANK']) for d in dumps) == list(range(slots))
    # all ran at the same time: the last one started before the first one ended
    assert max(r.start for r in records.values()) < min(r.finish for r in records.values())
    assert all(r.kind is RecordKind.NORMAL for r in records.values())


@pytest.mark.timeout(30)
def test_caller_environment_reaches_tasks_but_not_callers_disbatch_secret(
    procs: Processes, tmp_path: Path, mode: tuple[str, ...]
) -> None:
    write_task_file(tmp_path / 'Tasks', 'echo "$MY_SETTING" > setting; env > all\n')
    result = run_disbatch(procs, tmp_path, *mode, '-s', 'localhost:1', 'Tasks', env={'MY_SETTING': 'kept as is'})
    assert result.returncode == 0, result.describe()
    assert (tmp_path / 'setting').read_text() == 'kept as is\n'
    assert run_secret(stem_of(status_path(tmp_path))) not in (tmp_path / 'all').read_text()


def test_tasks_get_the_signals_python_ignores_back_at_their_default(
    procs: Processes, tmp_path: Path, mode: tuple[str, ...]
) -> None:
    """The engine is Python, which ignores SIGPIPE and SIGXFSZ; a task must not inherit that: the writer of a pipe
    whose reader left dies of SIGPIPE (141), as under bash, xargs or GNU parallel, and does not fail with a
    'Broken pipe' error of its own."""
    write_task_file(
        tmp_path / 'Tasks',
        'seq 1000000 | head -1 > /dev/null; echo "pipe ${PIPESTATUS[0]}" > pipe.txt\n'
        "grep -E '^Sig(Ign|Blk)' /proc/self/status > signals.txt\n",
    )
    result = run_disbatch(procs, tmp_path, *mode, '-s', 'localhost:2', 'Tasks')
    assert result.returncode == 0, result.describe()
    assert (tmp_path / 'pipe.txt').read_text() == 'pipe 141\n'
    masks = dict(line.split(':\t') for line in (tmp_path / 'signals.txt').read_text().splitlines())
    for signum in (13, 25):  # SIGPIPE, SIGXFSZ
        assert not int(masks['SigIgn'], 16) & 1 << (signum - 1), masks
        assert not int(masks['SigBlk'], 16) & 1 << (signum - 1), masks
