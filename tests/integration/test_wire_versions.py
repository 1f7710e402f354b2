"""Parts of a run from different installs of disbatch (a venv on a node-local disk, a module loaded in one job and
not in another), seen from outside the driver.

An engine that speaks another wire protocol, or so old a one that its Hello has no version, is refused with one
clear line (driver log and stderr) and told why, so it exits non-zero at once instead of waiting; no task goes to
it and the run finishes on its other engines. An engine that joined and then sends a message the driver cannot read
(a result of another shape: what a mixed install did before protocol versions) is taken for lost, so its task is
run again elsewhere rather than never recorded.

The odd engine is started by hand, as `<stem>_dbUtil.sh --engine` does (`python -m disbatch.engine --driver ...`
with the run's secrets in its environment), from a `python -c` that first patches this checkout's protocol.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from disbatch.protocol.messages import PROTOCOL_VERSION
from disbatch.results.record import StatusRecord

from ..conftest import Processes
from .helpers import dbutil_exports, no_traceback, run_files, wait_for
from .test_live_contexts import LiveRun, check_complete, finish_context

ODD_HOST = 'oddnode'
LOST_RETURN_CODE = -100

# Patches, each run before the engine is imported.
OTHER_VERSION = f"""
import disbatch.protocol.messages as messages
messages.PROTOCOL_VERSION = {PROTOCOL_VERSION + 1}
"""
NO_VERSION = """
import json
from disbatch.protocol import codec
from disbatch.protocol.messages import Hello
encode = codec.encode
def old_encode(message):
    if isinstance(message, Hello):  # the Hello of protocol 1: no version, no software
        m = message
        return json.dumps(['hello', m.secret, m.hostname, m.pid, m.slots, m.cores_per_task, m.context,
                           m.launch_id]).encode()
    return encode(message)
codec.encode = old_encode
"""
ODD_RESULTS = """
from disbatch.protocol import codec
from disbatch.protocol.messages import TaskDone
encode = codec.encode
def odd_encode(message):
    frame = encode(message)
    return frame[:-1] + b',"a field this driver does not know"]' if isinstance(message, TaskDone) else frame
codec.encode = odd_encode
"""
START_ENGINE = """
import sys
from disbatch.engine.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def start_odd_engine(procs: Processes, run: LiveRun, patch: str) -> subprocess.Popen[str]:
    exports = dbutil_exports(run.directory)
    secrets = {name: exports[name] for name in ('DISBATCH_RUN_SECRET', 'DISBATCH_RUN_KEY')}
    command = [sys.executable, '-c', patch + START_ENGINE, '--driver', exports['DISBATCH_DRIVER_ADDRESS'],
               '--slots', '2', '--hostname', ODD_HOST]  # fmt: skip
    return procs.spawn(command, cwd=run.directory, env=secrets, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def driver_log(run: LiveRun) -> str:
    return run_files(run.directory, 'driver.log')[0].read_text(errors='replace')


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ('patch', 'theirs'),
    [
        pytest.param(OTHER_VERSION, f'{PROTOCOL_VERSION + 1} (disbatch ', id='another version'),
        pytest.param(NO_VERSION, '1 (a disbatch from before protocol versions)', id='no version field'),
    ],
)
def test_an_engine_of_another_protocol_is_refused_clearly(
    procs: Processes, tmp_path: Path, patch: str, theirs: str
) -> None:
    run = LiveRun(procs, tmp_path, 'sleep 0.1\n' * 5)
    odd = start_odd_engine(procs, run, patch)
    code, stderr = finish_context(odd, timeout=15)  # at once: not after the engine's 30 s wait for a Welcome
    assert code != 0, stderr
    refusal = f'engine on {ODD_HOST} refused: it speaks wire protocol {theirs}'
    assert f'the driver refused this engine: {refusal}' in stderr, stderr
    assert wait_for(lambda: refusal in run.stderr, 5), run.stderr  # reported by the driver, on stderr
    assert f'this run speaks {PROTOCOL_VERSION} (disbatch ' in run.stderr, run.stderr
    assert 'run the same disbatch on every node' in run.stderr, run.stderr
    assert run.finished_tasks() == 0  # nothing went to it
    context = run.add_context('-s', 'localhost:2')
    assert run.wait(30) == 0, run.stderr
    assert finish_context(context)[0] == 0
    check_complete(run.records(), 5)
    log = driver_log(run)
    assert refusal in log and f' joined from {ODD_HOST}' not in log, log
    assert no_traceback(run.stderr + stderr), run.stderr + stderr


@pytest.mark.timeout(60)
def test_a_context_process_of_another_protocol_is_refused_clearly(procs: Processes, tmp_path: Path) -> None:
    run = LiveRun(procs, tmp_path, 'sleep 0.1\n' * 3)
    start_context = 'import sys\nfrom disbatch.contexts.context_process import main\nsys.exit(main(sys.argv[1:]))\n'
    command = [sys.executable, '-c', OTHER_VERSION + start_context, '-s', 'localhost:1', '-l', 'odd']
    odd = procs.spawn(
        command, cwd=tmp_path, env=dbutil_exports(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    code, stderr = finish_context(odd, timeout=15)
    refusal = f'context odd refused: it speaks wire protocol {PROTOCOL_VERSION + 1} (disbatch '
    assert code == 1 and f'disbatch: the driver refused this context: {refusal}' in stderr, stderr
    assert wait_for(lambda: refusal in run.stderr, 5), run.stderr
    context = run.add_context('-s', 'localhost:1')
    assert run.wait(30) == 0, run.stderr
    assert finish_context(context)[0] == 0
    check_complete(run.records(), 3)
    assert 'context odd joined' not in driver_log(run)


@pytest.mark.timeout(60)
def test_a_joined_engine_whose_results_cannot_be_read_is_lost_and_its_task_run_again(
    procs: Processes, tmp_path: Path
) -> None:
    run = LiveRun(procs, tmp_path, 'echo $DISBATCH_ENGINE_RANK\n' * 4)
    odd = start_odd_engine(procs, run, ODD_RESULTS)
    assert wait_for(lambda: 'taken for lost' in run.stderr, 15), run.stderr
    _, stderr = finish_context(odd, timeout=15)  # told to stop: it does not wait for anything
    assert 'the driver took this engine for lost' in stderr, stderr
    context = run.add_context('-s', 'localhost:1')
    assert run.wait(30) == 0, run.stderr
    assert finish_context(context)[0] == 0
    attempts: dict[int, list[StatusRecord]] = {}
    for record in run.records():
        attempts.setdefault(record.task_id, []).append(record)
    assert sorted(attempts) == [0, 1, 2, 3], attempts
    lost = [record for record in run.records() if record.return_code == LOST_RETURN_CODE]
    assert lost and all(record.pid == -1 and record.host == ODD_HOST for record in lost), lost
    for task in attempts.values():  # every task done once, last, by the engine of the context (rank 1)
        *before, last = task
        assert last.return_code == 0 and last.out_snippet == repr('1\n'), task
        assert all(record.return_code == LOST_RETURN_CODE for record in before), task
    log = driver_log(run)
    assert (
        f'ERROR    disbatch.driver: engine 0 on {ODD_HOST} sent a malformed message: done needs 6 fields, got 7' in log
    )
    assert f'engine 0 on {ODD_HOST} sent a message this driver cannot read' in run.stderr, run.stderr
    assert no_traceback(run.stderr + stderr), run.stderr + stderr
