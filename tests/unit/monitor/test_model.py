"""The pure monitor model: snapshot → header lines, engine rows, table text, selection and scrolling, commands."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from disbatch.contract.snapshot import Snapshot
from disbatch.monitor import model
from disbatch.monitor.model import EngineRow, Selection


def engine(rank: int, **changes: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        'rank': rank,
        'context': 'SSH0',
        'host': f'node{rank}',
        'pid': 1000 + rank,
        'last_heard': 0.4,
        'slots': 2,
        'running': 1,
        'free': 1,
        'given': 5,
        'finished': 4,
        'failed': 0,
        'retiring': False,
    }
    entry.update(changes)
    return entry


def snapshot_json(**changes: Any) -> dict[str, Any]:
    view: dict[str, Any] = {
        'run': 'Tasks_disBatch_250101120000_042',
        'status': 'running',
        'more': True,
        'started': 1000.0,
        'now': 1065.5,
        'finished': 8,
        'failed': 1,
        'skipped': 0,
        'barriers': 2,
        'lost': 0,
        'running': 4,
        'pending': 3,
        'total': None,
        'slots': 4,
        'engines': [engine(1), engine(0)],
        'recent': [],
        'failures': [],
    }
    view.update(changes)
    return view


def snapshot(**changes: Any) -> Snapshot:
    return Snapshot.from_json(snapshot_json(**changes))


def row(rank: int, **changes: Any) -> EngineRow:
    return model.rows(Snapshot.from_json({'engines': [engine(rank, **changes)]}))[0]


# ---------------------------------------------------------------- header


def test_header_shows_label_status_and_counts() -> None:
    lines = model.header(snapshot())
    assert lines == [
        'Run label: Tasks_disBatch_250101120000_042   Status: Running.',
        'Slots 4   Tasks: Finished 8  Failed 1  Barriers 2  Running 4  Waiting 3',
        'Engines 2   Elapsed 00:01:05',
    ]


def test_header_shows_total_skipped_lost_and_retiring_when_known() -> None:
    view = snapshot(total=20, skipped=3, lost=1, engines=[engine(0, retiring=True), engine(1)])
    lines = model.header(view, staleness=60)
    assert lines[1:3] == [  # 20 - 8 - 3 - 4: unread ones too; within 80 columns
        'Slots 4   Tasks: Finished 8  Failed 1  Barriers 2  Running 4  Waiting 5',
        'Total 20  Skipped 3  Lost 1',
    ]
    assert lines[3] == 'Engines 2 (1 retiring)   Elapsed 00:02:05'


def test_header_shows_the_time_left_in_the_allocation_and_the_drain() -> None:
    walltime = {'end': 0.0, 'left': 83.0, 'state': 'draining', 'follow_up': None}
    assert (
        model.header(snapshot(walltime=walltime))[2]
        == 'Engines 2   Elapsed 00:01:05   Walltime left 00:01:23 (draining)'
    )
    assert model.header(snapshot(walltime={**walltime, 'state': 'running'}))[2].endswith('Walltime left 00:01:23')


@pytest.mark.parametrize(
    ('status', 'more', 'text'),
    [
        ('running', True, 'Running.'),
        ('draining', False, 'Finishing the last tasks.'),
        ('stopping', False, 'Stopping.'),
        ('finished', False, 'Finished.'),
    ],
)
def test_status_text(status: str, more: bool, text: str) -> None:
    assert model.status_text(snapshot(status=status, more=more)) == text
    assert model.has_ended(snapshot(status=status)) == (status == 'finished')


def test_header_of_a_sparse_snapshot_does_not_fail() -> None:
    assert model.header(Snapshot.from_json({})) == [
        'Run label: ?   Status: Running.',
        'Slots 0   Tasks: Finished 0  Failed 0  Barriers 0',
        'Engines 0',
    ]


# ---------------------------------------------------------------- rows


def test_rows_are_sorted_by_rank_and_carry_every_field() -> None:
    rows = model.rows(snapshot())
    assert [each.rank for each in rows] == [0, 1]
    assert rows[0] == EngineRow(0, 'SSH0', 'node0', 0.4, 2, 1, 1, 5, 4, 0, False)


def test_rows_age_by_staleness_and_skip_junk() -> None:
    view = snapshot(engines=[engine(0, last_heard=None), engine(1, last_heard=1.5), 'junk', {'rank': 'x'}])
    rows = model.rows(view, staleness=2.0)
    assert [(each.rank, each.last_heard) for each in rows] == [(0, None), (1, 3.5)]


def test_rows_of_a_snapshot_without_engines() -> None:
    assert model.rows(Snapshot.from_json({})) == []
    assert model.rows(Snapshot.from_json({'engines': None})) == []


# ---------------------------------------------------------------- parse and the end


def test_parse_accepts_json_objects_only() -> None:
    assert model.parse(json.dumps(snapshot_json()).encode()) == snapshot()
    assert model.parse(b'<Starting...>') is None
    assert model.parse(b'[1, 2]') is None
    assert model.parse(b'\xff') is None


def test_ended_message_gives_counts_only_from_the_final_snapshot() -> None:
    final = snapshot(status='finished', finished=60, failed=2)
    assert (
        model.ended_message(final, 'x')
        == 'The run Tasks_disBatch_250101120000_042 has ended: 60 tasks finished, 2 failed.'
    )
    assert model.ended_message(snapshot(), 'x') == 'The run x has ended.'
    assert model.ended_message(None, 'x') == 'The run x has ended.'


# ---------------------------------------------------------------- table text


def test_table_at_the_minimum_width() -> None:
    widths = model.column_widths([row(0)], model.MINIMUM_WIDTH)
    header = model.table_header(widths)
    assert header == 'Rank Context Host      Heard Free Assigned Finished Failed State'
    line = model.format_row(row(0), widths)
    assert line == '   0 SSH0    node0      0.4s    1        5        4      0 active'
    assert len(header) <= model.MINIMUM_WIDTH


def test_table_grows_context_and_host_then_truncates() -> None:
    rows = [row(0, context='a-rather-long-context-label', host='h' * 60, retiring=True)]
    widths = model.column_widths(rows, 200)
    assert widths[model.CONTEXT_COLUMN] == model.CONTEXT_MOST
    assert widths[model.HOST_COLUMN] == model.HOST_MOST
    line = model.format_row(rows[0], widths)
    assert 'a-rather-long-c~' in line
    assert 'h' * (model.HOST_MOST - 1) + '~' in line
    assert line.endswith('retiring')


@given(st.integers(min_value=model.MINIMUM_WIDTH, max_value=300), st.text(max_size=80), st.text(max_size=80))
def test_table_lines_fit_the_width(width: int, context: str, host: str) -> None:
    rows = [row(0, context=context, host=host, given=10**9)]
    widths = model.column_widths(rows, width)
    assert len(model.table_header(widths)) <= width
    line = model.format_row(rows[0], widths)
    assert len(line) <= width + len(str(10**9)) - len('Assigned')  # only the numbers may widen the table
    assert str(10**9) in line


@pytest.mark.parametrize(
    ('seconds', 'text'), [(None, '-'), (0.04, '0.0s'), (9.94, '9.9s'), (12.7, '12s'), (185, '3m05s'), (7630, '2h07m')]
)
def test_age(seconds: float | None, text: str) -> None:
    assert model.age(seconds) == text


def test_clock() -> None:
    assert model.clock(3725.9) == '01:02:05'
    assert model.clock(-3) == '00:00:00'


# ---------------------------------------------------------------- layout


def test_layout_and_the_smallest_terminal() -> None:
    assert model.layout(40, 120) == model.Layout(table_top=4, table_rows=34, footer=39)
    place = model.layout(model.MINIMUM_HEIGHT, model.MINIMUM_WIDTH)
    assert place is not None and place.table_rows == 1
    assert model.layout(model.MINIMUM_HEIGHT - 1, 120) is None
    assert model.layout(40, model.MINIMUM_WIDTH - 1) is None
    assert 'too small (20x5)' in model.too_small(5, 20)


# ---------------------------------------------------------------- selection and scrolling


def ranks(*numbers: int) -> list[EngineRow]:
    return [row(number) for number in numbers]


def test_selection_starts_at_the_first_row_and_moves_within_the_table() -> None:
    rows = ranks(0, 1, 2)
    selection = Selection()
    assert selection.selected(rows) == rows[0]
    selection = selection.move(rows, 1, visible=10)
    assert selection.rank == 1
    assert selection.move(rows, 5, visible=10).rank == 2
    assert selection.move(rows, -5, visible=10).rank == 0
    assert Selection().selected([]) is None
    assert Selection(3).move([], 1, visible=5) == Selection(None, 0)


def test_selection_follows_its_engine_and_falls_on_the_next_one_when_it_leaves() -> None:
    selection = Selection(rank=2)
    assert selection.index(ranks(0, 1, 2, 3)) == 2
    assert selection.index(ranks(0, 2, 3)) == 1  # rows above it left
    assert selection.selected(ranks(0, 1, 3)) == row(3)  # it left: the next one
    assert selection.selected(ranks(0, 1)) == row(1)  # it was the last: the new last


def test_scrolling_keeps_the_selection_on_screen() -> None:
    rows = ranks(*range(10))
    selection = Selection().move(rows, 6, visible=3)
    assert (selection.rank, selection.top) == (6, 4)
    selection = selection.move(rows, -1, visible=3)
    assert (selection.rank, selection.top) == (5, 4)
    selection = selection.move(rows, -3, visible=3)
    assert (selection.rank, selection.top) == (2, 2)
    # A taller terminal shows more: the top comes back so no space is wasted.
    assert Selection(9, 7).scrolled(rows, visible=5) == Selection(9, 5)
    assert Selection(9, 7).scrolled(rows, visible=20) == Selection(9, 0)


@given(st.integers(0, 30), st.integers(-40, 40), st.integers(1, 12), st.integers(0, 40))
def test_selected_row_is_always_visible(count: int, step: int, visible: int, top: int) -> None:
    rows = ranks(*range(count))
    selection = Selection(rank=count // 2, top=top).move(rows, step, visible)
    position = selection.index(rows)
    if position is None:
        assert count == 0
        return
    assert selection.top <= position < selection.top + visible
    assert 0 <= selection.top <= max(0, count - visible)


def test_scroll_note() -> None:
    assert model.scroll_note(0, 10, 5) == ''
    assert model.scroll_note(10, 10, 25) == 'rows 11-20 of 25'
    assert model.scroll_note(20, 10, 25) == 'rows 21-25 of 25'


# ---------------------------------------------------------------- commands and questions


def test_questions_name_what_stops() -> None:
    rows = [row(0), row(1), row(2, context='SSH1')]
    assert model.engine_question(rows[1])[0] == 'Stop engine 1 (node1, context SSH0)?'
    assert model.context_question(rows[0], rows)[0] == 'Stop context SSH0 (2 engines)?'
    assert model.context_question(rows[2], rows)[0] == 'Stop context SSH1 (1 engine)?'


def test_help_names_every_key() -> None:
    text = '\n'.join(model.HELP)
    for key in ('Up / Down', 'u / d', 'k / j', 'E ', 'C ', 'h or ?', 'q '):
        assert key in text


def test_help_wraps_under_its_key_column() -> None:
    assert model.help_lines(200) == list(model.HELP)
    narrow = model.help_lines(50)
    assert all(len(line) <= 50 for line in narrow)
    position = narrow.index('PgUp / PgDn, Home / End   move a page, or to the')
    assert narrow[position + 1] == ' ' * model.HELP_KEY_WIDTH + 'first or last engine'


# ---------------------------------------------------------------- usage (peak memory, CPU)


def test_header_shows_the_biggest_task_once_measured() -> None:
    usage = {'user': 10.0, 'system': 2.5, 'biggest': [{'task': 41, 'line': 42, 'max_rss': 2_040_109_466}]}
    lines = model.header(snapshot(usage=usage), width=100)
    assert lines[2] == 'Engines 2   Elapsed 00:01:05   Peak memory 1.9 GiB task 41 (line 42)   CPU 12.5 s'
    assert model.header(snapshot(usage=usage))[2:] == [
        'Engines 2   Elapsed 00:01:05   Peak memory 1.9 GiB task 41 (line 42)',
        'CPU 12.5 s',
    ]
    assert model.header(snapshot(usage={}))[2] == 'Engines 2   Elapsed 00:01:05'


def test_usage_columns_only_when_the_terminal_is_wide_enough() -> None:
    rows = model.rows(Snapshot.from_json({'engines': [engine(0, max_rss=213_778_432, cpu=12.3)]}))
    assert (rows[0].max_rss, rows[0].cpu) == (213_778_432, 12.3)
    narrow = model.column_widths(rows, model.MINIMUM_WIDTH)
    assert 'Mem' not in model.table_header(narrow).split()
    wide = model.column_widths(rows, model.USAGE_WIDTH)
    assert model.table_header(wide).split()[-3:] == ['State', 'Mem', 'CPU']
    line = model.format_row(rows[0], wide)
    assert len(line) <= model.USAGE_WIDTH and line.split()[-3:] == ['active', '204M', '12s']
    unmeasured = model.rows(Snapshot.from_json({'engines': [engine(0)]}))
    assert model.format_row(unmeasured[0], wide).split()[-3:] == ['active', '-', '-']
