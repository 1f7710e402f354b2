"""One vocabulary for every view of a run (`disbatch/run_vocabulary.py`): the same words and numbers for the monitor,
the web page, `disbatch report` and the summary; the order of engines for a person watching a big run."""

from __future__ import annotations

from disbatch.contract.snapshot import EngineView, Snapshot
from disbatch.monitor import model
from disbatch.run_vocabulary import context_summaries, engine_state, task_counts, waiting, watch_order


def test_waiting_counts_the_unread_tasks_not_the_drivers_queue() -> None:
    view = Snapshot(status='running', more=True, finished=3, running=5, pending=0, total=40)
    assert waiting(view) == 32
    counts = {count.key: (count.label, count.value) for count in task_counts(view)}
    assert counts['waiting'] == ('Waiting', 32) and 'pending' not in counts


def test_engines_in_trouble_come_first_then_the_busiest_and_those_that_left_last() -> None:
    engines = [
        EngineView(0, 'SSH0', 'a', running=1, slots=2),
        EngineView(1, 'SSH0', 'b', running=2, slots=2),
        EngineView(2, 'SSH0', 'c', running=2, slots=2, failed=3),
        EngineView(3, 'SSH0', 'd', last_heard=7.0),
        EngineView(4, 'SSH0', 'e', stage='left', why='finished its tasks'),
        EngineView(5, 'SSH0', 'f', stage='lost', why='silent'),
    ]
    assert [engine.rank for engine in watch_order(engines)] == [3, 5, 2, 1, 0, 4]
    assert engine_state(engines[3]) == ('silent', 'not heard from for 7 s')


def test_a_context_summary_sums_its_engines_up_in_one_line() -> None:
    busy = [
        EngineView(rank, 'slurm', f'n{rank}', slots=16, running=16, given=20, failed=rank % 2) for rank in range(998)
    ]
    engines = (*busy, EngineView(998, 'slurm', 'x', stage='lost'), EngineView(999, 'slurm', 'y', stage='left'))
    [summary] = context_summaries(Snapshot(engines=engines))
    assert summary.text() == (
        'slurm: 1000 engines (998 active, 1 lost or silent, 1 left), 15968 slots, 15968 running, 0 free, '
        '499 failed attempts'
    )


def test_a_gone_engine_stays_in_the_monitor_greyed_with_why() -> None:
    view = Snapshot(engines=(EngineView(0, 'SSH0', 'a'), EngineView(1, 'SSH0', 'b', stage='lost', why='silent')))
    rows = model.rows(view)
    assert [(row.rank, row.state, row.gone) for row in rows] == [(1, 'lost', True), (0, 'active', False)]
    assert model.row_note(rows[0]) == 'engine 1 lost: silent'
    assert model.header(view)[2] == 'Engines 1, 1 gone'


def test_the_monitor_header_fits_80_columns_with_every_count() -> None:
    engines = tuple(EngineView(rank, f'SSH{rank % 4}', f'node{rank}') for rank in range(1000))
    view = Snapshot(run='Tasks_disBatch_261207221611_427', status='draining', finished=123456, failed=2345,
                    skipped=34567, interrupted=12, lost=3, barriers=7, running=15968, pending=0, total=999999,
                    slots=16000, started=0.0, now=3600.0, engines=engines)  # fmt: skip
    lines = model.header(view)
    assert all(len(line) <= 80 for line in lines), lines
    assert lines[-1] == '... and 2 more contexts'


def test_a_context_summary_takes_a_shorter_form_in_a_narrow_terminal() -> None:
    engines = tuple(EngineView(rank, 'SLURM0', f'n{rank}', slots=16, running=15, last_heard=9.0 if rank < 12 else 0.2,
                               failed=rank % 3) for rank in range(600))  # fmt: skip
    [summary] = context_summaries(Snapshot(engines=engines))
    assert summary.text(85) == 'SLURM0: 600 engines, 12 lost or silent, 9000/9600 slots busy, 600 failed attempts'
    assert summary.text(60) == 'SLURM0: 600 eng, 12 lost/silent, 9000/9600 busy, 600 failed'
    assert len(summary.text(30)) == 30


def test_the_monitor_footer_keeps_the_scroll_note_within_the_width() -> None:
    assert model.footer_line('', 'rows 1-20 of 1000', 79).endswith('  rows 1-20 of 1000')
    assert model.footer_line('', 'rows 1-20 of 1000', 79).startswith(model.SHORT_FOOTER)
    assert model.footer_line('', '', 79) == model.FOOTER
    long = model.footer_line('engine 999 left: finished its tasks and was let go (retired, or no more tasks)',
                             'rows 981-1000 of 1000', 79)  # fmt: skip
    assert len(long) == 79 and long.endswith('~  rows 981-1000 of 1000')
