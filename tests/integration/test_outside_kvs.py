"""Outside KVS servers (--kvsserver, --taskserver HOST:PORT) and kvsstcp's own modules and command lines (issue 10).

Real servers (`python -m disbatch.kvsstcp.kvsstcp`, and the token-less `serve` standing in for the reference's),
the real CLI, real bash tasks and producers written against the reference's client API.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from disbatch.kvsstcp import wire
from disbatch.kvsstcp.client import KVSClient as OurClient
from disbatch.kvsstcp.kvsclient import KVSClient
from disbatch.kvsstcp.outside import OutsideKVS
from disbatch.kvsstcp.server import KVSServer

from ..conftest import Processes, disbatch_cmd
from .helpers import read_status, run_disbatch, status_path, wait_for, write_task_file

pytestmark = pytest.mark.timeout(60)

TOKEN = 'outside-token-for-tests'
DISBATCH = ' '.join(disbatch_cmd())
CLIENT = f'{sys.executable} -m disbatch.kvsstcp.kvsclient'


def _start_server(procs: Processes, tmp_path: Path, *args: str) -> str:
    """Start a standalone server writing its address to a file; return HOST:PORT once it listens."""
    addrfile = tmp_path / 'kvs-address'
    procs.spawn([sys.executable, '-m', 'disbatch.kvsstcp', *args, '-a', str(addrfile)], cwd=tmp_path,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    assert wait_for(lambda: addrfile.exists() and addrfile.read_text().strip() != '', timeout=15)
    return addrfile.read_text().strip()


def test_a_run_inside_kvsstcp_e_uses_that_server_and_leaves_it_up(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'echo one\n#DISBATCH BARRIER mykey\necho two\n')
    command = (
        f'{DISBATCH} -s localhost:2 --kvsserver $KVSSTCP_HOST:$KVSSTCP_PORT Tasks && '
        f'{CLIENT} -v mykey > barrier.txt && {CLIENT} -v "DisBatch status" > status.txt'
    )
    result = procs.run([sys.executable, '-m', 'disbatch.kvsstcp.kvsstcp', '-e', command], cwd=tmp_path, timeout=45)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / 'barrier.txt').read_text().strip() == "b'1'"  # read from the server after the run ended
    assert '"finished"' in (tmp_path / 'status.txt').read_text()
    assert sorted(record.task_id for record in read_status(status_path(tmp_path))) == [0, 1, 2]


def test_taskserver_on_an_outside_server_with_a_reference_style_producer(procs: Processes, tmp_path: Path) -> None:
    address = _start_token_server(procs, tmp_path)
    driver = procs.spawn(disbatch_cmd('-s', 'localhost:2', '--taskserver', address), cwd=tmp_path,
                         env={'KVSSTCP_TOKEN': TOKEN}, stderr=subprocess.PIPE)  # fmt: skip
    producer = write_task_file(
        tmp_path / 'producer.py',
        textwrap.dedent(f"""
            from disbatch.kvsstcp.kvsclient import KVSClient
            c = KVSClient({address!r})
            c.put('task source name', 'producer', False)
            c.put('task source done task', '#DONE#', False)
            c.put('task source result key', 'R', False)
            c.put('task source task key', 'T', False)
            for n in range(3):
                c.put('T', f'echo task {{n}}; exit {{n}}', False)
            done = sorted(int(c.get('R done tasks', False)) for _ in range(3))
            codes = sorted(c.get(f'R {{n}}', 'JSON')[0] == b'JSON' for n in done)
            c.put('T', '#DONE#', False)
            print(done, codes)
        """),
    )
    result = procs.run([sys.executable, str(producer)], cwd=tmp_path, env={'KVSSTCP_TOKEN': TOKEN}, timeout=40)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '[0, 1, 2] [True, True, True]'
    assert driver.wait(timeout=20) == 0, driver.communicate()[1]
    with OurClient.from_address(address, token=TOKEN.encode()) as client:
        client.ping()  # the run did not shut the outside server down
        client.put('still', 'up')
        assert client.get('still') == (b'ASTR', b'up')


def _start_token_server(procs: Processes, tmp_path: Path) -> str:
    addrfile = tmp_path / 'token-server-address'
    procs.spawn([sys.executable, '-m', 'disbatch.kvsstcp.kvsstcp', '-a', str(addrfile)], cwd=tmp_path,
                env={'KVSSTCP_TOKEN': TOKEN}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    assert wait_for(lambda: addrfile.exists() and addrfile.read_text().strip() != '', timeout=15)
    return addrfile.read_text().strip()


def test_an_outside_server_that_asks_for_no_token(procs: Processes, tmp_path: Path) -> None:
    address = _start_server(procs, tmp_path, 'serve')  # token-less, as the reference's server is
    write_task_file(tmp_path / 'Tasks', 'echo one\n#DISBATCH BARRIER done\n')
    finished = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '--kvsserver', address, 'Tasks')
    assert finished.returncode == 0, finished.describe()
    with OurClient.from_address(address) as client:
        assert client.get('done') == (b'ASTR', b'1')


def test_an_outside_server_that_is_not_there(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'touch marker\n')
    finished = run_disbatch(procs, tmp_path, '-s', 'localhost:2', '--kvsserver', 'localhost:1', 'Tasks')
    assert finished.returncode == 1, finished.describe()
    assert 'localhost:1' in finished.stderr and 'Traceback' not in finished.stderr, finished.describe()


def test_a_task_runs_a_script_written_for_the_reference_client(procs: Processes, tmp_path: Path) -> None:
    script = write_task_file(
        tmp_path / 'reference_style.py',
        textwrap.dedent("""
            import os
            from disbatch.kvsstcp.kvsclient import KVSClient
            c = KVSClient(os.environ['DISBATCH_KVSSTCP_HOST'])
            c.put('numbers', [1, 2, 3])
            c.put('text', 'hello', False)
            other = c.clone()
            assert other.get('numbers') == [1, 2, 3]
            assert other.view('text', False) == b'hello'
            assert c.get('text', 'ASTR') == (b'ASTR', b'hello')
            assert c._get_nb('nothing', timeout=0.1) is None
            other.put('nothing', 'now', False)
            assert c._get_nb('nothing', False, timeout=5) == b'now'
            other.close()
            c.close()
            print('reference client ok')
        """),
    )
    write_task_file(tmp_path / 'Tasks', f'{sys.executable} {script}\n')
    env = {'PYTHONPATH': str(Path(__file__).resolve().parents[2]) + os.pathsep + os.environ.get('PYTHONPATH', '')}
    finished = run_disbatch(procs, tmp_path, '-s', 'localhost:1', '-e', 'Tasks', env=env)
    assert finished.returncode == 0, finished.describe() + status_path(tmp_path).read_text()
    [record] = read_status(status_path(tmp_path))
    assert record.return_code == 0 and 'reference client ok' in record.out_snippet


def test_pickled_values_stay_opaque_bytes_in_our_server() -> None:
    with KVSServer() as server:
        client = KVSClient(server.address)
        client.put('obj', {'a': 1})
        assert wait_for(lambda: server.view_nowait(b'obj') is not None, timeout=5)
        assert server.get_nowait(b'obj') == (b'PYPK', pickle.dumps({'a': 1}))  # stored as the bytes it was sent
        client.put('raw', b'\x80not a pickle', 'PYPK')
        assert client.get('raw', False) == b'\x80not a pickle'  # encoding False: never unpickled
        client.put('tagged', 'x', 'JSON')
        assert client.dump()[2][0][0] == 'tagged'
        client.close()


def test_the_client_presents_the_token_on_every_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    with KVSServer(token=TOKEN.encode()) as server:
        monkeypatch.setenv('DISBATCH_KVSSTCP_TOKEN', TOKEN)
        client = KVSClient(f'{server.address[0]}:{server.address[1]}')
        clone = client.clone()
        clone.put('k', 'v', False)
        assert client.get('k', False) == b'v'
        assert server.view_nowait(wire.AUTH_KEY) is None  # the token is not stored
        client.close()
        clone.close()


def test_different_kvsserver_and_taskserver_are_refused(procs: Processes, tmp_path: Path) -> None:
    finished = run_disbatch(
        procs, tmp_path, '-s', 'localhost:2', '--kvsserver', 'localhost:5', '--taskserver', 'localhost:6'
    )
    assert finished.returncode == 2, finished.describe()
    assert '--kvsserver' in finished.stderr and '--taskserver' in finished.stderr


def test_a_taskcommand_on_an_outside_server_that_puts_and_exits_at_once(procs: Processes, tmp_path: Path) -> None:
    # Its puts reach the driver through the outside server after its exit may be seen: none is lost, no false error.
    producer = (
        f"{CLIENT} -p 'task source name' quick -p 'task source done task' '#DONE#' -p 'task source result key' R "
        "-p 'task source task key' T -p T 'echo a' -p T 'echo b' -p T 'echo c'"
    )
    command = f'{DISBATCH} -s localhost:2 --kvsserver $KVSSTCP_HOST:$KVSSTCP_PORT --taskcommand "{producer}"'
    result = procs.run([sys.executable, '-m', 'disbatch.kvsstcp.kvsstcp', '-e', command], cwd=tmp_path, timeout=45)
    assert result.returncode == 0, result.stderr
    [status] = tmp_path.glob('*_status.txt')
    assert sorted(record.command for record in read_status(status)) == ['echo a', 'echo b', 'echo c']


def test_the_driver_side_of_an_outside_server_replaces_drains_and_never_shuts_it_down() -> None:
    with KVSServer(token=TOKEN.encode()) as server:
        address = f'{server.address[0]}:{server.address[1]}'
        seen: list[bytes] = []
        with OutsideKVS(address, TOKEN.encode()) as outside:
            for n in range(3):
                outside.replace(b'status', str(n).encode(), b'JSON')
            assert wait_for(lambda: server.view_nowait(b'status') == (b'JSON', b'2'), timeout=5)
            outside.watch(b'items', lambda key, encoding, value: seen.append(value))
            for item in (b'a', b'b'):
                server.put(b'items', item)
            assert wait_for(lambda: seen == [b'a', b'b'], timeout=5)
            assert [outside.get_nowait(b'items'), outside.get_nowait(b'items'), outside.get_nowait(b'items')] == [
                (b'ASTR', b'a'), (b'ASTR', b'b'), None
            ]  # fmt: skip
        assert server.get_nowait(b'status') == (b'JSON', b'2') and server.get_nowait(b'status') is None  # one value
        assert not server.wait(0.2)  # closing our side did not shut the server down
        with pytest.raises(OSError):
            OutsideKVS(address, b'not the token')


@pytest.mark.timeout(20)
def test_a_foreign_get_of_the_status_key_does_not_hang_the_driver() -> None:
    # Someone's `get` waits on the status key: it takes the first snapshot, and the next replace finds nothing old.
    with KVSServer() as server:
        address = f'{server.address[0]}:{server.address[1]}'
        with OurClient.from_address(address) as foreign, OutsideKVS(address) as outside:
            foreign.put('warm', 'up')
            assert foreign.get('warm') == (b'ASTR', b'up')
            foreign._send(wire.Get(b'status'))  # a pending get, as a reader's blocking KVSClient.get would leave
            assert wait_for(lambda: server.view_nowait(b'status') is None and _waiting(address, 'status'), timeout=5)
            for n in range(3):
                outside.replace(b'status', str(n).encode(), b'JSON')
            assert foreign._receive_value() == (b'JSON', b'0')
            assert wait_for(lambda: server.view_nowait(b'status') == (b'JSON', b'2'), timeout=5)


def _waiting(address: str, key: str) -> bool:
    with OurClient.from_address(address) as client:
        return [key, 1] in client.dump()[1]
