"""The contract's dataclass ⇄ JSON mapping: written in field order, read back tolerantly."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from disbatch.contract.json_fields import EMPTY_WHEN_NONE, OMITTED_WHEN_DEFAULT, JsonFields, from_json, to_json


class Colour(enum.Enum):
    RED = 'red'
    BLUE = 'blue'


@dataclass(frozen=True, slots=True)
class Part:
    name: str
    size: int = 0


@dataclass(frozen=True, slots=True)
class Whole(JsonFields):
    count: int = 0
    ratio: float = 0.0
    on: bool = False
    colour: Colour = Colour.RED
    parts: tuple[Part, ...] = ()
    by_name: Mapping[str, Part] = field(default_factory=dict)
    best: Part | None = None
    extra: Part | None = field(default=None, metadata=EMPTY_WHEN_NONE)
    note: str = field(default='', metadata=OMITTED_WHEN_DEFAULT)


def test_written_in_field_order_and_read_back() -> None:
    whole = Whole(3, 0.5, True, Colour.BLUE, (Part('a', 1),), {'b': Part('b')}, Part('c'), Part('d'), 'hi')
    written = whole.to_json()
    assert list(written) == ['count', 'ratio', 'on', 'colour', 'parts', 'by_name', 'best', 'extra', 'note']
    assert written['colour'] == 'blue' and written['parts'] == [{'name': 'a', 'size': 1}]
    assert Whole.from_json(written) == whole


def test_defaults_left_out_or_written_empty() -> None:
    assert 'note' not in Whole().to_json()
    assert Whole().to_json()['extra'] == {} and Whole.from_json({'extra': {}}).extra is None


def test_wrong_types_count_as_missing() -> None:
    read = Whole.from_json({'count': True, 'ratio': 2, 'on': 1, 'colour': 'green', 'best': 'x', 'unknown': 1})
    assert read == Whole(ratio=2)
    assert isinstance(read.ratio, int)  # a whole number written stays one


def test_an_object_without_its_required_field_is_left_out() -> None:
    read = Whole.from_json({'parts': [{'size': 1}, {'name': 'a'}, 3], 'by_name': {'x': {}, 'y': {'name': 'y'}}})
    assert read.parts == (Part('a'),) and read.by_name == {'y': Part('y')}
    assert from_json(Part, {'size': 2}) is None and from_json(Part, []) is None
    assert to_json(Part('p')) == {'name': 'p', 'size': 0}
