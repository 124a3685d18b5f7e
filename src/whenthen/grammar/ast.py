"""The only AST definition: frozen, slotted dataclasses; `span` and `id` are excluded from equality.

Every node has a `span` (where it is in its file) and an `id` (unique in the process), both
keyword-only and ignored by `==`, so `parse(print(ast)) == ast` compares structure only. The
checker keeps types and name resolutions in side tables keyed by `node.id`.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field

from whenthen.calendar import SCHEDULE_TRIGGER as _SCHEDULE_TRIGGER
from whenthen.diagnostics import NO_SPAN, Span

_ids = itertools.count(1)


def _next_id() -> int:
    return next(_ids)


@dataclass(frozen=True, slots=True)
class Node:
    span: Span = field(default=NO_SPAN, compare=False, repr=False, kw_only=True)
    id: int = field(default_factory=_next_id, compare=False, repr=False, kw_only=True)


# ----------------------------------------------------------------------------- type expressions


@dataclass(frozen=True, slots=True)
class NamedType(Node):
    """`str`, `int`, `float`, `bool`, `datetime`, `date`, `duration`, `json`."""

    name: str


@dataclass(frozen=True, slots=True)
class ListType(Node):
    item: TypeExpr


@dataclass(frozen=True, slots=True)
class EnumType(Node):
    """`'a' | 'b'` — a subtype of str."""

    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FieldDecl(Node):
    """`name: TYPE` inside `trigger NAME { … }` or a nested `{ … }` type."""

    name: str
    type: TypeExpr


@dataclass(frozen=True, slots=True)
class ObjectType(Node):
    fields: tuple[FieldDecl, ...]


@dataclass(frozen=True, slots=True)
class OptionalType(Node):
    """`T?` (for an enumeration, `'a' | 'b'?` makes the whole enumeration optional)."""

    inner: TypeExpr


TypeExpr = NamedType | ListType | EnumType | ObjectType | OptionalType


# ----------------------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True)
class StrLit(Node):
    """A single-quoted literal string (no interpolation)."""

    value: str


@dataclass(frozen=True, slots=True)
class Template(Node):
    """A double-quoted string: text parts (str, braces already unescaped) and `{expr}` parts."""

    parts: tuple[str | Expr, ...]


@dataclass(frozen=True, slots=True)
class IntLit(Node):
    value: int


@dataclass(frozen=True, slots=True)
class FloatLit(Node):
    value: float


@dataclass(frozen=True, slots=True)
class BoolLit(Node):
    value: bool


@dataclass(frozen=True, slots=True)
class NullLit(Node):
    pass


@dataclass(frozen=True, slots=True)
class DurationLit(Node):
    """`90s 15m 24h 2d 1w 1h30m`, as a whole number of seconds."""

    seconds: int


@dataclass(frozen=True, slots=True)
class DateLit(Node):
    value: dt.date


@dataclass(frozen=True, slots=True)
class DateTimeLit(Node):
    """A datetime literal; naive (`tzinfo is None`) when written without an offset, in which case it
    is in the file's `timezone` (UTC when none) — the checker/codegen apply that zone."""

    value: dt.datetime


@dataclass(frozen=True, slots=True)
class ListLit(Node):
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class ObjField(Node):
    """One `key: value` of an object literal."""

    name: str
    value: Expr


@dataclass(frozen=True, slots=True)
class ObjectLit(Node):
    """`{key: expr, …}` (SPEC 2.3): builds a value of type `{ key: T, … }`."""

    fields: tuple[ObjField, ...]


@dataclass(frozen=True, slots=True)
class Name(Node):
    """A bare name; what it refers to (let, field, alias, `event`) is decided by the checker."""

    name: str


@dataclass(frozen=True, slots=True)
class Attr(Node):
    """`obj.name` — member access."""

    obj: Expr
    name: str


@dataclass(frozen=True, slots=True)
class Arg(Node):
    """One call or emit argument: `name: value`, or positional when `name` is None."""

    name: str | None
    value: Expr


@dataclass(frozen=True, slots=True)
class Call(Node):
    """`f(args…)` — a stdlib function or an action; which one is decided by the checker."""

    func: str
    args: tuple[Arg, ...]


@dataclass(frozen=True, slots=True)
class Unary(Node):
    """`not X` or `-X`."""

    op: str
    operand: Expr


# Binary operators, as stored in `Binary.op`:
#   arithmetic  + - * / %
#   logic       and or
#   comparison  = != < <= > >=      (`==` is stored as `=`)
#   tests       contains, starts with, ends with, in, not in, matches
ARITHMETIC_OPS = ("+", "-", "*", "/", "%")
LOGIC_OPS = ("and", "or")
COMPARISON_OPS = ("=", "!=", "<", "<=", ">", ">=")
TEST_OPS = ("contains", "starts with", "ends with", "in", "not in", "matches")


@dataclass(frozen=True, slots=True)
class Binary(Node):
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Is(Node):
    """`X is [not] null` / `X is [not] empty`; `what` is 'null' or 'empty'."""

    operand: Expr
    what: str
    negated: bool


Expr = (
    StrLit | Template | IntLit | FloatLit | BoolLit | NullLit | DurationLit | DateLit | DateTimeLit
    | ListLit | ObjectLit | Name | Attr | Call | Unary | Binary | Is
)


# ----------------------------------------------------------------------------- statements


@dataclass(frozen=True, slots=True)
class CallStmt(Node):
    """An action called as a statement."""

    call: Call


@dataclass(frozen=True, slots=True)
class WaitFor(Node):
    """`wait for TRIGGER [where COND] [within EXPR]`; as a statement or the value of a `let`."""

    trigger: str
    where: Expr | None
    within: Expr | None
    trigger_span: Span = field(default=NO_SPAN, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Let(Node):
    """`let name = value` where value is an expression, an action call or a `wait for`."""

    name: str
    value: Expr | WaitFor
    name_span: Span = field(default=NO_SPAN, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Wait(Node):
    """`wait EXPR` (a duration)."""

    duration: Expr


@dataclass(frozen=True, slots=True)
class WaitUntil(Node):
    """`wait until EXPR` (a datetime)."""

    when: Expr


@dataclass(frozen=True, slots=True)
class IfBranch(Node):
    cond: Expr
    body: tuple[Stmt, ...]


@dataclass(frozen=True, slots=True)
class If(Node):
    """`if C then … elif C then … else … end`; `branches` holds the `if` and each `elif`."""

    branches: tuple[IfBranch, ...]
    else_body: tuple[Stmt, ...] | None


@dataclass(frozen=True, slots=True)
class Case(Node):
    """`case V[, V…] then …`; with a subject-less switch, `values` holds one condition."""

    values: tuple[Expr, ...]
    body: tuple[Stmt, ...]


@dataclass(frozen=True, slots=True)
class Switch(Node):
    subject: Expr | None
    cases: tuple[Case, ...]
    else_body: tuple[Stmt, ...] | None


@dataclass(frozen=True, slots=True)
class SplitCase(Node):
    """`case P% then …` of a split: `share` is the percentage as written."""

    share: int
    body: tuple[Stmt, ...]


@dataclass(frozen=True, slots=True)
class Split(Node):
    """`split [by EXPR]` / `case P% then …` / `end` (SPEC 2.13): exactly one case runs, chosen by
    a stable hash of the rule's name and the value of `by` (the run's id without it)."""

    by: Expr | None
    cases: tuple[SplitCase, ...]
    keyword_span: Span = field(default=NO_SPAN, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Emit(Node):
    """`emit TRIGGER(field: expr, …)`."""

    trigger: str
    args: tuple[Arg, ...]
    trigger_span: Span = field(default=NO_SPAN, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Stop(Node):
    pass


@dataclass(frozen=True, slots=True)
class Repeat(Node):
    """`repeat N times … end` (SPEC 2.5): N is evaluated once."""

    count: Expr
    body: tuple[Stmt, ...]


@dataclass(frozen=True, slots=True)
class For(Node):
    """`for NAME in LIST … end`: the block once per item, NAME bound to the item."""

    name: str
    items: Expr
    body: tuple[Stmt, ...]
    name_span: Span = field(default=NO_SPAN, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Break(Node):
    """`break`: leave the innermost `repeat` or `for`."""


Stmt = CallStmt | Let | Wait | WaitUntil | WaitFor | If | Switch | Split | Emit | Stop | Repeat | For | Break


# ----------------------------------------------------------------------------- schedules


@dataclass(frozen=True, slots=True)
class Every(Node):
    """`every DURATION` — at whole multiples of the duration since 1970-01-01T00:00Z."""

    seconds: int


@dataclass(frozen=True, slots=True)
class EveryAt(Node):
    """`every day at HH:MM` (day='day') or `every monday at HH:MM` (day is the weekday name)."""

    day: str
    time: dt.time


@dataclass(frozen=True, slots=True)
class Cron(Node):
    """`cron "m h dom mon dow"`."""

    expr: str


@dataclass(frozen=True, slots=True)
class At(Node):
    """`at DATETIME` — once."""

    when: dt.datetime


Schedule = Every | EveryAt | Cron | At

# The trigger name every schedule rule starts on: defined in calendar.py, below every stage,
# so the runtime names it without importing the AST.
SCHEDULE_TRIGGER = _SCHEDULE_TRIGGER


# ----------------------------------------------------------------------------- declarations and rules


@dataclass(frozen=True, slots=True)
class TriggerRef(Node):
    """A dotted trigger name as written after `when`, `exit when`, `wait for`, `emit`."""

    name: str


@dataclass(frozen=True, slots=True)
class ExitClause(Node):
    """`exit when TRIGGER [where COND]`."""

    trigger: TriggerRef
    where: Expr | None


@dataclass(frozen=True, slots=True)
class Once(Node):
    """`once per KEY[, KEY]… [within DURATION]` (SPEC 2.11): an entry limit."""

    keys: tuple[Expr, ...]
    within: Expr | None


@dataclass(frozen=True, slots=True)
class DayRange(Node):
    """A day name (`saturday`) or a range of them (`monday-friday`) after `during … on`."""

    first: str
    last: str | None = None


@dataclass(frozen=True, slots=True)
class During(Node):
    """`during HH:MM-HH:MM [on DAYS]` (SPEC 2.12): a sending window. Times are as written
    (the checker validates them); no days means every day."""

    start: str
    end: str
    days: tuple[DayRange, ...] = ()
    start_span: Span = field(default=NO_SPAN, compare=False, repr=False, kw_only=True)
    end_span: Span = field(default=NO_SPAN, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Rule(Node):
    """A rule. `name` is None when unnamed (the checker names it `<stem>:<line of its when>`)."""

    name: str | None
    when: TriggerRef | Schedule
    where: Expr | None
    exits: tuple[ExitClause, ...]
    body: tuple[Stmt, ...]
    once: Once | None = None
    during: During | None = None
    name_span: Span = field(default=NO_SPAN, compare=False, repr=False, kw_only=True)
    when_span: Span = field(default=NO_SPAN, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class TriggerDecl(Node):
    """`trigger a.b { field: TYPE, … }`."""

    name: str
    fields: tuple[FieldDecl, ...]
    name_span: Span = field(default=NO_SPAN, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Param(Node):
    """`name: TYPE [= literal]` in an action declaration."""

    name: str
    type: TypeExpr
    default: Expr | None


@dataclass(frozen=True, slots=True)
class ActionDecl(Node):
    """`action name(params…) [-> TYPE]`."""

    name: str
    params: tuple[Param, ...]
    result: TypeExpr | None
    name_span: Span = field(default=NO_SPAN, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class TimezoneDecl(Node):
    name: str


@dataclass(frozen=True, slots=True)
class LocaleDecl(Node):
    """`locale "fr_FR"`: the default locale of the file's formatting functions (SPEC 2.4)."""

    name: str


Item = TimezoneDecl | LocaleDecl | TriggerDecl | ActionDecl | Rule


@dataclass(frozen=True, slots=True)
class File(Node):
    """One parsed `.rules` file: its items in source order."""

    name: str
    items: tuple[Item, ...]

    @property
    def timezone(self) -> str | None:
        for item in self.items:
            if isinstance(item, TimezoneDecl):
                return item.name
        return None

    @property
    def locale(self) -> str | None:
        for item in self.items:
            if isinstance(item, LocaleDecl):
                return item.name
        return None


def walk(node: object):
    """Yield `node` and every AST node below it, depth first, in field order."""
    if isinstance(node, Node):
        yield node
        for name in node.__dataclass_fields__:
            if name in ("span", "id"):
                continue
            yield from walk(getattr(node, name))
    elif isinstance(node, tuple):
        for child in node:
            yield from walk(child)
