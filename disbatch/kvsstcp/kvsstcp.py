"""`python -m disbatch.kvsstcp.kvsstcp`: the reference's server command line, served by our server.

    python -m disbatch.kvsstcp.kvsstcp [-H HOST] [-p PORT] [-a ADDRFILE] [-e COMMAND] [-l LOGFILE]

With `-e`, COMMAND runs in a shell with `KVSSTCP_HOST`, `KVSSTCP_PORT` and `KVSSTCP_TOKEN` in its environment (so
`-e 'disbatch --kvsserver $KVSSTCP_HOST:$KVSSTCP_PORT Tasks'` works with no secret copied by hand); the server stops
when it ends, and its exit status is ours. Without `-e` the server runs until a client sends `down` or Ctrl-C.

Unlike the reference's, the server listens on 127.0.0.1 unless `-H` says otherwise, and clients must present a
token: `$KVSSTCP_TOKEN` when set, else a new one, printed on stderr when no `-e` child receives it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Sequence

from disbatch.kvsstcp.server import KVSServer

LOG_FORMAT = '%(asctime)s %(levelname)-8s %(name)-15s: %(message)s'


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m disbatch.kvsstcp.kvsstcp', description='Start a KVS server.')
    parser.add_argument('-H', '--host', default='127.0.0.1', help='interface to listen on (default 127.0.0.1)')
    parser.add_argument('-p', '--port', type=int, default=0, help='port (default 0: let the system choose)')
    parser.add_argument('-a', '--addrfile', metavar='ADDRESSFILE', help='write host:port to this file')
    parser.add_argument('-e', '--execcmd', metavar='COMMAND', help='run COMMAND with the server in its environment')
    parser.add_argument('-l', '--logfile', metavar='LOGFILE', help='log to this file (default: stderr)')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format=LOG_FORMAT, **({'filename': arguments.logfile} if arguments.logfile else {})
    )
    token = os.environ.get('KVSSTCP_TOKEN') or secrets.token_urlsafe(24)
    try:
        server = KVSServer(arguments.host, arguments.port, token=token.encode())
    except OSError as error:
        print(f'kvsstcp: cannot listen on {arguments.host}:{arguments.port}: {error.strerror}', file=sys.stderr)
        return 1
    host, port = server.address
    logging.getLogger('disbatch.kvsstcp').info('server running at %s:%d', host, port)
    if arguments.addrfile:
        with open(arguments.addrfile, 'w') as handle:
            handle.write(f'{host}:{port}')
    with server, contextlib.suppress(KeyboardInterrupt):
        if arguments.execcmd:
            environment = dict(os.environ, KVSSTCP_HOST=host, KVSSTCP_PORT=str(port), KVSSTCP_TOKEN=token)
            return subprocess.run(arguments.execcmd, shell=True, env=environment, check=False).returncode
        if not os.environ.get('KVSSTCP_TOKEN'):
            print(f'kvsstcp: serving {host}:{port}; clients need: export KVSSTCP_TOKEN={token}', file=sys.stderr)
        while not server.wait(60.0):
            pass
    return 0


if __name__ == '__main__':
    sys.exit(main())
