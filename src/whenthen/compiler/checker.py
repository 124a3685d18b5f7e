"""The type checker: declarations, name resolution and types of every rule; problems become diagnostics.

`check_program` parses every file, collects the `timezone`/`trigger`/`action` declarations of all
files, then checks every rule, filling the side tables of `CheckedProgram` (refs, types, calls)
keyed by AST node id. `check_expr` does the same for one expression (`evaluate`, the REPL).
Nothing here raises on user input: every problem is reported, never only the first, and a value
whose type is unknown after an error has the type `any`, so one mistake gives one diagnostic.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from whenthen import regex
from whenthen.calendar import next_fire, parse_clock
from whenthen.compiler import messages as msg
from whenthen.compiler.checked import CheckedProgram, NameRef, ResolvedCall, RuleInfo
from whenthen.compiler.decls import DEFAULT_LOCALE, ActionSig, FunctionSig, ParamSig, Schema, TriggerSchema
from whenthen.compiler.types import (
    ANY,
    BOOL,
    DATE,
    DATETIME,
    DURATION,
    FLOAT,
    INT,
    NULL,
    PRIMITIVES,
    STR,
    Type,
    assignable,
    comparable,
    enum_of,
    list_of,
    object_of,
    orderable,
    unify,
)
from whenthen.diagnostics import NO_SPAN, Diagnostic, Span, error, warning
from whenthen.grammar import ast
from whenthen.source import Source
from whenthen.stdlib import default_schema, formatting
from whenthen.stdlib.functions import ArgumentTypeError

__all__ = ["CheckedExpr", "check_expr", "check_program", "default_schema"]

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# The longest duration a timedelta holds.
MAX_DURATION_SECONDS = 999_999_999 * 86_400
# Code of a diagnostic reported instead of raising when the checker itself has a bug.
INTERNAL = "E000"


# ----------------------------------------------------------------------------- public API


@dataclass
class CheckedExpr:
    """The result of `check_expr`: the expression's type, side tables and diagnostics."""

    expr: ast.Expr | None
    type: Type
    refs: dict[int, NameRef] = field(default_factory=dict)
    types: dict[int, Type] = field(default_factory=dict)
    calls: dict[int, ResolvedCall] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)


def check_program(sources: Sequence[Source], schema: Schema | None = None) -> CheckedProgram:
    """Parse and check a program made of `sources` (in order) against the stdlib and `schema`."""
    from whenthen.grammar.parser import parse  # the parser imports nothing from here

    files: list[ast.File] = []
    diagnostics: list[Diagnostic] = []
    for source in sources:
        try:
            if source.decode_error is not None:  # not UTF-8: one E001, the other files go on
                offset, reason = source.decode_error
                line, column = source.line_col(offset)
                span = Span(source.name, offset, offset + 1, line, column, line, column + 1)
                file, parse_diags = ast.File(source.name, ()), [error(span, "E001", reason)]
            else:
                file, parse_diags = parse(source)
        except Exception as exc:  # a parser bug must not hide the other files
            file, parse_diags = ast.File(source.name, ()), [_internal(_file_span(source), "parser", exc)]
        files.append(file)
        diagnostics.extend(parse_diags)
    return check_files(files, list(sources), schema, diagnostics)


def check_files(files: list[ast.File], sources: list[Source], schema: Schema | None = None,
                diagnostics: list[Diagnostic] | None = None) -> CheckedProgram:
    """Check already parsed files (`files[i]` parsed from `sources[i]`); `diagnostics` are the
    parser's, kept in the result."""
    checker = _Checker(_base_schema(schema))
    checker.diags.extend(diagnostics or [])
    by_name = {s.name: s for s in sources}
    try:
        timezones = [checker.file_timezone(f, diagnostics or []) for f in files]
        locales = [checker.file_locale(f, diagnostics or []) for f in files]
        for file in files:
            checker.declarations(file)
    except Exception as exc:
        timezones = ["UTC"] * len(files)
        locales = [DEFAULT_LOCALE] * len(files)
        checker.internal(exc, NO_SPAN)
    try:
        checker.wall_clock(files)
    except Exception as exc:
        checker.internal(exc, NO_SPAN)
    rules: list[RuleInfo] = []
    for file, tz, locale in zip(files, timezones, locales, strict=True):
        source = by_name.get(file.name)
        for item in file.items:
            if isinstance(item, ast.Rule):
                try:
                    info = checker.rule(item, file, source, tz)
                    info.locale = locale
                    rules.append(info)
                except Exception as exc:
                    checker.internal(exc, item.span)
    order = {s.name: i for i, s in enumerate(sources)}
    checker.diags.sort(key=lambda d: (order.get(d.file, -1), d.span.start))
    return CheckedProgram(
        files=files, sources=by_name, schema=checker.schema, rules=rules,
        refs=checker.refs, types=checker.types, calls=checker.calls, diagnostics=checker.diags,
    )


def check_expr(expr: ast.Expr, schema: Schema | None, trigger: str | None,
               locals: dict[str, Type] | None = None) -> CheckedExpr:
    """Check one expression or condition, as `evaluate` and the REPL read it.

    Bare names are, in order: `locals` (as 'let' refs), the fields of `trigger`'s event, its
    alias and `event`. Actions may not be called (E109). `schema` is the one in scope (a
    `CheckedProgram.schema` carries a program's own declarations); the stdlib is always in it.
    """
    checker = _Checker(_base_schema(schema))
    scope = _Scope(checker.schema.triggers.get(trigger) if trigger else None, trigger)
    if trigger and scope.start is None:
        checker.err(expr.span, "E101", msg.unknown_trigger(trigger, checker.trigger_names()))
        scope.start_unknown = True
    for name, type_ in (locals or {}).items():
        scope.define(name, type_)
    try:
        result = checker.expr(expr, scope)
    except Exception as exc:
        checker.internal(exc, expr.span)
        result = ANY
    return CheckedExpr(expr, result, checker.refs, checker.types, checker.calls, checker.diags)


def _base_schema(schema: Schema | None) -> Schema:
    """The stdlib and system declarations, overlaid with the given schema's."""
    base = default_schema()
    if schema is not None:
        base.triggers.update(schema.triggers)
        base.actions.update(schema.actions)
        base.functions.update(schema.functions)
    return base


def _internal(span: Span, stage: str, exc: Exception) -> Diagnostic:
    """What an exception inside the parser or checker becomes: deep nesting is a limit of the
    input (E001); anything else is a bug in whenthen (E000)."""
    if isinstance(exc, RecursionError):
        return error(span, "E001", msg.too_deep())
    return error(span, INTERNAL, msg.internal_error(stage, exc))


def _file_span(source: Source) -> Span:
    return Span(source.name, 0, 0, 1, 1, 1, 1)


# ----------------------------------------------------------------------------- scopes


class _Scope:
    """The names visible at one point of a rule: lets (a stack of blocks), the start event, and
    in a `wait for`/`exit when` clause that clause's event."""

    def __init__(self, start: TriggerSchema | None, start_name: str | None):
        self.start = start
        self.start_name = start_name
        self.start_unknown = False  # start trigger unknown: its fields are typed `any`, silently
        self.alias = start_name.split(".")[0] if start_name else None
        self.blocks: list[dict[str, Type]] = [{}]
        self.clause: TriggerSchema | None = None
        self.clause_name: str | None = None
        self.clause_unknown = False
        self.lets_visible = True
        self.loops = 0  # enclosing repeat/for loops: `break` needs one

    def child(self) -> _Scope:
        """A nested block: same names, plus its own lets."""
        scope = self._copy()
        scope.blocks = [*self.blocks, {}]
        return scope

    def in_clause(self, trigger: TriggerSchema | None, name: str, lets_visible: bool) -> _Scope:
        scope = self._copy()
        scope.clause, scope.clause_name = trigger, name
        scope.clause_unknown = trigger is None
        scope.lets_visible = lets_visible
        return scope

    def _copy(self) -> _Scope:
        scope = _Scope.__new__(_Scope)
        scope.__dict__.update(self.__dict__)
        return scope

    def define(self, name: str, type_: Type) -> None:
        self.blocks[-1][name] = type_

    def let(self, name: str) -> Type | None:
        if not self.lets_visible:
            return None
        for block in reversed(self.blocks):
            if name in block:
                return block[name]
        return None

    def start_field(self, name: str) -> Type | None:
        return self.start.type.field(name) if self.start is not None else None

    def visible_names(self) -> list[str]:
        names: list[str] = []
        if self.clause is not None:
            names += self.clause.type.field_names
        if self.lets_visible:
            for block in self.blocks:
                names += block
        if self.clause is None and self.start is not None:
            names += self.start.type.field_names
        if self.start_name:
            names += [self.alias or "", "event"]
        return names


# ----------------------------------------------------------------------------- the checker


def _at_top(file: ast.File, index: int) -> bool:
    """Only `timezone`/`locale` declarations come before item `index` of the file."""
    return all(isinstance(item, (ast.TimezoneDecl, ast.LocaleDecl)) for item in file.items[:index])


def _literal_string(expr: object) -> str | None:
    """The value of a string literal ('…', or "…" without `{}` parts), else None."""
    if isinstance(expr, ast.StrLit):
        return expr.value
    if isinstance(expr, ast.Template) and all(isinstance(p, str) for p in expr.parts):
        return "".join(expr.parts)  # type: ignore[arg-type]
    return None


def _loose(t: Type) -> bool:
    """Types that fit any operator: unknown after an error, json (checked at run time), null."""
    return t.kind in ("any", "json", "null")


class _Checker:
    def __init__(self, schema: Schema):
        self.schema = schema
        self.diags: list[Diagnostic] = []
        self.refs: dict[int, NameRef] = {}
        self.types: dict[int, Type] = {}
        self.calls: dict[int, ResolvedCall] = {}
        self.rule_names: dict[str, Span] = {}
        self.declared_triggers: dict[str, Span] = {}  # declared by this program, where
        self.declared_actions: dict[str, Span] = {}
        self.trigger_type_names: dict[Type, str] = {}
        self._dispatch: dict[type, Callable[[Any, _Scope], Type]] = {
            ast.StrLit: lambda e, s: STR,
            ast.Template: self._template,
            ast.IntLit: self._int,
            ast.FloatLit: lambda e, s: FLOAT,
            ast.BoolLit: lambda e, s: BOOL,
            ast.NullLit: lambda e, s: NULL,
            ast.DurationLit: self._duration,
            ast.DateLit: lambda e, s: DATE,
            ast.DateTimeLit: lambda e, s: DATETIME,
            ast.ListLit: self._list,
            ast.ObjectLit: self._object,
            ast.Name: self._name,
            ast.Attr: self._attr,
            ast.Call: lambda e, s: self.call(e, s, action_ok=False),
            ast.Unary: self._unary,
            ast.Binary: self._binary,
            ast.Is: self._is,
        }

    # -- reporting
    def err(self, span: Span, code: str, message: str) -> None:
        self.diags.append(error(span, code, message))

    def internal(self, exc: Exception, span: Span) -> None:
        self.diags.append(_internal(span, "checker", exc))

    def trigger_names(self) -> list[str]:
        return [n for n, t in self.schema.triggers.items() if t.origin != "schedule"]

    # ------------------------------------------------------------------------- declarations

    def file_timezone(self, file: ast.File, parse_diags: list[Diagnostic]) -> str:
        """Check the file's `timezone` declarations; the zone its rules run in ('UTC' if none/bad)."""
        zone = "UTC"
        seen = False
        syntax_at = {(d.file, d.span.start) for d in parse_diags if d.code == "E001"}
        for index, item in enumerate(file.items):
            if not isinstance(item, ast.TimezoneDecl):
                continue
            if (seen or not _at_top(file, index)) and (item.span.file, item.span.start) not in syntax_at:
                self.err(item.span, "E001", msg.timezone_not_first())
            if not _valid_zone(item.name):
                self.err(item.span, "E112", msg.bad_timezone(item.name, _all_zones()))
            elif not seen:
                zone = item.name
            seen = True
        return zone

    def file_locale(self, file: ast.File, parse_diags: list[Diagnostic]) -> str:
        """Check the file's `locale` declaration (E112 when Babel does not know it); the locale of
        its formatting functions ('en' if none or bad)."""
        locale = DEFAULT_LOCALE
        seen = False
        syntax_at = {(d.file, d.span.start) for d in parse_diags if d.code == "E001"}
        for index, item in enumerate(file.items):
            if not isinstance(item, ast.LocaleDecl):
                continue
            if (seen or not _at_top(file, index)) and (item.span.file, item.span.start) not in syntax_at:
                self.err(item.span, "E001", msg.locale_not_first())
            problem = formatting.locale_problem(item.name)
            if problem is not None:
                self.err(item.span, "E112", problem)
            elif not seen:
                locale = item.name
            seen = True
        return locale

    def wall_clock(self, files: Sequence[ast.File]) -> None:
        """W203: a file without `timezone` that uses wall-clock time while another file of the
        program declares one, at its first such use."""
        declaring = next((f for f in files if f.timezone is not None), None)
        if declaring is None:
            return
        for file in files:
            if file.timezone is not None:
                continue
            uses = [(node.span.start, node) for node in ast.walk(file.items)
                    if node.span != NO_SPAN and _wall_clock_use(node) is not None]
            if uses:
                _, node = min(uses, key=lambda u: u[0])
                self.diags.append(warning(node.span, "W203", msg.wall_clock_without_timezone(
                    _wall_clock_use(node) or "", declaring.timezone or "", declaring.name)))

    def declarations(self, file: ast.File) -> None:
        for item in file.items:
            if isinstance(item, ast.TriggerDecl):
                self.trigger_decl(item, file)
            elif isinstance(item, ast.ActionDecl):
                self.action_decl(item, file)

    def trigger_decl(self, decl: ast.TriggerDecl, file: ast.File) -> None:
        span = _pick(decl.name_span, decl.span)
        type_ = self.object_type(decl.fields, f"trigger {decl.name}")
        new = TriggerSchema(decl.name, type_, origin="program", span=span)
        if decl.name in self.declared_triggers:
            self.err(span, "E110", msg.duplicate_trigger(
                decl.name, "first declared at " + _where(self.declared_triggers[decl.name])))
            return
        old = self.schema.triggers.get(decl.name)
        if old is not None and (old.origin in ("system", "schedule") or old.type != type_):
            what = {"system": "a system trigger", "schedule": "the schedule trigger"}.get(
                old.origin, f"declared by the {old.origin} with another type")
            self.err(span, "E110", msg.duplicate_trigger(decl.name, what))
            return
        self.declared_triggers[decl.name] = span
        self.schema.triggers[decl.name] = new
        self.trigger_type_names.setdefault(type_, decl.name)

    def action_decl(self, decl: ast.ActionDecl, file: ast.File) -> None:
        span = _pick(decl.name_span, decl.span)
        tz = file.timezone if _valid_zone(file.timezone) else "UTC"
        params: list[ParamSig] = []
        for param in decl.params:
            if any(p.name == param.name for p in params):
                self.err(param.span, "E110", msg.duplicate_param(param.name, decl.name))
                continue
            ptype = self.type_of(param.type, f"action {decl.name}")
            if param.default is not None:
                ok, value = self.default_value(param, ptype, tz)
                params.append(ParamSig(param.name, ptype, has_default=ok, default=value))
            else:
                # an optional parameter without a default may be left out: it is null
                params.append(ParamSig(param.name, ptype, has_default=ptype.optional, default=None))
        result = self.type_of(decl.result, f"action {decl.name}") if decl.result is not None else None
        new = ActionSig(decl.name, tuple(params), result, origin="program", span=span)
        if decl.name in self.declared_actions:
            self.err(span, "E110", msg.duplicate_action(
                decl.name, "first declared at " + _where(self.declared_actions[decl.name])))
            return
        if decl.name in self.schema.functions:
            self.err(span, "E110", msg.action_shadows_function(decl.name))
            return
        old = self.schema.actions.get(decl.name)
        if old is not None and (old.origin == "stdlib" or not _same_action(old, new)):
            what = "a stdlib action" if old.origin == "stdlib" else f"declared by the {old.origin} differently"
            self.err(span, "E110", msg.duplicate_action(decl.name, what))
            return
        self.declared_actions[decl.name] = span
        self.schema.actions[decl.name] = new

    def type_of(self, texpr: ast.TypeExpr, owner: str) -> Type:
        """A written type expression as a Type (unknown names are E102 and become `any`)."""
        if isinstance(texpr, ast.NamedType):
            if texpr.name in PRIMITIVES:
                return Type(texpr.name)
            self.err(texpr.span, "E102", msg.unknown_type(texpr.name, PRIMITIVES))
            return ANY
        if isinstance(texpr, ast.ListType):
            return list_of(self.type_of(texpr.item, owner))
        if isinstance(texpr, ast.EnumType):
            return enum_of(tuple(dict.fromkeys(texpr.values)))
        if isinstance(texpr, ast.ObjectType):
            return self.object_type(texpr.fields, owner)
        if isinstance(texpr, ast.OptionalType):
            return self.type_of(texpr.inner, owner).as_optional()
        return ANY

    def object_type(self, fields: Sequence[ast.FieldDecl], owner: str) -> Type:
        seen: dict[str, Type] = {}
        for fdecl in fields:
            if fdecl.name in seen:
                self.err(fdecl.span, "E110", msg.duplicate_field(fdecl.name, owner))
                continue
            seen[fdecl.name] = self.type_of(fdecl.type, owner)
        return object_of(seen)

    def default_value(self, param: ast.Param, ptype: Type, tz: str) -> tuple[bool, Any]:
        """The runtime value of a parameter's default literal, checked against its type."""
        try:
            value = _literal_value(param.default, tz)
        except ValueError:
            self.err(param.default.span, "E103", msg.default_not_literal(param.name))
            return False, None
        got = self.expr(param.default, _Scope(None, None))
        self.fits(param.default, got, ptype, lambda: msg.default_type(param.name, ptype, got))
        return True, value

    # ------------------------------------------------------------------------- rules

    def rule(self, rule: ast.Rule, file: ast.File, source: Source | None, tz: str) -> RuleInfo:
        when_span = _pick(rule.when_span, rule.span)
        stem = source.stem if source is not None else file.name
        name = rule.name if rule.name is not None else f"{stem}:{when_span.line}"
        name_span = _pick(rule.name_span, when_span)
        if name in self.rule_names:
            first = self.rule_names[name]
            self.err(name_span, "E110", msg.duplicate_rule(name, first.line, first.file))
        else:
            self.rule_names[name] = name_span

        if isinstance(rule.when, ast.TriggerRef):
            trigger_name = rule.when.name
            start = self.trigger(rule.when.name, _pick(rule.when.span, when_span))
        else:
            trigger_name = ast.SCHEDULE_TRIGGER
            self.schedule(rule.when)
            start = self.schema.triggers.get(ast.SCHEDULE_TRIGGER)
        scope = _Scope(start, trigger_name)
        scope.start_unknown = start is None

        if rule.where is not None:
            self.condition(rule.where, scope, "the `where` condition")
        if rule.once is not None:
            self.once(rule.once, scope)
        if rule.during is not None:
            self.during(rule.during)
        for clause in rule.exits:
            exit_trigger = self.trigger(clause.trigger.name, _pick(clause.trigger.span, clause.span))
            if clause.where is not None:
                clause_scope = scope.in_clause(exit_trigger, clause.trigger.name, lets_visible=False)
                self.condition(clause.where, clause_scope, "the `exit when` condition")
        self.block(rule.body, scope)

        text = source.text[rule.span.start:rule.span.end] if source is not None and rule.span != NO_SPAN else ""
        return RuleInfo(name=name, rule=rule, file=file.name, timezone=tz, trigger=trigger_name,
                        source_text=text)

    def trigger(self, name: str, span: Span) -> TriggerSchema | None:
        """The declared trigger `name` as written in `when`, `exit when`, `wait for`, `emit`."""
        found = self.schema.triggers.get(name)
        if found is not None and found.origin == "schedule":
            self.err(span, "E101", msg.schedule_trigger_by_name(name))
            return None
        if found is None:
            self.err(span, "E101", msg.unknown_trigger(name, self.trigger_names()))
        return found

    def schedule(self, when: ast.Schedule) -> None:
        if isinstance(when, ast.Every):
            if when.seconds <= 0:
                self.err(when.span, "E112", msg.bad_every(when.seconds))
            elif when.seconds > MAX_DURATION_SECONDS:
                self.err(when.span, "E001", msg.duration_out_of_range())
        elif isinstance(when, ast.EveryAt):
            if when.day != "day" and when.day not in WEEKDAYS:
                self.err(when.span, "E112", msg.bad_weekday(when.day, ("day", *WEEKDAYS)))
        elif isinstance(when, ast.Cron):
            if not _valid_cron(when.expr):
                self.err(when.span, "E112", msg.bad_cron(when.expr))
            elif next_fire({"kind": "cron", "expr": when.expr}, "UTC", _CRON_PROBE) is None:
                self.err(when.span, "E112", msg.cron_never_fires(when.expr))

    # ------------------------------------------------------------------------- statements

    def block(self, stmts: Sequence[ast.Stmt], outer: _Scope) -> None:
        scope = outer.child()
        stopped = warned = False
        for stmt in stmts:
            if stopped and not warned:
                self.diags.append(warning(stmt.span, "W201", msg.unreachable()))
                warned = True
            self.statement(stmt, scope)
            stopped = stopped or isinstance(stmt, (ast.Stop, ast.Break))

    def statement(self, stmt: ast.Stmt, scope: _Scope) -> None:
        if isinstance(stmt, ast.CallStmt):
            self.call(stmt.call, scope, action_ok=True, statement=True)
        elif isinstance(stmt, ast.Let):
            self.let(stmt, scope)
        elif isinstance(stmt, ast.Wait):
            got = self.expr(stmt.duration, scope)
            if not _is(got, "duration"):
                self.err(stmt.duration.span, "E103", msg.wait_not_duration(got))
        elif isinstance(stmt, ast.WaitUntil):
            got = self.expr(stmt.when, scope)
            if not _is(got, "datetime"):
                self.err(stmt.when.span, "E103", msg.wait_until_not_datetime(got))
        elif isinstance(stmt, ast.WaitFor):
            self.wait_for(stmt, scope)
        elif isinstance(stmt, ast.If):
            for branch in stmt.branches:
                self.condition(branch.cond, scope, "an `if` condition")
                self.block(branch.body, scope)
            if stmt.else_body is not None:
                self.block(stmt.else_body, scope)
        elif isinstance(stmt, ast.Switch):
            self.switch(stmt, scope)
        elif isinstance(stmt, ast.Split):
            self.split(stmt, scope)
        elif isinstance(stmt, ast.Emit):
            self.emit(stmt, scope)
        elif isinstance(stmt, ast.Repeat):
            got = self.expr(stmt.count, scope)
            if not (_is(got, "int") or got.kind == "null"):
                self.err(stmt.count.span, "E103", msg.repeat_not_int(got))
            self.loop_body(stmt.body, scope, None)
        elif isinstance(stmt, ast.For):
            got = self.expr(stmt.items, scope)
            if got.kind in ("any", "json", "null"):
                item = got if got.kind != "null" else ANY
            elif got.base.kind == "list":
                item = got.base.item or ANY
            else:
                self.err(stmt.items.span, "E103", msg.for_not_list(got))
                item = ANY
            self.loop_body(stmt.body, scope, (stmt.name, _pick(stmt.name_span, stmt.span), item))
        elif isinstance(stmt, ast.Break):
            if scope.loops == 0:
                self.err(stmt.span, "E001", msg.break_outside_loop())

    def loop_body(self, body: Sequence[ast.Stmt], outer: _Scope,
                  bound: tuple[str, Span, Type] | None) -> None:
        """A loop's block: `break` is allowed in it, and a `for` binds its name there (SPEC 2.5)."""
        scope = outer.child()
        scope.loops = outer.loops + 1
        if bound is not None:
            self.bind(bound[0], bound[1], bound[2], scope)
        self.block(body, scope)

    def bind(self, name: str, span: Span, type_: Type, scope: _Scope) -> None:
        """Define a `let` or `for` name, unless it reuses a field, an alias or a `let` (E111)."""
        if scope.start is not None and scope.start.type.field(name) is not None:
            self.err(span, "E111", msg.let_reuses_field(name, scope.start_name or ""))
            return  # later uses keep meaning the field: one mistake, one diagnostic
        if name in (scope.alias, "event"):
            self.err(span, "E111", msg.let_reuses_alias(name))
            return
        if scope.let(name) is not None:
            self.err(span, "E111", msg.let_reuses_let(name))
        scope.define(name, type_)

    def let(self, stmt: ast.Let, scope: _Scope) -> None:
        value = stmt.value
        if isinstance(value, ast.WaitFor):
            type_ = self.wait_for(value, scope)
        elif isinstance(value, ast.Call):
            type_ = self.call(value, scope, action_ok=True)
        else:
            type_ = self.expr(value, scope)
        self.bind(stmt.name, _pick(stmt.name_span, stmt.span), type_, scope)

    def wait_for(self, stmt: ast.WaitFor, scope: _Scope) -> Type:
        """Check a `wait for`; its value's type (the awaited event, null after `within`)."""
        awaited = self.trigger(stmt.trigger, _pick(stmt.trigger_span, stmt.span))
        if stmt.where is not None:
            clause_scope = scope.in_clause(awaited, stmt.trigger, lets_visible=True)
            self.condition(stmt.where, clause_scope, "the `wait for` condition")
        if stmt.within is not None:
            got = self.expr(stmt.within, scope)
            if not _is(got, "duration"):
                self.err(stmt.within.span, "E103", msg.within_not_duration(got))
        result = ANY if awaited is None else awaited.type.as_optional(stmt.within is not None)
        self.types[stmt.id] = result
        return result

    def switch(self, stmt: ast.Switch, scope: _Scope) -> None:
        subject = self.expr(stmt.subject, scope) if stmt.subject is not None else None
        for case in stmt.cases:
            if subject is None:
                if len(case.values) != 1:
                    self.err(case.span, "E103", msg.case_holds_one_condition())
                for value in case.values:
                    self.condition(value, scope, "a `case` condition")
            else:
                for value in case.values:
                    got = self.expr(value, scope)
                    if not self.enum_literal(subject, value) and not comparable(subject, got):
                        self.err(value.span, "E103", msg.case_value_type(subject, got))
            self.block(case.body, scope)
        if stmt.else_body is not None:
            self.block(stmt.else_body, scope)

    def once(self, clause: ast.Once, scope: _Scope) -> None:
        """SPEC 2.11: keys are expressions over the start event; `within` a positive duration literal."""
        for key in clause.keys:
            self.expr(key, scope)
        within = clause.within
        if within is not None:
            if not isinstance(within, ast.DurationLit):
                self.expr(within, scope)
                self.err(within.span, "E113", msg.once_within_not_literal())
            elif within.seconds <= 0:
                self.err(within.span, "E113", msg.once_within_not_positive(within.seconds))

    def during(self, clause: ast.During) -> None:
        """SPEC 2.12: times of day from 00:00 to 23:59, start and end different, known day names (E112)."""
        start, end = parse_clock(clause.start), parse_clock(clause.end)
        if start is None:
            self.err(_pick(clause.start_span, clause.span), "E112", msg.bad_window_time(clause.start))
        if end is None:
            self.err(_pick(clause.end_span, clause.span), "E112", msg.bad_window_time(clause.end))
        if start is not None and start == end:
            self.err(clause.span, "E112", msg.window_empty(clause.start))
        for day in clause.days:
            for name in (day.first, day.last):
                if name is not None and name not in WEEKDAYS:
                    self.err(day.span, "E112", msg.bad_window_day(name, WEEKDAYS))

    def split(self, stmt: ast.Split, scope: _Scope) -> None:
        """SPEC 2.13: shares are whole percentages from 1 to 100 adding up to 100 (E113 at `split`)."""
        if stmt.by is not None:
            self.expr(stmt.by, scope)
        shares = [case.share for case in stmt.cases]
        where = _pick(stmt.keyword_span, stmt.span)
        bad = [case for case in stmt.cases if not 1 <= case.share <= 100]
        for case in bad:
            self.err(case.span, "E113", msg.split_share_out_of_range(case.share))
        if not bad and sum(shares) != 100:
            self.err(where, "E113", msg.split_shares_total(sum(shares), shares))
        for case in stmt.cases:
            self.block(case.body, scope)

    def emit(self, stmt: ast.Emit, scope: _Scope) -> None:
        target = self.trigger(stmt.trigger, _pick(stmt.trigger_span, stmt.span))
        if target is None:
            for arg in stmt.args:
                self.expr(arg.value, scope)
            return
        params = [(name, ftype, not ftype.optional) for name, ftype in target.type.fields]
        matched = self.match_args(stmt.args, params, stmt.trigger, stmt.span, scope, emit=True)
        self.calls[stmt.id] = ResolvedCall("emit", stmt.trigger, matched)

    def condition(self, expr: ast.Expr, scope: _Scope, what: str) -> None:
        got = self.expr(expr, scope)
        if got.kind != "bool" and not _loose(got):
            self.err(expr.span, "E103", msg.condition_not_bool(what, got))

    # ------------------------------------------------------------------------- calls

    def call(self, call: ast.Call, scope: _Scope, action_ok: bool, statement: bool = False) -> Type:
        """Check a call of a function or action; records its ResolvedCall and type."""
        result = self._call(call, scope, action_ok, statement)
        self.types[call.id] = result
        return result

    def _call(self, call: ast.Call, scope: _Scope, action_ok: bool, statement: bool) -> Type:
        function = self.schema.functions.get(call.func)
        action = self.schema.actions.get(call.func)
        if function is not None and action is None:
            if statement:
                self.err(call.span, "E104", msg.function_as_statement(call.func))
            return self.function_call(call, function, scope)
        if action is not None:
            if not action_ok:
                self.err(call.span, "E109", msg.action_in_expression(call.func))
            params = [(p.name, p.type, not p.has_default) for p in action.params]
            matched = self.match_args(call.args, params, call.func, call.span, scope)
            self.calls[call.id] = ResolvedCall("action", call.func, matched)
            return action.result if action.result is not None else NULL
        candidates = [*self.schema.functions, *self.schema.actions]
        self.err(call.span, "E104", msg.unknown_callable(call.func, candidates))
        for arg in call.args:
            self.expr(arg.value, scope)
        return ANY

    def function_call(self, call: ast.Call, function: FunctionSig, scope: _Scope) -> Type:
        if function.variadic:
            matched = []
            for index, arg in enumerate(call.args):
                self.expr(arg.value, scope)
                if arg.name is not None:
                    self.err(arg.span, "E105", msg.unknown_argument(arg.name, f"{call.func}()", ()))
                    continue
                matched.append((str(index), arg.value))
            if not call.args:
                self.err(call.span, "E106", msg.needs_an_argument(call.func))
        else:
            # a function given null returns null: every parameter accepts its optional type
            params = [(p.name, p.type.as_optional(), not p.has_default) for p in function.params]
            matched = self.match_args(call.args, params, f"{call.func}()", call.span, scope)
            if function.literal_problem is not None:
                self.literal_arguments(function, matched)
        self.calls[call.id] = ResolvedCall("function", call.func, tuple(matched))
        arg_types = [self.types.get(value.id, ANY) for _, value in matched]
        try:
            return function.result(arg_types)
        except ArgumentTypeError as exc:
            self.err(call.span, "E103", str(exc))
            return ANY

    def literal_arguments(self, function: FunctionSig, matched: Sequence[tuple[str, ast.Expr]]) -> None:
        """A literal argument the function can judge now (a locale, a pattern) is checked at
        compile time: E103 at the literal when it is rejected (SPEC 2.4)."""
        for pname, value in matched:
            literal = _literal_string(value)
            if literal is None or function.literal_problem is None:
                continue
            problem = function.literal_problem(pname, literal)
            if problem is not None:
                self.err(value.span, "E103", f"{function.name}(): {problem}")

    def match_args(self, args: Sequence[ast.Arg], params: list[tuple[str, Type, bool]], callee: str,
                   span: Span, scope: _Scope, emit: bool = False) -> tuple[tuple[str, ast.Expr], ...]:
        """Match arguments to (name, type, required) parameters: E105 unknown/twice/too many,
        E106 missing, E103/E107 mistyped. Returns (parameter, value) in the order written."""
        by_name = {name: (name, ptype) for name, ptype, _ in params}
        given: set[str] = set()
        matched: list[tuple[str, ast.Expr]] = []
        named_seen = False
        for index, arg in enumerate(args):
            got = self.expr(arg.value, scope)
            if arg.name is None:
                if named_seen:
                    self.err(arg.span, "E105", msg.positional_after_named(callee))
                    continue
                if index >= len(params):
                    self.err(arg.span, "E105", msg.too_many_arguments(callee, len(params)))
                    continue
                pname, ptype = params[index][0], params[index][1]
            else:
                named_seen = True
                if arg.name not in by_name:
                    names = [p[0] for p in params]
                    text = (msg.unknown_emit_field(arg.name, callee, names) if emit
                            else msg.unknown_argument(arg.name, callee, names))
                    self.err(arg.span, "E105", text)
                    continue
                pname, ptype = by_name[arg.name]
            if pname in given:
                self.err(arg.span, "E105", msg.argument_twice(pname, callee))
                continue
            given.add(pname)
            matched.append((pname, arg.value))
            if emit:
                self.fits(arg.value, got, ptype, lambda p=pname, t=ptype, g=got: msg.emit_field_type(p, callee, t, g))
            else:
                self.fits(arg.value, got, ptype, lambda p=pname, t=ptype, g=got: msg.argument_type(p, callee, t, g))
        missing = [name for name, _, required in params if required and name not in given]
        if missing:
            text = msg.missing_emit_fields(missing, callee) if emit else msg.missing_arguments(missing, callee)
            self.err(span, "E106", text)
        return tuple(matched)

    def fits(self, expr: ast.Expr, got: Type, want: Type, mismatch: Callable[[], str]) -> None:
        """Report E107 (a literal outside an enumeration) or E103 when `got` does not fit `want`."""
        target = want.base
        if target.kind == "enum" and _literal_string(expr) is not None:
            self.enum_literal(want, expr)
            return
        if (target.kind == "list" and target.item is not None and target.item.base.kind == "enum"
                and isinstance(expr, ast.ListLit)):
            for item in expr.items:
                if not self.enum_literal(target.item, item):
                    item_type = self.types.get(item.id, ANY)
                    if not assignable(item_type, target.item):
                        self.err(item.span, "E103", mismatch())
            return
        if target.kind == "object" and isinstance(expr, ast.ObjectLit):
            self.object_fits(expr, target, mismatch)
            return
        if not assignable(got, want):
            self.err(expr.span, "E103", mismatch())

    def object_fits(self, expr: ast.ObjectLit, target: Type, mismatch: Callable[[], str]) -> None:
        """An object literal given for a nested object type: each key must be a field (E105),
        each value fit its field (E103), each required field be given (E106) — SPEC 2.3."""
        given: set[str] = set()
        owner = str(target)
        for f in expr.fields:
            want = target.field(f.name)
            if want is None:
                self.err(f.span, "E105", msg.unknown_object_key(f.name, owner, target.field_names))
                continue
            given.add(f.name)
            got = self.types.get(f.value.id, ANY)
            self.fits(f.value, got, want,
                      lambda n=f.name, w=want, g=got: msg.object_field_type(n, w, g))
        missing = [name for name, ftype in target.fields if not ftype.optional and name not in given]
        if missing:
            self.err(expr.span, "E106", msg.missing_object_fields(missing, owner))

    def enum_literal(self, enum: Type, expr: object) -> bool:
        """When `enum` is an enumeration and `expr` a string literal: E107 unless it is one of the
        values. True when the literal was judged here."""
        if enum.kind != "enum":
            return False
        value = _literal_string(expr)
        if value is None:
            return False
        if value not in enum.values:
            self.err(expr.span, "E107", msg.not_in_enum(value, enum))  # type: ignore[attr-defined]
        return True

    # ------------------------------------------------------------------------- expressions

    def expr(self, expr: ast.Expr, scope: _Scope) -> Type:
        """The type of `expr`, recorded in `types`; problems inside it are reported."""
        check = self._dispatch.get(type(expr))
        if check is None:  # not an expression (a malformed hand-built AST): nothing to type
            return ANY
        result = check(expr, scope)
        self.types[expr.id] = result
        return result

    def _int(self, expr: ast.IntLit, scope: _Scope) -> Type:
        if not -(2**63) <= expr.value < 2**63:  # what bytecode and SQLite can store
            self.err(expr.span, "E001", msg.integer_out_of_range(expr.value))
        return INT

    def _duration(self, expr: ast.DurationLit, scope: _Scope) -> Type:
        if expr.seconds > MAX_DURATION_SECONDS:
            self.err(expr.span, "E001", msg.duration_out_of_range())
        return DURATION

    def _template(self, expr: ast.Template, scope: _Scope) -> Type:
        for part in expr.parts:
            if not isinstance(part, str):
                self.expr(part, scope)  # any value renders as text
        return STR

    def _list(self, expr: ast.ListLit, scope: _Scope) -> Type:
        item: Type | None = None
        for element in expr.items:
            got = self.expr(element, scope)
            if item is None:
                item = got
                continue
            joined = unify(item, got)
            if joined is None:
                self.err(element.span, "E103", msg.mixed_list(item, got))
            else:
                item = joined
        if item is not None and item.kind == "enum":
            item = STR.as_optional(item.optional)  # literals in a list are plain strings
        return list_of(item if item is not None else ANY)

    def _object(self, expr: ast.ObjectLit, scope: _Scope) -> Type:
        fields: dict[str, Type] = {}
        for f in expr.fields:
            got = self.expr(f.value, scope)
            if f.name in fields:
                self.err(f.span, "E110", msg.duplicate_key(f.name))
                continue
            if got.kind == "enum":
                got = STR.as_optional(got.optional)  # a literal in an object is a plain string
            fields[f.name] = got
        return object_of(fields)

    def _name(self, expr: ast.Name, scope: _Scope) -> Type:
        name = expr.name
        if name == "event" and (scope.start is not None or scope.start_unknown):
            self.refs[expr.id] = NameRef("event", name)
            return scope.start.type if scope.start is not None else ANY
        if scope.clause is not None or scope.clause_unknown:
            clause_field = scope.clause.type.field(name) if scope.clause is not None else None
            if clause_field is not None:
                self.refs[expr.id] = NameRef("clause", name)
                return clause_field
        let_type = scope.let(name)
        if let_type is not None:
            self.refs[expr.id] = NameRef("let", name)
            return let_type
        in_clause = scope.clause is not None or scope.clause_unknown
        if not in_clause:
            start_field = scope.start_field(name)
            if start_field is not None:
                self.refs[expr.id] = NameRef("field", name)
                return start_field
        if name == scope.alias and scope.alias is not None:
            self.refs[expr.id] = NameRef("event", name)
            return scope.start.type if scope.start is not None else ANY
        # not found: unknown events make everything `any`, silently
        if in_clause and scope.clause_unknown:
            self.refs[expr.id] = NameRef("clause", name)
            return ANY
        if not in_clause and scope.start_unknown:
            self.refs[expr.id] = NameRef("field", name)
            return ANY
        if in_clause and name == (scope.clause_name or "").split(".")[0]:
            self.err(expr.span, "E102", msg.clause_alias(name, scope.clause_name or ""))
        elif in_clause and scope.start_field(name) is not None:
            self.err(expr.span, "E102", msg.start_field_in_clause(name, scope.clause_name or "", scope.alias or ""))
        elif in_clause or scope.start is not None:
            owner = scope.clause_name if in_clause else scope.start_name
            self.err(expr.span, "E102", msg.unknown_field(name, owner or "", scope.visible_names()))
        else:
            self.err(expr.span, "E102", msg.unknown_name(name, scope.visible_names()))
        return ANY

    def _attr(self, expr: ast.Attr, scope: _Scope) -> Type:
        if self._alias_member(expr, scope):
            base = scope.start.type  # type: ignore[union-attr]
            self.refs[expr.obj.id] = NameRef("event", scope.alias or "")
            self.types[expr.obj.id] = base
        else:
            base = self.expr(expr.obj, scope)
        if base.kind in ("any", "json"):
            return base
        if base.kind == "null":
            return NULL
        if base.kind != "object":
            self.err(expr.span, "E102", msg.no_fields(expr.name, base))
            return ANY
        found = base.field(expr.name)
        if found is None:
            owner = (self.trigger_type_names.get(base.base) or self._schema_trigger_name(base.base)
                     or _written_path(expr.obj) or str(base))
            self.err(expr.span, "E102", msg.unknown_field(expr.name, owner, base.field_names))
            return ANY
        return found.as_optional(found.optional or base.optional)

    def _alias_member(self, expr: ast.Attr, scope: _Scope) -> bool:
        """`action.rule` on `action.failed`, whose field `action` is a str: a name that is both a
        field and the alias means the field (SPEC 2.3), unless the field has no members and the
        start event has this one (SPEC 2.1), where it can only mean the alias."""
        obj = expr.obj
        if not isinstance(obj, ast.Name) or obj.name != scope.alias or scope.start is None:
            return False
        if scope.start.type.field(expr.name) is None:
            return False
        if scope.clause is not None:
            shadow = scope.clause.type.field(obj.name) or scope.let(obj.name)
        else:
            shadow = scope.let(obj.name) or scope.start.type.field(obj.name)
        return shadow is not None and shadow.kind not in ("object", "json", "any")

    def _schema_trigger_name(self, type_: Type) -> str | None:
        for name, trigger in self.schema.triggers.items():
            if trigger.type == type_:
                self.trigger_type_names[type_] = name
                return name
        return None

    def _unary(self, expr: ast.Unary, scope: _Scope) -> Type:
        got = self.expr(expr.operand, scope)
        if expr.op == "not":
            if got.kind != "bool" and not _loose(got):
                self.err(expr.span, "E103", msg.operand_type("not", got))
            return BOOL
        if got.is_numeric or got.kind == "duration" or _loose(got):
            return got if got.kind != "json" else ANY
        self.err(expr.span, "E103", msg.operand_type(expr.op, got))
        return ANY

    def _is(self, expr: ast.Is, scope: _Scope) -> Type:
        got = self.expr(expr.operand, scope)
        if expr.what == "empty" and not (got.is_stringy or got.kind == "list" or _loose(got)):
            self.err(expr.span, "E103", msg.is_empty_operand(got))
        return BOOL

    def _binary(self, expr: ast.Binary, scope: _Scope) -> Type:
        op = expr.op
        left = self.expr(expr.left, scope)
        right = self.expr(expr.right, scope)
        if op in ast.LOGIC_OPS:
            for side, got in ((expr.left, left), (expr.right, right)):
                if got.kind != "bool" and not _loose(got):
                    self.err(side.span, "E103", msg.operand_types(op, left, right))
            return BOOL
        if op in ast.COMPARISON_OPS and expr.left == expr.right:
            self.self_comparison(expr, scope)
        if op in ("=", "!="):
            if not (self.enum_literal(left, expr.right) or self.enum_literal(right, expr.left)
                    or comparable(left, right)):
                self.err(expr.span, "E103", msg.operand_types(op, left, right))
            return BOOL
        if op in ("<", "<=", ">", ">="):
            if not orderable(left, right):
                self.err(expr.span, "E103", msg.operand_types(op, left, right))
            return BOOL
        if op in ast.ARITHMETIC_OPS:
            result = _arithmetic(op, left, right)
            if result is None:
                self.err(expr.span, "E103", msg.operand_types(op, left, right))
                return ANY
            return result
        if op == "contains":
            self._contains(expr, left, right)
        elif op in ("starts with", "ends with"):
            if not ((left.is_stringy or _loose(left)) and (right.is_stringy or _loose(right))):
                self.err(expr.span, "E103", msg.operand_types(op, left, right))
        elif op in ("in", "not in"):
            self._in(expr, left, right)
        elif op == "matches":
            self._matches(expr, left)
        return BOOL

    def self_comparison(self, expr: ast.Binary, scope: _Scope) -> None:
        """W202: `X op X`. In a `wait for`, a bare name there is the awaited event's field: when
        the start event has that field too, the hint names its alias form (`message.thread`)."""
        from whenthen.grammar.printer import print_expr  # the printer imports nothing from here

        alias_form = None
        side = expr.left
        if (isinstance(side, ast.Name) and scope.clause is not None and scope.alias
                and scope.clause.type.field(side.name) is not None
                and scope.start_field(side.name) is not None):
            alias_form = f"{side.name} {expr.op} {scope.alias}.{side.name}"
        self.diags.append(warning(expr.span, "W202", msg.self_comparison(expr.op, print_expr(side), alias_form)))

    def _contains(self, expr: ast.Binary, left: Type, right: Type) -> None:
        if left.kind == "list":
            item = left.item or ANY
            if not self.enum_literal(item.base, expr.right) and not comparable(item, right):
                self.err(expr.span, "E103", msg.operand_types("contains", left, right))
        elif not ((left.is_stringy or _loose(left)) and (right.is_stringy or _loose(right))):
            self.err(expr.span, "E103", msg.operand_types("contains", left, right))

    def _in(self, expr: ast.Binary, left: Type, right: Type) -> None:
        if _loose(right):
            return
        if right.kind != "list":
            self.err(expr.right.span, "E103", msg.in_needs_list(right))
            return
        if left.base.kind == "enum" and isinstance(expr.right, ast.ListLit):
            for item in expr.right.items:
                if not self.enum_literal(left.base, item) and not comparable(left, self.types.get(item.id, ANY)):
                    self.err(item.span, "E103", msg.operand_types(expr.op, left, self.types.get(item.id, ANY)))
            return
        if not comparable(left, right.item or ANY):
            self.err(expr.span, "E103", msg.operand_types(expr.op, left, right))

    def _matches(self, expr: ast.Binary, left: Type) -> None:
        if not (left.is_stringy or _loose(left)):
            self.err(expr.left.span, "E103", msg.operand_type("matches", left))
        if not isinstance(expr.right, ast.StrLit):
            self.err(expr.right.span, "E103", msg.matches_needs_literal())
            return
        try:
            regex.compile_pattern(expr.right.value)
        except regex.RegexError as exc:
            self.err(expr.right.span, "E108", msg.bad_regex(expr.right.value, str(exc)))


# ----------------------------------------------------------------------------- helpers


def _arithmetic(op: str, left: Type, right: Type) -> Type | None:
    """The result type of `left op right`, or None when the operator does not apply."""
    if left.kind in ("any", "json") or right.kind in ("any", "json"):
        return ANY
    if left.kind == "null" and right.kind == "null":
        return NULL
    # null (a literal) takes the other operand's type: the result is null at run time
    left = right if left.kind == "null" else left
    right = left if right.kind == "null" else right
    optional = left.optional or right.optional
    a, b = left.kind, right.kind
    result: Type | None = None
    if left.is_numeric and right.is_numeric:
        if op == "/":
            result = FLOAT
        else:
            result = INT if a == b == "int" else FLOAT
    elif op in ("+", "-"):
        pairs = {
            ("datetime", "duration"): DATETIME,
            ("date", "duration"): DATE,
            ("duration", "duration"): DURATION,
        }
        result = pairs.get((a, b))
        if result is None and op == "+":
            result = {("duration", "datetime"): DATETIME, ("duration", "date"): DATE}.get((a, b))
        if result is None and op == "-" and a == b == "datetime":
            result = DURATION
    elif op == "*" and {a, b} in ({"int", "duration"}, {"float", "duration"}):
        result = DURATION
    return result.as_optional(optional) if result is not None else None


def _wall_clock_use(node: ast.Node) -> str | None:
    """What makes `node` a use of wall-clock time (W203), or None."""
    if isinstance(node, ast.EveryAt):
        return f"`every {node.day} at {node.time:%H:%M}`"
    if isinstance(node, ast.Cron):
        return f"`cron \"{node.expr}\"`"
    if isinstance(node, ast.At) and node.when.tzinfo is None:
        return "`at` with a datetime without offset"
    if isinstance(node, ast.DateTimeLit) and node.value.tzinfo is None:
        return "a datetime literal without offset"
    if isinstance(node, ast.Call) and node.func in ("today", "date"):
        return f"`{node.func}()`"
    if isinstance(node, ast.During):
        return f"`during {node.start}-{node.end}`"
    return None


def _written_path(expr: object) -> str | None:
    """`company.address` as written, for messages; None for anything but names and members."""
    if isinstance(expr, ast.Name):
        return expr.name
    if isinstance(expr, ast.Attr):
        inner = _written_path(expr.obj)
        return f"{inner}.{expr.name}" if inner else None
    return None


def _is(t: Type, kind: str) -> bool:
    """`t` is of `kind` (optional allowed: null fails the run clearly), or unknown/json."""
    return t.kind == kind or t.kind in ("any", "json")


def _pick(span: Span, fallback: Span) -> Span:
    return fallback if span == NO_SPAN else span


def _where(span: Span) -> str:
    return f"{span.file}:{span.line}"


def _same_action(a: ActionSig, b: ActionSig) -> bool:
    return a.params == b.params and a.result == b.result


# Where the checker looks for a cron expression's first match (`0 0 30 2 *` has none).
_CRON_PROBE = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def _valid_cron(expr: str) -> bool:
    if len(expr.split()) != 5:
        return False
    from croniter import croniter  # ~10 ms to import: only files with a cron rule pay it

    try:
        return bool(croniter.is_valid(expr))
    except Exception:  # croniter raises assorted errors on odd input
        return False


_ZONES: set[str] | None = None


def _all_zones() -> set[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = zoneinfo.available_timezones() | {"UTC"}
    return _ZONES


def _valid_zone(name: str | None) -> bool:
    if not name:
        return False
    if name in _all_zones():
        return True
    try:
        zoneinfo.ZoneInfo(name)
        return True
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False


def _literal_value(expr: object, tz: str) -> Any:
    """The runtime value of a literal (an action parameter's default); ValueError if not one."""
    if isinstance(expr, (ast.StrLit, ast.IntLit, ast.FloatLit, ast.BoolLit, ast.DateLit)):
        return expr.value
    text = _literal_string(expr)
    if text is not None:
        return text
    if isinstance(expr, ast.NullLit):
        return None
    if isinstance(expr, ast.DurationLit):
        return dt.timedelta(seconds=expr.seconds)
    if isinstance(expr, ast.DateTimeLit):
        value = expr.value
        return value if value.tzinfo is not None else value.replace(tzinfo=zoneinfo.ZoneInfo(tz))
    if isinstance(expr, ast.ListLit):
        return [_literal_value(item, tz) for item in expr.items]
    if isinstance(expr, ast.ObjectLit):
        return {f.name: _literal_value(f.value, tz) for f in expr.fields}
    if isinstance(expr, ast.Unary) and expr.op == "-" and isinstance(expr.operand, (ast.IntLit, ast.FloatLit)):
        return -expr.operand.value
    raise ValueError("not a literal")


# ----------------------------------------------------------------------------- one item at a time
# For the language server (tools/workspace.py): the declarations of a program checked apart from
# its rules, and one rule checked against them, recording which declarations it read, so a
# rule's result can be kept until one of those changes.


class _Reads(dict):
    """A dict that records the keys read from it (`every` when it was iterated)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.seen: set[Any] = set()
        self.every = False

    def get(self, key: Any, default: Any = None) -> Any:
        self.seen.add(key)
        return dict.get(self, key, default)

    def __getitem__(self, key: Any) -> Any:
        self.seen.add(key)
        return dict.__getitem__(self, key)

    def __contains__(self, key: object) -> bool:
        self.seen.add(key)
        return dict.__contains__(self, key)

    def __iter__(self):  # type: ignore[override]
        self.every = True
        return dict.__iter__(self)

    def items(self):  # type: ignore[override]
        self.every = True
        return dict.items(self)

    def keys(self):  # type: ignore[override]
        self.every = True
        return dict.keys(self)

    def values(self):  # type: ignore[override]
        self.every = True
        return dict.values(self)


@dataclass
class Declarations:
    """The `timezone`, `locale`, `trigger` and `action` declarations of a program, checked."""

    schema: Schema
    timezones: list[str]
    locales: list[str]
    diagnostics: list[Diagnostic]
    refs: dict[int, NameRef]
    types: dict[int, Type]
    calls: dict[int, ResolvedCall]
    trigger_type_names: dict[Type, str]


@dataclass
class CheckedRule:
    """One rule checked alone: what `check_files` would have found for it (but duplicate names),
    and the declarations it read: {('trigger' | 'action' | 'function', name)}; a kind in `every`
    when it used all of them (a did-you-mean)."""

    info: RuleInfo
    diagnostics: list[Diagnostic]
    refs: dict[int, NameRef]
    types: dict[int, Type]
    calls: dict[int, ResolvedCall]
    reads: set[tuple[str, str]]
    every: set[str]


def check_declarations(files: list[ast.File], parse_diags: list[Diagnostic], schema: Schema | None = None) -> Declarations:
    """The declarations part of `check_files`."""
    checker = _Checker(_base_schema(schema))
    try:
        timezones = [checker.file_timezone(f, parse_diags) for f in files]
        locales = [checker.file_locale(f, parse_diags) for f in files]
        for file in files:
            checker.declarations(file)
    except Exception as exc:
        timezones = ["UTC"] * len(files)
        locales = [DEFAULT_LOCALE] * len(files)
        checker.internal(exc, NO_SPAN)
    return Declarations(checker.schema, timezones, locales, checker.diags, checker.refs, checker.types,
                        checker.calls, checker.trigger_type_names)


def check_rule(decls: Declarations, rule: ast.Rule, file: ast.File, source: Source | None, tz: str,
               locale: str) -> CheckedRule:
    """Check one rule against checked declarations (its name's uniqueness is the caller's)."""
    triggers, actions, functions = _Reads(decls.schema.triggers), _Reads(decls.schema.actions), _Reads(decls.schema.functions)
    type_names = _Reads(decls.trigger_type_names)
    checker = _Checker(Schema(triggers, actions, functions))
    checker.trigger_type_names = type_names
    try:
        info = checker.rule(rule, file, source, tz)
    except Exception as exc:
        checker.internal(exc, rule.span)
        info = RuleInfo(name=rule.name or "", rule=rule, file=file.name, timezone=tz,
                        trigger=rule.when.name if isinstance(rule.when, ast.TriggerRef) else ast.SCHEDULE_TRIGGER,
                        source_text="")
    info.locale = locale
    reads = {("trigger", n) for n in triggers.seen} | {("action", n) for n in actions.seen}
    reads |= {("function", n) for n in functions.seen}
    every = {kind for kind, d in (("trigger", triggers), ("action", actions), ("function", functions)) if d.every}
    if type_names.seen or type_names.every:
        every.add("trigger")
    return CheckedRule(info, checker.diags, checker.refs, checker.types, checker.calls, reads, every)


def first_wall_clock_use(file: ast.File) -> ast.Node | None:
    """The file's first use of wall-clock time (for W203; `wall_clock` over one file)."""
    uses = [(node.span.start, node) for node in ast.walk(file.items)
            if node.span != NO_SPAN and _wall_clock_use(node) is not None]
    return min(uses, key=lambda u: u[0])[1] if uses else None


def wall_clock_warning(node: ast.Node, declaring: ast.File) -> Diagnostic:
    """W203 at `node`, a wall-clock use in a file without `timezone`, `declaring` declaring one."""
    return warning(node.span, "W203", msg.wall_clock_without_timezone(
        _wall_clock_use(node) or "", declaring.timezone or "", declaring.name))
