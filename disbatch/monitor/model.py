"""What the `--mon` monitor shows, computed from the run's snapshot. Pure: no curses, no sockets, no clock.

The snapshot is the JSON the run publishes under `DisBatch status`, read back as a `Snapshot` (`contract/snapshot.py`:
unknown keys ignored, a missing or mistyped one read as its default or as unknown). Time arrives as `staleness`: the
seconds the screen has held this snapshot, added to the ages it carries (the run republishes only on a change).

Here: the header lines, the engine rows and their table layout, the selection and scrolling of the table, the
commands the monitor puts under `DisBatch control`, the help text, and the smallest usable terminal. The words (the
status, the task counts, an engine's state and why, the per-context summary, the order of the engines: troubled
first, then the busiest) are `run_vocabulary`'s, shared with the web page, `disbatch report` and the summary.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, replace

from disbatch.contract.snapshot import DrainState, EngineView, Snapshot
from disbatch.results.usage import format_bytes, short_bytes
from disbatch.run_vocabulary import (
    context_summaries,
    counts_text,
    engine_state,
    is_gone,
    status_word,
    task_counts,
    watch_order,
    wrap,
)

HELP = (
    'disbatch monitor: the engines of a live run, refreshed twice a second.',
    '',
    'Engines in trouble (lost, silent, with failures) come first, then the busiest; engines that left stay, greyed.',
    '',
    'Up / Down, u / d, k / j   select an engine',
    'PgUp / PgDn, Home / End   move a page, or to the first or last engine',
    'E                         stop the selected engine',
    'C                         stop every engine of its context',
    'h or ?                    this help',
    'q                         quit the monitor (the run goes on)',
    '',
    'Stopping is soft: an engine told to stop takes no more tasks, finishes the ones it runs, then leaves.',
    'Heard: seconds since the driver last heard from the engine. The header counts tasks; the table counts attempts',
    '(Assigned, Finished, Failed): a task run again counts on each engine that ran it.',
    'Waiting: tasks not started yet, those still unread in the task file included (when their number is known).',
    'Mem: the largest peak memory of a task on its host; CPU: user + system seconds of its tasks (wide terminals).',
)
HELP_FOOTER = 'Press any key to go back.'
HELP_KEY_WIDTH = 26  # where the explanations of the keys start
FOOTER = 'Up/Down select  E stop engine  C stop context  h help  q quit'
SHORT_FOOTER = 'E stop  C stop context  h help  q quit'  # when the scroll note leaves no room for FOOTER
HEADER_LINES = 3  # at least: run and status; task counts; engines and elapsed time (then one line per context)
CONTEXT_LINES = 3  # contexts summed up in the header, the biggest first
SUMMED_UP_FROM = 8  # engines of one context are summed up in the header when there are more than this
GAP_LINES = 1  # blank line between the header and the table
FOOTER_LINES = 1
MINIMUM_TABLE_ROWS = 1


@dataclass(frozen=True, slots=True)
class EngineRow:
    rank: int
    context: str
    host: str
    last_heard: float | None  # seconds ago, None when not yet known
    slots: int
    free: int
    running: int
    given: int  # shown as "Assigned", the reference's name
    finished: int
    failed: int
    retiring: bool
    max_rss: int | None = None  # bytes: the biggest task peak on its host; None until a task there is measured
    cpu: float | None = None  # user + system seconds of the tasks on its host
    state: str = 'active'  # run_vocabulary.engine_state: active, retiring, silent, lost, left
    why: str = ''
    gone: bool = False  # it left the run: shown greyed


@dataclass(frozen=True, slots=True)
class Column:
    title: str
    width: int  # the least width; the flexible columns may grow
    right: bool  # right-aligned (numbers)
    flexible: bool = False


COLUMNS = (
    Column('Rank', 4, right=True),
    Column('Context', 7, right=False, flexible=True),
    Column('Host', 8, right=False, flexible=True),
    Column('Heard', 6, right=True),
    Column('Free', 4, right=True),
    Column('Assigned', 8, right=True),
    Column('Finished', 8, right=True),
    Column('Failed', 6, right=True),
    Column('State', 8, right=False),
)
# Shown after State when the terminal is wide enough for them as well (they come from the snapshot's usage).
USAGE_COLUMNS = (Column('Mem', 6, right=True), Column('CPU', 6, right=True))
CONTEXT_COLUMN, HOST_COLUMN = 1, 2
CONTEXT_MOST = 16  # the context column grows up to this, the host column takes the rest
HOST_MOST = 40
MINIMUM_WIDTH = sum(column.width for column in COLUMNS) + len(COLUMNS) - 1
USAGE_WIDTH = MINIMUM_WIDTH + sum(column.width + 1 for column in USAGE_COLUMNS)  # the least width that shows them
MINIMUM_HEIGHT = HEADER_LINES + GAP_LINES + 1 + MINIMUM_TABLE_ROWS + FOOTER_LINES


# ---------------------------------------------------------------- the snapshot


def parse(value: bytes) -> Snapshot | None:
    """The snapshot in a `DisBatch status` value, or None when it is not one (e.g. the reference's `<Starting...>`)."""
    try:
        view = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return None
    return Snapshot.from_json(view) if isinstance(view, dict) else None


def has_ended(view: Snapshot) -> bool:
    return view.status == 'finished'


def label(view: Snapshot) -> str:
    return view.run or '?'


def status_text(view: Snapshot) -> str:
    return status_word(view) + '.'


def header(view: Snapshot, staleness: float = 0.0, width: int = 80) -> list[str]:
    """The lines above the engine table, none wider than `width`: the run, the task counts (on more lines when
    they do not fit), the engines, and a line for each of the biggest contexts."""
    lines = [f'Run label: {label(view)}   Status: {status_text(view)}']
    lines.extend(wrap(counts_text(task_counts(view)), width, first=f'Slots {view.slots}   Tasks:'))
    live = [engine for engine in view.engines if not is_gone(engine)]
    retiring = sum(engine.retiring for engine in live)
    people = [f'Engines {len(live)}' + (f' ({retiring} retiring)' if retiring else '')]
    if len(live) < len(view.engines):
        people[0] += f', {len(view.engines) - len(live)} gone'
    if view.started is not None and view.now is not None:
        people.append(f'Elapsed {clock(view.now - view.started + staleness)}')
    walltime = view.walltime
    if walltime is not None and walltime.left is not None:
        state = f' ({walltime.state.value})' if walltime.state in (DrainState.DRAINING, DrainState.STOPPING) else ''
        people.append(f'Walltime left {clock(walltime.left)}{state}')
    people.extend(_usage_items(view))
    lines.extend(wrap(people, width, separator='   '))
    summaries = context_summaries(view)
    if len(summaries) > 1 or len(view.engines) > SUMMED_UP_FROM:
        shown = summaries[:CONTEXT_LINES] if len(summaries) <= CONTEXT_LINES else summaries[: CONTEXT_LINES - 1]
        lines.extend(summary.text(width) for summary in shown)
        if len(shown) < len(summaries):
            lines.append(f'... and {len(summaries) - len(shown)} more contexts')
    return lines


def _usage_items(view: Snapshot) -> list[str]:
    """`Peak memory 203.9 MiB task 0 (line 1)`, `CPU 12.3 s`, once a task has been measured."""
    if view.usage is None or not view.usage.biggest:
        return []
    top = view.usage.biggest[0]
    size = 'unknown' if top.max_rss is None else format_bytes(top.max_rss)
    return [
        f'Peak memory {size} task {top.task} (line {top.line})',
        f'CPU {view.usage.user + view.usage.system:.1f} s',
    ]


def rows(view: Snapshot, staleness: float = 0.0) -> list[EngineRow]:
    """One row per engine of the snapshot, in `run_vocabulary.watch_order`: troubled first, then the busiest."""
    staleness = max(0.0, staleness)
    return [_row(engine) for engine in watch_order(_aged(engine, staleness) for engine in view.engines)]


def _aged(engine: EngineView, staleness: float) -> EngineView:
    if engine.last_heard is None or not staleness:
        return engine
    return replace(engine, last_heard=engine.last_heard + staleness)


def _row(engine: EngineView) -> EngineRow:
    state, why = engine_state(engine)
    return EngineRow(
        rank=engine.rank,
        context=engine.context,
        host=engine.host,
        last_heard=engine.last_heard,
        slots=engine.slots,
        free=engine.free,
        running=engine.running,
        given=engine.given,
        finished=engine.finished,
        failed=engine.failed,
        retiring=engine.retiring,
        max_rss=engine.max_rss,
        cpu=engine.cpu,
        state=state,
        why=why,
        gone=is_gone(engine),
    )


def ended_message(view: Snapshot | None, run: str) -> str:
    """The line printed when the run is over; with the counts when its final snapshot was seen."""
    if view is None or not has_ended(view):
        return f'The run {run} has ended.'
    return f'The run {label(view)} has ended: {view.finished} tasks finished, {view.failed} failed.'


# ---------------------------------------------------------------- the table


def column_widths(rows: Sequence[EngineRow], width: int) -> list[int]:
    """The width of each column in a table `width` characters wide.

    Fixed columns widen to their longest value (numbers are never cut); the context and then the host column take
    what is left, up to their longest value; a table wider than `width` happens only when the numbers need it.
    The usage columns (Mem, CPU) are there once a task has been measured and they fit as well.
    """
    table = [_cells(row, len(COLUMNS) + len(USAGE_COLUMNS)) for row in rows]
    widths = _fixed_widths(COLUMNS, table)
    if any(row.max_rss is not None or row.cpu is not None for row in rows):
        wide = _fixed_widths((*COLUMNS, *USAGE_COLUMNS), table)
        if sum(wide) + len(wide) - 1 <= width:
            widths = wide
    spare = max(0, width - sum(widths) - (len(widths) - 1))
    for index, most in ((CONTEXT_COLUMN, CONTEXT_MOST), (HOST_COLUMN, HOST_MOST)):
        longest = max((len(cells[index]) for cells in table), default=0)
        grow = min(spare, max(0, min(longest, most) - widths[index]))
        widths[index] += grow
        spare -= grow
    return widths


def _fixed_widths(columns: Sequence[Column], table: Sequence[Sequence[str]]) -> list[int]:
    return [
        column.width if column.flexible else max([column.width, *(len(cells[index]) for cells in table)])
        for index, column in enumerate(columns)
    ]


def _columns(widths: Sequence[int]) -> tuple[Column, ...]:
    """The columns `column_widths` chose, told by how many widths it gave."""
    return (*COLUMNS, *USAGE_COLUMNS) if len(widths) > len(COLUMNS) else COLUMNS


def table_header(widths: Sequence[int]) -> str:
    return _join([column.title for column in _columns(widths)], widths)


def format_row(row: EngineRow, widths: Sequence[int]) -> str:
    return _join(_cells(row, len(widths)), widths)


def _cells(row: EngineRow, count: int = len(COLUMNS)) -> list[str]:
    cells = _base_cells(row)
    if count > len(COLUMNS):
        cpu = '-' if row.cpu is None else f'{row.cpu:.0f}s' if row.cpu >= 10 else f'{row.cpu:.1f}s'
        cells += ['-' if row.max_rss is None else short_bytes(row.max_rss), cpu]
    return cells


def _base_cells(row: EngineRow) -> list[str]:
    return [
        str(row.rank),
        row.context,
        row.host,
        age(row.last_heard),
        str(row.free),
        str(row.given),
        str(row.finished),
        str(row.failed),
        row.state,
    ]


def age(seconds: float | None) -> str:
    """Seconds ago, short: `0.4s`, `12s`, `3m05s`, `2h07m`; `-` when unknown."""
    if seconds is None:
        return '-'
    if seconds < 10:
        return f'{seconds:.1f}s'
    whole = int(seconds)
    if whole < 60:
        return f'{whole}s'
    if whole < 3600:
        return f'{whole // 60}m{whole % 60:02d}s'
    return f'{whole // 3600}h{whole % 3600 // 60:02d}m'


def clock(seconds: float) -> str:
    whole = max(0, int(seconds))
    return f'{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}'


def _join(cells: Sequence[str], widths: Sequence[int]) -> str:
    parts = []
    for cell, width, column in zip(cells, widths, _columns(widths), strict=True):
        text = cell if len(cell) <= width else cell[: max(0, width - 1)] + '~'
        parts.append(text.rjust(width) if column.right else text.ljust(width))
    return ' '.join(parts).rstrip()


# ---------------------------------------------------------------- layout, selection, scrolling


@dataclass(frozen=True, slots=True)
class Layout:
    table_top: int  # screen line of the table's title row
    table_rows: int  # engine rows that fit under it
    footer: int  # screen line of the key hints


def layout(height: int, width: int, header_lines: int = HEADER_LINES) -> Layout | None:
    """Where things go on a `height` x `width` terminal under a header of `header_lines`, or None when it is too
    small to be useful (a header too tall for the terminal loses its last lines first: see `screen`)."""
    if height < MINIMUM_HEIGHT or width < MINIMUM_WIDTH:
        return None
    header_lines = max(HEADER_LINES, min(header_lines, height - MINIMUM_HEIGHT + HEADER_LINES))
    table_top = header_lines + GAP_LINES
    return Layout(table_top=table_top, table_rows=height - table_top - 1 - FOOTER_LINES, footer=height - 1)


def help_lines(width: int) -> list[str]:
    """The help text wrapped to `width` columns; the explanation of a key stays in its column."""
    lines = []
    for line in HELP:
        indent = ' ' * HELP_KEY_WIDTH if line[HELP_KEY_WIDTH - 3 : HELP_KEY_WIDTH] == '   ' else ''
        lines.extend(textwrap.wrap(line, max(HELP_KEY_WIDTH + 10, width), subsequent_indent=indent) or [''])
    return lines


def too_small(height: int, width: int) -> str:
    return f'Terminal too small ({width}x{height}): the monitor needs {MINIMUM_WIDTH}x{MINIMUM_HEIGHT}.'


@dataclass(frozen=True, slots=True)
class Selection:
    """The selected engine (by rank, so it stays put when rows come and go) and the first row on screen."""

    rank: int | None = None
    top: int = 0

    def index(self, rows: Sequence[EngineRow]) -> int | None:
        """The selected row's index; when the selected engine left, the row that took its place."""
        if not rows:
            return None
        for position, row in enumerate(rows):
            if row.rank == self.rank:
                return position
        if self.rank is None:
            return 0
        later = [position for position, row in enumerate(rows) if row.rank > self.rank]
        return later[0] if later else len(rows) - 1

    def selected(self, rows: Sequence[EngineRow]) -> EngineRow | None:
        position = self.index(rows)
        return None if position is None else rows[position]

    def move(self, rows: Sequence[EngineRow], step: int, visible: int) -> Selection:
        """Move by `step` rows (clamped to the table), then scroll so the selection is on screen."""
        position = self.index(rows)
        if position is None:
            return Selection(None, 0)
        position = min(len(rows) - 1, max(0, position + step))
        return Selection(rows[position].rank, self.top).scrolled(rows, visible)

    def scrolled(self, rows: Sequence[EngineRow], visible: int) -> Selection:
        """The same selection, with `top` chosen so it is among the `visible` rows shown."""
        position = self.index(rows)
        if position is None or visible <= 0:
            return Selection(self.rank, 0)
        top = min(self.top, position)
        top = max(top, position - visible + 1)
        top = max(0, min(top, len(rows) - visible))
        return Selection(rows[position].rank, top)


def row_note(row: EngineRow | None) -> str:
    """What the footer says of the selected engine when it is not plainly working: `engine 3 lost: silent, ...`."""
    if row is None or not row.why:
        return ''
    return f'engine {row.rank} {row.state}: {row.why}'


def footer_line(note: str, scroll: str, width: int) -> str:
    """The bottom line, at most `width` characters: `note` (the key hints when empty) on the left, the scroll note
    on the right; the key hints take their short form, and a note is cut, before the scroll note is."""
    room = width - (len(scroll) + 2 if scroll else 0)
    if not note:
        note = FOOTER if len(FOOTER) <= room else SHORT_FOOTER
    if len(note) > room:
        note = note[: max(0, room - 1)] + '~'
    if not scroll:
        return note[:width]
    return (note + ' ' * max(2, width - len(note) - len(scroll)) + scroll)[:width]


def scroll_note(top: int, visible: int, count: int) -> str:
    """`rows 11-20 of 40` when the table does not fit, else empty."""
    if count <= visible:
        return ''
    return f'rows {top + 1}-{min(count, top + visible)} of {count}'


# ---------------------------------------------------------------- commands


def engine_question(row: EngineRow) -> tuple[str, str]:
    """Title and subtitle of the menu that confirms stopping one engine."""
    return (
        f'Stop engine {row.rank} ({row.host}, context {row.context})?',
        'It takes no more tasks, finishes the ones it runs, then leaves.',
    )


def context_question(row: EngineRow, rows: Sequence[EngineRow]) -> tuple[str, str]:
    """Title and subtitle of the menu that confirms stopping a whole context."""
    count = sum(other.context == row.context for other in rows)
    return (
        f'Stop context {row.context} ({count} engine{"s" if count != 1 else ""})?',
        'Its engines take no more tasks, finish the ones they run, then leave.',
    )
