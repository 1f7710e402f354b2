"""The pure text of mail messages and the `--mail-server` value."""

from __future__ import annotations

from dataclasses import replace

import pytest

from disbatch.contract.snapshot import Snapshot
from disbatch.errors import UsageError
from disbatch.notify.message import Batch, body, parse_server, subject
from disbatch.results.record import RecordKind
from disbatch.results.status_line import format_line

from .support import record


def test_subject_and_body_of_a_batch() -> None:
    batch = Batch(
        completed=4,
        failed=1,
        records=(record(0),),
        left_out=0,
        skipped=0,
        progress=Snapshot.from_json({'running': 2, 'pending': 3, 'total': None}),
        dropped=2,
    )
    assert subject('R', batch) == 'R has completed 4 tasks (1 failed)'
    lines = body('R', batch, 'S', unsent=1).splitlines()
    assert lines[0] == 'R has completed 4 tasks (1 failed).'
    assert 'Running: 2   Pending: 3   Total: not known yet' in lines
    assert 'Note: 3 earlier message(s) could not be sent (mail server too slow or unreachable).' in lines
    assert lines[-1] == format_line(record(0))


@pytest.mark.parametrize(
    ('text', 'expected'),
    [
        ('localhost', ('localhost', 25)),
        ('mail.example.org:2525', ('mail.example.org', 2525)),
        ('127.0.0.1:1025', ('127.0.0.1', 1025)),
        ('[::1]:26', ('::1', 26)),
        ('[::1]', ('::1', 25)),
        ('::1', ('::1', 25)),
    ],
)
def test_parse_server(text: str, expected: tuple[str, int]) -> None:
    assert parse_server(text) == expected


@pytest.mark.parametrize('text', ['', ':25', 'host:', 'host:x', 'host:0', 'host:70000', '[::1', '[::1]x', 'a b:25'])
def test_parse_server_rejects(text: str) -> None:
    with pytest.raises(UsageError, match='--mail-server'):
        parse_server(text)


def test_the_final_body_gives_the_driver_counts() -> None:
    batch = Batch(
        completed=3,
        failed=0,
        records=(record(5, kind=RecordKind.BARRIER),),
        left_out=2,
        skipped=4,
        progress=Snapshot.from_json({'finished': 3, 'failed': 0, 'skipped': 4, 'barriers': 1, 'lost': 0, 'total': 7}),
        dropped=0,
        exit_code=0,
    )
    assert subject('R', batch) == 'R has completed 3 tasks (0 failed): the run is over, exit code 0'
    lines = body('R', batch, 'S').splitlines()
    assert lines[0] == 'The run R is over: exit code 0.'
    assert 'Skipped (done by an earlier run): 4   Barriers: 1   Lost attempts: 0   Total: 7' in lines
    assert 'Status lines since the last message (3):' in lines
    assert format_line(record(5, kind=RecordKind.BARRIER)) in lines
    assert '... 2 more line(s) left out: see the status file.' in lines
    assert not any(line.startswith('Note:') for line in lines)


def test_a_line_that_cannot_be_formatted_still_shows_the_task() -> None:
    broken = replace(record(1, return_code=3), host='a\tb')  # a tab would break the line
    batch = Batch(completed=1, failed=1, records=(broken,), left_out=0, skipped=0, progress=Snapshot(), dropped=0)
    lines = body('R', batch, 'S').splitlines()
    assert lines[-1] == 'task 1 (line 2): return code 3'
    assert 'Running: ?   Pending: ?   Total: not known yet' in lines
