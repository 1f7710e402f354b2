"""The only code that turns protocol messages into bytes and back.

A message is one ZeroMQ frame holding a JSON array: the message's tag, then its fields in declaration order.
Decoding looks the tag up in a table; anything malformed raises `CodecError` so the caller can log and drop it.
Strings may hold lone surrogates (commands decoded with `surrogateescape`); JSON's `\\udcXX` escapes carry them.
"""

from __future__ import annotations

import dataclasses
import json
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
    except (UnicodeDecodeError, ValueError) as error:
        raise CodecError(f'not a JSON message: {error}') from None
    if not isinstance(parts, list) or not parts or not isinstance(parts[0], str):
        raise CodecError('not a tagged message')
    cls = _BY_TAG.get(parts[0])
    if cls is None:
        raise CodecError(f'unknown message tag {parts[0]!r}')
    fields = _FIELDS[cls]
    if len(parts) != len(fields) + 1:
        raise CodecError(f'{parts[0]} needs {len(fields)} fields, got {len(parts) - 1}')
    message: Message = cls(*parts[1:])
    _check_types(message)
    return message


def _check_types(message: Message) -> None:
    """Reject a well-formed array whose values have the wrong JSON types (hostile or buggy peer)."""
    for field in dataclasses.fields(message):
        value = getattr(message, field.name)
        expected = _JSON_TYPES.get(str(field.type))
        if expected is None:
            continue
        if isinstance(value, bool) and expected is not bool:
            raise CodecError(f'{message.TAG}.{field.name} has the wrong type')
        if not isinstance(value, expected):
            raise CodecError(f'{message.TAG}.{field.name} has the wrong type')


_JSON_TYPES: dict[str, type[Any] | tuple[type[Any], ...]] = {
    'str': str,
    'int': int,
    'float': (int, float),
    'bool': bool,
    'dict[str, str]': dict,
    'list[PerEngineSpec]': list,
}
