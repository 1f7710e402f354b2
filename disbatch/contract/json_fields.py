"""One small, tolerant mapping between the contract's frozen dataclasses and JSON. Pure.

Writing: each field under its own name, in the dataclass's order; a nested dataclass as an object, a tuple as a
list, a mapping as an object, an enum as its value. A field with `OMITTED_WHEN_DEFAULT` as its metadata is left out
while it holds its default; one with `EMPTY_WHEN_NONE` is written `{}` for None (and `{}` reads back as None).

Reading is tolerant, since a newer or older writer may have written: a missing key takes the field's default, an
unknown key is ignored, a value of the wrong type counts as missing (an integer is no bool and a bool no integer; a
number read as a float stays an integer, so what was written reads back the same). An object that lacks a field
without a default is not one: it reads as None, and is left out of the list or mapping that held it.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

Json = dict[str, object]
T = TypeVar('T')
Fields = TypeVar('Fields', bound='JsonFields')

_OMITTED_WHEN_DEFAULT = 'omitted when default'
_EMPTY_WHEN_NONE = 'empty when none'
OMITTED_WHEN_DEFAULT: Mapping[str, bool] = types.MappingProxyType({_OMITTED_WHEN_DEFAULT: True})
EMPTY_WHEN_NONE: Mapping[str, bool] = types.MappingProxyType({_EMPTY_WHEN_NONE: True})
_MISSING = object()


def to_json(instance: object) -> Json:
    """The dataclass `instance` as a JSON object."""
    view: Json = {}
    cls: Any = type(instance)  # Any: mypy takes no class for the Hashable that a cache's key must be
    for name, write, omitted_when in _writers(cls):
        value = getattr(instance, name)
        if value != omitted_when:
            view[name] = write(value)
    return view


def from_json(cls: type[T], data: object) -> T | None:
    """An instance of the dataclass `cls` read from `data`; None when `data` is no object or lacks a field that
    has no default."""
    value = _read(cls, data)
    return None if value is _MISSING else typing.cast(T, value)


class JsonFields:
    """`to_json()` and `from_json()` for a frozen dataclass of the contract, through this module."""

    __slots__ = ()

    def to_json(self) -> Json:
        return to_json(self)

    @classmethod
    def from_json(cls: type[Fields], data: object) -> Fields:
        """What `data` says (anything that is no object reads as an empty one); ValueError when it lacks a field
        that has no default."""
        value = from_json(cls, data if isinstance(data, dict) else {})
        if value is None:
            raise ValueError(f'not a {cls.__name__}: {data!r}')
        return value


_NOTHING = object()  # `omitted_when` of a field that is always written
Writer = Callable[[Any], object]


def _same(value: object) -> object:
    return value


@functools.cache
def _writers(cls: Any) -> tuple[tuple[str, Writer, object], ...]:
    """(name, how its value is written, the value for which its key is left out) of each field of `cls`: worked
    out once per class, since the driver writes its snapshot every second."""
    writers = []
    for field, kind in _field_types(cls):
        write = _writer(kind)
        if field.metadata.get(_EMPTY_WHEN_NONE):
            write = functools.partial(_empty_when_none, write)
        omitted_when = field.default if field.metadata.get(_OMITTED_WHEN_DEFAULT) else _NOTHING
        writers.append((field.name, write, omitted_when))
    return tuple(writers)


def _empty_when_none(write: Writer, value: object) -> object:
    return {} if value is None else write(value)


def _writer(kind: Any) -> Writer:
    origin, arguments = typing.get_origin(kind), typing.get_args(kind)
    if origin is typing.Union or origin is types.UnionType:
        written = [_writer(argument) for argument in arguments if argument is not type(None)]
        if len(written) == 1 and written[0] is _same:
            return _same
        return _write_any
    if origin is tuple:
        item = _writer(arguments[0])
        return _same_list if item is _same else functools.partial(_list, item)
    if origin is Mapping or origin is dict:
        return functools.partial(_object, _writer(arguments[1]))
    if dataclasses.is_dataclass(kind):
        return to_json
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return _enum_value
    return _same


def _same_list(values: Iterable[object]) -> object:
    return list(values)


def _list(write: Writer, values: Iterable[object]) -> object:
    return [write(value) for value in values]


def _object(write: Writer, values: Mapping[str, object]) -> object:
    return {key: write(value) for key, value in values.items()}


def _enum_value(value: enum.Enum) -> object:
    return value.value


def _write_any(value: object) -> object:
    """A value whose field's type allows several kinds (`WalltimeView | None`, ...)."""
    if value is None:
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_json(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (tuple, list)):
        return [_write_any(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _write_any(item) for key, item in value.items()}
    return value


@functools.cache
def _field_types(cls: Any) -> tuple[tuple[dataclasses.Field[Any], Any], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((field, hints[field.name]) for field in dataclasses.fields(cls))


Reader = Callable[[object], object]  # a JSON value to a field's value, or _MISSING


@functools.cache
def _readers(cls: Any) -> tuple[tuple[str, Reader, bool, bool], ...]:
    """(name, how its value is read, whether it must be there, whether `{}` is None) of each field of `cls`."""
    return tuple(
        (
            field.name,
            _reader(kind),
            field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING,
            bool(field.metadata.get(_EMPTY_WHEN_NONE)),
        )
        for field, kind in _field_types(cls)
    )


def _read_object(cls: Any, data: object) -> object:
    if not isinstance(data, dict):
        return _MISSING
    values = {}
    for name, read, required, empty_is_none in _readers(cls):
        found = data.get(name, _MISSING)
        value = _MISSING if found is _MISSING or (empty_is_none and found == {}) else read(found)
        if value is not _MISSING:
            values[name] = value
        elif required:
            return _MISSING
    return cls(**values)


def _read(kind: Any, data: object) -> object:
    return _MISSING if data is _MISSING else _reader(kind)(data)


@functools.cache
def _reader(kind: Any) -> Reader:
    origin, arguments = typing.get_origin(kind), typing.get_args(kind)
    if origin is typing.Union or origin is types.UnionType:
        return functools.partial(
            _read_union, type(None) in arguments, tuple(_reader(each) for each in arguments if each is not type(None))
        )
    if origin is tuple:
        return functools.partial(_read_tuple, _reader(arguments[0]))
    if origin is Mapping or origin is dict:
        return functools.partial(_read_mapping, _reader(arguments[1]))
    if dataclasses.is_dataclass(kind):
        return functools.partial(_read_object, kind)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return functools.partial(_read_enum, kind)
    if kind is bool:
        return _read_bool
    if kind is int:
        return _read_int
    if kind is float:
        return _read_number
    return functools.partial(_read_instance, kind)


def _read_union(none_allowed: bool, readers: tuple[Reader, ...], data: object) -> object:
    if data is None and none_allowed:
        return None
    for read in readers:
        if (value := read(data)) is not _MISSING:
            return value
    return _MISSING


def _read_tuple(read: Reader, data: object) -> object:
    if not isinstance(data, list):
        return _MISSING
    return tuple(value for item in data if (value := read(item)) is not _MISSING)


def _read_mapping(read: Reader, data: object) -> object:
    if not isinstance(data, dict):
        return _MISSING
    return {key: value for key, item in data.items() if (value := read(item)) is not _MISSING}


def _read_enum(kind: type[enum.Enum], data: object) -> object:
    try:
        return kind(data)
    except ValueError:
        return _MISSING


def _read_bool(data: object) -> object:
    return data if isinstance(data, bool) else _MISSING


def _read_int(data: object) -> object:
    return data if isinstance(data, int) and not isinstance(data, bool) else _MISSING


def _read_number(data: object) -> object:
    """A float, or an integer that stays one (so what was written reads back the same)."""
    return data if isinstance(data, (int, float)) and not isinstance(data, bool) else _MISSING


def _read_instance(kind: type, data: object) -> object:
    return data if isinstance(data, kind) else _MISSING
