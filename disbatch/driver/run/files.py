"""Where a run's files go (the stem, from `-p`) and the dbUtil helper script; their names are in `disbatch.contract`.

Names follow the reference: the stem is `<Taskfile>_disBatch_<yyMMddHHmmss>_<NNN>` inside the `-p` directory, or
the `-p` path itself when it does not name an existing directory; every file is `<stem>_<what>`.
"""

from __future__ import annotations

import os
import random
import shlex
import socket
import sys
import time
from typing import TYPE_CHECKING

from disbatch.contract import RunFiles
from disbatch.errors import OutputPathError
from disbatch.privacy import SCRIPT_MODE, make_directory, write_file

if TYPE_CHECKING:
    from disbatch.protocol.transport import Credentials


def choose_stem(prefix: str, tasks_name: str, now: float | None = None, rng: random.Random | None = None) -> RunFiles:
    """Resolve `-p` the way the reference does, making a missing directory (`-p logs/`, `-p logs/run`: mode 0700,
    like `--results`); OutputPathError when it cannot be made."""
    when = time.localtime(time.time() if now is None else now)
    number = (rng or random.Random()).randrange(1000)
    default_name = f'{tasks_name}_disBatch_{time.strftime("%y%m%d%H%M%S", when)}_{number:03d}'
    directory = prefix if prefix.endswith('/') else os.path.dirname(prefix)
    if directory and not os.path.isdir(directory):
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError as error:
            raise OutputPathError(f'-p {prefix}: cannot make the directory {directory}: {error.strerror}') from None
    if os.path.isdir(prefix):
        return RunFiles(os.path.join(os.path.realpath(prefix), default_name))
    return RunFiles(os.path.realpath(prefix))


def results_directory(path: str | None) -> str:
    """`--results DIR` made (mode 0700) if missing, as an absolute path (engines run elsewhere); '' without the flag."""
    if path is None:
        return ''
    absolute = os.path.abspath(path)
    try:
        make_directory(absolute)
    except OSError as error:
        raise OutputPathError(f'--results {path}: cannot make the directory: {error.strerror}') from None
    return absolute


def write_dbutil(
    files: RunFiles, kvs_address: str, kvs_token: str, driver_address: str, credentials: Credentials
) -> None:
    """Write `<stem>_dbUtil.sh` (mode 0700: it holds the run's secret)."""
    python = shlex.quote(sys.executable)
    dbutil = shlex.quote(files.dbutil)
    script = f"""#!/bin/bash
# The helper of the disbatch run {shlex.quote(files.job_id)}: add engines to it while it runs.
#   {os.path.basename(files.dbutil)} -s HOST:N[,HOST:N...]   engines on these hosts (or -s localhost:N)
#   sbatch -n N {os.path.basename(files.dbutil)}            engines on the nodes of a Slurm allocation
#   {os.path.basename(files.dbutil)} --mon                   watch the run (and stop engines) in a terminal
#   {os.path.basename(files.dbutil)} --help                  every option
# It holds the run's secret: keep it private (mode 0700).
export DISBATCH_KVSSTCP_HOST={shlex.quote(kvs_address)}
export DISBATCH_KVSSTCP_TOKEN={shlex.quote(kvs_token)}
export DISBATCH_DRIVER_ADDRESS={shlex.quote(driver_address)}
export DISBATCH_DRIVER_HOST={shlex.quote(socket.gethostname())}
export DISBATCH_RUN_SECRET={shlex.quote(credentials.secret)}
export DISBATCH_RUN_KEY={shlex.quote(credentials.server_key)}
export DISBATCH_RUN_STEM={shlex.quote(files.stem)}
export DISBATCH_DBUTIL={dbutil}
case "$1" in
    --engine)
        shift
        exec {python} -m disbatch.engine --driver "$DISBATCH_DRIVER_ADDRESS" "$@" ;;
    --mon)
        exec {python} -m disbatch.monitor ;;
    *)
        exec {python} -m disbatch.contexts "$@" ;;
esac
"""
    write_file(files.dbutil, script, SCRIPT_MODE)
