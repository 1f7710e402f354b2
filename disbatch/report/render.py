"""`disbatch report`: the summary of a finished run, and a one-file HTML report of it. Pure but for `main`.

The HTML report is the live `--web` page (`web/page.py`) with the run's final snapshot embedded, so it shows the
same cards and tables and never polls, plus a timeline: one lane per slot (tasks packed onto the fewest lanes of
their host, since a status file does not name slots), a bar per task, failed tasks in red.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from collections.abc import Sequence
from dataclasses import replace

from disbatch.contract.snapshot import EngineView, Snapshot
from disbatch.report.history import RunHistory, load
from disbatch.results.progress_text import Stats, format_summary
from disbatch.results.record import RecordKind, StatusRecord
from disbatch.results.usage import UsageBoard
from disbatch.results.views import task_view
from disbatch.web.page_view import page_view

WIDTH, LABEL, MAX_HEIGHT, MAX_BARS = 1100, 90, 560, 20_000
_RAN = (RecordKind.NORMAL, RecordKind.TIMED_OUT, RecordKind.INTERRUPTED, RecordKind.PER_ENGINE, RecordKind.ZOMBIE)
COLOURS = {'ok': '#1f8a4c', 'failed': '#c8372d', 'interrupted': '#b7791f', 'per-engine': '#7b8794'}


def lanes(records: Sequence[StatusRecord]) -> list[tuple[str, list[StatusRecord]]]:
    """Tasks that ran, packed per host onto as few lanes as hold them without overlap (earliest free lane first)."""
    by_host: dict[str, list[list[StatusRecord]]] = {}
    for record in sorted((r for r in records if r.kind in _RAN and r.pid != -1), key=lambda r: (r.host, r.start)):
        host_lanes = by_host.setdefault(record.host, [])
        lane = next((lane for lane in host_lanes if lane[-1].finish <= record.start), None)
        if lane is None:
            host_lanes.append([record])
        else:
            lane.append(record)
    return [(host, lane) for host in sorted(by_host) for lane in by_host[host]]


def _colour(record: StatusRecord) -> str:
    if record.kind is RecordKind.INTERRUPTED:
        return COLOURS['interrupted']
    if record.failed:
        return COLOURS['failed']
    return COLOURS['per-engine'] if record.kind is RecordKind.PER_ENGINE else COLOURS['ok']


def timeline_svg(history: RunHistory) -> str:
    """The timeline picture: time across, one lane per slot down, a bar per task (title: what it was)."""
    packed = lanes([record for record, _, _ in history.records])
    t0, t1 = history.first_start, history.last_finish
    span = max(t1 - t0, 1e-3)
    lane_height = max(2.0, min(16.0, MAX_HEIGHT / max(1, len(packed))))
    height = lane_height * len(packed) + 24
    scale = (WIDTH - LABEL - 10) / span
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="timeline" width="{WIDTH}" height="{height:.0f}" '
        f'viewBox="0 0 {WIDTH} {height:.0f}" font-size="11" font-family="system-ui, sans-serif">'
    ]
    drawn, previous_host = 0, None
    for index, (host, lane) in enumerate(packed):
        y = index * lane_height
        if host != previous_host:
            parts.append(
                f'<text x="0" y="{y + min(lane_height, 12):.1f}" fill="currentColor">{html.escape(host)}</text>'
            )
            parts.append(f'<line x1="{LABEL}" x2="{WIDTH}" y1="{y:.1f}" y2="{y:.1f}" stroke="#8884"/>')
            previous_host = host
        for record in lane:
            if drawn >= MAX_BARS and not record.failed:
                continue
            drawn += 1
            x = LABEL + (record.start - t0) * scale
            w = max(1.0, record.elapsed * scale)
            title = (
                f'task {record.task_id} (line {record.line_number}, attempt {record.attempt}): return code '
                f'{record.return_code}, {record.elapsed:.3f} s: {record.command[:200]}'
            )
            bar = f'x="{x:.1f}" y="{y + 0.5:.1f}" width="{w:.1f}" height="{max(1.0, lane_height - 1):.1f}"'
            parts.append(
                f'<rect {bar} fill="{_colour(record)}" stroke="#fff" stroke-width="0.5">'
                f'<title>{html.escape(title)}</title></rect>'
            )
    axis = len(packed) * lane_height + 14
    for step in range(6):
        x = LABEL + step * (WIDTH - LABEL - 10) / 5
        parts.append(
            f'<text x="{x:.1f}" y="{axis:.1f}" fill="currentColor" text-anchor="middle">{step * span / 5:.1f}s</text>'
        )
    parts.append('</svg>')
    return ''.join(parts)


def snapshot(history: RunHistory) -> Snapshot:
    """The final snapshot of the run, as the live page reads it."""
    finals = history.final_records
    tasks = [
        record for record in finals if record.kind in (RecordKind.NORMAL, RecordKind.TIMED_OUT, RecordKind.INTERRUPTED)
    ]
    failed = [record for record in tasks if record.failed]
    board = UsageBoard()  # what the live page's usage tables showed, rebuilt from the records
    for record in tasks:
        board.add(record)
    usage = board.view()
    engines = []
    for e in sorted(history.engines.values(), key=lambda e: e.rank):
        host = usage.hosts.get(e.host)
        engines.append(
            EngineView(
                rank=e.rank,
                context=e.context,
                host=e.host,
                pid=None,
                last_heard=None,
                slots=e.slots,
                running=0,
                free=e.slots,
                given=e.given,
                finished=e.finished,
                failed=e.failed,
                retiring=False,
                max_rss=host.max_rss if host else None,
                cpu=host.cpu if host else None,
            )
        )
    slots = sum(e.slots for e in history.engines.values()) or len(lanes(finals))
    started, now = history.started or history.first_start, history.last_finish
    skipped = sum(record.kind is RecordKind.SKIPPED for record in finals)
    return Snapshot(
        run=history.run,
        status='finished',
        more=False,
        started=round(started, 3),
        now=round(now, 3),
        finished=len(tasks),
        failed=len(failed),
        skipped=skipped,
        barriers=sum(record.kind in (RecordKind.BARRIER, RecordKind.BARRIER_CHECK) for record in finals),
        lost=sum(1 for record, _, _ in history.records if record.unreported),
        running=0,
        pending=0,
        total=len(tasks) + skipped,
        slots=slots,
        engines=tuple(engines),
        recent=tuple(task_view(record) for record in tasks[-20:]),
        failures=tuple(task_view(record) for record in failed),
        usage=usage,
        rate=round(len(tasks) / (now - started), 3) if now > started else None,
        exit_code=history.exit_code,
    )


def summary(history: RunHistory) -> str:
    """The end-of-run summary the driver prints, rebuilt from the records."""
    stats = Stats()
    for record in history.final_records:
        stats.add(record)
    # Without the exit code: the records do not say whether -e or -f made it what it is, so no line explains it.
    stats.observe(replace(snapshot(history), exit_code=None))
    return format_summary(stats, history.status_file or history.source)


def html_report(history: RunHistory) -> str:
    from disbatch.web.page import render

    view = snapshot(history)
    section = (
        '<h2>Timeline</h2><div class="table-box timeline">'
        f'{timeline_svg(history)}</div><div id="legend">'
        + ' '.join(f'<span style="color:{colour}">&#9632; {name}</span>' for name, colour in COLOURS.items())
        + '</div>'
    )
    page = render(json.dumps(page_view(view, every_engine=True)).encode(), extra=section).decode()
    source = html.escape(history.source)
    return page.replace(FOOTER_LIVE, f'Report of the finished run, made by <code>disbatch report</code> from {source}.')


FOOTER_LIVE = 'Updates every second. The address of this page is private to this run: do not share it.'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog='disbatch report', description='Summarise a finished run; with -o, write a one-file HTML report of it.'
    )
    parser.add_argument('source', metavar='STATUS_OR_JSON', help='the status file or the --json events file of a run')
    parser.add_argument('-o', '--output', metavar='FILE', help='write the HTML report (timeline and tables) here')
    arguments = parser.parse_args(argv)
    try:
        history = load(arguments.source)
    except OSError as error:
        print(f'disbatch report: cannot read {arguments.source}: {error.strerror or error}', file=sys.stderr)
        return 1
    except ValueError as error:
        print(f'disbatch report: {error}', file=sys.stderr)
        return 1
    if arguments.output:
        try:
            with open(arguments.output, 'w', encoding='utf-8') as handle:
                handle.write(html_report(history))
        except OSError as error:
            print(f'disbatch report: cannot write {arguments.output}: {error.strerror or error}', file=sys.stderr)
            return 1
    try:
        print(summary(history))
        if arguments.output:
            print(f'disbatch report: wrote {arguments.output}', flush=True)
    except BrokenPipeError:  # `disbatch report ... | head`
        return 0
    return 0
