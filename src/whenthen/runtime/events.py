"""Validate and coerce an event payload against its trigger's schema; errors name trigger, field, reason.

Accepts JSON values (ISO strings for datetimes and dates, numbers of seconds for durations) and
already-typed runtime values (what a rule's `emit` produces). Unknown fields are rejected, so a
misspelt optional field is an error instead of a silent null.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import math
import re
from collections.abc import Sequence
from typing import Any

from whenthen.compiler.decls import TriggerSchema
from whenthen.compiler.types import Type
from whenthen.diagnostics import EventError

MAX_PAYLOAD_BYTES = 1_000_000  # an event's JSON text; beyond this it is rejected, not stored
MAX_DEPTH = 32  # nesting of lists and objects

_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_UNITS = (604800, 86400, 3600, 60, 1)
INT_MIN, INT_MAX = -(2**63), 2**63 - 1  # SPEC 2.7: an int in a payload is 64-bit signed
_MAX_SECONDS = dt.timedelta.max.total_seconds()


class _FieldError(Exception):
    """The first bad field (`path`, `reason`); `errors` holds every one found in the object."""

    def __init__(self, path: str, reason: str, errors: list[tuple[str, str]] | None = None):
        self.path = path
        self.reason = reason
        self.errors = errors or [(path, reason)]


def validate_event(schema: TriggerSchema, data: Any) -> dict[str, Any]:
    """The payload as runtime values (absent optional fields become None), or EventError."""
    if not isinstance(data, dict):
        raise EventError(f"{schema.name}: the payload must be a JSON object, not {_kind(data)}",
                         trigger=schema.name)
    try:
        return _object(schema.type, data, "", 0)
    except _FieldError as exc:
        errors = [(path, _shown_key(reason)) for path, reason in exc.errors]
        every_field = "; ".join(f"field '{path}': {reason}" for path, reason in errors)
        error = EventError(f"{schema.name}: {every_field}", trigger=schema.name, field=exc.path)
        error.errors = errors
        raise error from None


def parse_payload(text: str | bytes, trigger: str | None = None) -> Any:
    """Parse an event's JSON text, refusing oversized or malformed input with EventError."""
    if len(text) > MAX_PAYLOAD_BYTES:
        raise EventError(f"{trigger + ': ' if trigger else ''}payload too large "
                         f"({len(text)} bytes; the limit is {MAX_PAYLOAD_BYTES})", trigger=trigger)
    try:
        return _DECODE(text) if isinstance(text, str) else json.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        raise EventError(f"{trigger + ': ' if trigger else ''}invalid JSON: the key '{_shown_key(exc.key)}' "
                         "is given twice (which one counts is not defined)", trigger=trigger) from None
    except (ValueError, RecursionError) as exc:
        raise EventError(f"{trigger + ': ' if trigger else ''}invalid JSON: {exc}", trigger=trigger) from None


class _DuplicateKey(ValueError):
    def __init__(self, key: str):
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object of the parsed JSON; a key given twice is refused, not silently the last one
    (another reader of the same text may take the first)."""
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return found


_DECODE = json.JSONDecoder(object_pairs_hook=_unique_keys).decode


def lookup_trigger(triggers: dict[str, TriggerSchema], name: Any) -> TriggerSchema:
    """The schema of trigger `name`, or EventError (with a suggestion when one is close)."""
    if not isinstance(name, str) or not name:
        raise EventError("the event has no trigger name")
    found = triggers.get(name)
    if found is None:
        close = difflib.get_close_matches(name, list(triggers), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise EventError(f"unknown trigger '{_shown_key(name)}'{hint}", trigger=_shown_key(name))
    return found


def _object(typ: Type, data: dict, prefix: str, depth: int) -> dict[str, Any]:
    """The object's fields as runtime values; every bad field is collected (the HTTP service
    names them all in one answer), the first one found is the error's message."""
    out: dict[str, Any] = {}
    errors: list[tuple[str, str]] = []
    declared = {name for name, _ in typ.fields}
    for key in data:
        if key not in declared:
            close = difflib.get_close_matches(str(key), list(declared), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            errors.append((prefix + _shown_key(key), f"unknown field{hint}"))
    for name, ftype in typ.fields:
        path = prefix + name
        if name not in data or (data[name] is None and ftype.kind not in ("json", "any")):
            if not ftype.optional:
                errors.append((path, f"missing required field of type {ftype}"
                               if name not in data else f"null is not a {ftype}"))
            out[name] = None
            continue
        try:
            out[name] = _value(ftype, data[name], path, depth + 1)
        except _FieldError as exc:
            errors.extend(exc.errors)
    if errors:
        raise _FieldError(errors[0][0], errors[0][1], errors)
    return out


def _value(typ: Type, value: Any, path: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise _FieldError(path, f"nested more than {MAX_DEPTH} levels deep")
    if value is None:
        if typ.optional or typ.kind in ("json", "any"):
            return None
        raise _FieldError(path, f"null is not a {typ}")
    kind = typ.kind
    if kind in ("json", "any"):
        return _json(value, path, depth)
    if kind == "str":
        if isinstance(value, str):
            return _text(value, path)
    elif kind == "enum":
        if isinstance(value, str):
            if value in typ.values or not _text(value, path):
                return value
            allowed = ", ".join(f"'{v}'" for v in typ.values)
            raise _FieldError(path, f"'{value}' is not one of {allowed}{_closest(value, typ.values)}")
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return _int(value, path)
        if isinstance(value, float) and value.is_integer():
            return _int(int(value), path)
    elif kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return _float(value, path)
    elif kind == "bool":
        if isinstance(value, bool):
            return value
    elif kind == "datetime":
        return _datetime(value, path)
    elif kind == "date":
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                raise _FieldError(path, f"'{value}' is not an ISO date (YYYY-MM-DD)") from None
    elif kind == "duration":
        return _duration(value, path)
    elif kind == "list":
        if isinstance(value, (list, tuple)):
            item = typ.item or Type("json")
            return [_value(item, v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    elif kind == "object":
        if isinstance(value, dict):
            return _object(typ, value, path + "." if path else "", depth)
    raise _FieldError(path, f"expected {typ.base}, got {_kind(value)}")


def _closest(value: str, allowed: Sequence[str]) -> str:
    """'; did you mean …?' for an enumeration value off by case or a typo, or ''."""
    by_case = {v.casefold(): v for v in allowed}
    close = difflib.get_close_matches(value.casefold(), list(by_case), n=1, cutoff=0.5)
    return f"; did you mean '{by_case[close[0]]}'?" if close else ""


def _text(value: str, path: str) -> str:
    """The string, unless it holds a lone surrogate (JSON's `"\\ud800"`): not Unicode text, so
    it could be neither stored nor printed."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _FieldError(path, f"not valid Unicode text (a lone surrogate at character {exc.start})") from None
    return value


def _int(value: int, path: str) -> int:
    if not INT_MIN <= value <= INT_MAX:
        raise _FieldError(path, f"integer {_short_number(value)} is out of the 64-bit range "
                                f"({INT_MIN}..{INT_MAX})")
    return value


def _float(value: int | float, path: str) -> float:
    """A float field's value as a float (SPEC 2.6: `80` renders as `80.0`), finite."""
    try:
        number = float(value)
    except OverflowError:
        raise _FieldError(path, f"number {_short_number(value)} is too large for a float") from None
    if not math.isfinite(number):
        raise _FieldError(path, "not a finite number")
    return number


def _short_number(value: int | float) -> str:
    text = str(value)
    return text if len(text) <= 30 else f"{text[:12]}…({len(text)} digits)"


def _shown_key(key: Any) -> str:
    """A field name for messages: printable whatever it holds (lone surrogates escaped)."""
    return str(key).encode("utf-8", "backslashreplace").decode("utf-8")


def _datetime(value: Any, path: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str):
        text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            raise _FieldError(path, f"'{value}' is not an ISO 8601 datetime") from None
        if len(value) <= 10:  # a bare date is not a datetime
            raise _FieldError(path, f"'{value}' is a date, not a datetime")
    else:
        raise _FieldError(path, f"expected datetime, got {_kind(value)}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    try:
        return parsed.astimezone(dt.UTC)
    except OverflowError:  # 9999-12-31T23:59-01:00 is past the last representable instant
        raise _FieldError(path, f"'{value}' is out of the datetime range") from None


def _duration(value: Any, path: str) -> dt.timedelta:
    if isinstance(value, dt.timedelta):
        return value
    # an int of any size compares with the limit exactly; math.isfinite would overflow on it
    if isinstance(value, (int, float)) and not isinstance(value, bool) and (isinstance(value, int)
                                                                            or math.isfinite(value)):
        return _seconds(value, path)
    if isinstance(value, str) and value:
        match = _DURATION.match(value)
        if match and any(match.groups()):
            return _seconds(sum(int(g or 0) * u for g, u in zip(match.groups(), _UNITS, strict=False)), path)
        raise _FieldError(path, f"'{value}' is not a duration (seconds, or like '1h30m')")
    raise _FieldError(path, f"expected duration (seconds), got {_kind(value)}")


def _seconds(value: int | float, path: str) -> dt.timedelta:
    if abs(value) > _MAX_SECONDS:
        raise _FieldError(path, f"duration of {_short_number(value)} seconds is out of range")
    return dt.timedelta(seconds=value)


def _json(value: Any, path: str, depth: int) -> Any:
    """Any JSON value, checked as the typed fields are: text is Unicode, numbers are finite,
    integers fit 64 bits (what the store can hold and every reader parses back the same)."""
    if depth > MAX_DEPTH:
        raise _FieldError(path, f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        return {_text(str(k), path): _json(v, f"{path}.{_shown_key(k)}", depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _text(value, path)
    if isinstance(value, int):
        return _int(value, path)
    if isinstance(value, float):
        if not math.isfinite(value):
            shown = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
            raise _FieldError(path, f"{shown} is not a finite number (JSON has no NaN or Infinity)")
        return value
    raise _FieldError(path, f"{_kind(value)} is not a JSON value")


def _kind(value: Any) -> str:
    """A value's kind in JSON words, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {_shown_key(json.dumps(shown, ensure_ascii=False))}"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def coerce_value(typ: Type, value: Any, what: str) -> Any:
    """One value (an action's result) against a declared type; EventError naming `what`."""
    if value is None and (typ.optional or typ.kind in ("json", "any")):
        return None
    try:
        if hasattr(value, "model_dump"):
            value = value.model_dump()
        return _value(typ, value, "", 0)
    except _FieldError as exc:
        where = f" at '{exc.path}'" if exc.path else ""
        raise EventError(f"{what}{where}: {_shown_key(exc.reason)}") from None


def parse_ingest_line(line: str) -> tuple[str, Any]:
    """One line of a file for `ingest`: `{"trigger": …, "data": {…}}` → (trigger, data). An `at`
    is refused: ingest records each event when it is ingested, on the engine's clock (`--now`);
    playing events at their own times is what `simulate` (and `demo`) do."""
    return parse_event_line(line, allow_at=False)[::2]  # type: ignore[return-value]


def parse_event_line(line: str, allow_at: bool = True) -> tuple[str, dt.datetime | None, Any]:
    """One line of an events file: `{"trigger": …, "at": …?, "data": {…}}` → (trigger, at, data)."""
    record = parse_payload(line)
    if not isinstance(record, dict):
        raise EventError(f"an event line must be a JSON object, not {_kind(record)}")
    trigger = record.get("trigger")
    if not isinstance(trigger, str) or not trigger:
        raise EventError("the event has no \"trigger\" (a trigger name like \"guest.added\")")
    if _shown_key(trigger) != trigger:
        raise EventError(f"the trigger name '{_shown_key(trigger)}' is not valid Unicode text")
    unknown = sorted(set(record) - {"trigger", "at", "data"})
    if unknown:
        raise EventError(f"{trigger}: unknown key '{_shown_key(unknown[0])}' in the event line "
                         "(expected trigger, at, data)", trigger=trigger)
    if "at" in record and not allow_at:
        raise EventError(f"{trigger}: 'at' is not used by ingest (events are recorded at the time they are "
                         "ingested; give --now to fix it, or play timed events with simulate)",
                         trigger=trigger, field="at")
    at = None
    if record.get("at") is not None:
        try:
            at = _datetime(record["at"], "at")
        except _FieldError as exc:
            raise EventError(f"{trigger}: 'at': {exc.reason}", trigger=trigger, field="at") from None
    return trigger, at, record.get("data", {})


# ----------------------------------------------------------------------------- types as data


def type_to_data(typ: Type) -> dict[str, Any]:
    """A Type as JSON-ready data (how trigger and action declarations are stored)."""
    data: dict[str, Any] = {"kind": typ.kind}
    if typ.optional:
        data["optional"] = True
    if typ.item is not None:
        data["item"] = type_to_data(typ.item)
    if typ.values:
        data["values"] = list(typ.values)
    if typ.fields:
        data["fields"] = [[name, type_to_data(t)] for name, t in typ.fields]
    return data


def type_from_data(data: dict[str, Any]) -> Type:
    return Type(
        data["kind"],
        item=type_from_data(data["item"]) if data.get("item") else None,
        values=tuple(data.get("values", ())),
        fields=tuple((name, type_from_data(t)) for name, t in data.get("fields", ())),
        optional=bool(data.get("optional", False)),
    )


def python_type(hint: Any) -> Type:
    """The whenthen type of a Python annotation (str, int, datetime, list[T], T | None,
    Literal['a', 'b'], dict/Any → json, a pydantic model or TypedDict → object)."""
    import types
    import typing

    if hint is Any or hint is None:
        return Type("json", optional=hint is None)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        base = python_type(inner[0]) if len(inner) == 1 else Type("json")
        return base.as_optional(len(inner) < len(args))
    if origin is typing.Literal:
        return Type("enum", values=tuple(str(a) for a in args))
    if origin in (list, tuple, set, frozenset):
        return Type("list", item=python_type(args[0]) if args else Type("json"))
    if origin is dict or hint is dict:
        return Type("json")
    simple = {str: "str", int: "int", float: "float", bool: "bool", dt.datetime: "datetime", dt.date: "date",
              dt.timedelta: "duration"}
    if hint in simple:
        return Type(simple[hint])
    fields = getattr(hint, "model_fields", None)  # pydantic v2
    if isinstance(fields, dict):
        return Type("object", fields=tuple((n, python_type(f.annotation)) for n, f in fields.items()))
    if isinstance(hint, type) and issubclass(hint, dict) and getattr(hint, "__annotations__", None):  # TypedDict
        try:
            annotations = typing.get_type_hints(hint)
        except Exception:  # unresolvable forward references: keep the fields, untyped
            annotations = {name: Any for name in hint.__annotations__}
        return Type("object", fields=tuple((n, python_type(t)) for n, t in annotations.items()))
    return Type("json")

