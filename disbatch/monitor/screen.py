"""The monitor's terminal: the only curses code of disbatch. Draws what `model` computes, reads keys, asks Yes/No.

`watch(window, source)` runs inside `curses.wrapper`: it polls the run every `POLL_SECONDS`, redraws, and returns
when the user quits or the run ends. Confirmation menus are curses-menu `CursesMenu` selection menus drawn on the
monitor's own screen.
"""

from __future__ import annotations

import contextlib
import curses
import enum
import textwrap
import time
from dataclasses import dataclass, field

from cursesmenu import CursesMenu  # type: ignore[import-untyped]

from disbatch.contract.control import RetireContext, RetireEngine, format_command
from disbatch.contract.snapshot import Snapshot
from disbatch.monitor import model
from disbatch.monitor.live_run import RunSource

POLL_SECONDS = 0.5
MESSAGE_SECONDS = 6.0
UP_KEYS = frozenset({curses.KEY_UP, ord('u'), ord('k')})
DOWN_KEYS = frozenset({curses.KEY_DOWN, ord('d'), ord('j')})
HELP_KEYS = frozenset({ord('h'), ord('?'), curses.KEY_F1})
QUIT_KEYS = frozenset({ord('q'), ord('Q')})


class WatchEnd(enum.Enum):
    QUIT = 'quit'
    ENDED = 'ended'


@dataclass(frozen=True, slots=True)
class WatchResult:
    end: WatchEnd
    view: Snapshot | None  # the last snapshot seen


@dataclass(slots=True)
class _State:
    view: Snapshot | None = None
    received: float = 0.0  # time.monotonic() when this snapshot was first seen
    selection: model.Selection = field(default_factory=model.Selection)
    visible: int = 1  # engine rows on screen
    help: bool = False
    message: str = ''
    message_until: float = 0.0


def watch(window: curses.window, source: RunSource) -> WatchResult:
    """Show the run until the user quits (`q`) or it ends."""
    _set_up(window)
    state = _State(received=time.monotonic())
    next_poll = 0.0
    while True:
        now = time.monotonic()
        if now >= next_poll:
            next_poll = now + POLL_SECONDS
            poll = source.poll()
            if poll.view is not None:
                if state.view is None or poll.view.now != state.view.now:
                    state.received = now
                state.view = poll.view
            if poll.ended:
                return WatchResult(WatchEnd.ENDED, state.view)
        _draw(window, state, now)
        window.timeout(max(10, int((next_poll - time.monotonic()) * 1000)))
        key = window.getch()
        if key == -1:
            continue
        if key == curses.KEY_RESIZE:  # getmaxyx has the new size already: the next draw fits it
            window.clear()
        elif state.help:
            state.help = False
        elif key in QUIT_KEYS:
            return WatchResult(WatchEnd.QUIT, state.view)
        else:
            _handle(window, source, state, key)


def _set_up(window: curses.window) -> None:
    with contextlib.suppress(curses.error):  # a terminal without an invisible cursor
        curses.curs_set(0)
    with contextlib.suppress(curses.error):  # keep the terminal's own colours where it has them
        curses.use_default_colors()
    window.keypad(True)


def _handle(window: curses.window, source: RunSource, state: _State, key: int) -> None:
    rows = model.rows(state.view or Snapshot())
    page = max(1, state.visible - 1)
    steps = {curses.KEY_PPAGE: -page, curses.KEY_NPAGE: page, curses.KEY_HOME: -len(rows), curses.KEY_END: len(rows)}
    if key in UP_KEYS:
        state.selection = state.selection.move(rows, -1, state.visible)
    elif key in DOWN_KEYS:
        state.selection = state.selection.move(rows, 1, state.visible)
    elif key in steps:
        state.selection = state.selection.move(rows, steps[key], state.visible)
    elif key in HELP_KEYS:
        state.help = True
    elif key in (ord('E'), ord('C')):
        _stop(window, source, state, rows, whole_context=key == ord('C'))


def _stop(
    window: curses.window, source: RunSource, state: _State, rows: list[model.EngineRow], whole_context: bool
) -> None:
    row = state.selection.selected(rows)
    if row is None:
        _say(state, 'No engine to stop.')
        return
    if row.gone:
        _say(state, f'Engine {row.rank} has left the run.')
        return
    if row.retiring:
        _say(state, f'Engine {row.rank} is already stopping.')
        return
    title, subtitle = model.context_question(row, rows) if whole_context else model.engine_question(row)
    if not confirm(window, title, subtitle):
        _say(state, 'Nothing stopped.')
        return
    if whole_context:
        command, done = format_command(RetireContext(row.context)), f'Asked the engines of {row.context} to stop.'
    else:
        command, done = format_command(RetireEngine(row.rank)), f'Asked engine {row.rank} to stop.'
    _say(state, done if source.put_command(command) else 'Could not reach the run.')


def _say(state: _State, message: str) -> None:
    state.message = message
    state.message_until = time.monotonic() + MESSAGE_SECONDS


# ---------------------------------------------------------------- drawing


def _draw(window: curses.window, state: _State, now: float) -> None:
    window.erase()
    height, width = window.getmaxyx()
    header = [] if state.view is None else model.header(state.view, now - state.received, width - 1)
    place = model.layout(height, width, len(header))
    if place is None:
        for line_number, line in enumerate(textwrap.wrap(model.too_small(height, width), max(1, width - 1))):
            _put(window, line_number, 0, line)
    elif state.help:
        for line_number, line in enumerate(model.help_lines(width - 2)[: place.footer]):
            _put(window, line_number, 1, line)
        _put(window, place.footer, 0, model.HELP_FOOTER, curses.A_BOLD)
    elif state.view is None:
        _put(window, 0, 0, 'Waiting for the run to publish its state ...', curses.A_BOLD)
        _put(window, place.footer, 0, 'q quit')
    else:
        _draw_run(window, state, place, width, now, header)
    window.noutrefresh()
    curses.doupdate()


def _draw_run(
    window: curses.window, state: _State, place: model.Layout, width: int, now: float, header: list[str]
) -> None:
    view = state.view or Snapshot()
    staleness = now - state.received
    for line_number, line in enumerate(header[: place.table_top - model.GAP_LINES]):
        _put(window, line_number, 0, line, curses.A_BOLD if line_number == 0 else curses.A_NORMAL)
    rows = model.rows(view, staleness)
    widths = model.column_widths(rows, width - 1)
    state.visible = place.table_rows
    state.selection = state.selection.scrolled(rows, place.table_rows)
    _put(window, place.table_top, 0, model.table_header(widths).ljust(width - 1), curses.A_REVERSE)
    selected = state.selection.index(rows)
    shown = rows[state.selection.top : state.selection.top + place.table_rows]
    for offset, row in enumerate(shown):
        attribute = curses.A_DIM if row.retiring or row.gone else curses.A_NORMAL
        if state.selection.top + offset == selected:
            attribute = curses.A_STANDOUT
        _put(window, place.table_top + 1 + offset, 0, model.format_row(row, widths), attribute)
    if not rows:
        _put(window, place.table_top + 1, 0, '(no engines at the moment)')
    note = state.message if now < state.message_until else model.row_note(state.selection.selected(rows))
    scroll = model.scroll_note(state.selection.top, place.table_rows, len(rows))
    _put(window, place.footer, 0, model.footer_line(note, scroll, width - 1))


def _put(window: curses.window, line: int, column: int, text: str, attribute: int = curses.A_NORMAL) -> None:
    """Write what fits of `text`; never the bottom-right cell (curses fails there), never an exception."""
    height, width = window.getmaxyx()
    room = width - column - 1
    if line >= height or room <= 0:
        return
    with contextlib.suppress(curses.error):
        window.addstr(line, column, text[:room], attribute)


# ---------------------------------------------------------------- the Yes/No menu


class _ConfirmMenu(CursesMenu):  # type: ignore[misc]
    """A curses-menu selection menu that also works on a terminal without colours."""

    def _set_up_colors(self) -> None:
        if curses.has_colors():
            super()._set_up_colors()
        else:
            self.highlight = curses.A_REVERSE


def confirm(window: curses.window, title: str, subtitle: str) -> bool:
    """Ask Yes/No with a curses-menu menu over the monitor's screen; True only for Yes.

    A menu without a parent would run as a program of its own (initscr, endwin, and a terminal `reset` at exit);
    with a parent it draws on the running screen, `CursesMenu.stdscr`.
    """
    width = window.getmaxyx()[1]
    menu = _ConfirmMenu.make_selection_menu(['Yes', 'No'], title=title[: width - 4], subtitle=subtitle[: width - 4])
    menu.parent = CursesMenu('disbatch monitor', show_exit_item=False)
    menu.current_option = 1  # No, so that a stray Enter stops nothing
    CursesMenu.stdscr = window
    window.timeout(-1)
    try:
        answer = menu.show()
    finally:
        window.clear()
        _set_up(window)
    return bool(answer == 0)
