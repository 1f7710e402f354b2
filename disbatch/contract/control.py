"""The monitor's control commands: what a user asks of a running run, put as JSON under `kvs_keys.CONTROL_KEY`.

`{"retire engine": RANK}` stops one engine, `{"retire context": LABEL}` every engine of a context (the same JSON a
task may put with the reference's kvsstcp client). The monitor writes them (`format_command`), the driver reads
them (`parse_command`); nothing else spells them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

_RETIRE_ENGINE = 'retire engine'
_RETIRE_CONTEXT = 'retire context'


@dataclass(frozen=True, slots=True)
class RetireEngine:
    """Stop one engine once its running tasks end."""

    rank: int


@dataclass(frozen=True, slots=True)
class RetireContext:
    """Stop every engine of one context once their running tasks end."""

    label: str


ControlCommand = RetireEngine | RetireContext


def format_command(command: ControlCommand) -> str:
    match command:
        case RetireEngine(rank):
            return json.dumps({_RETIRE_ENGINE: rank})
        case RetireContext(label):
            return json.dumps({_RETIRE_CONTEXT: label})


def parse_command(text: str | bytes) -> ControlCommand:
    """The command `text` holds; ValueError (json.JSONDecodeError is one) when it holds none."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f'not a command: {value!r}')
    if _RETIRE_ENGINE in value:
        try:
            return RetireEngine(int(value[_RETIRE_ENGINE]))
        except TypeError:
            raise ValueError(f'not an engine rank: {value[_RETIRE_ENGINE]!r}') from None
    if _RETIRE_CONTEXT in value:
        return RetireContext(str(value[_RETIRE_CONTEXT]))
    raise ValueError(f'unknown command {value!r}')
