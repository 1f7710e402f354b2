"""`python -m disbatch.kvsstcp.kvsclient`: the reference's client command line (the API is the package).

    python -m disbatch.kvsstcp.kvsclient [-P | -A | -E CODE] [-T SECS] [-R COUNT]
        (-p KEY VALUE | -g KEY | -v KEY | -d | -m MKEY KEY:EVENTS | -S | -s SECS)... [HOST:PORT]

Operations run in the order given; each result is printed as the reference prints it. The server defaults to
`$KVSSTCP_HOST:$KVSSTCP_PORT`. `-P` pickles what is put (VALUE is a Python literal, read with `ast.literal_eval`,
never `eval`) and unpickles what is got.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from disbatch.kvsstcp.kvsclient import KVSClient


class _Operation(argparse.Action):
    """Record an operation with its arguments, in command-line order."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: str | None = None
    ) -> None:
        operations = list(getattr(namespace, 'operations', None) or [])
        operations.append((self.dest, list(values) if isinstance(values, list) else [values]))
        namespace.operations = operations


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='python -m disbatch.kvsstcp.kvsclient', description='Command-line client of a KVS server.'
    )
    add = parser.add_argument
    add('-R', '--retry', type=int, default=0, metavar='COUNT', help='times to retry connecting [0]')
    add('-P', '--pickle', dest='encoding', action='store_const', const=True, help='(un-)pickle values')
    add('-A', '--no-pickle', dest='encoding', action='store_const', const=False, help="don't (un-)pickle (default)")
    add('-E', '--encoding', dest='encoding', metavar='CODE', help='4-character encoding for put (ASTR by default)')
    add('-T', '--timeout', type=float, metavar='SECS', help='give up waiting for get/view after SECS')
    add('-d', '--dump', action=_Operation, nargs=0, help='dump the current state')
    add('-g', '--get', action=_Operation, nargs=1, metavar='KEY', help='retrieve and remove a value')
    add('-v', '--view', action=_Operation, nargs=1, metavar='KEY', help='retrieve a value')
    add('-p', '--put', action=_Operation, nargs=2, metavar=('KEY', 'VALUE'), help='put a value')
    add('-m', '--monkey', action=_Operation, nargs=2, metavar=('MKEY', 'KEY:EVENTS'), help='monitor a key')
    add('-S', '--shutdown', action=_Operation, nargs=0, help='tell the server to shut down')
    add('-s', '--sleep', action=_Operation, nargs=1, type=float, metavar='SECS', help='pause')
    host, port = os.environ.get('KVSSTCP_HOST'), os.environ.get('KVSSTCP_PORT')
    default = f'{host}:{port}' if host and port else None
    add('server', metavar='host:port', nargs='?' if default else None, default=default, help='KVS server address')
    parser.set_defaults(encoding=False, operations=[])
    return parser


def _run(client: KVSClient, name: str, values: list[Any], encoding: Any, timeout: float | None) -> Any:
    if name == 'sleep':
        time.sleep(values[0])
        return None
    if name == 'put':
        key, value = values
        return client.put(key, ast.literal_eval(value) if encoding is True else value, encoding)
    if name in ('get', 'view'):
        wait = client._get_nb if name == 'get' else client._view_nb
        return wait(values[0], encoding if encoding in (True, False) else False, timeout)
    return getattr(client, name)(*values)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    client = KVSClient(arguments.server, retry=arguments.retry)
    if not arguments.operations:
        print('Nothing to do.')
    failed = False
    for name, values in arguments.operations:
        try:
            result = _run(client, name, values, arguments.encoding, arguments.timeout)
        except (OSError, ValueError, TypeError, SyntaxError) as error:
            print(error, file=sys.stderr)
            failed = True
            continue
        if result is not None:
            print(result)
    client.close()
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
