"""Properties of whole runs: random streams, outcomes, joins and losses, carried out by one `SimulatedDriver`."""

from __future__ import annotations

from unittest.mock import ANY

from hypothesis import given, settings
from hypothesis import strategies as st

from disbatch.driver.core.events import Action, Finish, PutBarrierKey, SendTask, WriteRecord
from disbatch.driver.core.scheduler import Counts
from disbatch.results.record import RecordKind, StatusRecord
from disbatch.taskfile.items import Barrier, Task

from .scheduling import SimulatedDriver, Stream, barrier, make_scheduler, task


@settings(max_examples=200, deadline=None)
@given(
    failures=st.lists(st.integers(0, 4), min_size=1, max_size=6),
    retries=st.integers(0, 3),
    max_attempts=st.integers(1, 3),
    slots=st.lists(st.integers(1, 3), min_size=1, max_size=3),
    data=st.data(),
)
def test_every_task_runs_until_it_succeeds_or_its_attempts_are_spent_and_has_one_final_record(
    failures: list[int], retries: int, max_attempts: int, slots: list[int], data: st.DataObject
) -> None:
    """Task i fails its first failures[i] runs (4: every run), some of them by timing out; engines may be lost.

    A failed run is run again while fewer than 1 + retries runs were made, a lost one while fewer than
    max(max_attempts, 1 + retries): lost and failed runs share the count. Every record of a run that is run again is
    written with final=False; the last record of each task, and only it, is final.
    """
    tasks = [task(task_id) for task_id in range(len(failures))]
    scheduler = make_scheduler(retries=retries, max_attempts=max_attempts, exit_code_on_failure=True)

    def check(actions: list[Action], index: int) -> None:
        action = actions[index]
        if isinstance(action, WriteRecord):
            record = action.record
            was_lost = record.is_lost
            budget = max(max_attempts, 1 + retries) if was_lost else 1 + retries
            assert action.final == (not record.failed or run.runs[record.task_id] >= budget)
            if record.failed and not was_lost and not action.final:  # retried at once, ahead of anything else
                assert actions[index + 1] == SendTask(ANY, tasks[record.task_id], run.runs[record.task_id] + 1)

    run = SimulatedDriver(scheduler, Stream(tasks), leave_at_once=True, check=check)
    for rank, count in enumerate(slots):
        run.join(rank, count)
    losses = 0
    for _ in range(200):
        run.feed()
        if run.finished:
            break
        assert run.running, 'the run is stuck'
        run.clock += 1.0
        if losses < 4 and data.draw(st.booleans(), label='an engine is lost'):
            rank = data.draw(st.sampled_from(sorted({held.rank for held in run.running.values()})), label='lost engine')
            run.lose(rank)
            losses += 1
            if not isinstance(run.log[-1], Finish):  # a task given up can end the run: then no engine joins
                run.join(len(slots) + losses - 1, data.draw(st.integers(1, 3), label='slots of a new engine'))
            continue
        task_id = data.draw(st.sampled_from(sorted(run.running)), label='finishes')
        failing = run.running[task_id].attempt <= failures[task_id]
        kind = RecordKind.TIMED_OUT if failing and data.draw(st.booleans(), label='timed out') else RecordKind.NORMAL
        return_code = (-15 if kind is RecordKind.TIMED_OUT else 1) if failing else 0
        run.finish(task_id, return_code=return_code, kind=kind)

    run.check_the_end()
    log = run.log
    written = [(index, action) for index, action in enumerate(log) if isinstance(action, WriteRecord)]
    results: dict[int, StatusRecord] = {}
    for item in tasks:
        of_task = [(index, action) for index, action in written if action.record.task_id == item.task_id]
        # Exactly one final record per task, and it is the task's last record: after it the task is not run again.
        assert [action.final for _, action in of_task] == [False] * (len(of_task) - 1) + [True]
        assert len(of_task) == run.runs[item.task_id]
        last_index, last = of_task[-1]
        assert not any(isinstance(action, SendTask) and action.task == item for action in log[last_index:])
        results[item.task_id] = last.record
    lost_records = [action for _, action in written if action.record.is_lost]
    if not lost_records:
        assert run.runs == {task_id: min(count + 1, 1 + retries) for task_id, count in enumerate(failures)}
    final_failures = sum(1 for record in results.values() if record.failed)
    assert scheduler.counts == Counts(finished=len(tasks), failed=final_failures, lost=len(lost_records))
    assert log[-1] == Finish(1 if final_failures else 0)


@st.composite
def runs(draw: st.DrawFn) -> tuple[list[Task | Barrier], dict[int, int], list[int], bool]:
    """A stream of tasks and plain or keyed barriers, each task's return code, engine slots, and `-e`."""
    kinds = draw(st.lists(st.sampled_from(['task', 'task', 'task', 'barrier', 'keyed']), max_size=16))
    items: list[Task | Barrier] = []
    return_codes: dict[int, int] = {}
    for task_id, kind in enumerate(kinds):
        if kind == 'task':
            items.append(task(task_id))
            return_codes[task_id] = draw(st.sampled_from([0, 0, 0, 1]))
        else:
            items.append(barrier(task_id, key=f'key{task_id}' if kind == 'keyed' else None))
    slots = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    return items, return_codes, slots, draw(st.booleans())


@settings(max_examples=150, deadline=None)
@given(run=runs(), data=st.data())
def test_every_run_records_each_task_once_and_keeps_its_barriers(
    run: tuple[list[Task | Barrier], dict[int, int], list[int], bool], data: st.DataObject
) -> None:
    items, return_codes, slots, exit_code_on_failure = run
    scheduler = make_scheduler(exit_code_on_failure=exit_code_on_failure)
    driver = SimulatedDriver(scheduler, Stream(items), leave_at_once=False, check=lambda actions, index: None)
    waiting = list(range(len(slots)))  # engines not yet joined
    here = data.draw(st.integers(-1, len(slots) - 1), label='the engine on the driver host (-1: none)')

    def join() -> None:
        rank = waiting.pop(0)
        driver.join(rank, slots[rank], 'head.cluster.org' if rank == here else None)

    join()
    for _ in range(10 * len(items) + 10):
        driver.feed()
        driver.let_drained_leave()
        if driver.finished:
            break
        if waiting and (not driver.running or data.draw(st.booleans(), label='join')):
            join()
            continue
        assert driver.running, 'the run is stuck: nothing runs and no event can come'
        task_id = data.draw(st.sampled_from(sorted(driver.running)), label='finishes')
        elapsed = data.draw(st.sampled_from([0.01, 1.0]), label='elapsed')
        driver.finish(task_id, return_code=return_codes[task_id], elapsed=elapsed)
        driver.clock += elapsed

    tasks = [item for item in items if isinstance(item, Task)]
    barriers = [item for item in items if isinstance(item, Barrier)]
    failed = any(return_codes.values())
    driver.check_the_end()  # every engine that joined was drained, and has gone
    log = driver.log
    assert log[-1] == Finish(1 if exit_code_on_failure and failed else 0)
    assert sorted(driver.drained) == sorted(set(range(len(slots))) - set(waiting))

    written = [(index, action.record) for index, action in enumerate(log) if isinstance(action, WriteRecord)]
    # Nothing is lost and nothing retried: every record is a task's (or a barrier's) result.
    assert all(action.final for action in log if isinstance(action, WriteRecord))
    sent = {action.task.task_id: index for index, action in enumerate(log) if isinstance(action, SendTask)}
    normal = sorted(record.task_id for _, record in written if record.kind is RecordKind.NORMAL)
    assert normal == [item.task_id for item in tasks]
    recorded_at = {record.task_id: index for index, record in written if record.kind is RecordKind.NORMAL}
    for wall in barriers:
        [index] = [
            index for index, record in written if record.kind is RecordKind.BARRIER and record.task_id == wall.task_id
        ]
        assert all(recorded_at[item.task_id] < index for item in tasks if item.task_id < wall.task_id)
        assert all(sent[item.task_id] > index for item in tasks if item.task_id > wall.task_id)
        if wall.key is not None:
            assert log[index + 1] == PutBarrierKey(wall.key, wall.task_id)
    assert scheduler.counts == Counts(
        finished=len(tasks), failed=sum(1 for code in return_codes.values() if code), barriers=len(barriers)
    )
