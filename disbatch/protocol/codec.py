"""The only code that turns protocol messages into bytes and back.

A message is one ZeroMQ frame holding a JSON array: the message's tag, then its fields in declaration order.
Decoding looks the tag up in a table; anything malformed raises `CodecError` so the caller can log and drop it.
Strings may hold lone surrogates (commands decoded with `surrogateescape`); JSON's `\\udcXX` escapes carry them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from disbatch.protocol.messages import MESSAGE_TYPES, Message

MAX_FRAME_BYTES = 64 * 1024 * 1024

_FIELDS: dict[type[Any], tuple[str, ...]] = {
    cls: tuple(field.name for field in dataclasses.fields(cls)) for cls in MESSAGE_TYPES
}
_BY_TAG: dict[str, type[Any]] = {cls.TAG: cls for cls in MESSAGE_TYPES}
_encoder = json.JSONEncoder(ensure_ascii=True, separators=(',', ':'))
_decoder = json.JSONDecoder()


class CodecError(ValueError):
    """Bytes that are not a valid message."""


def encode(message: Message) -> bytes:
    fields = _FIELDS[type(message)]
    return _encoder.encode([message.TAG, *(getattr(message, name) for name in fields)]).encode('ascii')


def decode(frame: bytes) -> Message:
    if len(frame) > MAX_FRAME_BYTES:
        raise CodecError(f'frame of {len(frame)} bytes is over the limit')
    try:
        parts = _decoder.decode(frame.decode('ascii'))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise CodecError(f'not a JSON message: {type(error).__name__}') from None
    if not isinstance(parts, list) or not parts or not isinstance(parts[0], str):
        raise CodecError('not a tagged message')
    cls = _BY_TAG.get(parts[0])
    if cls is None:
        raise CodecError(f'unknown message tag {parts[0]!r}')
    fields = _FIELDS[cls]
    if len(parts) != len(fields) + 1:
        raise CodecError(f'{parts[0]} needs {len(fields)} fields, got {len(parts) - 1}')
    values = []
    for name, value in zip(fields, parts[1:], strict=True):
        check = _CHECKS[_TYPES[cls][name]]
        converted = check(value)
        if converted is _INVALID:
            raise CodecError(f'{parts[0]}.{name} has the wrong type')
        values.append(converted)
    message: Message = cls(*values)
    return message


class _Invalid:
    pass


_INVALID: Any = _Invalid()


def _plain(kind: type[Any]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        return value if isinstance(value, kind) and not isinstance(value, bool) else _INVALID

    return check


def _number(value: Any) -> Any:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else _INVALID


def _boolean(value: Any) -> Any:
    return value if isinstance(value, bool) else _INVALID


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
    'float': _number,
    'bool': _boolean,
    'dict[str, str]': _environment,
    'list[PerEngineSpec]': _per_engine_specs,
}
_TYPES: dict[type[Any], dict[str, str]] = {
    cls: {field.name: str(field.type) for field in dataclasses.fields(cls)} for cls in MESSAGE_TYPES
}
for _cls, _field_types in _TYPES.items():
    for _name, _type in _field_types.items():
        if _type not in _CHECKS:  # pragma: no cover - a new field type needs a check above
            raise TypeError(f'{_cls.__name__}.{_name}: no wire check for type {_type}')
