"""Values: msgpack packing of datetimes/dates/durations, and the one formatter of each kind (text, JSON).

Runtime values are plain Python (see docs/architecture.md): str, int, float, bool, None, aware
`datetime` (normalised to UTC when stored), `date`, `timedelta`, list and dict. msgpack has no
types for the three time values, so they travel as ext types; everything else is native.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import struct
from typing import Any

import msgpack

from whenthen.calendar import zone
from whenthen.diagnostics import WhenthenError

UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)

# msgpack ext type codes: the payload of each is one big-endian signed 64-bit integer.
EXT_DATETIME = 1  # microseconds since 1970-01-01T00:00Z
EXT_DATE = 2  # proleptic Gregorian ordinal
EXT_DURATION = 3  # microseconds
_INT64 = struct.Struct(">q")


class UnstorableValue(WhenthenError):
    """A value cannot be stored (not a whenthen runtime value)."""


def _micros(delta: dt.timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _default(value: Any) -> msgpack.ExtType:
    # datetime is a subclass of date: test it first.
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)  # naive datetimes are UTC at run time
        return msgpack.ExtType(EXT_DATETIME, _INT64.pack(_micros(value - _EPOCH)))
    if isinstance(value, dt.date):
        return msgpack.ExtType(EXT_DATE, _INT64.pack(value.toordinal()))
    if isinstance(value, dt.timedelta):
        return msgpack.ExtType(EXT_DURATION, _INT64.pack(_micros(value)))
    if isinstance(value, tuple):
        return list(value)
    raise UnstorableValue(f"cannot store a value of type {type(value).__name__}")


def _ext_hook(code: int, data: bytes) -> Any:
    if len(data) != 8:
        raise UnstorableValue(f"bad ext value of type {code}")
    (number,) = _INT64.unpack(data)
    if code == EXT_DATETIME:
        return _EPOCH + dt.timedelta(microseconds=number)
    if code == EXT_DATE:
        return dt.date.fromordinal(number)
    if code == EXT_DURATION:
        return dt.timedelta(microseconds=number)
    raise UnstorableValue(f"unknown ext type {code}")


def pack(value: Any) -> bytes:
    """Encode a runtime value (or a structure of them) with msgpack."""
    try:
        return msgpack.packb(value, default=_default, use_bin_type=True, strict_types=False)
    except (TypeError, OverflowError) as exc:
        raise UnstorableValue(f"cannot store value: {exc}") from None


def unpack(data: bytes) -> Any:
    """Decode what `pack` produced (lists stay lists; map keys may be any hashable value)."""
    return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)


def normalize(value: Any) -> Any:
    """A value from outside (an action's result) as a runtime value: tuples become lists; a type
    that cannot be stored raises UnstorableValue."""
    if value is None or isinstance(value, (str, bool, int, float, dt.date, dt.timedelta)):
        return value
    if isinstance(value, (list, tuple)):
        return [normalize(item) for item in value]
    if isinstance(value, dict):
        return {key if isinstance(key, str) else str(key): normalize(item) for key, item in value.items()}
    raise UnstorableValue(f"a value of type {type(value).__name__} is not a whenthen value")


# ----------------------------------------------------------------------------- rendering


def format_duration(value: dt.timedelta) -> str:
    """A duration compactly, in the literal syntax: `1h30m`, `2d`, `0s`, `-15m`, `1.5s`."""
    micros = _micros(value)
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    seconds, frac = divmod(micros, 1_000_000)
    parts = []
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    if frac:
        parts.append(f"{seconds}.{frac:06d}".rstrip("0") + "s")
    elif seconds or not parts:
        parts.append(f"{seconds}s")
    return sign + "".join(parts)


_last_utc: tuple[dt.datetime | None, str] = (None, "")


def format_datetime(value: dt.datetime, timezone: str | None = None) -> str:
    """A datetime as ISO 8601, the one way whenthen prints one: in `timezone` (UTC shown as `Z`,
    other zones with their offset), seconds always, a fraction only when present and without
    trailing zeros: `2026-11-22T10:00:00Z`, `2026-11-22T10:00:00.5Z`, `2026-03-01T10:00:00+01:00`."""
    global _last_utc
    tz = zone(timezone)
    if tz is UTC:
        last, text = _last_utc
        if value == last and value.tzinfo is not None:  # the engine formats one instant several times per event
            return text
    local = (value.replace(tzinfo=UTC) if value.tzinfo is None else value).astimezone(tz)
    text = f"{local.year:04d}-{local.month:02d}-{local.day:02d}T{local.hour:02d}:{local.minute:02d}:{local.second:02d}"
    if local.microsecond:
        text += f".{local.microsecond:06d}".rstrip("0")
    if tz is UTC:
        text += "Z"
        _last_utc = (value, text)
        return text
    offset = local.utcoffset() or dt.timedelta()
    total = int(offset.total_seconds())
    sign = "-" if total < 0 else "+"
    minutes, seconds = divmod(abs(total), 60)
    hours, minutes = divmod(minutes, 60)
    text += f"{sign}{hours:02d}:{minutes:02d}"
    return text + f":{seconds:02d}" if seconds else text  # old local mean times had seconds


def format_date(value: dt.date) -> str:
    """A date as ISO 8601: `2026-12-01`."""
    return value.isoformat()


def format_number(value: int | float) -> str:
    """Numbers as in JSON: `80`, `12.5`, `80.0`."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return json.dumps(value)


def render(value: Any, timezone: str | None = None) -> str:
    """The text of a value inside a template (SPEC 2.6). Never evaluates what it inserts."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return format_number(value)
    if isinstance(value, dt.datetime):
        return format_datetime(value, timezone)
    if isinstance(value, dt.date):
        return format_date(value)
    if isinstance(value, dt.timedelta):
        return format_duration(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(render(item, timezone) for item in value)
    if isinstance(value, dict):
        return json.dumps(to_json(value), ensure_ascii=False, separators=(", ", ": "))
    return str(value)


# ----------------------------------------------------------------------------- JSON


def to_json(value: Any) -> Any:
    """A runtime value as JSON data for traces: datetimes ISO 8601 UTC with `Z`, durations as
    seconds (an int when whole), dates `YYYY-MM-DD`."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.datetime):
        return format_datetime(value, None)
    if isinstance(value, dt.date):
        return format_date(value)
    if isinstance(value, dt.timedelta):
        seconds = value.total_seconds()
        return int(seconds) if seconds == int(seconds) else seconds
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    return str(value)


def type_name(value: Any) -> str:
    """The whenthen type name of a runtime value, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, dt.datetime):
        return "datetime"
    if isinstance(value, dt.date):
        return "date"
    if isinstance(value, dt.timedelta):
        return "duration"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
