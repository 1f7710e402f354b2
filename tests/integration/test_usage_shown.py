"""What a task used, as a user sees it: a task that allocates ~200 MB shows a peak RSS within 10 % of that in the
run's machine-readable snapshot (`status.json` of `--web`, the `DisBatch status` KVS key), on the web page (headless
Chromium) and in the end-of-run summary."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ..conftest import Processes, disbatch_cmd
from .helpers import wait_for
from .test_web_chromium import CHROMIUM, dump

ALLOCATED = 200_000_000
BIG = "python3 -c 'b = bytearray(200_000_000); b[::4096] = bytes(len(b[::4096])); import time; time.sleep(0.2)'"
UNITS = {'B': 1, 'KiB': 1 << 10, 'MiB': 1 << 20, 'GiB': 1 << 30}


def near_allocation(count: int) -> bool:
    return abs(count - ALLOCATED) <= ALLOCATED / 10


def parse_bytes(text: str) -> int:
    number, unit = text.split()
    return int(float(number) * UNITS[unit])


def status(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + 'status.json', timeout=5) as answer:
        view: dict[str, Any] = json.load(answer)
    return view


@pytest.mark.timeout(90)
@pytest.mark.skipif(CHROMIUM is None, reason='needs headless Chromium (apt-get install chromium; scripts/test does)')
def test_a_200_mb_task_shows_its_peak_rss(procs: Processes, tmp_path: Path) -> None:
    (tmp_path / 'Tasks').write_text(f'{BIG}\necho small\nsleep 6\n')
    run = procs.spawn(
        disbatch_cmd('-s', 'localhost:2', '--web', '--progress', '-p', str(tmp_path / 'run'), 'Tasks'),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url_file = tmp_path / 'run_url'
    assert wait_for(lambda: url_file.exists() or run.poll() is not None, timeout=15)
    assert url_file.exists(), run.communicate(timeout=10)
    url = url_file.read_text().strip()
    assert wait_for(lambda: len(status(url).get('usage', {}).get('biggest', [])) >= 2, timeout=20)

    view = status(url)
    biggest = view['usage']['biggest'][0]
    assert biggest['task'] == 0 and near_allocation(biggest['max_rss']), biggest
    (recent,) = [task for task in view['recent'] if task['task'] == 0]
    assert near_allocation(recent['max_rss']) and recent['cpu'] >= 0
    (engine,) = view['engines']
    assert engine['max_rss'] == biggest['max_rss']

    dom = dump(procs, tmp_path, url, budget_ms=1500)
    top = dom.rows['biggest'][0]
    assert top[0] == '0' and near_allocation(parse_bytes(top[3])), dom.rows['biggest']
    assert near_allocation(parse_bytes(dom.rows['engines'][0][11]))

    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 0, stderr
    match = re.search(r'peak memory: ([0-9.]+ [KMG]?i?B) task 0 \(line 1\)', stderr)
    assert match is not None, stderr
    assert near_allocation(parse_bytes(match[1]))
