"""Operator semantics of SPEC 2.4 (null handling, int/float mixing, time arithmetic), shared by the
VM and the filter fast path so both give the same answers.

Each function takes runtime values and returns one; a type surprise (possible with `json`
values) raises `RuntimeFailure` with a readable message, which the VM turns into a failed run
(and a filter into false).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from whenthen import regex
from whenthen.diagnostics import RuntimeFailure
from whenthen.values import type_name

# -- truth and tests


def truthy(value: Any) -> bool:
    """A condition's value: only `true` counts (null, and non-booleans from json, are false)."""
    return value is True


def not_(value: Any) -> bool:
    return value is not True


def is_null(value: Any) -> bool:
    return value is None


def is_empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, (list, tuple, dict)) and len(value) == 0)


# -- equality: null is a value; bool is not a number


def eq(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    if (a.__class__ is bool) != (b.__class__ is bool):
        return False  # Python says True == 1; whenthen does not
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(eq(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def ne(a: Any, b: Any) -> bool:
    return not eq(a, b)


# -- ordering: false with a null operand


def _fail(op: str, a: Any, b: Any) -> RuntimeFailure:
    return RuntimeFailure(f"cannot apply '{op}' to {type_name(a)} and {type_name(b)}")


def _order(op: str, compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def ordered(a: Any, b: Any) -> bool:
        if a is None or b is None:
            return False
        try:
            return compare(a, b)
        except TypeError:
            raise _fail(op, a, b) from None

    ordered.__name__ = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge"}[op]
    return ordered


lt = _order("<", lambda a, b: a < b)
le = _order("<=", lambda a, b: a <= b)
gt = _order(">", lambda a, b: a > b)
ge = _order(">=", lambda a, b: a >= b)


# -- tests on strings and lists: false with a null operand


def member(item: Any, items: list[Any]) -> bool:
    """List membership with `=` semantics."""
    return any(eq(x, item) for x in items)


def contains(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    if isinstance(a, str):
        if not isinstance(b, str):
            raise _fail("contains", a, b)
        return b in a
    if isinstance(a, list):
        return member(b, a)
    raise _fail("contains", a, b)


def starts_with(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    if not (isinstance(a, str) and isinstance(b, str)):
        raise _fail("starts with", a, b)
    return a.startswith(b)


def ends_with(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    if not (isinstance(a, str) and isinstance(b, str)):
        raise _fail("ends with", a, b)
    return a.endswith(b)


def in_(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    if not isinstance(b, list):
        raise _fail("in", a, b)
    return member(a, b)


def not_in(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    if not isinstance(b, list):
        raise _fail("not in", a, b)
    return not member(a, b)


def matches(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    if not (isinstance(a, str) and isinstance(b, str)):
        raise _fail("matches", a, b)
    try:
        return regex.search(b, a)
    except regex.RegexError as exc:
        raise RuntimeFailure(f"invalid regular expression {b!r}: {exc}") from None


# -- arithmetic: null in, null out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and value.__class__ is not bool


def _arith(op: str, compute: Callable[[Any, Any], Any], allowed: Callable[[Any, Any], bool]):
    def arith(a: Any, b: Any) -> Any:
        if a is None or b is None:
            return None
        if not allowed(a, b):
            raise _fail(op, a, b)
        try:
            result = compute(a, b)
        except ZeroDivisionError:
            raise RuntimeFailure("division by zero") from None
        except OverflowError:
            raise _overflow(op, a, b) from None
        except (TypeError, ValueError):
            raise _fail(op, a, b) from None
        return _finite(result, op, a, b)

    return arith


INT_MIN, INT_MAX = -(2**63), 2**63 - 1  # SPEC 2.7: ints are 64-bit, in payloads and results


def _finite(result: Any, op: str, a: Any, b: Any) -> Any:
    """SPEC 2.7: a result that is not a finite number (or an int past 64 bits) is a run-time error."""
    cls = result.__class__
    if cls is float:
        if result - result != 0.0:  # inf or NaN, without a call per operation
            raise RuntimeFailure(f"arithmetic overflow: {_show(a)} {op} {_show(b)} is not a finite number")
    elif cls is int and not INT_MIN <= result <= INT_MAX:
        raise RuntimeFailure(f"arithmetic overflow: {_show(a)} {op} {_show(b)} is outside the 64-bit integer range")
    return result


def _overflow(op: str, a: Any, b: Any) -> RuntimeFailure:
    if isinstance(a, (dt.date, dt.timedelta)) or isinstance(b, (dt.date, dt.timedelta)):
        return RuntimeFailure(f"{_show(a)} {op} {_show(b)}: the result is out of the datetime range")
    return RuntimeFailure(f"arithmetic overflow: {_show(a)} {op} {_show(b)} is not a finite number")


def _show(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:20] + "…"


def _add_ok(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return True
    if isinstance(a, str) and isinstance(b, str):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return True
    if isinstance(b, dt.timedelta):
        return isinstance(a, (dt.date, dt.timedelta))  # datetime is a date
    return isinstance(a, dt.timedelta) and isinstance(b, dt.date)


def _sub_ok(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return True
    if isinstance(b, dt.timedelta):
        return isinstance(a, (dt.date, dt.timedelta))
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        return True
    return type(a) is dt.date and type(b) is dt.date


def _mul_ok(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return True
    return (_is_number(a) and isinstance(b, dt.timedelta)) or (isinstance(a, dt.timedelta) and _is_number(b))


def _div_ok(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return True
    return isinstance(a, dt.timedelta) and (_is_number(b) or isinstance(b, dt.timedelta))


def _mod_ok(a: Any, b: Any) -> bool:
    return (_is_number(a) and _is_number(b)) or (isinstance(a, dt.timedelta) and isinstance(b, dt.timedelta))


def _plus(a: Any, b: Any) -> Any:
    if isinstance(a, dt.timedelta) and isinstance(b, dt.date):
        a, b = b, a
    if type(a) is dt.date and isinstance(b, dt.timedelta):
        return a + dt.timedelta(days=b.days)  # date ± duration moves whole days
    return a + b


def _minus(a: Any, b: Any) -> Any:
    if type(a) is dt.date and isinstance(b, dt.timedelta):
        return a - dt.timedelta(days=b.days)
    return a - b


add = _arith("+", _plus, _add_ok)
sub = _arith("-", _minus, _sub_ok)
mul = _arith("*", lambda a, b: a * b, _mul_ok)
div = _arith("/", lambda a, b: a / b, _div_ok)  # numbers: always a float, as the checker types it
mod = _arith("%", lambda a, b: a % b, _mod_ok)


def neg(value: Any) -> Any:
    if value is None:
        return None
    if _is_number(value):
        return _finite(-value, "-", 0, value)
    if isinstance(value, dt.timedelta):
        try:
            return -value
        except OverflowError:
            raise RuntimeFailure(f"-{_show(value)}: the result is out of the duration range") from None
    raise RuntimeFailure(f"cannot negate {type_name(value)}")


MAX_TEXT = 1_000_000  # characters in one rendered template


def build_string(parts: list[str] | tuple[str, ...]) -> str:
    """A template's rendered parts joined, within the template output limit."""
    text = "".join(parts)
    if len(text) > MAX_TEXT:
        raise RuntimeFailure(f"template output too long: {len(text)} characters (limit {MAX_TEXT})")
    return text


def attr(obj: Any, name: str) -> Any:
    """Member access: null on null or an absent key."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    raise RuntimeFailure(f"cannot read field '{name}' of {type_name(obj)}")
