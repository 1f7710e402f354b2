"""The words every view of a run uses, in one place: the monitor, the web page, `disbatch report` and the summary.

A run's `Snapshot` (`contract/snapshot.py`) says what happened in numbers; this module says it in words, the same words
wherever a person reads them: the run's status (`Running`, `Finishing the last tasks`, ...), the task counts and
what each means (`Waiting`: tasks not started yet, unread ones included, never the driver's internal queue), an
engine's state and why (`lost`, `left`, `silent`), the per-engine counts (attempts, not tasks, and said so), a
summary per context, and the order in which engines are shown to a person watching a big run: troubled ones
first, then the busiest, then by rank. Pure: it reads no clock and imports nothing of the driver.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from disbatch.contract.snapshot import EngineView, Snapshot

STATUS_WORDS = {
    'starting': 'Starting',
    'running': 'Running',
    'draining': 'Finishing the last tasks',
    'stopping': 'Stopping',
    'finished': 'Finished',
}
SILENT_SECONDS = 5.0  # an engine not heard from for this long is shown as silent (it is lost at 8 s)
TASKS_NOTE = 'Task counts: each task once, however many attempts it took.'
ATTEMPTS_NOTE = 'Per engine, counted in attempts: a task run again counts on each engine that ran it.'


def status_word(view: Snapshot) -> str:
    return STATUS_WORDS.get(view.status, 'Running')


# ---------------------------------------------------------------- task counts


@dataclass(frozen=True, slots=True)
class Count:
    key: str  # the web page's element id
    label: str
    value: int | None  # None: not known yet
    meaning: str


def waiting(view: Snapshot) -> int | None:
    """Tasks not started yet: the total less what is done or running when the total is known (the driver reads
    the task file only as engines free up, so its queue alone says 0 while most tasks wait unread), else the queue."""
    if view.total is not None:
        return max(0, view.total - view.finished - view.skipped - view.interrupted - (view.running or 0))
    return view.pending


COUNTS = {  # key (the web page's element id): label, meaning; in the order every view shows them
    'finished': ('Finished', 'tasks with a final result in this run, failed ones included'),
    'failed': ('Failed', 'finished tasks whose last attempt failed'),
    'barriers': ('Barriers', 'barriers passed'),
    'running': ('Running', 'tasks running or queued on an engine'),
    'waiting': ('Waiting', 'tasks not started yet, unread ones included when their number is known'),
    'total': ('Total', 'every task of the run, known once the whole task file is read'),
    'skipped': ('Skipped', 'done by an earlier run (-r)'),
    'interrupted': ('Interrupted', 'stopped by the run itself; a plain -r runs them again'),
    'lost': ('Lost', 'attempts lost with their engine (run again elsewhere)'),
}
OPTIONAL_COUNTS = ('skipped', 'interrupted', 'lost')  # shown only when not 0
RUN_FIGURES = {'slots': 'Slots', 'elapsed': 'Elapsed', 'rate': 'Rate', 'eta': 'ETA'}  # the page's other cards


def task_counts(view: Snapshot) -> tuple[Count, ...]:
    """The task counts, in the order every view shows them; skipped, interrupted and lost only when not 0, running
    and total also when not known (None), the others only when known."""
    values = {
        'finished': view.finished,
        'failed': view.failed,
        'barriers': view.barriers,
        'running': view.running,
        'waiting': waiting(view),
        'total': view.total,
        'skipped': view.skipped,
        'interrupted': view.interrupted,
        'lost': view.lost,
    }
    counts = []
    for key, (label, meaning) in COUNTS.items():
        value = values[key]
        if (key in OPTIONAL_COUNTS and not value) or (value is None and key not in ('running', 'total')):
            continue
        counts.append(Count(key, label, value, meaning))
    return tuple(counts)


def counts_text(counts: Iterable[Count]) -> list[str]:
    """`Finished 8`, `Failed 1`, ...: the known counts as words."""
    return [f'{count.label} {count.value}' for count in counts if count.value is not None]


def wrap(items: Sequence[str], width: int, first: str = '', separator: str = '  ') -> list[str]:
    """`first` and the items on as few lines of at most `width` characters as hold them (an item is never cut;
    `first` and the item after it are joined by one space)."""
    lines: list[str] = []
    current = first
    for item in items:
        joint = ' ' if current == first and not lines else separator
        candidate = f'{current}{joint}{item}' if current else item
        if current and len(candidate) > width:
            lines.append(current)
            candidate = item
        current = candidate
    if current:
        lines.append(current)
    return lines


# ---------------------------------------------------------------- engines


ENGINE_COLUMNS = {
    'given': ('Assigned', 'attempts sent to the engine so far'),
    'finished': ('Finished', 'attempts that ended on the engine'),
    'failed': ('Failed', 'attempts that failed on the engine'),
    'last_heard': ('Heard', 'seconds since the driver last heard from the engine'),
    'state': ('State', 'active, retiring (takes no more tasks), silent, lost or left'),
}


def engine_state(engine: EngineView) -> tuple[str, str]:
    """An engine's state in one word, and why when it is not plainly working."""
    if engine.stage:
        return engine.stage, engine.why
    if engine.retiring:
        return 'retiring', engine.why or 'takes no more tasks, finishes the ones it runs'
    if engine.last_heard is not None and engine.last_heard >= SILENT_SECONDS:
        return 'silent', f'not heard from for {engine.last_heard:.0f} s'
    return 'active', ''


def is_gone(engine: EngineView) -> bool:
    """An engine that has left the run (shown greyed, with why)."""
    return engine.stage in ('left', 'lost')


def trouble(engine: EngineView) -> int:
    """0 lost or silent, 1 with failures, 2 working, 3 retiring, 4 gone on purpose: the lower, the sooner shown."""
    state, _ = engine_state(engine)
    if state in ('lost', 'silent'):
        return 0
    if state == 'left':
        return 4
    if engine.failed:
        return 1
    return 3 if state == 'retiring' else 2


def watch_order(engines: Iterable[EngineView]) -> list[EngineView]:
    """Troubled engines first (lost or silent, then those with failures, most first), then the busiest, by rank."""
    return sorted(engines, key=lambda engine: (trouble(engine), -engine.failed, -engine.running, engine.rank))


@dataclass(frozen=True, slots=True)
class ContextSummary:
    context: str
    engines: int
    hosts: int
    active: int  # neither gone nor retiring
    troubled: int  # lost or silent
    gone: int  # left the run on purpose
    slots: int
    running: int
    free: int
    failed: int  # attempts

    def text(self, width: int | None = None) -> str:
        """`SSH0: 400 engines (396 active, 2 lost or silent, 2 left), 6400 slots, 6380 running, 20 free, 3 failed
        attempts`; within `width` a shorter form (`SSH0: 400 engines, 2 lost or silent, 6380/6400 slots busy, 3
        failed attempts`, then shorter still), cut only when even the shortest is too wide."""
        name = self.context or '?'
        engines = f'{self.engines} engine{"s" if self.engines != 1 else ""}'
        hosts = f' on {self.hosts} host{"s" if self.hosts != 1 else ""}' if self.hosts != self.engines else ''
        states = [f'{self.active} active']
        if self.troubled:
            states.append(f'{self.troubled} lost or silent')
        if self.gone:
            states.append(f'{self.gone} left')
        forms = [
            f'{name}: {engines}{hosts} ({", ".join(states)}), {self.slots} slots, {self.running} running, '
            f'{self.free} free, {self.failed} failed attempts',
            f'{name}: {engines}'
            + (f', {self.troubled} lost or silent' if self.troubled else '')
            + f', {self.running}/{self.slots} slots busy, {self.failed} failed attempts',
            f'{name}: {self.engines} eng'
            + (f', {self.troubled} lost/silent' if self.troubled else '')
            + f', {self.running}/{self.slots} busy, {self.failed} failed',
        ]
        if width is None:
            return forms[0]
        fitting = next((form for form in forms if len(form) <= width), forms[-1])
        return fitting if len(fitting) <= width else fitting[: max(0, width - 1)] + '~'


def context_summaries(view: Snapshot) -> list[ContextSummary]:
    """One summary per context, the biggest first."""
    groups: dict[str, list[EngineView]] = {}
    for engine in view.engines:
        groups.setdefault(engine.context, []).append(engine)
    summaries = []
    for context, engines in groups.items():
        live = [engine for engine in engines if not is_gone(engine)]
        summaries.append(
            ContextSummary(
                context=context,
                engines=len(engines),
                hosts=len({engine.host for engine in engines}),
                active=sum(engine_state(engine)[0] == 'active' for engine in engines),
                troubled=sum(trouble(engine) == 0 for engine in engines),
                gone=sum(engine.stage == 'left' for engine in engines),
                slots=sum(engine.slots for engine in live),
                running=sum(engine.running for engine in live),
                free=sum(engine.free for engine in live),
                failed=sum(engine.failed for engine in engines),
            )
        )
    return sorted(summaries, key=lambda summary: (-summary.engines, summary.context))
