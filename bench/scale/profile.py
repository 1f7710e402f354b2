"""Where the driver's time goes: py-spy samples of the driver process, summed by function and by module.

py-spy (`pip install py-spy`; not a dependency of disbatch) records the driver from outside, without slowing it
much: `py-spy record --pid PID --format raw` writes one line per distinct stack, `frame;frame;... COUNT`, outermost
first. `summary` turns that into the lines an entry of bench/RESULTS.md shows: the functions the driver spends its
own time in, and the share of the samples each part of the driver appears in.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

RATE = 250  # samples per second
_FRAME = re.compile(r'^(?P<function>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$')


def start(pid: int, output: Path) -> subprocess.Popen[bytes] | None:
    """Start recording `pid` into `output` (None when py-spy is not installed)."""
    py_spy = shutil.which('py-spy')
    if py_spy is None:
        return None
    command = [
        py_spy,
        'record',
        '--pid',
        str(pid),
        '--rate',
        str(RATE),
        '--format',
        'raw',
        '--nonblocking',
        '--output',
        str(output),
    ]
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summary(path: Path, top: int = 8) -> list[str]:
    """The profile's lines: own time by function, and the share of samples each driver module appears in."""
    try:
        text = path.read_text(errors='replace')
    except OSError:
        return ['(no profile: py-spy wrote nothing)']
    own: Counter[str] = Counter()
    within: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(' ')
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame(frame) for frame in stack.split(';')]
        own[frames[-1][0]] += count
        for module in {module for _, module in frames if module}:
            within[module] += count
    if not total:
        return ['(no profile: no samples)']
    lines = [f'{total} samples of the driver ({RATE}/s); own time by function:']
    lines += [f'  {100 * count / total:5.1f} % {name}' for name, count in own.most_common(top)]
    lines.append('samples in which each part of the driver is on the stack (below its loop):')
    parts = [(name, count) for name, count in within.most_common() if count < 0.9 * total]  # not the way down
    lines += [f'  {100 * count / total:5.1f} % {name}' for name, count in parts[:top]]
    return lines


def _frame(frame: str) -> tuple[str, str]:
    """(`function (file)` shortened, the disbatch module or library it belongs to, '' for the interpreter's)."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip(), ''
    file = match['file']
    module = ''
    if '/disbatch/' in f'/{file}':  # py-spy names a file relative to the sys.path entry it was found on
        module = 'disbatch/' + f'/{file}'.rpartition('/disbatch/')[2]
    elif '/zmq/' in f'/{file}':
        module = 'zmq'
    elif file.endswith(('json/encoder.py', 'json/decoder.py', 'json/__init__.py')):
        module = 'json'
    return f'{match["function"]} ({file.rpartition("/")[2]})', module
