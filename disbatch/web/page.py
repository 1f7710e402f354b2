"""The `--web` status page itself: one self-contained HTML document (inline CSS and JS, no external resource). Pure.

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
import hashlib
import html

from disbatch.run_vocabulary import COUNTS, ENGINE_COLUMNS, RUN_FIGURES

STYLE = """
:root { color-scheme: light dark; --fg: #1d2330; --muted: #667085; --bg: #f6f7f9; --card: #ffffff;
  --line: #e3e6ea; --accent: #2f6fde; --good: #1f8a4c; --bad: #c8372d; --warn: #b7791f; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6e8eb; --muted: #9aa4b2; --bg: #14171c; --card: #1c2027; --line: #2c323c;
    --accent: #6b9cf0; --good: #4cc38a; --bad: #f06a60; --warn: #e2b250; }
}
* { box-sizing: border-box; }
body { margin: 0; padding: 20px 28px; background: var(--bg); color: var(--fg);
  font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 6px 18px; margin-bottom: 14px; }
h1 { font-size: 18px; margin: 0; font-weight: 600; word-break: break-all; }
h1 small { color: var(--muted); font-weight: 400; margin-right: 6px; }
h2 { font-size: 15px; margin: 22px 0 8px; font-weight: 600; }
.badge { display: inline-block; padding: 2px 9px; border-radius: 999px; font-size: 12px; font-weight: 600;
  background: var(--accent); color: #fff; text-transform: uppercase; letter-spacing: .04em; }
.badge.finished { background: var(--good); }
.badge.stopping { background: var(--bad); }
.badge.draining { background: var(--warn); }
#more, #updated { color: var(--muted); }
#ended { padding: 2px 10px; border-radius: 6px; background: var(--bad); color: #fff; font-weight: 600; }
#ended.clean { background: var(--good); }
[hidden] { display: none !important; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(100px, 1fr)); gap: 8px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 8px 10px; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 20px; white-space: nowrap; font-weight: 600; font-variant-numeric: tabular-nums; }
.card.failed .value.nonzero, .card.lost .value.nonzero { color: var(--bad); }
.card.finished .value { color: var(--good); }
.progress { margin: 14px 0 4px; height: 10px; border-radius: 5px; background: var(--line); overflow: hidden; }
#progress-bar { height: 100%; width: 0; background: var(--good); transition: width .4s ease; }
#progress-label { color: var(--muted); font-size: 12px; }
.table-box { background: var(--card); border: 1px solid var(--line); border-radius: 8px; overflow: auto;
  max-height: 360px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 10px; text-align: right; white-space: nowrap; border-bottom: 1px solid var(--line); }
th { position: sticky; top: 0; background: var(--card); color: var(--muted); font-weight: 600; font-size: 12px; }
th.text, td.text { text-align: left; }
th.command { width: 100%; }
td.command { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12px;
  max-width: 0; min-width: 16em; overflow: hidden; text-overflow: ellipsis; }
td.snippet { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12px;
  max-width: 24em; overflow: hidden; text-overflow: ellipsis; color: var(--bad); }
tr:last-child td { border-bottom: none; }
tr.empty td { text-align: center; color: var(--muted); }
tr.retiring td { color: var(--muted); font-style: italic; }
tr.gone td { color: var(--muted); opacity: .6; }
td.state { white-space: normal; min-width: 12em; max-width: 22em; }
tr.troubled td.state { color: var(--bad); font-weight: 600; }
#contexts { margin: 0 0 8px; padding: 0; list-style: none; font-variant-numeric: tabular-nums; }
#contexts li { padding: 2px 0; }
.engines-bar { display: flex; flex-wrap: wrap; align-items: baseline; gap: 8px 14px; margin: 6px 0; }
.note, #engine-range { color: var(--muted); font-size: 12px; }
button { font: inherit; font-size: 12px; padding: 2px 10px; border-radius: 6px; border: 1px solid var(--line);
  background: var(--card); color: var(--fg); cursor: pointer; }
button:disabled { opacity: .4; cursor: default; }
td.bad { color: var(--bad); font-weight: 600; }
footer { margin-top: 18px; color: var(--muted); font-size: 12px; }
"""

SCRIPT = """
'use strict';
(() => {
  const POLL_MS = 1000;
  const RETRY_MS = 2000;
  const MAX_FAILURES = 30;
  let view = null;
  let engineFrom = 0;
  let receivedAt = Date.now();
  let failures = 0;
  let lost = false;

  const byId = (id) => document.getElementById(id);
  const setText = (id, value) => {
    const element = byId(id);
    if (element && element.textContent !== value) element.textContent = value;
  };
  const known = (value) => value !== null && value !== undefined;
  const number = (value) => (known(value) ? String(value) : '\\u2013');
  const pad = (value) => String(value).padStart(2, '0');
  const duration = (seconds) => {
    const whole = Math.max(0, Math.floor(seconds));
    return `${Math.floor(whole / 3600)}:${pad(Math.floor(whole / 60) % 60)}:${pad(whole % 60)}`;
  };
  const clock = (epoch) => {
    if (typeof epoch !== 'number') return '';
    const when = new Date(epoch * 1000);
    return `${pad(when.getHours())}:${pad(when.getMinutes())}:${pad(when.getSeconds())}`;
  };
  const fixed = (value, digits) => (typeof value === 'number' ? value.toFixed(digits) : number(value));
  const bytes = (value) => {
    if (typeof value !== 'number') return number(value);
    const units = ['B', 'KiB', 'MiB', 'GiB'];
    let size = value;
    let unit = 0;
    while (size >= 1024 && unit < units.length - 1) {
      size /= 1024;
      unit += 1;
    }
    return unit === 0 ? `${size} B` : `${size.toFixed(1)} ${units[unit]}`;
  };

  const fillTable = (id, rows, columns, emptyText, rowClass) => {
    const body = byId(id);
    const built = [];
    for (const row of rows) {
      const tr = document.createElement('tr');
      const extra = rowClass ? rowClass(row) : '';
      if (extra) tr.className = extra;
      for (const [value, className] of columns(row)) {
        const td = document.createElement('td');
        td.textContent = value;
        if (className) td.className = className;
        if (className && /command|snippet|state/.test(className)) td.title = value;
        if (className === 'memory') td.title = title(row.max_rss);
        tr.appendChild(td);
      }
      built.push(tr);
    }
    if (built.length === 0) {
      const tr = document.createElement('tr');
      tr.className = 'empty';
      const td = document.createElement('td');
      td.colSpan = body.parentElement.querySelectorAll('th').length;
      td.textContent = emptyText;
      tr.appendChild(td);
      built.push(tr);
    }
    body.replaceChildren(...built);
  };

  const title = (value) => (typeof value === 'number' ? `${value} bytes` : '');
  const taskColumns = (task) => [
    [number(task.task), ''],
    [number(task.line), ''],
    [number(task.host), 'text'],
    [number(task.return_code), task.return_code === 0 ? '' : 'bad'],
    [fixed(task.elapsed, 3), ''],
    [bytes(task.max_rss), 'memory'],
    [fixed(task.cpu, 2), ''],
    [clock(task.finish), ''],
    [known(task.command) ? String(task.command) : '', 'text command'],
  ];
  const failureColumns = (task) => {
    const columns = taskColumns(task);
    columns.splice(columns.length - 1, 0, [known(task.stderr) ? String(task.stderr) : '', 'text snippet']);
    return columns;
  };
  const rateText = (rate) => {
    if (typeof rate !== 'number') return '\u2013';
    return rate >= 10 ? `${rate.toFixed(0)}/s` : rate >= 1 ? `${rate.toFixed(1)}/s` : `${(rate * 60).toFixed(1)}/min`;
  };
  const engineColumns = (engine) => [
    [number(engine.rank), ''],
    [number(engine.context), 'text'],
    [number(engine.host), 'text'],
    [number(engine.pid), ''],
    [number(engine.slots), ''],
    [number(engine.running), ''],
    [number(engine.free), ''],
    [number(engine.given), ''],
    [number(engine.finished), ''],
    [number(engine.failed), engine.failed ? 'bad' : ''],
    [fixed(engine.last_heard, 1), ''],
    [bytes(engine.max_rss), 'memory'],
    [fixed(engine.cpu, 1), ''],
    [known(engine.state) ? String(engine.state) + (engine.why ? `: ${engine.why}` : '') : '', 'text state'],
  ];
  const engineClass = (engine) => {
    if (engine.state === 'left' || engine.state === 'lost') return engine.state === 'lost' ? 'gone troubled' : 'gone';
    if (engine.state === 'silent') return 'troubled';
    return engine.retiring ? 'retiring' : '';
  };
  const usageColumns = (task) => [
    [number(task.task), ''],
    [number(task.line), ''],
    [number(task.host), 'text'],
    [bytes(task.max_rss), 'memory'],
    [fixed(task.cpu, 2), ''],
    [fixed(task.elapsed, 3), ''],
  ];

  const renderEngines = (v, words) => {
    const engines = Array.isArray(v.engines) ? v.engines : [];
    const count = typeof v.engine_count === 'number' ? v.engine_count : engines.length;
    const page = typeof v.engines_shown === 'number' && v.engines_shown > 0 ? v.engines_shown : 50;
    const local = engines.length >= count;  // every engine is here (disbatch report): page through them here
    engineFrom = Math.max(0, Math.min(engineFrom, Math.floor(Math.max(0, count - 1) / page) * page));
    const from = local ? engineFrom : (typeof v.engines_from === 'number' ? v.engines_from : 0);
    const shown = local ? engines.slice(from, from + page) : engines;
    fillTable('engines', shown, engineColumns, 'no engine yet', engineClass);
    setText('engine-range', count > shown.length
      ? `${from + 1}\u2013${from + shown.length} of ${count}, troubled first, then the busiest`
      : count ? `${count}, troubled first, then the busiest` : '');
    setText('engine-note', known(words.attempts_note) ? String(words.attempts_note) : '');
    byId('engines-previous').disabled = from <= 0;
    byId('engines-next').disabled = from + shown.length >= count;
    byId('engines-pager').hidden = count <= page;
    const list = byId('contexts');
    const lines = Array.isArray(v.contexts) ? v.contexts : [];
    list.replaceChildren(...lines.map((line) => {
      const item = document.createElement('li');
      item.textContent = String(line);
      return item;
    }));
  };

  const turn = (step) => {
    const page = view && typeof view.engines_shown === 'number' && view.engines_shown > 0 ? view.engines_shown : 50;
    engineFrom = Math.max(0, engineFrom + step * page);
    history.replaceState(null, '', engineFrom > 0 ? `#engines=${engineFrom}` : '#');
    if (view && Array.isArray(view.engines) && view.engines.length >= (view.engine_count || 0)) render();
    else if (view && view.status !== 'finished' && !lost) poll(false);
  };

  const elapsed = () => {
    if (!view || typeof view.started !== 'number') return null;
    const at = typeof view.now === 'number' ? view.now : view.started;
    const ticking = !lost && view.status !== 'finished' ? (Date.now() - receivedAt) / 1000 : 0;
    return at - view.started + ticking;
  };

  const showEnded = () => {
    const ended = byId('ended');
    const finished = view && view.status === 'finished';
    if (!finished && !lost) {
      ended.hidden = true;
      return;
    }
    let message = 'run ended';
    if (view && known(view.exit_code)) message += ` \\u2014 exit code ${view.exit_code}`;
    else if (lost && !finished) message += ' \\u2014 the driver no longer answers';
    ended.textContent = message;
    ended.className = view && view.exit_code === 0 ? 'clean' : '';
    ended.hidden = false;
  };

  const render = () => {
    const v = view || {};
    setText('run', known(v.run) ? String(v.run) : '(starting)');
    const status = byId('status');
    const words = v.words && typeof v.words === 'object' ? v.words : {};
    setText('status', known(words.status) ? String(words.status) : 'Starting');
    status.className = `badge ${known(v.status) ? v.status : ''}`;
    const wall = v.walltime;
    setText('walltime', wall && typeof wall.left === 'number'
      ? `${duration(wall.left)} left in the allocation${wall.state === 'running' ? '' : ` (${wall.state})`}` +
        (wall.follow_up ? `, follow-up job ${wall.follow_up}` : '') : '');
    const counts = new Map((Array.isArray(words.counts) ? words.counts : []).map((count) => [count.key, count]));
    for (const card of document.querySelectorAll('.card.count')) {
      const count = counts.get(card.dataset.key);
      card.hidden = !count;
      const value = count ? count.value : null;
      setText(card.dataset.key, number(value));
      byId(card.dataset.key).classList.toggle('nonzero', typeof value === 'number' && value > 0);
    }
    setText('slots', number(v.slots));
    const seconds = elapsed();
    setText('elapsed', seconds === null ? '\\u2013' : duration(seconds));
    setText('rate', rateText(v.rate));
    setText('eta', typeof v.eta === 'number' && v.status !== 'finished' ? duration(v.eta) : '\\u2013');
    const done = (v.finished || 0) + (v.skipped || 0);
    const bar = byId('progress-bar');
    if (typeof v.total === 'number' && v.total > 0) {
      const percent = Math.min(100, (100 * done) / v.total);
      bar.style.width = `${percent.toFixed(1)}%`;
      setText('progress-label', `${done} of ${v.total} tasks done (${percent.toFixed(0)}%)`);
    } else {
      bar.style.width = '0';
      setText('progress-label', `${done} tasks done; the total is known once the whole task file is read`);
    }
    renderEngines(v, words);
    fillTable('recent', Array.isArray(v.recent) ? v.recent.slice().reverse() : [], taskColumns, 'none yet');
    fillTable('failures', Array.isArray(v.failures) ? v.failures.slice().reverse() : [], failureColumns,
      'no failed task');
    const usage = v.usage && typeof v.usage === 'object' ? v.usage : {};
    fillTable('biggest', Array.isArray(usage.biggest) ? usage.biggest : [], usageColumns, 'none measured yet');
    fillTable('slowest', Array.isArray(usage.slowest) ? usage.slowest : [], usageColumns, 'none measured yet');
    setText('updated', lost ? `last update ${clock(receivedAt / 1000)}` : `updated ${clock(receivedAt / 1000)}`);
    document.title = `disbatch ${known(v.run) ? v.run : ''}: ${number(v.finished)}` +
      `${typeof v.total === 'number' ? ' of ' + v.total : ''} finished, ${number(v.failed)} failed`;
    showEnded();
  };

  let polling = null;
  const poll = (again = true) => {
    fetch(engineFrom > 0 ? `status.json?engines=${engineFrom}` : 'status.json', { cache: 'no-store' })
      .then((response) => {
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        return response.json();
      })
      .then((fresh) => {
        view = fresh;
        receivedAt = Date.now();
        failures = 0;
        lost = false;
        render();
        if (again && view.status !== 'finished') {
          clearTimeout(polling);
          polling = setTimeout(poll, POLL_MS);
        }
      })
      .catch(() => {
        failures += 1;
        lost = true;
        render();
        if (again && failures < MAX_FAILURES) {
          clearTimeout(polling);
          polling = setTimeout(poll, RETRY_MS);
        }
      });
  };

  try {
    view = JSON.parse(byId('initial').textContent);
  } catch (error) {
    view = null;
  }
  const asked = /^#engines=(\\d{1,9})$/.exec(location.hash);  // a page of engines kept in the address
  if (asked) engineFrom = Number(asked[1]);
  byId('engines-previous').addEventListener('click', () => turn(-1));
  byId('engines-next').addEventListener('click', () => turn(1));
  render();
  setInterval(() => {
    if (!lost && view && view.status !== 'finished') {
      const seconds = elapsed();
      if (seconds !== null) setText('elapsed', duration(seconds));
    }
  }, 1000);
  if (engineFrom > 0 && view && view.status !== 'finished') poll();
  else if (!view || view.status !== 'finished') polling = setTimeout(poll, POLL_MS);
})();
"""

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


TEMPLATE = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>disbatch</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1><small>disbatch run</small><span id="run">(starting)</span></h1>
<span id="status" class="badge">starting</span>
<span id="walltime"></span>
<span id="ended" hidden>run ended</span>
<span id="updated"></span>
</header>
<section class="cards">
{_cards()}
</section>
<div class="progress"><div id="progress-bar"></div></div>
<div id="progress-label"></div>
@EXTRA@
<h2>Engines <span id="engine-range"></span></h2>
<ul id="contexts"></ul>
<div class="engines-bar"><span id="engines-pager"><button id="engines-previous" type="button">Previous</button>
<button id="engines-next" type="button">Next</button></span><span id="engine-note" class="note"></span></div>
<div class="table-box"><table>
<thead><tr>{_engine_headings()}</tr></thead>
<tbody id="engines"></tbody>
</table></div>
<h2>Recent tasks</h2>
<div class="table-box"><table>
<thead><tr>{_TASK_HEADINGS}</tr></thead>
<tbody id="recent"></tbody>
</table></div>
<h2>Failed tasks</h2>
<div class="table-box"><table>
<thead><tr>{_FAILURE_HEADINGS}</tr></thead>
<tbody id="failures"></tbody>
</table></div>
<h2>Biggest tasks (peak memory)</h2>
<div class="table-box"><table>
<thead><tr>{_USAGE_HEADINGS}</tr></thead>
<tbody id="biggest"></tbody>
</table></div>
<h2>Slowest tasks</h2>
<div class="table-box"><table>
<thead><tr>{_USAGE_HEADINGS}</tr></thead>
<tbody id="slowest"></tbody>
</table></div>
<footer>Updates every second. The address of this page is private to this run: do not share it.</footer>
<script id="initial" type="application/json">@SNAPSHOT@</script>
<script>{SCRIPT}</script>
</body>
</html>
"""


def _source_hash(source: str) -> str:
    digest = hashlib.sha256(source.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; script-src {_source_hash(SCRIPT)}; style-src {_source_hash(STYLE)}; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def render(snapshot_json: bytes, extra: str = '') -> bytes:
    """The page with `snapshot_json` (a page view, the body `status.json` would answer) embedded as its first view,
    and `extra` (trusted HTML: the report's timeline) after the progress bar."""
    # Inside a <script> element nothing may look like a closing tag; JSON allows these escapes anywhere.
    embedded = snapshot_json.replace(b'<', b'\\u003c').replace(b'>', b'\\u003e').replace(b'&', b'\\u0026')
    # The snapshot first: its marker is the template's only one, and the extra's marker comes before it.
    page = TEMPLATE.encode().replace(b'@SNAPSHOT@', embedded, 1)
    return page.replace(b'@EXTRA@', extra.encode(), 1)
