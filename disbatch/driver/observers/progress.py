"""The progress line on the driver's terminal and the end-of-run summary: a `RunObserver`.

On a terminal the line is redrawn in place (`\\r`, the text, clear to the end of the line) at each snapshot (the
publisher sends at most two a second); any other message is printed above it through `message()`, `suspend()` /
`resume()` or the stream from `guarded_stream()`, so the line never mixes with other text. When the stream is not a
terminal (a batch log such as Slurm's `slurm-N.out`), what a log wants instead: a start line (`start()`), a plain
line every `--progress-every` seconds (no control characters), and the summary. At the end, the summary (with the
failed tasks and the command that runs them again). `--quiet` disables it all: then it writes nothing of its own.
The text itself is `progress_text`'s.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TextIO, cast

from disbatch.contract.snapshot import Snapshot
from disbatch.results.progress_text import RateMeter, Stats, eta_seconds, format_progress, format_summary
from disbatch.results.record import StatusRecord

CLEAR_TO_END = '\x1b[K'
MIN_REDRAW_SECONDS = 0.2
PLAIN_INTERVAL_SECONDS = 60.0  # --progress-every's default
DEFAULT_WIDTH = 80


def wanted(stream: TextIO, progress: bool = False, quiet: bool = False) -> bool:
    """Whether to show the line (or, off a terminal, the plain lines of a log) and the summary: unless `--quiet`.

    `--progress` asked for it off a terminal before that became the default; it is kept, and changes nothing.
    """
    return not quiet


class ProgressLine:
    """Shows the run on `stream` (the driver's stderr); never raises into the driver.

    `message(text)` prints a line of the driver's own above the progress line; it prints even when the progress
    line is not enabled, so the driver may send every message through it. `expected_total` (the number of tasks a
    pre-scan of the task file found) stands in for the snapshot's `total` until the whole stream has been read.
    """

    def __init__(
        self,
        stream: TextIO,
        status_path: str,
        enabled: bool,
        clock: Callable[[], float] = time.time,
        *,
        expected_total: int | None = None,
        plain_every: float = PLAIN_INTERVAL_SECONDS,
        rerun: Callable[[bool], str] | None = None,
        exit_code_flag: bool = True,
    ) -> None:
        self.stream = stream
        self.expected_total = expected_total  # from a pre-scan of the task file, until the snapshot knows the total
        self.status_path = status_path
        self.enabled = enabled
        self.clock = clock
        self.plain_every = plain_every
        self.rerun = rerun  # the command that runs the tasks left again (with -R or not): for the summary
        self.exit_code_flag = exit_code_flag  # -e
        self.interactive = enabled and _isatty(stream)
        self.stats = Stats()
        self.rate = RateMeter()
        self._view: Snapshot | None = None
        self._shown = ''  # the text of the line on the screen now, '' when none
        self._suspended = 0
        self._next_draw = float('-inf')
        self._closed = False
        # The driver calls from its one thread; a thread that prints to a guarded stderr must not cut in.
        self.lock = threading.RLock()

    # ------------------------------------------------------------ RunObserver

    def on_record(self, record: StatusRecord) -> None:
        if self.enabled:
            self.stats.add(record)

    def on_snapshot(self, view: Snapshot) -> None:
        with self.lock:
            if not self.enabled or self._closed:
                return
            try:
                self._absorb(view)
                now = self.clock()
                if now < self._next_draw:
                    return
                self._next_draw = now + (MIN_REDRAW_SECONDS if self.interactive else self.plain_every)
                self._draw()
            except (KeyError, TypeError, ValueError, OSError):
                self._give_up()

    def _absorb(self, view: Snapshot) -> None:
        """Take in a snapshot: slot use, rate, and the view to draw (ValueError for one without its time)."""
        if view.now is None:
            raise ValueError('a snapshot without its time')
        self.stats.observe(view)
        self.rate.add(view.now, view.finished)
        self._view = self._with_total(view)

    def close(self, view: Snapshot, exit_code: int) -> None:
        with self.lock:
            if not self.enabled or self._closed:
                return
            try:
                self._absorb(replace(view, exit_code=exit_code))
                self._suspended = 0
                self._draw()
                if self.interactive:
                    self._write('\n')
                    self._shown = ''
                self._closed = True
                self._write(self._summary() + '\n')
            except (KeyError, TypeError, ValueError, OSError):
                self._give_up()

    def start(self, text: str) -> None:
        """The line saying the run has started, for a log: off a terminal only (there the progress line says it)."""
        if self.enabled and not self.interactive:
            self.message(text)

    def _summary(self) -> str:
        failed = self.stats.view.failed if self.stats.view else 0
        rerun = self.rerun(bool(failed)) if self.rerun is not None else None
        return format_summary(self.stats, self.status_path, self._width(), rerun, self.exit_code_flag)

    # ------------------------------------------------------------ other messages

    def message(self, text: str) -> None:
        """Print `text` (one or more lines) above the progress line, then draw the line again."""
        with self.lock:
            self.suspend()
            try:
                self._write(text if text.endswith('\n') else text + '\n')
            except (OSError, ValueError):
                pass
            finally:
                self.resume()

    def suspend(self) -> None:
        """Take the line off the screen until the matching `resume()` (calls nest)."""
        with self.lock:
            self._suspended += 1
            if self._shown:
                try:
                    self._write('\r' + CLEAR_TO_END)
                except (OSError, ValueError):
                    self._give_up()
                self._shown = ''

    def resume(self) -> None:
        with self.lock:
            self._suspended = max(0, self._suspended - 1)
            if not self._suspended and self.interactive and not self._closed and self._view is not None:
                try:
                    self._draw()
                except (KeyError, TypeError, ValueError, OSError):
                    self._give_up()

    @contextmanager
    def paused(self) -> Iterator[None]:
        self.suspend()
        try:
            yield
        finally:
            self.resume()

    def guarded_stream(self) -> TextIO:
        """A stream for `contextlib.redirect_stderr`: whatever is printed to it appears above the progress line."""
        return cast(TextIO, GuardedStream(self))  # a TextIOBase: what print() and redirect_stderr need

    # ------------------------------------------------------------ drawing

    def _with_total(self, view: Snapshot) -> Snapshot:
        """The snapshot, with the expected total filled in while the snapshot does not know it yet."""
        if view.total is not None or self.expected_total is None:
            return view
        floor = view.finished + view.skipped + (view.running or 0) + (view.pending or 0)
        return replace(view, total=max(self.expected_total, floor))

    def _draw(self) -> None:
        if self._view is None or self._suspended:
            return
        rate = self.rate.rate() if self._view.finished else None  # no '0.0 tasks/s' before the first task ends
        text = format_progress(self._view, rate, eta_seconds(self._view, rate), self._width())
        if self.interactive:
            self._write('\r' + text + CLEAR_TO_END)
            self._shown = text
        else:
            self._write(text + '\n')

    def _width(self) -> int:
        """Columns of the terminal, less one: writing the last column makes some terminals wrap."""
        if not self.interactive:
            return DEFAULT_WIDTH
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError, io.UnsupportedOperation):
            return DEFAULT_WIDTH
        return columns - 1 if columns > 1 else DEFAULT_WIDTH  # 0: a terminal that does not know its size

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def _give_up(self) -> None:
        """The stream broke, or a snapshot made no sense: show nothing more rather than disturb the run."""
        self.enabled = False
        self.interactive = False
        self._shown = ''


class GuardedStream(io.TextIOBase):
    """Writes to the progress line's stream, taking the line off the screen while a line of text is written."""

    def __init__(self, progress: ProgressLine) -> None:
        super().__init__()
        self.progress = progress
        self._open_line = False

    def write(self, text: str) -> int:
        if not text:
            return 0
        with self.progress.lock:
            return self._write(text)

    def _write(self, text: str) -> int:
        if not self._open_line:
            self.progress.suspend()
            self._open_line = True
        self.progress.stream.write(text)
        if text.endswith('\n'):
            self.progress.stream.flush()
            self._open_line = False
            self.progress.resume()
        return len(text)

    def flush(self) -> None:
        self.progress.stream.flush()

    def isatty(self) -> bool:
        return _isatty(self.progress.stream)

    def fileno(self) -> int:
        return self.progress.stream.fileno()

    def writable(self) -> bool:
        return True


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError):
        return False
