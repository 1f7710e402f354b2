"""The `--web` status page itself: one self-contained HTML document (inline CSS and JS, no external resource).

Its style sheet, script and HTML are package data (`page_files/page.css`, `page.js`, `page.html`); this module fills
in the parts made from the run's vocabulary and the snapshot.

The page arrives with the run's page view of the moment embedded (`page_view.py`: the snapshot in the words every
view uses, `run_vocabulary.py`), so it shows the run at once, even to a reader that runs no network code; then it
fetches `status.json` (relative to its own URL) every second and redraws in place. It says "run ended" when the
status is `finished` or when the driver stops answering. Every value is put into the DOM as text (never as HTML),
so a command line cannot inject markup. The engines come a page at a time (troubled first, then the busiest), with
a line per context above them; Previous / Next ask the server for another page (`status.json?engines=N`), or, in
`disbatch report`'s file, which holds every engine, show another slice of them.

Elements with stable ids, for people and tests: `run`, `status`, `ended`, the cards (`run_vocabulary.COUNTS`:
`finished`, `failed`, `barriers`, `running`, `waiting`, `total`, `skipped`, `interrupted`, `lost`, each in its
`<key>-card`, hidden when that count is not shown; and `slots`,
`elapsed`, `rate`, `eta`), `progress-bar`, `progress-label`, `updated`, `contexts`, `engine-range`, `engine-note`,
`engines-previous`, `engines-next`, and the table bodies `engines`, `recent`, `failures`, `biggest`, `slowest` (one
`<tr>` per engine or task; `class="empty"` when none; a failed task's row has the snippet of its stderr just before
the command). Peak memory cells show binary units ("203.9 MiB"), with the bytes in their `title`.
`disbatch report` embeds a finished run's snapshot and puts its timeline where `render`'s `extra` goes.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import importlib.resources
from dataclasses import dataclass

from disbatch.run_vocabulary import COUNTS, ENGINE_COLUMNS, RUN_FIGURES

_TASK_HEADINGS = (
    '<th>Task</th><th>Line</th><th class="text">Host</th><th>Return code</th><th>Elapsed (s)</th>'
    '<th>Peak memory</th><th>CPU (s)</th><th>Finished at</th><th class="text command">Command</th>'
)
_USAGE_HEADINGS = (
    '<th>Task</th><th>Line</th><th class="text">Host</th><th>Peak memory</th><th>CPU (s)</th><th>Elapsed (s)</th>'
)

_FAILURE_HEADINGS = _TASK_HEADINGS.replace(
    '<th class="text command">', '<th class="text">Error output (snippet)</th><th class="text command">'
)


def _cards() -> str:
    """A card per task count (`run_vocabulary.COUNTS`, its meaning as the title), then the run's other figures."""
    cards = [
        f'<div class="card count {key}" id="{key}-card" data-key="{key}" title="{html.escape(meaning)}">'
        f'<div class="label">'
        f'{html.escape(label)}</div><div class="value" id="{key}">&ndash;</div></div>'
        for key, (label, meaning) in COUNTS.items()
    ]
    cards += [
        f'<div class="card {key}"><div class="label">{label}</div><div class="value" id="{key}">&ndash;</div></div>'
        for key, label in RUN_FIGURES.items()
    ]
    return '\n'.join(cards)


def _engine_headings() -> str:
    def heading(key: str, text: str = '') -> str:
        label, meaning = ENGINE_COLUMNS[key]
        kind = ' class="text"' if key == 'state' else ''
        return f'<th title="{html.escape(meaning)}"{kind}>{text or label}</th>'

    return (
        '<th>Rank</th><th class="text">Context</th><th class="text">Host</th><th>PID</th><th>Slots</th><th>Running'
        f'</th><th>Free</th>{heading("given")}{heading("finished")}{heading("failed")}'
        f'{heading("last_heard", "Last heard (s)")}<th>Peak memory</th><th>CPU (s)</th>{heading("state")}'
    )


@dataclass(frozen=True, slots=True)
class PageFiles:
    """The page's package data, as the document holds it: its style sheet, its script and its HTML (`page_files/`,
    each read and linted as what it is)."""

    style: str
    script: str
    html: str

    @property
    def content_security_policy(self) -> str:
        """Only this script and this style run: their hashes, not 'unsafe-inline'."""
        return (
            f"default-src 'none'; script-src {_source_hash(self.script)}; style-src {_source_hash(self.style)}; "
            "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )


@functools.cache
def page_files() -> PageFiles:
    """Read once, when the first page is served (not when the module is imported)."""
    files = importlib.resources.files('disbatch.web') / 'page_files'
    # Each element's text begins with a newline: the hashes in the policy are of exactly that text.
    style = '\n' + (files / 'page.css').read_text(encoding='utf-8')
    script = '\n' + (files / 'page.js').read_text(encoding='utf-8')
    document = (files / 'page.html').read_text(encoding='utf-8')
    for marker, text in (
        ('@CARDS@', _cards()),
        ('@ENGINE_HEADINGS@', _engine_headings()),
        ('@TASK_HEADINGS@', _TASK_HEADINGS),
        ('@FAILURE_HEADINGS@', _FAILURE_HEADINGS),
        ('@USAGE_HEADINGS@', _USAGE_HEADINGS),
        ('@STYLE@', style),
        ('@SCRIPT@', script),
    ):
        document = document.replace(marker, text)
    return PageFiles(style, script, document)


def _source_hash(source: str) -> str:
    digest = hashlib.sha256(source.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def render(snapshot_json: bytes, extra: str = '') -> bytes:
    """The page with `snapshot_json` (a page view, the body `status.json` would answer) embedded as its first view,
    and `extra` (trusted HTML: the report's timeline) after the progress bar."""
    # Inside a <script> element nothing may look like a closing tag; JSON allows these escapes anywhere.
    embedded = snapshot_json.replace(b'<', b'\\u003c').replace(b'>', b'\\u003e').replace(b'&', b'\\u0026')
    # The snapshot first: its marker is the template's only one, and the extra's marker comes before it.
    page = page_files().html.encode().replace(b'@SNAPSHOT@', embedded, 1)
    return page.replace(b'@EXTRA@', extra.encode(), 1)
