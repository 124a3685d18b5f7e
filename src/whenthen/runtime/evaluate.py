"""Evaluate one expression or condition against an event, and explain a condition part by part."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from whenthen import values
from whenthen.compiler.decls import Schema, TriggerSchema
from whenthen.compiler.types import Type
from whenthen.diagnostics import CompileError, Diagnostic, EventError, error
from whenthen.grammar import ast

if TYPE_CHECKING:
    from whenthen.compiler.checker import CheckedExpr
    from whenthen.compiler.code import Code

UTC = dt.UTC
_LITERALS = (ast.StrLit, ast.IntLit, ast.FloatLit, ast.BoolLit, ast.NullLit, ast.DurationLit,
             ast.DateLit, ast.DateTimeLit)
_COMPARED = ast.COMPARISON_OPS + ast.TEST_OPS


@dataclass(frozen=True)
class ConditionPart:
    """One line of a condition's breakdown: a part, its value and the operand values it compared."""

    depth: int
    text: str
    value: Any
    operands: tuple[tuple[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The part as JSON (`explain --format json`): values as JSON, and as the REPL shows them."""
        return {"depth": self.depth, "text": self.text, "value": values.to_json(self.value),
                "shown": show_value(self.value),
                "operands": [{"text": name, "value": values.to_json(v), "shown": show_value(v)}
                             for name, v in self.operands]}


@dataclass
class PreparedExpression:
    """A parsed and checked expression, ready to run against events of its trigger."""

    text: str
    expr: ast.Expr
    type: Type
    trigger: TriggerSchema | None
    schema: Schema  # the stdlib overlaid with the caller's schema, as the checker saw it
    timezone: str
    checked: CheckedExpr  # the checker's side tables (refs, calls) for the code generator
    locale: str = "en"  # the default of the formatting functions' `locale` (a file's `locale`)
    _codes: dict[int, Code] = field(default_factory=dict)

    @property
    def uses_event(self) -> bool:
        """Does the expression read the event (a field, the alias or `event`)?"""
        return any(ref.kind in ("field", "event") for ref in self.checked.refs.values())

    @property
    def is_condition(self) -> bool:
        return self.type.kind == "bool"

    def source_of(self, node: ast.Expr) -> str:
        """The text of a sub-expression as the user wrote it."""
        span = node.span
        if 0 <= span.start < span.end <= len(self.text):
            return _balanced(self.text, span.start, span.end)
        from whenthen.grammar.printer import print_expr

        return print_expr(node)

    def coerce_event(self, event: dict[str, Any] | None) -> dict[str, Any] | None:
        """Validate the event against the trigger (EventError on bad data); None when not needed."""
        from whenthen.runtime.events import validate_event

        if self.trigger is None:
            if event:
                raise EventError("an event was given but no trigger: name the trigger the event belongs to")
            return None
        if event is None:
            if self.uses_event:
                raise EventError(f"{self.trigger.name}: no event given; the expression reads its fields",
                                 trigger=self.trigger.name)
            return None
        return validate_event(self.trigger, event)

    def value_of(self, node: ast.Expr, event: dict[str, Any] | None, now: dt.datetime | None = None) -> Any:
        """Run one (sub-)expression on an already coerced event, through the code generator and VM."""
        from whenthen.compiler.codegen import compile_expression
        from whenthen.runtime import vm

        code = self._codes.get(node.id)
        if code is None:
            code = compile_expression(node, self.checked.refs, self.checked.calls, self.schema, self.timezone,
                                      self.locale)
            self._codes[node.id] = code
        return vm.evaluate(code, event or {}, self.timezone, now=now)

    def evaluate(self, event: dict[str, Any] | None, now: dt.datetime | None = None) -> Any:
        return self.value_of(self.expr, self.coerce_event(event), now)

    def explain(self, event: dict[str, Any] | None, now: dt.datetime | None = None) -> list[ConditionPart]:
        """Each `and`/`or`/`not` part of the condition, with its value and compared operands."""
        coerced = self.coerce_event(event)
        parts: list[ConditionPart] = []
        self._explain(self.expr, 0, coerced, now, parts)
        return parts

    def _explain(self, node: ast.Expr, depth: int, event: dict[str, Any] | None,
                 now: dt.datetime | None, parts: list[ConditionPart]) -> None:
        value = self.value_of(node, event, now)
        if isinstance(node, ast.Binary) and node.op in ast.LOGIC_OPS:
            parts.append(ConditionPart(depth, self.source_of(node), value))
            for child in _flatten(node, node.op):
                self._explain(child, depth + 1, event, now, parts)
        elif isinstance(node, ast.Unary) and node.op == "not":
            parts.append(ConditionPart(depth, self.source_of(node), value))
            self._explain(node.operand, depth + 1, event, now, parts)
        else:
            operands = tuple(
                (self.source_of(operand), self.value_of(operand, event, now))
                for operand in _operands(node)
                if not _is_literal(operand)
            )
            parts.append(ConditionPart(depth, self.source_of(node), value, operands))


def _paren_balance(text: str) -> int:
    """Open minus close parentheses outside single- and double-quoted strings."""
    balance, quote = 0, ""
    for i, ch in enumerate(text):
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            balance += 1
        elif ch == ")":
            balance -= 1
    return balance


def span_text(text: str, start: int, end: int) -> str:
    """The text of a sub-expression at offsets [start, end) of `text`, with the parentheses it
    opens or closes (as the breakdown shows parts): `explain` takes a rule's `where` this way."""
    return _balanced(text, start, end)


def _balanced(text: str, start: int, end: int) -> str:
    """The text of a span, widened over the parentheses it opens or closes but leaves out
    (spans of grouped expressions stop inside the group's parentheses)."""
    balance = _paren_balance(text[start:end])
    while balance > 0:
        nxt = end + len(text[end:]) - len(text[end:].lstrip())
        if not text.startswith(")", nxt):
            break
        end, balance = nxt + 1, balance - 1
    while balance < 0:
        before = text[:start].rstrip()
        if not before.endswith("("):
            break
        start, balance = len(before) - 1, balance + 1
    return text[start:end]


def _flatten(node: ast.Expr, op: str) -> list[ast.Expr]:
    """`a and b and c` as [a, b, c]: one level of the breakdown per run of the same operator."""
    if isinstance(node, ast.Binary) and node.op == op:
        return _flatten(node.left, op) + _flatten(node.right, op)
    return [node]


def _operands(node: ast.Expr) -> list[ast.Expr]:
    if isinstance(node, ast.Binary) and node.op in _COMPARED:
        return [node.left, node.right]
    if isinstance(node, ast.Is):
        return [node.operand]
    if isinstance(node, ast.Call):
        return [arg.value for arg in node.args]
    if isinstance(node, ast.ObjectLit):
        return [f.value for f in node.fields]
    return []


def _is_literal(node: ast.Expr) -> bool:
    if isinstance(node, ast.ListLit):
        return all(_is_literal(item) for item in node.items)
    if isinstance(node, ast.Template):  # "VIP" is as literal as 'VIP'
        return all(isinstance(part, str) for part in node.parts)
    return isinstance(node, _LITERALS)


# ----------------------------------------------------------------------------- the public entry points


def prepare_expression(expression: str, trigger: str | None, schema: Schema,
                       *, timezone: str = "UTC", locale: str = "en") -> PreparedExpression:
    """Parse and check an expression; bare names are fields of `trigger`'s event, its alias and
    `event`. Raises CompileError with diagnostics (file `input`) when it does not check."""
    from whenthen.compiler.checker import check_expr
    from whenthen.grammar.parser import parse_expr

    schema = _with_stdlib(schema)
    trigger_schema = None
    if trigger is not None:
        trigger_schema = schema.triggers.get(trigger)
        if trigger_schema is None:
            raise CompileError([_unknown_trigger(trigger, schema)])
    expr, diagnostics = parse_expr(expression, "input")
    if expr is None or any(d.is_error for d in diagnostics):
        raise CompileError(diagnostics)
    checked = check_expr(expr, schema, trigger)
    if not checked.ok:
        raise CompileError(checked.diagnostics)
    return PreparedExpression(expression, expr, checked.type, trigger_schema, schema, timezone, checked, locale)


def evaluate_expression(expression: str, trigger: str | None = None, event: dict[str, Any] | None = None,
                        schema: Schema | None = None, *, now: dt.datetime | None = None,
                        timezone: str = "UTC", locale: str = "en") -> Any:
    """The value of `expression` on `event` as a plain Python value.

    Raises CompileError when the expression does not check and EventError when the event does
    not fit the trigger's schema.
    """
    if schema is None:
        from whenthen.stdlib import default_schema

        schema = default_schema()
    return prepare_expression(expression, trigger, schema, timezone=timezone, locale=locale).evaluate(event, now)


def explain_condition(expression: str, trigger: str | None = None, event: dict[str, Any] | None = None,
                      schema: Schema | None = None, *, now: dt.datetime | None = None,
                      timezone: str = "UTC") -> list[ConditionPart]:
    """The breakdown of a condition: each `and`/`or`/`not` part, its value, the operands compared."""
    if schema is None:
        from whenthen.stdlib import default_schema

        schema = default_schema()
    return prepare_expression(expression, trigger, schema, timezone=timezone).explain(event, now)


# ----------------------------------------------------------------------------- showing values


def show_value(value: Any, timezone: str | None = None) -> str:
    """A value in the language's literal syntax: `'Jane'`, `null`, `1h30m`, `['a', 'b']`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, (int, float)):
        return values.format_number(value)
    if isinstance(value, dt.datetime):
        return values.format_datetime(value, timezone)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return values.format_duration(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show_value(item, timezone) for item in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{key}: {show_value(item, timezone)}" for key, item in value.items())
        return "{ " + inner + " }" if inner else "{}"
    return repr(value)


def format_explanation(parts: list[ConditionPart], timezone: str | None = None, indent: str = "  ") -> str:
    """The breakdown as aligned text: `first_name = 'John'  false  (first_name is 'Jane')`."""
    rows = [(indent * part.depth + part.text, show_value(part.value, timezone), part) for part in parts]
    text_width = max((len(text) for text, _, _ in rows), default=0)
    value_width = max((len(shown) for _, shown, _ in rows), default=0)
    lines = []
    for text, shown, part in rows:
        details = ", ".join(f"{name} is {show_value(v, timezone)}" for name, v in part.operands)
        line = f"{text.ljust(text_width)}  {shown.ljust(value_width)}"
        lines.append((line + f"  ({details})" if details else line).rstrip())
    return "\n".join(lines)


def _with_stdlib(schema: Schema) -> Schema:
    """The stdlib and system declarations overlaid with `schema`'s, as the checker scopes them."""
    from whenthen.stdlib import default_schema

    merged = default_schema()
    merged.triggers.update(schema.triggers)
    merged.actions.update(schema.actions)
    merged.functions.update(schema.functions)
    return merged


def _unknown_trigger(name: str, schema: Schema) -> Diagnostic:
    import difflib

    from whenthen.diagnostics import Span

    close = difflib.get_close_matches(name, list(schema.triggers), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    span = Span("input", 0, len(name), 1, 1, 1, len(name) + 1)
    return error(span, "E101", f"unknown trigger '{name}'{hint}")
