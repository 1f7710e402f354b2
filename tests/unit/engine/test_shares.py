"""SlotShares: disjoint shares for running tasks, freed at once; the slot limit the resources set."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from disbatch.engine.shares import Resource, SlotShares, limit_reasons, slot_limit, split_items

GPUS = Resource('GPUs', ('0', '1', '2', '3'), 2, ('CUDA_VISIBLE_DEVICES', 'DISBATCH_GPUS'))
LICENCES = Resource('items of -E LIC', ('a', 'b', 'c'), 1, ('LIC',))


def test_split_items_drops_blanks_and_spaces() -> None:
    assert split_items(' 0, 1,,2 ,') == ('0', '1', '2')
    assert split_items('') == ()


def test_slot_limit_is_the_smallest_capacity() -> None:
    assert slot_limit(8, (GPUS,)) == 2
    assert slot_limit(8, (GPUS, LICENCES)) == 2
    assert slot_limit(1, (GPUS, LICENCES)) == 1
    assert slot_limit(5, ()) == 5
    assert limit_reasons(8, (GPUS,)) == ['4 GPUs at 2 per task allow 2 slot(s)']
    assert limit_reasons(2, (GPUS,)) == []


def test_a_task_gets_its_share_in_every_variable() -> None:
    shares = SlotShares((GPUS, LICENCES))
    assert shares.take(0) == {'CUDA_VISIBLE_DEVICES': '0,1', 'DISBATCH_GPUS': '0,1', 'LIC': 'a'}
    assert shares.take(1) == {'CUDA_VISIBLE_DEVICES': '2,3', 'DISBATCH_GPUS': '2,3', 'LIC': 'b'}
    assert shares.held(1) == {'GPUs': ('2', '3'), 'items of -E LIC': ('b',)}


def test_a_finished_task_frees_its_share_at_once() -> None:
    shares = SlotShares((GPUS,))
    shares.take(0)
    shares.take(1)
    with pytest.raises(ValueError, match='no GPUs left'):
        shares.take(2)
    shares.give_back(0)
    assert shares.take(2) == {'CUDA_VISIBLE_DEVICES': '0,1', 'DISBATCH_GPUS': '0,1'}


def test_a_holder_cannot_take_twice_and_giving_back_nothing_is_harmless() -> None:
    shares = SlotShares((GPUS,))
    shares.take(0)
    with pytest.raises(ValueError, match='already holds'):
        shares.take(0)
    shares.give_back(7)
    assert shares.held(0) == {'GPUs': ('0', '1')}


def test_per_engine_tasks_see_everything() -> None:
    assert SlotShares((GPUS, LICENCES)).everything() == {
        'CUDA_VISIBLE_DEVICES': '0,1,2,3',
        'DISBATCH_GPUS': '0,1,2,3',
        'LIC': 'a,b,c',
    }


@given(
    count=st.integers(1, 9),
    per_task=st.integers(1, 4),
    steps=st.lists(st.tuples(st.booleans(), st.integers(0, 8)), max_size=60),
)
def test_running_tasks_never_share_an_item_and_groups_stay_aligned(
    count: int, per_task: int, steps: list[tuple[bool, int]]
) -> None:
    """Any order of starts and ends: held shares are disjoint, each is a whole aligned group, none is lost."""
    resource = Resource('GPUs', tuple(str(i) for i in range(count)), per_task, ('CUDA_VISIBLE_DEVICES',))
    shares = SlotShares((resource,))
    running: set[int] = set()
    for start, slot in steps:
        slot %= max(1, resource.capacity)
        if start and slot not in running and resource.capacity:
            shares.take(slot)
            running.add(slot)
        elif not start and slot in running:
            shares.give_back(slot)
            running.discard(slot)
        held = [shares.held(holder)['GPUs'] for holder in running]
        flat = [item for share in held for item in share]
        assert len(flat) == len(set(flat)) == per_task * len(running)
        for share in held:
            first = int(share[0])
            assert first % per_task == 0 and share == tuple(str(first + k) for k in range(per_task))
