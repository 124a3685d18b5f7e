"""Text to AST: runs the Lark grammar, builds ast.py nodes with spans, turns syntax errors into E001."""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from whenthen.diagnostics import Diagnostic, Span, error
from whenthen.grammar import ast
from whenthen.grammar.postlex import KEYWORDS, PostLexer
from whenthen.source import Source

_LARK_OPTIONS: dict[str, Any] = dict(
    parser="lalr",
    lexer="basic",
    start=["file", "expr"],
    keep_all_tokens=True,
    maybe_placeholders=False,
    propagate_positions=False,
)


_lark: Lark | None = None
# The builder runs inside the LALR parser (no intermediate tree); it is shared, so parses are
# serialised, and re-entrant because template expressions are parsed from inside a callback.
_lock = threading.RLock()


def get_lark() -> Lark:
    """The grammar, loaded once per process (and cached on disk by Lark between processes)."""
    global _lark
    with _lock:
        if _lark is None:
            options = dict(_LARK_OPTIONS, postlex=PostLexer(), transformer=_BUILDER)
            try:
                _lark = Lark.open_from_package("whenthen.grammar", "whenthen.lark", cache=True, **options)
            except OSError:  # an unwritable cache directory must not stop parsing
                _lark = Lark.open_from_package("whenthen.grammar", "whenthen.lark", **options)
        return _lark


def _run(text: str, start: str, locator: _Locator) -> tuple[Any, list[Diagnostic]]:
    """Parse `text` from `start` into AST nodes; raises Lark's UnexpectedInput on a syntax error."""
    diagnostics: list[Diagnostic] = []
    with _lock:
        lark = get_lark()
        saved = _BUILDER.loc, _BUILDER.diagnostics
        _BUILDER.loc, _BUILDER.diagnostics = locator, diagnostics
        try:
            result = lark.parse(text, start=start)
        finally:
            _BUILDER.loc, _BUILDER.diagnostics = saved
    return result, diagnostics


# ----------------------------------------------------------------------------- positions


@dataclass(frozen=True, slots=True)
class _Locator:
    """Turns Lark token positions into Spans of the file, for text parsed from `offset`/`line`/`column`."""

    file: str
    offset: int = 0
    line: int = 1
    column: int = 1

    def span(self, start: int, line: int, col: int, end: int, end_line: int, end_col: int) -> Span:
        return Span(
            self.file, self.offset + start, self.offset + end,
            self.line + line - 1, (self.column + col - 1) if line == 1 else col,
            self.line + end_line - 1, (self.column + end_col - 1) if end_line == 1 else end_col,
        )

    def shift(self, offset: int, line: int, col: int) -> tuple[int, int, int]:
        """A position in the parsed text as a position in the file."""
        return self.offset + offset, self.line + line - 1, (self.column + col - 1) if line == 1 else col

    def token(self, tok: Token) -> Span:
        start = tok.start_pos or 0
        end = tok.end_pos if tok.end_pos is not None else start + len(tok.value)
        line = tok.line or 1
        end_line = tok.end_line or line
        col = tok.column or 1
        end_col = tok.end_column or (col + len(tok.value))
        if self.line == 1 and self.column == 1:  # the whole file: no shifting needed
            return Span(self.file, self.offset + start, self.offset + end, line, col, end_line, end_col)
        return self.span(start, line, col, end, end_line, end_col)

    def point(self, pos: int, line: int, col: int, width: int = 1) -> Span:
        return self.span(pos, line, col, pos + width, line, col + width)


# ----------------------------------------------------------------------------- literals

_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DATETIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})?$"
)
_DOTTED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_TEMPLATE_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"'}


def duration_seconds(text: str) -> int:
    """Seconds of a duration literal such as `1h30m` (already validated by the lexer)."""
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in re.findall(r"(\d+)([wdhms])", text))


def _parse_datetime(text: str) -> dt.datetime:
    m = _DATETIME_RE.match(text)
    if m is None:
        raise ValueError(f"invalid datetime {text!r}")
    year, month, day, hour, minute = (int(m.group(i)) for i in range(1, 6))
    second = int(m.group(6) or 0)
    micro = int((m.group(7) or "0")[:6].ljust(6, "0"))
    tz: dt.tzinfo | None = None
    if m.group(8) == "Z":
        tz = dt.UTC
    elif m.group(8):
        sign = -1 if m.group(8)[0] == "-" else 1
        hours, minutes = int(m.group(8)[1:3]), int(m.group(8)[4:6])
        if hours > 23 or minutes > 59:
            raise ValueError(f"invalid offset in {text!r}")
        tz = dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
    return dt.datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)


# ----------------------------------------------------------------------------- tree -> AST


def _nodes(children: Iterable[Any]) -> list[Any]:
    return [c for c in children if not isinstance(c, Token)]


def _tokens(children: Iterable[Any], *types: str) -> list[Token]:
    return [c for c in children if isinstance(c, Token) and c.type in types]


def _is(child: Any, type_: str) -> bool:
    return isinstance(child, Token) and child.type == type_


class _Block(tuple):
    """The statements of a block, tagged so that parents can tell it from an expression tuple."""


class _Builder(Transformer):
    """Builds AST nodes bottom-up; every node gets a span covering the tokens it was made from."""

    def __init__(self) -> None:
        super().__init__(visit_tokens=False)
        self.loc = _Locator("input")
        self.diagnostics: list[Diagnostic] = []

    # -- helpers

    def _start(self, child: Any) -> tuple[int, int, int] | None:
        """(offset, line, column) where `child` starts in the parsed text; None if it has no text."""
        if isinstance(child, Token):
            if child.type in ("SEP", "ENDBODY"):
                return None
            return child.start_pos or 0, child.line or 1, child.column or 1
        if isinstance(child, (ast.Node, _Trigger)):
            return child.span.start, -child.span.line, child.span.column  # negative line: already shifted
        if isinstance(child, tuple):
            return next((p for p in map(self._start, child) if p is not None), None)
        return None

    def _end(self, child: Any) -> tuple[int, int, int] | None:
        if isinstance(child, Token):
            if child.type in ("SEP", "ENDBODY"):
                return None
            start = child.start_pos or 0
            end = child.end_pos if child.end_pos is not None else start + len(child.value)
            return end, child.end_line or child.line or 1, child.end_column or ((child.column or 1) + len(child.value))
        if isinstance(child, (ast.Node, _Trigger)):
            return child.span.end, -child.span.end_line, child.span.end_column
        if isinstance(child, tuple):
            return next((p for p in map(self._end, reversed(child)) if p is not None), None)
        return None

    def _span(self, children: list[Any]) -> Span:
        """From the start of the first to the end of the last of `children` (in source order)."""
        first = next((p for p in map(self._start, children) if p is not None), None)
        if first is None:
            return self.loc.point(0, 1, 1, 0)
        last = next(p for p in map(self._end, reversed(children)) if p is not None)
        loc = self.loc
        start, line, col = first if first[1] < 0 else loc.shift(*first)
        end, end_line, end_col = last if last[1] < 0 else loc.shift(*last)
        return Span(loc.file, start, end, -line if line < 0 else line, col, -end_line if end_line < 0 else end_line,
                    end_col)

    def _error(self, span: Span, message: str) -> None:
        self.diagnostics.append(error(span, "E001", message))

    # -- files and items

    def file(self, children: list[Any]) -> ast.File:
        return ast.File(self.loc.file, tuple(_nodes(children)), span=self._span(children))

    def timezone_decl(self, children: list[Any]) -> ast.TimezoneDecl:
        value = self._plain_string(_tokens(children, "DQSTRING")[0])
        return ast.TimezoneDecl(value, span=self._span(children))

    def locale_decl(self, children: list[Any]) -> ast.LocaleDecl:
        value = self._plain_string(_tokens(children, "DQSTRING")[0])
        return ast.LocaleDecl(value, span=self._span(children))

    def trigger_decl(self, children: list[Any]) -> ast.TriggerDecl:
        name: _Trigger = children[1]
        fields = children[3]
        return ast.TriggerDecl(name.name, fields, span=self._span(children), name_span=name.span)

    def field_list(self, children: list[Any]) -> tuple[ast.FieldDecl, ...]:
        return tuple(_nodes(children))

    def field(self, children: list[Any]) -> ast.FieldDecl:
        return ast.FieldDecl(children[0].value, children[2], span=self._span(children))

    def action_decl(self, children: list[Any]) -> ast.ActionDecl:
        name_tok = children[1]
        params = children[3]
        result = children[6] if len(children) > 6 else None
        return ast.ActionDecl(
            name_tok.value, params, result, span=self._span(children), name_span=self.loc.token(name_tok)
        )

    def param_list(self, children: list[Any]) -> tuple[ast.Param, ...]:
        return tuple(_nodes(children))

    def param(self, children: list[Any]) -> ast.Param:
        default = children[4] if len(children) > 4 else None
        if default is not None and not _is_literal(default):
            self._error(default.span, "a parameter default must be a literal")
        return ast.Param(children[0].value, children[2], default, span=self._span(children))

    # -- types

    def named_type(self, children: list[Any]) -> ast.NamedType:
        return ast.NamedType(children[0].value, span=self._span(children))

    def list_type(self, children: list[Any]) -> ast.ListType:
        if children[0].value != "list":
            self._error(self.loc.token(children[0]), f"unknown type '{children[0].value}[…]'; did you mean 'list[…]'?")
        return ast.ListType(children[2], span=self._span(children))

    def enum_type(self, children: list[Any]) -> ast.EnumType:
        values = tuple(self._single_quoted(t) for t in _tokens(children, "SQSTRING"))
        return ast.EnumType(values, span=self._span(children))

    def object_type(self, children: list[Any]) -> ast.ObjectType:
        return ast.ObjectType(children[1], span=self._span(children))

    def optional_type(self, children: list[Any]) -> ast.OptionalType:
        return ast.OptionalType(children[0], span=self._span(children))

    # -- rules

    def rule(self, children: list[Any]) -> ast.Rule:
        name: str | None = None
        name_span = ast.NO_SPAN
        keyword_span: Span | None = None
        where = None
        exits: list[ast.ExitClause] = []
        body: tuple[ast.Stmt, ...] = ()
        when: Any = None
        when_start = None
        once = None
        during = None
        for i, c in enumerate(children):
            if isinstance(c, _RuleName):
                name, name_span, keyword_span = c.name, c.span, c.keyword
            elif _is(c, "WHEN"):
                when_start = self.loc.token(c)
                when = children[i + 1]
            elif isinstance(c, _Where):
                where = c.expr
            elif isinstance(c, ast.ExitClause):
                exits.append(c)
            elif isinstance(c, ast.Once):
                once = c
            elif isinstance(c, ast.During):
                during = c
            elif isinstance(c, _Block):
                body = tuple(c)
        if isinstance(when, _Trigger):
            when = ast.TriggerRef(when.name, span=when.span)
        assert when_start is not None
        span = self._span(children)
        if keyword_span is not None:  # a named rule starts at `rule "…"`, not at its `when`
            span = keyword_span.cover(span)
        return ast.Rule(
            name, when, where, tuple(exits), body, once, during,
            span=span, name_span=name_span, when_span=when_start.cover(when.span),
        )

    def once_clause(self, children: list[Any]) -> ast.Once:
        keys: list[Any] = []
        within = None
        for i, c in enumerate(children):
            if _is(c, "WITHIN"):
                within = children[i + 1]
                break
            if isinstance(c, ast.Node):
                keys.append(c)
        return ast.Once(tuple(keys), within, span=self._span(children))

    def during_clause(self, children: list[Any]) -> ast.During:
        start, end = children[1], children[3]
        days = tuple(c for c in children if isinstance(c, ast.DayRange))
        return ast.During(start.value, end.value, days, span=self._span(children),
                          start_span=self.loc.token(start), end_span=self.loc.token(end))

    def day_range(self, children: list[Any]) -> ast.DayRange:
        names = _tokens(children, "NAME")
        return ast.DayRange(names[0].value, names[1].value if len(names) > 1 else None, span=self._span(children))

    def rule_name(self, children: list[Any]) -> _RuleName:
        tok = children[1]
        return _RuleName(self._plain_string(tok), self.loc.token(tok), self.loc.token(children[0]))

    def rule_end(self, children: list[Any]) -> Token:
        return children[0]

    def where_clause(self, children: list[Any]) -> _Where:
        return _Where(children[1], self._span(children))

    def within_clause(self, children: list[Any]) -> _Within:
        return _Within(children[1], self._span(children))

    def exit_clause(self, children: list[Any]) -> ast.ExitClause:
        trig: _Trigger = children[2]
        where = children[3].expr if len(children) > 3 else None
        return ast.ExitClause(ast.TriggerRef(trig.name, span=trig.span), where, span=self._span(children))

    def trigger_name(self, children: list[Any]) -> _Trigger:
        name = ".".join(t.value for t in children if t.type == "NAME")
        return _Trigger(name, self._span(children))

    def every(self, children: list[Any]) -> ast.Every:
        return ast.Every(duration_seconds(children[1].value), span=self._span(children))

    def every_at(self, children: list[Any]) -> ast.EveryAt:
        time_tok = children[3]
        hour, minute = (int(x) for x in time_tok.value.split(":"))
        if hour > 23 or minute > 59:
            self._error(self.loc.token(time_tok), f"invalid time of day '{time_tok.value}'")
            hour, minute = 0, 0
        return ast.EveryAt(children[1].value, dt.time(hour, minute), span=self._span(children))

    def cron(self, children: list[Any]) -> ast.Cron:
        return ast.Cron(self._plain_string(children[1]), span=self._span(children))

    def at(self, children: list[Any]) -> ast.At:
        return ast.At(self._datetime(children[1]), span=self._span(children))

    # -- statements

    def block(self, children: list[Any]) -> _Block:
        return _Block(_nodes(children))

    def call_stmt(self, children: list[Any]) -> ast.CallStmt:
        return ast.CallStmt(children[0], span=children[0].span)

    def let_stmt(self, children: list[Any]) -> ast.Let:
        name_tok = children[1]
        return ast.Let(
            name_tok.value, children[3], span=self._span(children), name_span=self.loc.token(name_tok)
        )

    def wait_stmt(self, children: list[Any]) -> ast.Wait:
        return ast.Wait(children[1], span=self._span(children))

    def wait_until(self, children: list[Any]) -> ast.WaitUntil:
        return ast.WaitUntil(children[2], span=self._span(children))

    def wait_for(self, children: list[Any]) -> ast.WaitFor:
        trig: _Trigger = children[2]
        where = next((c.expr for c in children if isinstance(c, _Where)), None)
        within = next((c.expr for c in children if isinstance(c, _Within)), None)
        return ast.WaitFor(trig.name, where, within, span=self._span(children), trigger_span=trig.span)

    def if_stmt(self, children: list[Any]) -> ast.If:
        branches = [ast.IfBranch(children[1], tuple(children[3]), span=self._span(children[:4]))]
        else_body = None
        for c in children[4:]:
            if isinstance(c, ast.IfBranch):
                branches.append(c)
            elif isinstance(c, _Else):
                else_body = c.body
        return ast.If(tuple(branches), else_body, span=self._span(children))

    def elif_part(self, children: list[Any]) -> ast.IfBranch:
        return ast.IfBranch(children[1], tuple(children[3]), span=self._span(children))

    def else_part(self, children: list[Any]) -> _Else:
        return _Else(tuple(children[1]) if len(children) > 1 else ())

    def switch_stmt(self, children: list[Any]) -> ast.Switch:
        subject = None
        if len(children) > 1 and isinstance(children[1], ast.Node) and not isinstance(children[1], ast.Case):
            subject = children[1]
        cases = tuple(c for c in children if isinstance(c, ast.Case))
        else_body = next((c.body for c in children if isinstance(c, _Else)), None)
        return ast.Switch(subject, cases, else_body, span=self._span(children))

    def case_part(self, children: list[Any]) -> ast.Case:
        values = tuple(c for c in children[1:] if isinstance(c, ast.Node))
        body = next(c for c in children if isinstance(c, _Block))
        return ast.Case(values, tuple(body), span=self._span(children))

    def split_stmt(self, children: list[Any]) -> ast.Split:
        by = children[2] if len(children) > 2 and isinstance(children[1], Token) and children[1].type == "BY" \
            else None
        cases = tuple(c for c in children if isinstance(c, ast.SplitCase))
        return ast.Split(by, cases, span=self._span(children), keyword_span=self.loc.token(children[0]))

    def split_case(self, children: list[Any]) -> ast.SplitCase:
        body = next(c for c in children if isinstance(c, _Block))
        return ast.SplitCase(int(children[1].value), tuple(body), span=self._span(children))

    def emit_stmt(self, children: list[Any]) -> ast.Emit:
        trig: _Trigger = children[1]
        return ast.Emit(trig.name, children[3], span=self._span(children), trigger_span=trig.span)

    def repeat_stmt(self, children: list[Any]) -> ast.Repeat:
        return ast.Repeat(children[1], tuple(children[3]), span=self._span(children))

    def for_stmt(self, children: list[Any]) -> ast.For:
        return ast.For(children[1].value, children[3], tuple(children[5]), span=self._span(children),
                       name_span=self.loc.token(children[1]))

    def break_stmt(self, children: list[Any]) -> ast.Break:
        return ast.Break(span=self._span(children))

    def stop_stmt(self, children: list[Any]) -> ast.Stop:
        return ast.Stop(span=self._span(children))

    # -- expressions

    def binary(self, children: list[Any]) -> ast.Binary:
        left, op, right = children
        op_text = op if isinstance(op, str) and not isinstance(op, Token) else op.value
        if op_text == "==":
            op_text = "="
        return ast.Binary(op_text, left, right, span=self._span(children))

    def comp_op(self, children: list[Any]) -> str:
        text = " ".join(t.value for t in children)
        return "=" if text == "==" else text

    def is_test(self, children: list[Any]) -> ast.Is:
        negated = any(_is(c, "NOT") for c in children)
        what = children[-1].value
        return ast.Is(children[0], what, negated, span=self._span(children))

    def unary(self, children: list[Any]) -> ast.Unary:
        return ast.Unary(children[0].value, children[1], span=self._span(children))

    def attr(self, children: list[Any]) -> ast.Attr:
        return ast.Attr(children[0], children[2].value, span=self._span(children))

    def call(self, children: list[Any]) -> ast.Call:
        return ast.Call(children[0].value, children[2], span=self._span(children))

    def args(self, children: list[Any]) -> tuple[ast.Arg, ...]:
        return tuple(_nodes(children))

    def named_arg(self, children: list[Any]) -> ast.Arg:
        return ast.Arg(children[0].value, children[2], span=self._span(children))

    def positional_arg(self, children: list[Any]) -> ast.Arg:
        return ast.Arg(None, children[0], span=children[0].span)

    def name(self, children: list[Any]) -> ast.Name:
        return ast.Name(children[0].value, span=self._span(children))

    def int_lit(self, children: list[Any]) -> ast.IntLit:
        return ast.IntLit(int(children[0].value), span=self._span(children))

    def float_lit(self, children: list[Any]) -> ast.FloatLit:
        return ast.FloatLit(float(children[0].value), span=self._span(children))

    def str_lit(self, children: list[Any]) -> ast.StrLit:
        return ast.StrLit(self._single_quoted(children[0]), span=self._span(children))

    def bool_lit(self, children: list[Any]) -> ast.BoolLit:
        return ast.BoolLit(children[0].type == "TRUE", span=self._span(children))

    def null_lit(self, children: list[Any]) -> ast.NullLit:
        return ast.NullLit(span=self._span(children))

    def duration_lit(self, children: list[Any]) -> ast.DurationLit:
        return ast.DurationLit(duration_seconds(children[0].value), span=self._span(children))

    def date_lit(self, children: list[Any]) -> ast.DateLit:
        tok = children[0]
        try:
            value = dt.date.fromisoformat(tok.value)
        except ValueError:
            self._error(self.loc.token(tok), f"invalid date '{tok.value}'")
            value = dt.date(1970, 1, 1)
        return ast.DateLit(value, span=self._span(children))

    def datetime_lit(self, children: list[Any]) -> ast.DateTimeLit:
        return ast.DateTimeLit(self._datetime(children[0]), span=self._span(children))

    def list_lit(self, children: list[Any]) -> ast.ListLit:
        return ast.ListLit(children[1], span=self._span(children))

    def list_items(self, children: list[Any]) -> tuple[ast.Expr, ...]:
        return tuple(_nodes(children))

    def object_lit(self, children: list[Any]) -> ast.ObjectLit:
        return ast.ObjectLit(children[1], span=self._span(children))

    def obj_fields(self, children: list[Any]) -> tuple[ast.ObjField, ...]:
        return tuple(_nodes(children))

    def obj_field(self, children: list[Any]) -> ast.ObjField:
        return ast.ObjField(children[0].value, children[2], span=self._span(children))

    def paren(self, children: list[Any]) -> ast.Expr:
        return children[1]

    def template(self, children: list[Any]) -> ast.Template:
        tok = children[0]
        return ast.Template(self._template_parts(tok), span=self.loc.token(tok))

    # -- strings

    def _single_quoted(self, tok: Token) -> str:
        """`'…'`: only `\\'` and `\\\\` are escapes; any other backslash stays as written."""
        return re.sub(r"\\([\\'])", r"\1", tok.value[1:-1])

    def _plain_string(self, tok: Token) -> str:
        """A double-quoted string without templating (`rule`, `timezone`, `cron`)."""
        out = []
        text = tok.value[1:-1]
        i = 0
        while i < len(text):
            if text[i] == "\\" and i + 1 < len(text):
                out.append(self._escape(tok, text, i))
                i += 2
            else:
                out.append(text[i])
                i += 1
        return "".join(out)

    def _escape(self, tok: Token, text: str, i: int) -> str:
        """The character of the escape `\\X` at `text[i]` (E001 for an unknown one)."""
        esc = text[i + 1]
        if esc not in _TEMPLATE_ESCAPES:
            self._error(self._inner_span(tok, i, 2), f"unknown escape '\\{esc}' (use \\n \\t \\\\ or \\\")")
            return esc
        return _TEMPLATE_ESCAPES[esc]

    def _inner_span(self, tok: Token, index: int, width: int) -> Span:
        """The span of `width` characters at `index` inside a string token's quotes (one line)."""
        return self.loc.span(
            tok.start_pos + 1 + index, tok.line, tok.column + 1 + index,
            tok.start_pos + 1 + index + width, tok.line, tok.column + 1 + index + width,
        )

    def _template_parts(self, tok: Token) -> tuple[str | ast.Expr, ...]:
        text = tok.value[1:-1]
        parts: list[str | ast.Expr] = []
        buf: list[str] = []
        for kind, i, j in template_scan(text):
            if kind == "text":
                buf.append(text[i:j])
            elif kind == "escape":
                buf.append(self._escape(tok, text, i))
            elif kind == "brace":
                buf.append(text[i])
            elif kind == "lone":
                self._error(self._inner_span(tok, i, 1), "a lone '}' in a template (write '}}' for a brace)")
            elif kind == "open":
                self._error(self._inner_span(tok, i, len(text) - i), "'{' in a template is not closed by '}'")
            else:  # a hole: `{expr}`
                if buf:
                    parts.append("".join(buf))
                    buf = []
                expr = self._template_expr(tok, i + 1, text[i + 1 : j - 1])
                if expr is not None:
                    parts.append(expr)
        if buf:
            parts.append("".join(buf))
        # adjacent text parts (around a failed `{…}`) are merged so the AST stays canonical
        merged: list[str | ast.Expr] = []
        for part in parts:
            if isinstance(part, str) and merged and isinstance(merged[-1], str):
                merged[-1] += part
            else:
                merged.append(part)
        return tuple(merged)

    def _template_expr(self, tok: Token, index: int, text: str) -> ast.Expr | None:
        span = self._inner_span(tok, index, len(text))
        if not text.strip():
            self._error(span, "expected an expression inside '{}'")
            return None
        if _DOTTED_NAME.fullmatch(text):  # the common case, without a trip through Lark
            return self._dotted(text, span)
        locator = _Locator(self.loc.file, span.start, span.line, span.column)
        return _parse_expr_with(text, locator, self.diagnostics)

    def _dotted(self, text: str, span: Span) -> ast.Expr | None:
        """`a.b.c` as Name/Attr nodes with their spans; None when the first part is a keyword."""
        names = text.split(".")
        if names[0] in KEYWORDS and len(names) == 1:
            return _parse_expr_with(text, _Locator(self.loc.file, span.start, span.line, span.column),
                                    self.diagnostics)
        def part(end: int) -> Span:
            width = len(".".join(names[:end]))
            return Span(span.file, span.start, span.start + width, span.line, span.column, span.line,
                        span.column + width)
        node: ast.Expr = ast.Name(names[0], span=part(1))
        for i, name in enumerate(names[1:], start=2):
            node = ast.Attr(node, name, span=part(i))
        return node

    def _datetime(self, tok: Token) -> dt.datetime:
        try:
            return _parse_datetime(tok.value)
        except ValueError:
            self._error(self.loc.token(tok), f"invalid datetime '{tok.value}'")
            return dt.datetime(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class _Trigger:
    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class _RuleName:
    name: str
    span: Span  # the name string
    keyword: Span  # the `rule` keyword, where the rule's own span starts


@dataclass(frozen=True, slots=True)
class _Where:
    expr: ast.Expr
    span: Span


@dataclass(frozen=True, slots=True)
class _Within:
    expr: ast.Expr
    span: Span


@dataclass(frozen=True, slots=True)
class _Else:
    body: tuple[ast.Stmt, ...]


_LITERALS = (ast.StrLit, ast.Template, ast.IntLit, ast.FloatLit, ast.BoolLit, ast.NullLit,
             ast.DurationLit, ast.DateLit, ast.DateTimeLit)


def _is_literal(expr: ast.Expr) -> bool:
    if isinstance(expr, ast.Template):
        return all(isinstance(p, str) for p in expr.parts)
    if isinstance(expr, _LITERALS):
        return True
    if isinstance(expr, ast.Unary) and expr.op == "-":
        return isinstance(expr.operand, (ast.IntLit, ast.FloatLit, ast.DurationLit))
    if isinstance(expr, ast.ListLit):
        return all(_is_literal(item) for item in expr.items)
    if isinstance(expr, ast.ObjectLit):
        return all(_is_literal(f.value) for f in expr.fields)
    return False


def _expr_end(text: str, start: int) -> int | None:
    """Index of the `}` closing a template expression: the first one outside a '…' string."""
    i = start
    quoted = False
    while i < len(text):
        ch = text[i]
        if quoted:
            if ch == "\\" and i + 1 < len(text):
                i += 2
                continue
            if ch == "'":
                quoted = False
        elif ch == "'":
            quoted = True
        elif ch == "}":
            return i
        i += 1
    return None


_TEMPLATE_SPECIAL = re.compile(r"[\\{}]")


def template_scan(text: str) -> Iterator[tuple[str, int, int]]:
    """The pieces of a template's text (between its quotes) as (kind, start, end): 'text' (plain
    characters), 'escape' (`\\X`), 'brace' (`{{` or `}}`), 'lone' (a `}` alone), 'open' (a `{`
    never closed: the rest) and 'hole' (`{expr}`, braces included). The parser builds templates
    from it and the language server highlights them with it."""
    i, size = 0, len(text)
    while i < size:
        found = _TEMPLATE_SPECIAL.search(text, i)
        if found is None:
            yield "text", i, size
            return
        if found.start() > i:
            yield "text", i, found.start()
        i = found.start()
        ch = text[i]
        if ch == "\\":
            if i + 1 < size:
                yield "escape", i, i + 2
                i += 2
            else:
                yield "text", i, i + 1
                i += 1
        elif text.startswith("{{", i) or text.startswith("}}", i):
            yield "brace", i, i + 2
            i += 2
        elif ch == "}":
            yield "lone", i, i + 1
            i += 1
        else:
            end = _expr_end(text, i + 1)
            if end is None:
                yield "open", i, size
                return
            yield "hole", i, end + 1
            i = end + 1


_BUILDER = _Builder()


# ----------------------------------------------------------------------------- syntax errors

_WORDS = {
    "NAME": "a name", "INT": "a number", "FLOAT": "a number", "SQSTRING": "a '…' string",
    "DQSTRING": 'a "…" string', "DURATION": "a duration", "DATE": "a date", "DATETIME": "a datetime",
    "TIME": "a time of day (HH:MM)", "SEP": "a new line", "$END": "the end of the input",
    "EQEQ": "'=='", "NE": "'!='", "LE": "'<='", "GE": "'>='", "ARROW": "'->'", "EQUAL": "'='",
    "LT": "'<'", "GT": "'>'", "PLUS": "'+'", "MINUS": "'-'", "STAR": "'*'", "SLASH": "'/'",
    "PERCENT": "'%'", "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'", "LBRACE": "'{'",
    "RBRACE": "'}'", "COMMA": "','", "COLON": "':'", "SEMICOLON": "';'", "DOT": "'.'", "QMARK": "'?'",
    "VBAR": "'|'", "EXIT": "'exit when'", "ENDBODY": "'end'",
}
_EXPR_STARTS = frozenset(
    "NAME INT FLOAT SQSTRING DQSTRING TRUE FALSE NULL DURATION DATE DATETIME LSQB LBRACE LPAR MINUS NOT".split()
)
_OPERATORS = frozenset(
    "EQEQ NE LE GE EQUAL LT GT PLUS MINUS STAR SLASH PERCENT DOT CONTAINS STARTS ENDS IN NOT MATCHES IS "
    "LPAR".split()
)
# Keywords that read like field names, worth a hint when one is used as a bare name.
_FIELD_LIKE_KEYWORDS = frozenset(
    "at end rule action trigger timezone case every cron emit stop exit wait let switch with matches "
    "contains empty starts ends until within for".split()
)
_STATEMENT_STARTS = frozenset("EMIT IF LET STOP SWITCH WAIT".split())
_LOOP_STARTS = frozenset(("FOR", "REPEAT", "BREAK", "SPLIT"))  # statement starts too, when the others are expected
_TYPE_STARTS = frozenset(("LBRACE", "SQSTRING", "NAME"))
_ORDER = ("RULE", "WHEN", "TRIGGER", "ACTION", "THEN", "END", "ELIF", "ELSE", "CASE", "WHERE", "EXIT", "WITHIN", "WHEN", "COMMA", "RPAR",
          "RSQB", "RBRACE", "COLON", "SEP")


def _word(type_: str) -> str:
    if type_ in _WORDS:
        return _WORDS[type_]
    if type_.lower() in KEYWORDS:
        return f"'{type_.lower()}'"
    return type_.lower()


def describe_expected(expected: set[str]) -> str:
    """Expected terminal names in words: `'then' or 'and'/'or'`, `an expression`, …"""
    expected = set(expected)
    if "ENDBODY" in expected and "END" in expected:
        expected.discard("ENDBODY")
    for contextual in ("ONCE", "DURING", "ON"):  # contextual (`once per`, `during … on`): never a hint
        if contextual in expected and len(expected) > 1:
            expected.discard(contextual)
    if "TIMEZONE" in expected and len(expected) > 1:  # allowed by the grammar, but only first in a file
        expected.discard("TIMEZONE")
    words: list[str] = []
    statement = _STATEMENT_STARTS <= expected
    if statement:
        expected -= _STATEMENT_STARTS | _LOOP_STARTS | {"NAME", "SEP"}  # a leading new line is optional there
    if expected == _TYPE_STARTS:
        return "a type"
    starts = expected & _EXPR_STARTS
    if len(starts) >= 5:
        expected -= _EXPR_STARTS
    logic = {"AND", "OR"} <= expected
    expected -= {"AND", "OR"}
    ops = expected & _OPERATORS
    rest = expected - _OPERATORS
    for t in _ORDER:
        if t in rest:
            words.append(_word(t))
            rest.discard(t)
    words.extend(sorted(_word(t) for t in rest))
    if statement:
        words.append("a statement")
    if len(starts) >= 5:
        words.append("an expression")
    if logic:
        words.append("'and'/'or'")
    if ops and not words:
        words.extend(sorted(_word(t) for t in ops))
    if not words:
        return "something else"
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _found(tok: Token) -> str:
    kind = tok.type
    if kind == "$END":
        return "the end of the input"
    if kind == "ENDBODY":
        return f"'{tok.value}', which starts a new item" if tok.value else "the end of the input"
    if kind == "SEP":
        return "';'" if tok.value == ";" else "the end of the line"
    if kind == "COMMA" and tok.value == ",":
        return "','"
    if kind == "NAME":
        return f"name '{tok.value}'"
    if kind in ("SQSTRING", "DQSTRING"):
        return f"string {tok.value}"
    if kind == "TIME":
        return f"time of day '{tok.value}' (used only in schedules)"
    if kind in ("INT", "FLOAT", "DURATION", "DATE", "DATETIME"):
        return f"{_word(kind)[2:] if _word(kind).startswith('a ') else _word(kind)} '{tok.value}'"
    return f"'{tok.value}'"


_SPELLED_UNITS = {"week": "w", "day": "d", "hour": "h", "minute": "m", "min": "m", "second": "s", "sec": "s"}
_NUMBER_BEFORE = re.compile(r"(\d+)\s+$")
_BARE_NAME_STATEMENT = re.compile(r"(?:^|[;\n]|\bthen)[ \t]*([A-Za-z_]\w*)[ \t]*$")
_ELSE_IF = re.compile(r"\belse[ \t]+if\b")


def _newcomer_hint(text: str, tok: Token, pos: int, expected: set[str]) -> str:
    """A hint for the mistakes people bring from other languages, or ''."""
    before = text[:pos]
    if tok.type == "NAME" and (unit := _SPELLED_UNITS.get(tok.value.rstrip("s"))):
        number = _NUMBER_BEFORE.search(before)
        if number:
            return f"; durations are written without a space, with a unit letter: {number.group(1)}{unit}"
    if tok.value in ("=", "==") and (name := _BARE_NAME_STATEMENT.search(before)):
        return f"; to bind a value, write let {name.group(1)} = …"
    if "END" in expected:
        starts = [m.start() for m in _ITEM_LINE.finditer(before)]
        if _ELSE_IF.search(before, starts[-1] if starts else 0):
            return "; 'else if' opens a new 'if' that needs its own 'end': write elif"
    return ""


def _syntax_diagnostic(exc: UnexpectedInput, locator: _Locator, text: str = "") -> tuple[Diagnostic, int]:
    """An E001 for a Lark error, and the offset (in the parsed text) where it happened."""
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        try:
            expected = set(exc.interactive_parser.accepts()) if exc.interactive_parser else set(exc.expected)
        except Exception:  # accepts() replays the parser; never let it hide the real error
            expected = set(exc.expected)
        if tok.type == "$END":  # Lark places it on the last token: point just after that token
            pos = tok.end_pos if tok.end_pos is not None else (tok.start_pos or 0)
            line = tok.end_line if tok.end_line and tok.end_line > 0 else 1
            col = tok.end_column if tok.end_column and tok.end_column > 0 else 1
            span = locator.point(pos, line, col, 0)
        else:
            pos = tok.start_pos or 0
            span = locator.token(tok)
            if span.end == span.start:  # virtual tokens are zero-width; point at one character
                span = locator.point(pos, tok.line or 1, tok.column or 1)
        message = f"expected {describe_expected(expected)}, found {_found(tok)}"
        expects_expr = len(expected & _EXPR_STARTS) >= 5
        if expects_expr and tok.value in _FIELD_LIKE_KEYWORDS:
            message += f" ('{tok.value}' is a keyword; a field of that name is written event.{tok.value})"
        message += _newcomer_hint(text, tok, pos, expected)
        return error(span, "E001", message), pos
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream
        ch = exc.char
        if ch in "'\"":
            message = "unterminated string (strings end on the same line)"
        elif ch == "\t" or ch.isspace():
            message = f"unexpected whitespace character {ch!r}"
        else:
            message = f"unexpected character '{ch}'"
        return error(locator.point(pos, exc.line, exc.column), "E001", message), pos
    pos = getattr(exc, "pos_in_stream", 0) or 0
    return error(locator.point(pos, getattr(exc, "line", 1) or 1, getattr(exc, "column", 1) or 1), "E001",
                 "syntax error"), pos


# ----------------------------------------------------------------------------- entry points


def _parse_expr_with(text: str, locator: _Locator, diagnostics: list[Diagnostic]) -> ast.Expr | None:
    try:
        expr, found = _run(text, "expr", locator)
    except UnexpectedInput as exc:
        diagnostics.append(_syntax_diagnostic(exc, locator, text)[0])
        return None
    diagnostics.extend(found)
    return expr


def parse_expr(text: str, name: str = "input") -> tuple[ast.Expr | None, list[Diagnostic]]:
    """Parse one expression or condition (the REPL, `evaluate`); never raises on bad text."""
    diagnostics: list[Diagnostic] = []
    try:
        expr = _parse_expr_with(text, _Locator(name), diagnostics)
    except Exception as exc:  # a bug here must still not become a traceback for the user
        diagnostics.append(_internal_error(name, exc))
        return None, diagnostics
    if expr is not None and any(d.is_error for d in diagnostics):
        expr = None  # e.g. a bad escape in a template: the expression is not usable
    return expr, diagnostics


def _internal_error(name: str, exc: Exception) -> Diagnostic:
    span = Span(name, 0, 0, 1, 1, 1, 1)
    return error(span, "E001", f"internal parser error ({type(exc).__name__}: {exc}); please report it")


_ITEM_LINE = re.compile(
    r"^[ \t]*(?:(?:rule|when|trigger|action|timezone)(?![A-Za-z0-9_])(?![ \t]*[.:])|locale(?=[ \t]*\"))", re.M)


_MAX_LEX_ERRORS = 200


def lex(text: str) -> tuple[list[Token], list[tuple[int, int]]]:
    """The tokens the parser reads (after the postlexer: contextual keywords retyped, virtual
    SEP/COMMA/ENDBODY tokens of zero width), for highlighting; never raises. What the lexer
    rejects is returned as (start, end) ranges and blanked before lexing again: an unterminated
    string to the end of its line, any other character alone."""
    rejected: list[tuple[int, int]] = []
    masked = text
    while True:
        try:
            return list(get_lark().lex(masked)), rejected
        except UnexpectedCharacters as exc:
            pos = exc.pos_in_stream
            end = pos + 1
            if masked[pos] in "'\"":
                newline = masked.find("\n", pos)
                end = len(masked) if newline < 0 else newline
            rejected.append((pos, end))
            if len(rejected) >= _MAX_LEX_ERRORS:
                return [], rejected
            masked = masked[:pos] + " " * (end - pos) + masked[end:]


def parse(source: Source) -> tuple[ast.File, list[Diagnostic]]:
    """Parse one file into an `ast.File`; never raises on bad text.

    After a syntax error, parsing resumes at the next line that starts a top-level item, and the
    items before the failing one are kept, so every syntax error in the file is reported.
    """
    text = source.text
    diagnostics: list[Diagnostic] = []
    items: list[ast.Item] = []
    try:
        _parse_chunks(source, items, diagnostics)
    except Exception as exc:  # a bug here must still not become a traceback for the user
        diagnostics.append(_internal_error(source.name, exc))
    items = _drop_late_timezones(items, diagnostics)
    span = Span(source.name, 0, len(text), 1, 1, *source.line_col(len(text)))
    return ast.File(source.name, tuple(items), span=span), diagnostics


def parse_step(source: Source, chunk: int, end: int, item_lines: list[int]) -> tuple[list[ast.Item], list[Diagnostic], int | None, bool]:
    """One step of `parse`'s recovery loop on `source.text[chunk:end]` (from the start of an
    item line to such a line or the end), for the language server, which re-parses only the
    items an edit touched: the items and diagnostics of the step, where `parse` would resume
    (None: at the end of the file; `end` after a clean run) and whether the step is *open*: its
    error is at the cut, so `parse` on the whole text could differ (the caller retries with a
    later `end`). `item_lines` are the item lines of the whole file. The caller checks the
    `timezone`/`locale` placement of the whole file (`drop_late_headers`)."""
    text = source.text
    region = text[chunk:end]
    locator = _chunk_locator(source, chunk)
    diagnostics: list[Diagnostic] = []
    try:
        try:
            file, found = _run(region, "file", locator)
        except UnexpectedInput as exc:
            diag, pos = _syntax_diagnostic(exc, locator, region)
            # at the cut: the end of the input, or a (virtual) token after the last code of the region
            code_end = len(re.sub(r"#[^\n]*", lambda m: " " * len(m.group()), region).rstrip())
            at_cut = (isinstance(exc, UnexpectedToken) and exc.token.type == "$END") or pos >= code_end
            if at_cut and end < len(text):
                return [], [], None, True
            diagnostics.append(diag)
            error_at = chunk + pos
            items = _items_before(source, chunk, error_at, item_lines, diagnostics)
            return items, diagnostics, _resume_point(text, chunk, error_at, item_lines), False
    except Exception as exc:
        return [], [_internal_error(source.name, exc)], None, False
    return list(file.items), found, end if end < len(text) else None, False


def drop_late_headers(items: list[ast.Item], diagnostics: list[Diagnostic]) -> list[ast.Item]:
    """The items without a `timezone`/`locale` that is not at the top (E001 added for each)."""
    return _drop_late_timezones(items, diagnostics)


def _parse_chunks(source: Source, items: list[ast.Item], diagnostics: list[Diagnostic]) -> None:
    """Parse from the start; after each syntax error, keep what parsed and resume at an item line."""
    text = source.text
    item_lines = [m.start() for m in _ITEM_LINE.finditer(text)]
    chunk = 0
    while True:
        locator = _chunk_locator(source, chunk)
        try:
            file, found = _run(text[chunk:], "file", locator)
        except UnexpectedInput as exc:
            diag, pos = _syntax_diagnostic(exc, locator, text[chunk:])
            diagnostics.append(diag)
            error_at = chunk + pos
            items.extend(_items_before(source, chunk, error_at, item_lines, diagnostics))
            resume = _resume_point(text, chunk, error_at, item_lines)
            if resume is None:
                break
            chunk = resume
            continue
        diagnostics.extend(found)
        items.extend(file.items)
        break


def _chunk_locator(source: Source, chunk: int) -> _Locator:
    line, col = source.line_col(chunk)
    return _Locator(source.name, chunk, line, col)


# How many earlier item lines to try as the end of the good prefix: bounds the work per error.
_MAX_CUTS = 6


def _items_before(
    source: Source, chunk: int, error_at: int, item_lines: list[int], diagnostics: list[Diagnostic]
) -> list[ast.Item]:
    """The items of text[chunk:cut] for the latest item line `cut` before the error that parses."""
    cuts = [p for p in item_lines if chunk < p <= error_at]
    error_line = source.text.rfind("\n", 0, error_at) + 1
    if error_line > chunk and error_line not in cuts:  # e.g. a stray line after a complete item
        cuts.append(error_line)
    for cut in sorted(cuts, reverse=True)[:_MAX_CUTS]:
        try:
            file, found = _run(source.text[chunk:cut], "file", _chunk_locator(source, chunk))
        except UnexpectedInput:
            continue
        diagnostics.extend(found)
        return list(file.items)
    return []


def _resume_point(text: str, chunk: int, error_at: int, item_lines: list[int]) -> int | None:
    """Where to start parsing again: the item line at or after the error's line, past `chunk`."""
    line_start = text.rfind("\n", 0, error_at) + 1
    # the error's own line is a resume point only when the error is at its first token (the
    # virtual end of a body there); otherwise the same error would be found again
    at_first_token = not text[line_start:error_at].strip()
    for p in item_lines:
        if p > chunk and (p > line_start or (p == line_start and at_first_token)):
            return p
    return None


def _drop_late_timezones(items: list[ast.Item], diagnostics: list[Diagnostic]) -> list[ast.Item]:
    """Chunks are built separately, so a `timezone` or `locale` after another item is caught here
    too; the two may come in either order, at the top."""
    kept: list[ast.Item] = []
    for item in items:
        header = isinstance(item, (ast.TimezoneDecl, ast.LocaleDecl))
        if header and any(type(k) is type(item) or not isinstance(k, (ast.TimezoneDecl, ast.LocaleDecl))
                          for k in kept):
            word = "timezone" if isinstance(item, ast.TimezoneDecl) else "locale"
            again = any(type(k) is type(item) for k in kept)
            text = f"only one '{word}' per file" if again else f"'{word}' must come before anything else in the file"
            diagnostics.append(error(item.span, "E001", text))
            continue
        kept.append(item)
    return kept
