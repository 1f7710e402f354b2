"""The only code that turns protocol messages into bytes and back.

A message is one ZeroMQ frame holding a JSON array: the message's tag, then its fields in declaration order. A field
that is itself a value (`TaskDone.outcome`, an `Outcome`, whose `usage` is a `ResourceUsage` or null) goes as a
nested array of its fields in declaration order, checked as strictly as the message's own.
Decoding looks the tag up in a table; anything malformed raises `CodecError` so the caller can log and drop it.
`read_greeting` reads what a hello of another protocol version still says (see `messages.py`), so the driver can
refuse it clearly instead.
Strings may hold lone surrogates (commands decoded with `surrogateescape`); JSON's `\\udcXX` escapes carry them.
"""

from __future__ import annotations

import dataclasses
import json
import operator
from collections.abc import Callable
from typing import Any

from disbatch.protocol.messages import MESSAGE_TYPES, ContextHello, Hello, Message
from disbatch.results.record import Outcome, ResourceUsage

MAX_FRAME_BYTES = 64 * 1024 * 1024

_encoder = json.JSONEncoder(ensure_ascii=True, separators=(',', ':'))
_decoder = json.JSONDecoder()


class CodecError(ValueError):
    """Bytes that are not a valid message."""


def encode(message: Message) -> bytes:
    shape = _SHAPES[type(message)]
    return _encoder.encode([shape.tag, *shape.values(message)]).encode('ascii')


def decode(frame: bytes) -> Message:
    if len(frame) > MAX_FRAME_BYTES:
        raise CodecError(f'frame of {len(frame)} bytes is over the limit')
    try:
        parts = _decoder.decode(frame.decode('ascii'))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise CodecError(f'not a JSON message: {type(error).__name__}') from None
    if not isinstance(parts, list) or not parts or not isinstance(parts[0], str):
        raise CodecError('not a tagged message')
    shape = _BY_TAG.get(parts[0])
    if shape is None:
        raise CodecError(f'unknown message tag {parts[0]!r}')
    if len(parts) != len(shape.fields) + 1:
        raise CodecError(f'{parts[0]} needs {len(shape.fields)} fields, got {len(parts) - 1}')
    values = [check(value) for check, value in zip(shape.checks, parts[1:], strict=True)]
    for name, value in zip(shape.fields, values, strict=True):
        if value is _INVALID:
            raise CodecError(f'{parts[0]}.{name} has the wrong type')
    message: Message = shape.cls(*values)
    return message


@dataclasses.dataclass(frozen=True, slots=True)
class Greeting:
    """The fields every version's hello begins with, read from a hello that does not decode."""

    tag: str  # Hello.TAG or ContextHello.TAG
    secret: str
    protocol_version: int
    software: str  # '' when the peer does not say (version 1)
    name: str  # the Hello's hostname, the ContextHello's label ('' when it does not say)


FIRST_VERSION = 1  # the protocol of hellos without a version field


def read_greeting(frame: bytes) -> Greeting | None:
    """What a malformed `Hello` or `ContextHello` (a peer of another protocol version) says of itself; None for any
    other frame."""
    try:
        parts = _decoder.decode(frame.decode('ascii')) if len(frame) <= MAX_FRAME_BYTES else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not (isinstance(parts, list) and len(parts) >= 3 and parts[0] in (Hello.TAG, ContextHello.TAG)):
        return None
    tag, secret, version = parts[0], parts[1], parts[2]
    if type(secret) is not str:
        return None
    if type(version) is not int:  # version 1: the secret, then a string (the hostname, the label)
        return Greeting(tag, secret, FIRST_VERSION, '', version if type(version) is str else '')
    return Greeting(tag, secret, version, _text(parts, 3), _text(parts, 4))


def _text(parts: list[Any], index: int) -> str:
    return parts[index] if len(parts) > index and type(parts[index]) is str else ''


class _Invalid:
    pass


_INVALID: Any = _Invalid()


# The JSON decoder makes exact built-in types, so exact type tests suffice (and keep bool out of int).
def _plain(kind: type[Any]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        return value if type(value) is kind else _INVALID

    return check


def _number(value: Any) -> Any:
    return value if type(value) is float or type(value) is int else _INVALID


def _optional_integer(value: Any) -> Any:
    return value if value is None or type(value) is int else _INVALID


def _boolean(value: Any) -> Any:
    return value if type(value) is bool else _INVALID


def _integers(value: Any) -> Any:
    return value if isinstance(value, list) and all(type(item) is int for item in value) else _INVALID


def _environment(value: Any) -> Any:
    if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return value
    return _INVALID


def _per_engine_specs(value: Any) -> Any:
    """A list of `[task_id, line_number, command]`, returned as a list of tuples."""
    if not isinstance(value, list):
        return _INVALID
    specs = []
    for entry in value:
        if not (
            isinstance(entry, list)
            and len(entry) == 3
            and type(entry[0]) is int
            and type(entry[1]) is int
            and isinstance(entry[2], str)
        ):
            return _INVALID
        specs.append((entry[0], entry[1], entry[2]))
    return specs


_CHECKS: dict[str, Callable[[Any], Any]] = {
    'str': _plain(str),
    'int': _plain(int),
    'int | None': _optional_integer,
    'float': _number,
    'bool': _boolean,
    'list[int]': _integers,
    'dict[str, str]': _environment,
    'list[PerEngineSpec]': _per_engine_specs,
}
# How a field of a value type goes on the wire (a plain field goes as it is): see _value_type below.
_ENCODERS: dict[str, Callable[[Any], Any]] = {}


def _value_type(cls: type[Any], optional: bool = False) -> None:
    """Let fields of the frozen dataclass `cls` (or of `cls | None` with `optional`) travel as an array of its
    fields, each checked by its own type's check."""
    fields = dataclasses.fields(cls)
    for field in fields:
        if str(field.type) not in _CHECKS:  # pragma: no cover - a new field type needs a check above
            raise TypeError(f'{cls.__name__}.{field.name}: no wire check for type {field.type}')
    checks = tuple(_CHECKS[str(field.type)] for field in fields)
    encoders = tuple(_ENCODERS.get(str(field.type)) for field in fields)
    getter = operator.attrgetter(*(field.name for field in fields))

    def encode_value(value: Any) -> Any:
        if value is None:
            return None
        values = getter(value)
        return [item if encoder is None else encoder(item) for encoder, item in zip(encoders, values, strict=True)]

    def check(value: Any) -> Any:
        if value is None and optional:
            return None
        if type(value) is not list or len(value) != len(checks):
            return _INVALID
        values = [field_check(item) for field_check, item in zip(checks, value, strict=True)]
        return _INVALID if any(item is _INVALID for item in values) else cls(*values)

    name = f'{cls.__name__} | None' if optional else cls.__name__
    _CHECKS[name] = check
    _ENCODERS[name] = encode_value


_value_type(ResourceUsage, optional=True)
_value_type(Outcome)


@dataclasses.dataclass(frozen=True)
class _Shape:
    """How one message class goes on the wire: its tag, its fields in order, and a check per field."""

    cls: type[Any]
    tag: str
    fields: tuple[str, ...]
    checks: tuple[Callable[[Any], Any], ...]
    values: Callable[[Any], tuple[Any, ...]]  # the message's field values, in order


def _shape(cls: type[Any]) -> _Shape:
    fields = dataclasses.fields(cls)
    for field in fields:
        if str(field.type) not in _CHECKS:  # pragma: no cover - a new field type needs a check above
            raise TypeError(f'{cls.__name__}.{field.name}: no wire check for type {field.type}')
    names = tuple(field.name for field in fields)
    getter = operator.attrgetter(*names) if names else None
    encoders = tuple(_ENCODERS.get(str(field.type)) for field in fields)
    if getter is None:
        values: Callable[[Any], tuple[Any, ...]] = lambda message: ()  # noqa: E731
    elif any(encoders):
        values = lambda message: tuple(  # noqa: E731
            item if encoder is None else encoder(item) for encoder, item in zip(encoders, getter(message), strict=True)
        )
    elif len(names) == 1:
        values = lambda message: (getter(message),)  # noqa: E731
    else:
        values = getter
    return _Shape(cls, cls.TAG, names, tuple(_CHECKS[str(field.type)] for field in fields), values)


_SHAPES: dict[type[Any], _Shape] = {cls: _shape(cls) for cls in MESSAGE_TYPES}
_BY_TAG: dict[str, _Shape] = {shape.tag: shape for shape in _SHAPES.values()}
