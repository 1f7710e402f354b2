"""The monitor's link to a run, against a real in-process KVS server on loopback (no driver)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from disbatch.contract import CONTROL_KEY, STATUS_KEY
from disbatch.contract.snapshot import Snapshot
from disbatch.kvsstcp.server import KVSServer
from disbatch.monitor.live_run import REQUEST_TIMEOUT_SECONDS, Poll, RunSource, read_address


def address(server: KVSServer) -> str:
    return f'{server.address[0]}:{server.address[1]}'


def publish(server: KVSServer, **view: object) -> None:
    server.replace(STATUS_KEY.encode(), json.dumps(view).encode(), b'JSON')


@pytest.mark.timeout(10)
def test_no_snapshot_yet_is_a_short_wait_then_the_snapshot() -> None:
    with KVSServer('127.0.0.1', 0) as server:
        source = RunSource.connect(address(server))
        started = time.monotonic()
        assert source.poll() == Poll(None, ended=False)
        assert time.monotonic() - started < REQUEST_TIMEOUT_SECONDS + 0.5
        publish(server, run='r', status='running')
        assert source.poll() == Poll(Snapshot.from_json({'run': 'r', 'status': 'running'}), ended=False)
        publish(server, run='r', status='finished')
        assert source.poll() == Poll(Snapshot.from_json({'run': 'r', 'status': 'finished'}), ended=True)
        source.close()


@pytest.mark.timeout(10)
def test_commands_arrive_under_the_control_key() -> None:
    with KVSServer('127.0.0.1', 0) as server:
        source = RunSource.connect(address(server), token=b'secret')  # a server without a token takes any
        assert source.put_command('{"retire engine": 1}')
        deadline = time.monotonic() + 5
        while (value := server.get_nowait(CONTROL_KEY.encode())) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert value == (b'JSON', b'{"retire engine": 1}')
        source.close()


@pytest.mark.timeout(10)
def test_the_run_ends_when_its_kvsinfo_goes(tmp_path: Path) -> None:
    stem = str(tmp_path / 'run')
    with KVSServer('127.0.0.1', 0) as server:
        Path(f'{stem}_kvsinfo.txt').write_text(address(server) + '\n')
        assert read_address(stem) == address(server)
        source = RunSource.connect(address(server), stem=stem)
        publish(server, run='run', status='running')
        assert source.poll().ended is False
        Path(f'{stem}_kvsinfo.txt').unlink()
        assert read_address(stem) is None
        last = Snapshot.from_json({'run': 'run', 'status': 'running'})
        assert source.poll() == Poll(last, ended=True)  # the last snapshot comes too
        source.close()


@pytest.mark.timeout(10)
def test_the_run_ends_when_the_kvs_goes() -> None:
    server = KVSServer('127.0.0.1', 0).start()
    source = RunSource.connect(address(server))
    publish(server, run='r', status='running')
    assert source.poll().ended is False
    server.shutdown()
    assert source.poll() == Poll(None, ended=True)
    assert source.poll() == Poll(None, ended=True)  # refused now
    assert source.put_command('{}') is False
    source.close()


def test_nothing_listening_raises() -> None:
    with KVSServer('127.0.0.1', 0) as server:
        gone = address(server)
    with pytest.raises(OSError):
        RunSource.connect(gone)


@pytest.mark.timeout(10)
def test_a_guarded_kvs_needs_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    with KVSServer('127.0.0.1', 0, token=b'right') as server:
        publish(server, run='r', status='running')
        wrong = RunSource.connect(address(server), token=b'wrong')
        assert wrong.poll() == Poll(None, ended=True)
        wrong.close()
        monkeypatch.setenv('DISBATCH_KVSSTCP_TOKEN', 'right')  # what the dbUtil script exports
        right = RunSource.connect(address(server))
        assert right.poll() == Poll(Snapshot.from_json({'run': 'r', 'status': 'running'}), ended=False)
        right.close()
