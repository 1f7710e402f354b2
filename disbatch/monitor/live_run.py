"""The monitor's link to a live run: read the snapshot from the run's KVS, put monitor commands, notice the end.

A `view` of a key that holds no value yet waits for one, so every request carries a short timeout; the client drops
its connection after a timeout and the next poll opens a new one. The run is over when its snapshot says
`finished`, when `<stem>_kvsinfo.txt` (present exactly while the run is alive) is gone, or when the KVS refuses or
closes the connection.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from disbatch.contract import CONTROL_KEY, STATUS_KEY, RunFiles
from disbatch.contract.snapshot import Snapshot
from disbatch.kvsstcp.client import KVSClient
from disbatch.monitor import model

REQUEST_TIMEOUT_SECONDS = 0.3


@dataclass(frozen=True, slots=True)
class Poll:
    view: Snapshot | None  # the newest snapshot, None when there is none yet (or it is not JSON)
    ended: bool


def kvsinfo_path(stem: str) -> str:
    return RunFiles(stem).kvsinfo


def read_address(stem: str) -> str | None:
    """The KVS address a live run wrote beside its files, or None when the run is not alive."""
    try:
        with open(kvsinfo_path(stem)) as handle:
            return handle.read().strip() or None
    except OSError:
        return None


class RunSource:
    """Snapshots of one run, fetched on demand; open with `connect` (raises OSError when nothing listens).

    `token` None: the KVS client takes it from the environment (`DISBATCH_KVSSTCP_TOKEN`, from the dbUtil script).
    """

    def __init__(self, address: str, token: bytes | None, kvsinfo: str | None, client: KVSClient) -> None:
        self.address = address
        self.token = token
        self.kvsinfo = kvsinfo  # watched only when it existed at the start
        self._client: KVSClient | None = client

    @classmethod
    def connect(cls, address: str, token: bytes | None = None, stem: str | None = None) -> RunSource:
        kvsinfo = kvsinfo_path(stem) if stem and os.path.exists(kvsinfo_path(stem)) else None
        return cls(address, token, kvsinfo, cls._open(address, token))

    def poll(self) -> Poll:
        """The newest snapshot; `ended` once the run is over (the last snapshot seen may come with it)."""
        gone = self.kvsinfo is not None and not os.path.exists(self.kvsinfo)
        try:
            client = self._connected()
            _, value = client.view(STATUS_KEY)
        except TimeoutError:  # no snapshot yet, or a slow driver: the client closed the connection, retry later
            self._client = None
            return Poll(None, ended=gone)
        except OSError:  # refused, reset, closed: the KVS went away with the run
            self._client = None
            return Poll(None, ended=True)
        view = model.parse(value)
        return Poll(view, ended=gone or (view is not None and model.has_ended(view)))

    def put_command(self, command: str) -> bool:
        """Put one JSON command under `DisBatch control`; False when the run is gone."""
        try:
            self._connected().put(CONTROL_KEY, command, encoding=b'JSON')
        except OSError:
            self._client = None
            return False
        return True

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _connected(self) -> KVSClient:
        if self._client is None:
            self._client = self._open(self.address, self.token)
        return self._client

    @staticmethod
    def _open(address: str, token: bytes | None) -> KVSClient:
        return KVSClient.from_address(address, token=token, timeout=REQUEST_TIMEOUT_SECONDS)
