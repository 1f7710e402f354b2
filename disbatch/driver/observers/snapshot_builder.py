"""A snapshot of a live run: what the monitor, the web page and the progress line show. Pure.

The driver builds one (at most a few times a second, never per message) from the scheduler's state and what the
loop knows of each engine; the publisher puts its JSON under the KVS key `DisBatch status` (the reference's key).
The type, its JSON and the tolerant reading back are the contract's (`disbatch/contract/snapshot.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from disbatch.contract.snapshot import EngineView, Snapshot, UsageView, WalltimeView
from disbatch.driver.core.scheduler import Scheduler
from disbatch.results.record import StatusRecord
from disbatch.results.views import task_view


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
    usage: UsageView | None = None,
    follow_up: str | None = None,
) -> Snapshot:
    """`usage` is `UsageBoard.view()`: its per-host figures also go on each engine of that host.

    `follow_up` is the job that continues the run (--resubmit), once the shell has submitted it. The rate and the
    ETA are the publisher's (None here)."""
    counts = scheduler.counts
    engines = []
    hosts = usage.hosts if usage else {}
    for rank, engine in sorted(scheduler.engines.items()):
        fact = facts.get(rank)
        host = hosts.get(engine.hostname)
        engines.append(
            EngineView(
                rank=rank,
                context=engine.context,
                host=engine.hostname,
                pid=fact.pid if fact else -1,
                last_heard=round(fact.last_heard, 1) if fact else None,
                slots=engine.slots,
                running=len(engine.assigned),
                free=max(0, engine.slots - len(engine.assigned)),
                given=engine.given,
                finished=engine.finished,
                failed=engine.failed,
                retiring=engine.retiring,
                max_rss=host.max_rss if host else None,
                cpu=host.cpu if host else None,
            )
        )
    for rank, (engine, stage, why) in sorted(scheduler.departed.items()):
        host = hosts.get(engine.hostname)
        engines.append(
            EngineView(
                rank=rank,
                context=engine.context,
                host=engine.hostname,
                pid=None,
                last_heard=None,
                slots=engine.slots,
                given=engine.given,
                finished=engine.finished,
                failed=engine.failed,
                retiring=True,
                max_rss=host.max_rss if host else None,
                cpu=host.cpu if host else None,
                stage=stage,
                why=why,
            )
        )
    engines.sort(key=lambda view: view.rank)
    running = scheduler.running
    # Known once the whole stream has been read, or from the start for a regular file (counted before the run).
    total = (
        counts.finished + counts.skipped + counts.interrupted + running + len(scheduler.pending)
        if scheduler.stream_ended
        else expected_total
    )
    return Snapshot(
        run=run,
        status=scheduler.state.value,
        more=scheduler.more_tasks,
        started=round(started, 3),
        now=round(now, 3),
        finished=counts.finished,
        failed=counts.failed,
        skipped=counts.skipped,
        barriers=counts.barriers,
        lost=counts.lost,
        interrupted=counts.interrupted,
        running=running,
        pending=len(scheduler.pending),
        total=total,
        slots=sum(engine.slots for engine in scheduler.engines.values()),  # departed engines' slots are gone
        engines=tuple(engines),
        recent=tuple(task_view(record) for record in recent),
        failures=tuple(task_view(record) for record in failures),
        walltime=_walltime(scheduler, now, follow_up),
        usage=usage,
        stopped=scheduler.stop_reason,
    )


def _walltime(scheduler: Scheduler, now: float, follow_up: str | None) -> WalltimeView | None:
    """The allocation's end, the time left, the drain state and the follow-up job; None for a run without an end."""
    drain = scheduler.drain
    if drain is None:
        return None
    end = drain.allocation.end
    return WalltimeView(
        end=round(end, 3), left=round(max(0.0, end - now), 1), state=drain.state(now), follow_up=follow_up
    )
