"""Subscribe responses read without copying their arrays' bytes.

The protobuf runtime copies every `bytes` field twice on the way to NumPy: into its own memory when
it parses, and again into a new `bytes` when the field is read. For a batch, that is its whole
payload, twice. Here each column's `Array.data` of `MIN_VIEW_BYTES` or more is cut out of the
received message before it is parsed, and handed on as a view of the message grpc received: the
rest (a few hundred bytes) is parsed as usual. What is cut is found by walking the wire format
along SubscribeResponse.batch (3) -> EventBatch.columns (6) -> Columns.fields (1, map entries:
key 1, value 2) -> Array.data (3); the field numbers are the proto's (test_wire.py checks them).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from lclstream.buffer.v1 import buffer_pb2

#: Smaller arrays are parsed as usual: a copy of them costs less than the walk.
MIN_VIEW_BYTES = 4096

_BATCH, _COLUMNS, _FIELDS, _KEY, _VALUE, _DATA = 3, 6, 1, 1, 2, 3


class Received(NamedTuple):
    """A SubscribeResponse, the bytes of the columns cut out of it (by column name), and its size on the wire."""

    response: buffer_pb2.SubscribeResponse
    views: dict[str, memoryview]
    size: int


def received(raw: bytes) -> Received:
    """The response deserializer for Subscribe: see the module's docstring. A message this walk cannot
    read is parsed whole, so a malformed one fails as the protobuf runtime says."""
    views: dict[str, memoryview] = {}
    try:
        stripped = _rewrite(memoryview(raw), 0, len(raw), _batch(views))
    except (IndexError, ValueError):
        views, stripped = {}, None
    return Received(buffer_pb2.SubscribeResponse.FromString(raw if stripped is None else stripped), views, len(raw))


# A visitor is given a length-delimited field (number, the message, where its value starts and ends) and
# returns what the whole field becomes (its tag included), or None to keep it as it is.
Visitor = Callable[[int, memoryview, int, int], "bytes | None"]


def _batch(views: dict[str, memoryview]) -> Visitor:
    def columns(number: int, raw: memoryview, start: int, end: int) -> bytes | None:
        return entry(number, raw, start, end) if number == _FIELDS else None

    def entry(number: int, raw: memoryview, start: int, end: int) -> bytes | None:
        # A map entry: its key names what its value's data was cut into (the last entry of a key wins).
        key, cut = [""], []

        def field(n: int, r: memoryview, s: int, e: int) -> bytes | None:
            if n == _KEY:
                key[0] = bytes(r[s:e]).decode()
            return _nested(n, r, s, e, data(cut)) if n == _VALUE else None

        out = _nested(number, raw, start, end, field)
        if cut:
            views[key[0]] = cut[-1]
        else:
            views.pop(key[0], None)
        return out

    def data(cut: list[memoryview]) -> Visitor:
        def visit(number: int, raw: memoryview, start: int, end: int) -> bytes | None:
            if number != _DATA or end - start < MIN_VIEW_BYTES:
                return None
            cut.append(raw[start:end])
            return b""

        return visit

    def batch(number: int, raw: memoryview, start: int, end: int) -> bytes | None:
        return _nested(number, raw, start, end, columns) if number == _COLUMNS else None

    return lambda number, raw, start, end: _nested(number, raw, start, end, batch) if number == _BATCH else None


def _nested(number: int, raw: memoryview, start: int, end: int, visit: Visitor) -> bytes | None:
    """A message field rewritten by `visit`, or None when nothing in it changed."""
    body = _rewrite(raw, start, end, visit)
    return None if body is None else _varint_bytes(number << 3 | 2) + _varint_bytes(len(body)) + body


def _rewrite(raw: memoryview, start: int, end: int, visit: Visitor) -> bytes | None:
    """The message in raw[start:end] with the fields `visit` replaces replaced; None when it replaces none."""
    parts: list[bytes | memoryview] = []
    kept = i = start
    while i < end:
        field_start = i
        key, i = _varint(raw, i)
        wire = key & 7
        if wire == 2:
            n, i = _varint(raw, i)
            value_start, i = i, i + n
            if i > end:
                raise ValueError("a field runs past its message")
            new = visit(key >> 3, raw, value_start, i)
            if new is not None:
                parts += (raw[kept:field_start], new)
                kept = i
        elif wire == 0:
            _, i = _varint(raw, i)
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
        else:
            raise ValueError(f"wire type {wire}, which no lclstream message uses")
    if i != end:
        raise ValueError("a field runs past its message")
    if not parts:
        return None
    parts.append(raw[kept:end])
    return b"".join(parts)


def _varint(raw: memoryview, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = raw[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise ValueError("a varint longer than 10 bytes")


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
