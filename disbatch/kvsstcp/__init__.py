"""The kvsstcp key-value store (server and client), wire-compatible with the reference's kvsstcp.

`wire` holds the bytes, `store` the semantics, `server` the socket loop, `client` a blocking client.
"""

from __future__ import annotations

from disbatch.kvsstcp.client import KVSClient, parse_address
from disbatch.kvsstcp.server import KVSServer

__all__ = ['KVSClient', 'KVSServer', 'parse_address']
