"""The drain decision, pure: now, the end, the estimates → start or hold; and the durations it learns from."""

from __future__ import annotations

import pytest

from disbatch.config import parse_duration
from disbatch.contract.snapshot import DrainState
from disbatch.driver.core.walltime import (
    DEFAULT_MARGIN_SECONDS,
    STOP_LEAD_SECONDS,
    Allocation,
    Decision,
    DrainGate,
    Durations,
    default_margin,
)
from disbatch.errors import UsageError


@pytest.mark.parametrize(
    ('text', 'seconds'),
    [
        ('20s', 20.0),
        ('1.5m', 90.0),
        ('2h', 7200.0),
        ('1d', 86400.0),
        ('45', 2700.0),  # a bare number is minutes, as in Slurm's -t 45
        ('5', 300.0),
        ('1:30', 90.0),
        ('0:01:30', 90.0),
        ('01:00:00', 3600.0),
        ('2-00:00:00', 172800.0),
        ('1-2', 93600.0),  # Slurm's D-HH
        ('1-02:03', 93780.0),
        ('10.5', 630.0),
        ('1:30.5', 90.5),
    ],
)
def test_durations_are_read_in_the_forms_people_write(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize('text', ['', 'soon', '0', '0s', '-5s', '1:xx', 'nans', 'infh', '1:2:3:4'])
def test_a_duration_that_is_none_is_refused_naming_the_flag(text: str) -> None:
    with pytest.raises(UsageError, match='--walltime'):
        parse_duration(text)


def test_the_default_margin_is_a_few_minutes_or_a_tenth_of_a_short_allocation() -> None:
    assert default_margin(24 * 3600) == DEFAULT_MARGIN_SECONDS
    assert default_margin(90) == 9.0
    assert default_margin(20) == STOP_LEAD_SECONDS  # never under the lead the stop itself needs


# ---------------------------------------------------------------- the decision


ALLOCATION = Allocation(end=1000.0, margin=60.0)  # nothing may end after 940; what runs at 996 is stopped


def test_a_task_that_fits_before_the_end_less_the_margin_starts() -> None:
    assert ALLOCATION.decide(now=100.0, estimate=300.0) is Decision.START
    assert ALLOCATION.decide(now=640.0, estimate=300.0) is Decision.START  # ends at 940 exactly


def test_a_task_expected_to_end_past_the_margin_is_held() -> None:
    assert ALLOCATION.decide(now=641.0, estimate=300.0) is Decision.HOLD


def test_a_task_of_unknown_duration_starts_until_the_margin_begins() -> None:
    assert ALLOCATION.decide(now=939.0, estimate=None) is Decision.START
    assert ALLOCATION.decide(now=940.0, estimate=None) is Decision.HOLD
    assert ALLOCATION.decide(now=2000.0, estimate=0.0) is Decision.HOLD


def test_the_margin_is_never_shorter_than_the_stop_lead() -> None:
    tight = Allocation(end=100.0, margin=0.0)
    assert tight.last_start == tight.stop_at == 100.0 - STOP_LEAD_SECONDS
    assert tight.decide(now=95.0, estimate=0.5) is Decision.START
    assert tight.decide(now=95.6, estimate=0.5) is Decision.HOLD


# ---------------------------------------------------------------- estimates


def test_nothing_is_estimated_before_a_task_finished() -> None:
    assert Durations().estimate(1) is None


def test_a_line_is_estimated_by_its_longest_task() -> None:
    durations = Durations()
    for elapsed in (3.0, 5.0, 4.0):
        durations.add(7, elapsed)
    durations.add(8, 100.0)
    assert durations.estimate(7) == 5.0
    assert durations.estimate(8) == 100.0


def test_a_line_never_seen_is_estimated_by_a_high_quantile_of_all_lines() -> None:
    durations = Durations()
    for line in range(100):
        durations.add(line, float(line))  # 0 s .. 99 s
    assert durations.estimate(1000) == 90.0  # the 90th percentile, not the mean nor the outlier
    durations.add(100, 10_000.0)
    assert durations.estimate(1000) == 90.0


def test_the_overall_estimate_forgets_old_durations() -> None:
    durations = Durations()
    for line in range(300):
        durations.add(line, 1000.0 if line < 100 else 1.0)
    assert durations.estimate(-1) == 1.0
    assert durations.longest == 1000.0


# ---------------------------------------------------------------- the gate


def test_once_a_task_is_held_nothing_starts_any_more() -> None:
    gate = DrainGate(ALLOCATION)
    gate.observe(1, 300.0)
    gate.observe(2, 1.0)
    assert gate.may_start(2, now=700.0)
    assert not gate.may_start(1, now=700.0)  # 1000 > 940
    assert not gate.may_start(2, now=700.0)  # would fit, but tasks keep their order
    assert gate.holding
    assert gate.state(now=700.0) is DrainState.DRAINING


def test_the_gate_says_when_the_run_must_stop() -> None:
    gate = DrainGate(ALLOCATION)
    assert gate.state(now=0.0) is DrainState.RUNNING
    assert not gate.must_stop(995.0)
    assert gate.must_stop(996.0)
    assert gate.state(now=996.0) is DrainState.STOPPING


def test_the_messages_name_the_end_and_what_happens() -> None:
    gate = DrainGate(Allocation(end=1000.0, margin=60.0, origin='squeue'))
    assert 'squeue' in gate.drain_reason() and '60 s before it' in gate.drain_reason()
    assert 'stopping 3 running task(s)' in gate.stop_reason(3) and 'interrupted' in gate.stop_reason(3)
