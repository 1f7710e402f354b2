"""`python -m disbatch.monitor [STEM]`: the `--mon` monitor of a live run (what `<stem>_dbUtil.sh --mon` runs).

The run is found through DISBATCH_KVSSTCP_HOST, DISBATCH_KVSSTCP_TOKEN and DISBATCH_RUN_STEM (exported by the dbUtil
script), or through the `<STEM>_kvsinfo.txt` of the run given on the command line (the token still from the
environment). Exit status: 0 when the user quits or the run ends
while watched (a line on stdout says so), 1 when there is no run to watch, 2 for bad usage, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import curses
import os
import sys

from disbatch.contract import NAMED_IN_MESSAGES, RunFiles
from disbatch.monitor import model
from disbatch.monitor.live_run import RunSource, read_address
from disbatch.monitor.screen import WatchEnd, watch

PROGRAM = 'disbatch monitor'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m disbatch.monitor', description='Watch a live disbatch run.')
    stem_help = f'the run stem (the files are {RunFiles("STEM").status}, ...); default: the run of $DISBATCH_RUN_STEM'
    parser.add_argument('stem', nargs='?', help=f'{stem_help} / $DISBATCH_KVSSTCP_HOST')
    arguments = parser.parse_args(argv)
    given: str | None = arguments.stem
    stem = given or os.environ.get('DISBATCH_RUN_STEM') or None
    address = read_address(given) if given else os.environ.get('DISBATCH_KVSSTCP_HOST')
    run = os.path.basename(stem) if stem else address or '?'
    if not address:
        where = f'{RunFiles(given).kvsinfo} does not exist' if given else 'DISBATCH_KVSSTCP_HOST is not set'
        print(f'{PROGRAM}: no run to watch: {where} (use {NAMED_IN_MESSAGES.dbutil} --mon)', file=sys.stderr)
        return 1
    if stem and read_address(stem) is None:
        print(f'{PROGRAM}: the run {run} is not running (no {RunFiles(stem).kvsinfo}).', file=sys.stderr)
        return 1
    try:
        source = RunSource.connect(address, stem=stem)  # the KVS token comes from $DISBATCH_KVSSTCP_TOKEN
    except ValueError as error:
        print(f'{PROGRAM}: {error}', file=sys.stderr)
        return 2
    except OSError as error:
        print(
            f'{PROGRAM}: cannot contact the run {run} at {address} ({error}): it has probably ended.', file=sys.stderr
        )
        return 1
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        source.close()
        print(f'{PROGRAM}: needs a terminal', file=sys.stderr)
        return 1
    try:
        result = curses.wrapper(watch, source)
    except KeyboardInterrupt:
        return 130
    finally:
        source.close()
    if result.end is WatchEnd.ENDED and result.view is None and stem and read_address(stem) is not None:
        print(
            f'{PROGRAM}: the run {run} closed the connection before showing its state '
            '(is DISBATCH_KVSSTCP_TOKEN the one of its dbUtil script?)',
            file=sys.stderr,
        )
        return 1
    if result.end is WatchEnd.ENDED:
        print(model.ended_message(result.view, run))
    return 0


if __name__ == '__main__':
    sys.exit(main())
