"""Command line of the kvsstcp store: `serve` a store, or act as a `client` of one.

    python -m disbatch.kvsstcp serve [-H HOST] [-p PORT] [-a ADDRFILE]
    python -m disbatch.kvsstcp client HOST:PORT put KEY VALUE [-e ENCODING]
    python -m disbatch.kvsstcp client HOST:PORT get|view KEY
    python -m disbatch.kvsstcp client HOST:PORT dump|down

`serve` prints `host:port` on stdout (and writes it to ADDRFILE) and runs until a client sends `down` or it
is interrupted. `get`/`view` write the value's bytes and a newline to stdout. Exit 0 on success, 1 when the
server cannot be reached or closes the connection, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Sequence

from disbatch.kvsstcp.client import KVSClient
from disbatch.kvsstcp.server import KVSServer

KEYED_ACTIONS = ('put', 'get', 'view')


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m disbatch.kvsstcp', description='The kvsstcp key-value store.')
    commands = parser.add_subparsers(dest='command', required=True)
    serve = commands.add_parser('serve', help='run a server until a client sends down')
    serve.add_argument('-H', '--host', default='127.0.0.1', help='interface to listen on (default 127.0.0.1)')
    serve.add_argument('-p', '--port', type=int, default=0, help='port (default 0: any free port)')
    serve.add_argument('-a', '--addrfile', help='write host:port to this file')
    client = commands.add_parser('client', help='one request to a server')
    client.add_argument('address', metavar='HOST:PORT')
    client.add_argument('action', choices=(*KEYED_ACTIONS, 'dump', 'down'))
    client.add_argument('key', nargs='?')
    client.add_argument('value', nargs='?')
    client.add_argument('-e', '--encoding', default='ASTR', help='4-character encoding tag for put (default ASTR)')
    return parser


def serve(host: str, port: int, addrfile: str | None) -> int:
    """Run a server in this process until `down` or Ctrl-C."""
    server = KVSServer(host, port)
    address = f'{server.address[0]}:{server.address[1]}'
    if addrfile is not None:
        with open(addrfile, 'w') as stream:
            stream.write(address)
    print(address, flush=True)
    with server, contextlib.suppress(KeyboardInterrupt):
        while not server.wait(1.0):
            pass
    return 0


def request(address: str, action: str, key: str | None, value: str | None, encoding: str) -> int:
    """Send one request and print its answer."""
    with KVSClient.from_address(address) as client:
        if action == 'put':
            client.put(key or '', value or '', encoding)
        elif action in ('get', 'view'):
            _, data = client.get(key or '') if action == 'get' else client.view(key or '')
            sys.stdout.buffer.write(data + b'\n')
            sys.stdout.flush()
        elif action == 'dump':
            print(json.dumps(client.dump()))
        else:
            client.shutdown()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    arguments = parser.parse_args(argv)
    if arguments.command == 'serve':
        logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(name)s: %(message)s')
        return serve(arguments.host, arguments.port, arguments.addrfile)
    if arguments.action in KEYED_ACTIONS and arguments.key is None:
        parser.error(f'{arguments.action} needs a KEY')
    if arguments.action == 'put' and arguments.value is None:
        parser.error('put needs a VALUE')
    if len(arguments.encoding.encode()) != 4:
        parser.error('the encoding tag must be 4 bytes')
    try:
        return request(arguments.address, arguments.action, arguments.key, arguments.value, arguments.encoding)
    except ValueError as error:
        parser.error(str(error))
    except OSError as error:
        print(f'kvsstcp: {arguments.address}: {error}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
