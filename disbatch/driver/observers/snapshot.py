"""A snapshot of a live run: what the monitor, the web page and the progress line show. Pure.

The driver builds one (at most a few times a second, never per message) from the scheduler's state and what the
loop knows of each engine, and publishes it as JSON under the KVS key `DisBatch status` (the reference's key).
Everything in it is plain JSON; readers must ignore keys they do not know.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from disbatch.contract import task_view
from disbatch.driver.core.scheduler import Scheduler
from disbatch.results.record import StatusRecord


@dataclass(frozen=True, slots=True)
class EngineFacts:
    """What the loop, not the scheduler, knows of an engine."""

    pid: int
    last_heard: float  # seconds ago


def build(
    run: str,
    scheduler: Scheduler,
    facts: Mapping[int, EngineFacts],
    started: float,
    now: float,
    recent: Iterable[StatusRecord],
    failures: Iterable[StatusRecord],
    expected_total: int | None = None,
    usage: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """`usage` is `UsageBoard.to_json()`: its per-host figures also go on each engine of that host."""
    counts = scheduler.counts
    engines = []
    hosts = usage['hosts'] if usage else {}
    for rank, engine in sorted(scheduler.engines.items()):
        fact = facts.get(rank)
        host = hosts.get(engine.hostname, {})
        engines.append(
            {
                'rank': rank,
                'context': engine.context,
                'host': engine.hostname,
                'pid': fact.pid if fact else -1,
                'last_heard': round(fact.last_heard, 1) if fact else None,
                'slots': engine.slots,
                'running': len(engine.assigned),
                'free': max(0, engine.slots - len(engine.assigned)),
                'given': engine.given,
                'finished': engine.finished,
                'failed': engine.failed,
                'retiring': engine.retiring,
                'max_rss': host.get('max_rss'),  # bytes: the biggest task peak on its host (None: none measured)
                'cpu': host.get('cpu'),  # user + system seconds of the host's tasks
            }
        )
    running = scheduler.running
    # The number of tasks is known once the whole stream has been read.
    # Known once the whole stream has been read, or from the start for a regular file (counted before the run).
    total = (
        counts.finished + counts.skipped + counts.interrupted + running + len(scheduler.pending)
        if scheduler.stream_ended
        else expected_total
    )
    return {
        'run': run,
        'status': scheduler.state.value,
        'more': scheduler.more_tasks,
        'started': round(started, 3),
        'now': round(now, 3),
        'finished': counts.finished,
        'failed': counts.failed,
        'skipped': counts.skipped,
        'barriers': counts.barriers,
        'lost': counts.lost,
        'interrupted': counts.interrupted,
        'running': running,
        'pending': len(scheduler.pending),
        'total': total,
        'slots': sum(engine.slots for engine in scheduler.engines.values()),
        'engines': engines,
        'recent': [task_view(record) for record in recent],
        'failures': [task_view(record) for record in failures],
        'walltime': _walltime(scheduler, now),
        'usage': dict(usage) if usage else {},
    }


def _walltime(scheduler: Scheduler, now: float) -> dict[str, Any] | None:
    """The allocation's end, the time left, the drain state and the follow-up job; None for a run without an end."""
    drain = scheduler.drain
    if drain is None:
        return None
    end = drain.allocation.end
    return {'end': round(end, 3), 'left': round(max(0.0, end - now), 1), 'state': drain.state(now),
            'follow_up': drain.follow_up}  # fmt: skip
