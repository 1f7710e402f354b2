"""What the `--web` page and `disbatch report`'s page are given: the run's snapshot shaped for a person. Pure.

The page shows what the monitor shows, in the same words (`run_vocabulary.py`): the status word, the task counts
(`Waiting`, not the driver's queue), a line per context, and the engines in the watching order (troubled first,
then the busiest), each with its state and why. A run of 1,000 engines must not send a 1,000-row table every
second: the view carries one page of `ENGINES_SHOWN` engines (from `engines_from` in that order) and their number;
the page asks for another page (`status.json?engines=N`) when the reader turns it.

The JSON is the snapshot's (`Snapshot.to_json()`, its keys unchanged, `engines` cut to the page, each engine with
`state` and `why` added) plus `engine_count`, `engines_from`, `contexts` (one line each) and `words` (`status`, the
`counts` as `{key, label, value, meaning}`, the notes on what is counted in tasks and what in attempts).
"""

from __future__ import annotations

from disbatch.contract.json_fields import Json
from disbatch.contract.snapshot import Snapshot
from disbatch.run_vocabulary import (
    ATTEMPTS_NOTE,
    TASKS_NOTE,
    context_summaries,
    engine_state,
    status_word,
    task_counts,
    watch_order,
)

ENGINES_SHOWN = 50  # engines on one page of the table
CONTEXTS_SHOWN = 20  # context lines (the biggest); the rest are counted


def page_view(view: Snapshot, engines_from: int = 0, every_engine: bool = False) -> Json:
    """The page's JSON for `view`, with the engines `engines_from` to `engines_from + ENGINES_SHOWN` of the
    watching order (a start past the end shows the last page), or all of them (`every_engine`: a report's file,
    which cannot ask for more)."""
    ordered = watch_order(view.engines)
    last_page = max(0, (len(ordered) - 1) // ENGINES_SHOWN * ENGINES_SHOWN)
    start = 0 if every_engine else min(max(0, engines_from), last_page)
    shown = len(ordered) if every_engine else ENGINES_SHOWN
    data = view.to_json()
    engines = []
    for engine in ordered[start : start + shown]:
        state, why = engine_state(engine)
        engines.append({**engine.to_json(), 'state': state, 'why': why})
    data['engines'] = engines
    data['engine_count'] = len(ordered)
    data['engines_from'] = start
    data['engines_shown'] = ENGINES_SHOWN
    summaries = context_summaries(view)
    contexts = [summary.text() for summary in summaries[:CONTEXTS_SHOWN]]
    if len(summaries) > CONTEXTS_SHOWN:
        contexts.append(f'... and {len(summaries) - CONTEXTS_SHOWN} more contexts')
    data['contexts'] = contexts if len(summaries) > 1 or len(ordered) > 1 else []
    data['words'] = {
        'status': status_word(view),
        'counts': [
            {'key': count.key, 'label': count.label, 'value': count.value, 'meaning': count.meaning}
            for count in task_counts(view)
        ],
        'tasks_note': TASKS_NOTE,
        'attempts_note': ATTEMPTS_NOTE,
    }
    return data
