"""`--results DIR` (complete outputs, streamed) and `--json FILE` (the run's events) through the real CLI.

Every line of the events file is validated against the documented schema (docs/events.schema.json), and holds no
property the schema does not describe, so the documentation stays complete.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from disbatch.results.status_line import flags

from ..conftest import Processes, disbatch_cmd
from .helpers import REPO_ROOT, read_status, run_disbatch, status_path, write_task_file

SCHEMA = json.loads((REPO_ROOT / 'docs' / 'events.schema.json').read_text())
BIG = 50 * 1024 * 1024
# The task's parent is its engine: its peak RSS before and after the task streamed 50 MB through it.
ENGINE_PEAK = 'grep VmHWM /proc/$PPID/status >&2'
BIG_TASK = f'{ENGINE_PEAK}; yes 0123456789abcdef | head -c {BIG}; {ENGINE_PEAK}'
FAILS_ONCE = '[ -e tried ] || { touch tried; echo first try >&2; exit 4; }; echo second try'


def validate_events(path: Path) -> list[dict[str, Any]]:
    """Every line of an events file, each checked against the schema (and for undocumented properties)."""
    validator = jsonschema.Draft202012Validator(SCHEMA)
    events = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        event = json.loads(line)
        validator.validate(event)
        documented = SCHEMA['$defs'][event['event']]['properties']
        assert set(event) <= set(documented), f'line {number}: undocumented {set(event) - set(documented)}'
        events.append(event)
    return events


def peak_kib(text: str) -> list[int]:
    return [int(value) for value in re.findall(r'VmHWM:\s+(\d+) kB', text)]


@pytest.mark.timeout(120)
def test_results_keep_complete_outputs_and_json_follows_the_schema(procs: Processes, tmp_path: Path) -> None:
    write_task_file(
        tmp_path / 'Tasks',
        '#DISBATCH PERENGINE START echo engine up\n'
        f'{BIG_TASK}\n'
        'echo out; echo err >&2\n'
        f'{FAILS_ONCE}\n'
        '#DISBATCH BARRIER\n'
        'exit 3\n',
    )
    finished = run_disbatch(
        procs, tmp_path, '-s', 'localhost:2', '--retries', '1', '--results', 'out', '--json', 'events.jsonl',
        'Tasks', timeout=100,
    )  # fmt: skip
    assert finished.returncode == 0, finished.describe()
    records = read_status(status_path(tmp_path))
    out = tmp_path / 'out'

    big = next(record for record in records if record.line_number == 2)
    assert (out / '000000.1.out').stat().st_size == BIG == big.out_bytes
    assert (out / '000000.1.out').read_bytes()[:34] == b'0123456789abcdef\n' * 2
    before, after = peak_kib((out / '000000.1.err').read_text())
    assert after - before < 16 * 1024, f'the engine grew from {before} to {after} KiB while 50 MB went through it'
    assert (out / '000001.1.out').read_bytes() == b'out\n' and (out / '000001.1.err').read_bytes() == b'err\n'
    assert (out / '000002.1.err').read_bytes() == b'first try\n' and (
        out / '000002.2.out'
    ).read_bytes() == b'second try\n'
    assert (out / 'perengine_line000001_engine0.out').read_bytes() == b'engine up\n'

    events = validate_events(tmp_path / 'events.jsonl')
    kinds = [event['event'] for event in events]
    assert kinds[0] == 'run_start' and kinds[-1] == 'run_end' and events[0]['schema_version'] == SCHEMA['version']
    assert {'engine_joined', 'engine_left', 'task_started', 'task_finished'} <= set(kinds)
    done = [event for event in events if event['event'] == 'task_finished']
    assert len(done) == len(records)  # one event per status line, retried attempts included
    by_attempt = {(event['task_id'], event['attempt'], event['kind']): event for event in done}
    first, second = by_attempt[(2, 1, 'normal')], by_attempt[(2, 2, 'normal')]
    assert (first['state'], first['final'], first['err_snippet']) == ('failed', False, 'first try\n')
    assert (second['state'], second['final'], second['stdout_file']) == ('succeeded', True, str(out / '000002.2.out'))
    assert by_attempt[(4, 1, 'normal')]['state'] == 'failed' and by_attempt[(3, 1, 'barrier')]['engine'] is None
    assert by_attempt[(0, 1, 'normal')]['max_rss_bytes'] > 0 and by_attempt[(0, 1, 'normal')]['user_seconds'] >= 0
    for event in done:  # the event carries every status field as the status file has it
        line = next(r for r in records if (r.task_id, r.line_number, r.finish) == (
            event['task_id'], event['line_number'], round(event['finish'], 3)))  # fmt: skip
        assert (event['flags'], event['host'], event['pid'], event['return_code'], event['out_bytes']) == (
            flags(line), line.host, line.pid, line.return_code, line.out_bytes)  # fmt: skip
    assert events[-1]['failed'] == 1 and events[-1]['exit_code'] == 0


@pytest.mark.timeout(60)
def test_report_summarises_a_status_file_and_writes_html(procs: Processes, tmp_path: Path) -> None:
    write_task_file(tmp_path / 'Tasks', 'true\nexit 5\ntrue\n')
    assert run_disbatch(procs, tmp_path, '-s', 'localhost:2', 'Tasks').returncode == 0
    status = status_path(tmp_path)
    report = procs.run(disbatch_cmd('report', str(status), '-o', 'r.html'), cwd=tmp_path, timeout=30)
    assert report.returncode == 0, report.stderr
    assert '3 tasks run' in report.stdout and 'exit 5: 1 task' in report.stdout and str(status.name) in report.stdout
    html = (tmp_path / 'r.html').read_text()
    assert html.startswith('<!DOCTYPE html>') and '<svg' in html and html.count('fill="#c8372d"') == 1
    missing = procs.run(disbatch_cmd('report', 'nosuch_status.txt'), cwd=tmp_path, timeout=30)
    assert missing.returncode == 1 and 'nosuch_status.txt' in missing.stderr
