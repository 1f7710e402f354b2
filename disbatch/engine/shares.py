"""Per-slot shares of a node's countable things: GPUs (`--gpus-per-task N`) and any comma list (`-E VAR`).

Pure: no clock, no I/O. A `Resource` is a list of items (device ids, licence names, NUMA nodes, ports) and how many
of them one task gets; a `SlotShares` hands every running task its own disjoint set and takes it back the moment the
task ends, so no item is ever held by two running tasks. An engine has at most `min(capacity)` slots, so a task that
finds a free slot always finds its share free too.

Items are given lowest first, which keeps them in aligned groups: with 4 GPUs and 2 per task the groups are always
{0,1} and {2,3}, whatever order tasks end in (the free items are always whole groups, and the lowest whole group is
taken). Per-engine tasks (START/STOP) run alone on an engine and see every item; they take no share.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Resource:
    """A list of items and the variables a task's share of them is written to (comma-joined)."""

    name: str  # for messages: 'GPUs' or the -E variable
    items: tuple[str, ...]
    per_task: int
    variables: tuple[str, ...]

    @property
    def capacity(self) -> int:
        """How many tasks can hold a share at once."""
        return len(self.items) // self.per_task


def split_items(text: str) -> tuple[str, ...]:
    """`'0, 1,,2'` → ('0', '1', '2'): a comma list as CUDA_VISIBLE_DEVICES and its kin are written."""
    return tuple(item.strip() for item in text.split(',') if item.strip())


def slot_limit(slots: int, resources: tuple[Resource, ...]) -> int:
    """The slots an engine can run: the cores' count, lowered to what every resource can share out."""
    return min([slots, *(resource.capacity for resource in resources)])


def limit_reasons(slots: int, resources: tuple[Resource, ...]) -> list[str]:
    """Why `slot_limit` is below `slots`, one phrase per resource that lowers it (for the engine's log)."""
    return [
        f'{len(r.items)} {r.name} at {r.per_task} per task allow {r.capacity} slot(s)'
        for r in resources
        if r.capacity < slots
    ]


@dataclass(slots=True)
class _Pool:
    resource: Resource
    free: list[int]  # indexes into resource.items, kept sorted
    held: dict[int, list[int]] = field(default_factory=dict)  # holder -> indexes


class SlotShares:
    """The shares held by running tasks, keyed by a holder (the engine's slot number)."""

    def __init__(self, resources: tuple[Resource, ...]) -> None:
        self._pools = [_Pool(resource, list(range(len(resource.items)))) for resource in resources]

    def take(self, holder: int) -> dict[str, str]:
        """Give `holder` its share of every resource; returns the variables to set in the task's environment.

        Raises ValueError if `holder` already holds a share or a resource has too few free items (a caller bug:
        the engine has no more slots than the resources can serve)."""
        for pool in self._pools:
            if holder in pool.held:
                raise ValueError(f'slot {holder} already holds {pool.resource.name}')
            if len(pool.free) < pool.resource.per_task:
                raise ValueError(f'no {pool.resource.name} left for slot {holder}')
        environment: dict[str, str] = {}
        for pool in self._pools:
            taken, pool.free = pool.free[: pool.resource.per_task], pool.free[pool.resource.per_task :]
            pool.held[holder] = taken
            value = ','.join(pool.resource.items[index] for index in taken)
            environment.update(dict.fromkeys(pool.resource.variables, value))
        return environment

    def everything(self) -> dict[str, str]:
        """The variables that show every item: for a per-engine task, which runs while no other task does."""
        environment: dict[str, str] = {}
        for pool in self._pools:
            environment.update(dict.fromkeys(pool.resource.variables, ','.join(pool.resource.items)))
        return environment

    def give_back(self, holder: int) -> None:
        """The task of `holder` has ended: its items are free again (a holder with no share is ignored)."""
        for pool in self._pools:
            pool.free = sorted(pool.free + pool.held.pop(holder, []))

    def held(self, holder: int) -> dict[str, tuple[str, ...]]:
        """What `holder` holds now, by resource name (for tests and the log)."""
        return {
            pool.resource.name: tuple(pool.resource.items[index] for index in pool.held[holder])
            for pool in self._pools
            if holder in pool.held
        }
