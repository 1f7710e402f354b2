"""`python -m disbatch.engine`: start one engine (contexts do this; users do not need to).

The process forks at once (`supervisor.fork_engine`): the parent, the one the launcher started, stays behind as the
engine's supervisor; the child is the engine.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from disbatch.contract.launch_line import LaunchLine
from disbatch.engine.devices import SystemProbe, engine_resources
from disbatch.engine.engine import EngineLoop, EngineSettings, short_hostname
from disbatch.engine.shares import limit_reasons, slot_limit
from disbatch.engine.supervisor import fork_engine
from disbatch.exiting import exit_now
from disbatch.protocol.transport import Credentials


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m disbatch.engine', description='Run tasks for a disbatch driver.')
    parser.add_argument(
        '--driver', metavar='HOST:PORT', help='the driver endpoint (with --secret-stdin: from stdin unless given)'
    )
    parser.add_argument('--slots', type=int, required=True)
    parser.add_argument('--cores-per-task', type=int, default=1)
    parser.add_argument('--context', default='local')
    parser.add_argument('--gpus-per-task', type=int, default=0, help="this many of the node's GPUs for each task")
    parser.add_argument(
        '--env-resource', action='append', default=[], metavar='VAR', help='one item of the comma list $VAR per task'
    )
    parser.add_argument('--hostname', default=None, help='node name as the context knows it')
    parser.add_argument(
        '--watch-stdin', action='store_true', help='stop at once when stdin ends (the launcher of this engine is gone)'
    )
    parser.add_argument('--launch-id', default='', help='what the launching context calls this engine')
    parser.add_argument('--run', default='', help="the run's DISBATCH_JOBID (shown by ps; logged)")
    parser.add_argument(
        '--secret-stdin',
        action='store_true',
        help='read the run credentials and the driver endpoint from the first line of stdin, "SECRET KEY HOST:PORT" '
        '(else the credentials come from the environment: DISBATCH_RUN_SECRET and DISBATCH_RUN_KEY)',
    )
    parser.add_argument('--loglevel', default='INFO')
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.loglevel, stream=sys.stderr, format='%(asctime)s %(levelname)-8s %(name)-15s: %(message)s'
    )
    supervised = fork_engine()
    if supervised is not None:
        return supervised  # the supervisor: the engine and everything it started have ended
    log = logging.getLogger('disbatch.engine')
    if args.run:
        log.info('engine of run %s', args.run)
    credentials = Credentials(os.environ.pop('DISBATCH_RUN_SECRET', ''), os.environ.pop('DISBATCH_RUN_KEY', ''))
    # Before the wait for the driver's line: a probe (nvidia-smi) overlaps the driver's start-up.
    resources, problems = engine_resources(args.gpus_per_task, args.env_resource, os.environ, SystemProbe())
    for problem in problems:  # the driver quotes the last line: the problem alone, without the log's prefix
        sys.stderr.write(problem + '\n')
    if problems:
        return 1
    for resource in resources:
        log.info('%s: %s, %d per task', resource.name, ','.join(resource.items), resource.per_task)
    slots = slot_limit(args.slots, resources)
    for reason in limit_reasons(args.slots, resources):
        log.info('%d slots instead of %d: %s', slots, args.slots, reason)
    driver = args.driver
    if args.secret_stdin:
        # Read only now, after the imports: the driver binds its endpoint while this process starts up.
        line = _read_line(0)
        if not line:
            log.error('stdin ended before the driver said where it is: the run stopped before it got going')
            return 1
        launch = LaunchLine.parse(line)
        if launch is None:
            log.error('the first line of stdin is not "SECRET KEY HOST:PORT"')
            return 1
        credentials = Credentials(launch.secret, launch.server_key)
        driver = driver or launch.driver_address
    if not driver:
        parser.error('no driver endpoint: give --driver, or --secret-stdin and a line with it')
    settings = EngineSettings(
        driver_address=driver,
        credentials=credentials,
        slots=slots,
        cores_per_task=args.cores_per_task,
        context=args.context,
        hostname=args.hostname or short_hostname(),
        watch_stdin=args.watch_stdin,
        launch_id=args.launch_id,
        resources=resources,
    )
    return EngineLoop(settings).run()


def _read_line(fd: int) -> str:
    """The first line of `fd`, read without buffering past it (the rest of stdin is watched for its end)."""
    data = b''
    while not data.endswith(b'\n'):
        byte = os.read(fd, 1)
        if not byte:
            break
        data += byte
    return data.decode('utf-8', 'replace').strip()


if __name__ == '__main__':
    exit_now(main())
