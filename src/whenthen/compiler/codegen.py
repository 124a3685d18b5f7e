"""Code generation: a checked program's rules to `RuleCode` (filter, body, exit clauses).

The generator trusts the checker: it runs only on programs without errors and reads what each
name means (`refs`), how call arguments match parameters (`calls`) and the schema for function
parameter order and defaults. Conditions compile to short-circuit jumps; a condition whose
value is not `true` (null included) counts as false.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from whenthen.calendar import ScheduleError, day_set, localize, parse_clock
from whenthen.compiler.checked import CheckedProgram, NameRef, ResolvedCall, RuleInfo
from whenthen.compiler.code import Code, ExitCode, RuleCode
from whenthen.compiler.decls import DEFAULT_LOCALE, FILE_LOCALE, Schema
from whenthen.compiler.opcodes import BINARY_OPS, Opcode
from whenthen.diagnostics import CompileError, Span
from whenthen.grammar import ast


class CodegenError(Exception):
    """An internal error: the checked program is not what the checker promises."""


def compile_rules(program: CheckedProgram) -> dict[str, RuleCode]:
    """Compile every rule of a checked program, keyed by rule name (in program order)."""
    if not program.ok:
        raise CompileError(program.diagnostics)
    return {info.name: compile_rule(program, info) for info in program.rules}


def compile_rule(program: CheckedProgram, info: RuleInfo) -> RuleCode:
    rule = info.rule
    filter_code = None
    equalities: tuple[tuple[str, Any], ...] = ()
    if rule.where is not None:
        filter_code = _condition_code(program, info, "filter", rule.where)
        equalities = filter_equalities_of(program, info, rule.where)
    body = _Builder(program, info.timezone, "body", info.locale)
    body.rule_name = info.name
    body.window = window_data(rule.during)
    body.block(rule.body)
    body.emit(Opcode.HALT, 0, None)
    return RuleCode(
        name=info.name,
        trigger=info.trigger,
        timezone=info.timezone,
        source=info.source_text,
        filter=filter_code,
        body=body.build(),
        exits=tuple(_exit_code(program, info, i, clause) for i, clause in enumerate(rule.exits)),
        equalities=equalities,
        schedule=_schedule_data(info),
        file=info.file,
        first_line=rule.span.line,
        uses=uses_of(info),
        **_limit_code(program, info),
    )


def _limit_code(program: CheckedProgram, info: RuleInfo) -> dict[str, Any]:
    """`once per KEY… [within D]`: the code of the key list, and D in seconds."""
    once = info.rule.once
    if once is None:
        return {}
    builder = _Builder(program, info.timezone, "once per", info.locale)
    for key in once.keys:
        builder.expr(key)
    builder.emit(Opcode.BUILD_LIST, len(once.keys), None)
    builder.emit(Opcode.RETURN, 0, None)
    within = once.within.seconds if isinstance(once.within, ast.DurationLit) else None
    return {"limit_keys": builder.build(), "limit_within": within}


def window_data(during: ast.During | None) -> list[Any] | None:
    """`during HH:MM-HH:MM [on DAYS]` as [start minute, end minute, [weekdays it opens]]."""
    if during is None:
        return None
    start, end = parse_clock(during.start), parse_clock(during.end)
    if start is None or end is None or start == end:
        raise CodegenError(f"unchecked sending window {during.start}-{during.end}")
    try:
        days = day_set([(d.first, d.last) for d in during.days])
    except ScheduleError as exc:
        raise CodegenError(f"unchecked sending window: {exc}") from None
    return [start, end, days]


def uses_of(info: RuleInfo) -> tuple[tuple[str, str], ...]:
    """The (trigger, how) pairs of a rule: how is start, exit, await or emit; first use first."""
    pairs = [(info.trigger, "start")]
    pairs += [(clause.trigger.name, "exit") for clause in info.rule.exits]
    for node in ast.walk(info.rule.body):
        if isinstance(node, ast.WaitFor):
            pairs.append((node.trigger, "await"))
        elif isinstance(node, ast.Emit):
            pairs.append((node.trigger, "emit"))
    return tuple(dict.fromkeys(pairs))


def compile_expression(
    expr: ast.Expr,
    refs: dict[int, NameRef],
    calls: dict[int, ResolvedCall],
    schema: Schema,
    timezone: str = "UTC",
    locale: str = DEFAULT_LOCALE,
) -> Code:
    """One checked expression (REPL, `evaluate`) as code that returns its value."""
    program = CheckedProgram(files=[], sources={}, schema=schema, rules=[], refs=refs, calls=calls)
    builder = _Builder(program, timezone, "expression", locale)
    builder.expr(expr)
    builder.emit(Opcode.RETURN, 0, None)
    return builder.build()


# ----------------------------------------------------------------------------- helpers per rule part


def _condition_code(program: CheckedProgram, info: RuleInfo, name: str, cond: ast.Expr) -> Code:
    builder = _Builder(program, info.timezone, name, info.locale)
    builder.condition(cond)
    builder.emit(Opcode.RETURN, 0, None)
    return builder.build()


def _is_boolean(expr: ast.Expr) -> bool:
    """Does the expression always give true or false (never null or a json value)?"""
    if isinstance(expr, ast.Binary):
        return expr.op in ast.LOGIC_OPS or expr.op in ast.COMPARISON_OPS or expr.op in ast.TEST_OPS
    return isinstance(expr, (ast.Is, ast.BoolLit)) or (isinstance(expr, ast.Unary) and expr.op == "not")


def _exit_code(program: CheckedProgram, info: RuleInfo, index: int, clause: ast.ExitClause) -> ExitCode:
    if clause.where is None:
        return ExitCode(clause.trigger.name)
    where = _condition_code(program, info, f"exit {index}", clause.where)
    pairs = correlation_pairs(program, clause.where)
    correlation = None
    if pairs:
        builder = _Builder(program, info.timezone, f"exit {index} correlation", info.locale)
        for _, expr in pairs:
            builder.expr(expr)
        builder.emit(Opcode.BUILD_LIST, len(pairs), None)
        builder.emit(Opcode.RETURN, 0, None)
        correlation = builder.build()
    return ExitCode(clause.trigger.name, where, tuple(f for f, _ in pairs), correlation)


def _schedule_data(info: RuleInfo) -> dict[str, Any] | None:
    schedule = info.schedule
    if schedule is None:
        return None
    if isinstance(schedule, ast.Every):
        return {"kind": "every", "seconds": schedule.seconds}
    if isinstance(schedule, ast.EveryAt):
        return {"kind": "every_at", "day": schedule.day, "time": schedule.time.strftime("%H:%M")}
    if isinstance(schedule, ast.Cron):
        return {"kind": "cron", "expr": schedule.expr}
    return {"kind": "at", "when": localize(schedule.when, info.timezone)}


def _conjuncts(cond: ast.Expr) -> list[ast.Expr]:
    """The top-level `and` operands of a condition, flattened."""
    if isinstance(cond, ast.Binary) and cond.op == "and":
        return _conjuncts(cond.left) + _conjuncts(cond.right)
    return [cond]


def _uses_clause(program: CheckedProgram, expr: ast.Expr) -> bool:
    return any(
        isinstance(node, ast.Name) and program.refs.get(node.id) is not None
        and program.refs[node.id].kind == "clause"
        for node in ast.walk(expr)
    )


def _clause_field(program: CheckedProgram, expr: ast.Expr) -> str | None:
    if isinstance(expr, ast.Name):
        ref = program.refs.get(expr.id)
        if ref is not None and ref.kind == "clause":
            return ref.name
    return None


def correlation_pairs(program: CheckedProgram, cond: ast.Expr) -> list[tuple[str, ast.Expr]]:
    """Top-level conjuncts `clause_field = expr` (either way round) whose other side does not
    read the clause's event: equalities known when the wait (or the run) begins."""
    pairs = []
    for part in _conjuncts(cond):
        if not (isinstance(part, ast.Binary) and part.op == "="):
            continue
        for this, other in ((part.left, part.right), (part.right, part.left)):
            name = _clause_field(program, this)
            if name is not None and not _uses_clause(program, other):
                pairs.append((name, other))
                break
    return pairs


def constant_value(expr: ast.Expr, timezone: str) -> tuple[bool, Any]:
    """(True, value) when `expr` is a constant the generator folds; (False, None) otherwise."""
    if isinstance(expr, (ast.StrLit, ast.IntLit, ast.FloatLit, ast.BoolLit, ast.DateLit)):
        return True, expr.value
    if isinstance(expr, ast.NullLit):
        return True, None
    if isinstance(expr, ast.DurationLit):
        return True, dt.timedelta(seconds=expr.seconds)
    if isinstance(expr, ast.DateTimeLit):
        return True, localize(expr.value, timezone)
    if isinstance(expr, ast.Template) and all(isinstance(p, str) for p in expr.parts):
        return True, "".join(expr.parts)  # type: ignore[arg-type]
    if isinstance(expr, ast.Unary) and expr.op == "-":
        ok, value = constant_value(expr.operand, timezone)
        if ok and isinstance(value, (int, float, dt.timedelta)) and not isinstance(value, bool):
            return True, -value
    return False, None


def _start_field(program: CheckedProgram, expr: ast.Expr) -> str | None:
    """The start-event field an expression reads directly (`category`, `guest.category`)."""
    if isinstance(expr, ast.Name):
        ref = program.refs.get(expr.id)
        if ref is not None and ref.kind == "field":
            return ref.name
    if isinstance(expr, ast.Attr) and isinstance(expr.obj, ast.Name):
        ref = program.refs.get(expr.obj.id)
        if ref is not None and ref.kind == "event":
            return expr.name
    return None


def filter_equalities_of(
    program: CheckedProgram, info: RuleInfo, cond: ast.Expr
) -> tuple[tuple[str, Any], ...]:
    """Top-level `field = constant` conjuncts: necessary conditions for the filter to hold."""
    found = []
    for part in _conjuncts(cond):
        if not (isinstance(part, ast.Binary) and part.op == "="):
            continue
        for this, other in ((part.left, part.right), (part.right, part.left)):
            name = _start_field(program, this)
            ok, value = constant_value(other, info.timezone)
            if name is not None and ok:
                found.append((name, value))
                break
    return tuple(found)


# ----------------------------------------------------------------------------- the builder


class _Builder:
    """Emits the instructions of one `Code`, with its constant, name and line tables."""

    def __init__(self, program: CheckedProgram, timezone: str, name: str, locale: str = DEFAULT_LOCALE):
        self.program = program
        self.timezone = timezone
        self.locale = locale  # the file's `locale`, given where a `locale` parameter is left out
        self.name = name
        self.instrs: list[tuple[Opcode, int]] = []
        self.consts: list[Any] = []
        self.const_index: dict[tuple[str, str], int] = {}
        self.names: list[str] = []
        self.name_index: dict[str, int] = {}
        self.lines: list[tuple[int, int, int]] = []
        self.codes: list[Code] = []
        # the position of the statement being compiled, given to its first instruction
        self.statement_span: Span | None = None
        # per enclosing loop, innermost last: the jumps its `break`s make to its end
        self.breaks: list[list[int]] = []
        self.rule_name = ""  # a split's choice hashes it (SPEC 2.13)
        self.splits = 0  # splits compiled so far: each is numbered 1, 2, … in source order
        self.window: list[Any] | None = None  # the rule's `during` (SPEC 2.12): [start, end, days]

    def build(self) -> Code:
        return Code(self.name, tuple(self.instrs), tuple(self.consts), tuple(self.names),
                    tuple(self.lines), tuple(self.codes))

    # -- emission
    def emit(self, op: Opcode, arg: int, span: Span | None) -> int:
        if span is None:
            span, self.statement_span = self.statement_span, None
        else:
            self.statement_span = None
        if span is not None and span.line > 0:
            position = (span.line, span.column)
            if not self.lines or self.lines[-1][1:] != position:
                if self.lines and self.lines[-1][0] == len(self.instrs):
                    self.lines[-1] = (len(self.instrs), *position)
                else:
                    self.lines.append((len(self.instrs), *position))
        self.instrs.append((op, arg))
        return len(self.instrs) - 1

    def const(self, value: Any) -> int:
        key = (type(value).__name__, repr(value))
        if key not in self.const_index:
            self.const_index[key] = len(self.consts)
            self.consts.append(value)
        return self.const_index[key]

    def name_of(self, name: str) -> int:
        if name not in self.name_index:
            self.name_index[name] = len(self.names)
            self.names.append(name)
        return self.name_index[name]

    def here(self) -> int:
        return len(self.instrs)

    def patch(self, at: int, target: int | None = None) -> None:
        op, _ = self.instrs[at]
        self.instrs[at] = (op, self.here() if target is None else target)

    # -- statements
    def block(self, stmts: tuple[ast.Stmt, ...]) -> None:
        for stmt in stmts:
            self.stmt(stmt)

    def stmt(self, stmt: ast.Stmt) -> None:
        span = stmt.span
        self.statement_span = span
        if isinstance(stmt, ast.CallStmt):
            self.call_value(stmt.call)
            self.emit(Opcode.POP, 0, None)
        elif isinstance(stmt, ast.Let):
            if isinstance(stmt.value, ast.WaitFor):
                self.wait_for(stmt.value)
            else:
                self.call_value(stmt.value)
            self.emit(Opcode.STORE_LOCAL, self.name_of(stmt.name), span)
        elif isinstance(stmt, ast.Wait):
            self.expr(stmt.duration)
            self.emit(Opcode.WAIT, 0, span)
        elif isinstance(stmt, ast.WaitUntil):
            self.expr(stmt.when)
            self.emit(Opcode.WAIT_UNTIL, 0, span)
        elif isinstance(stmt, ast.WaitFor):
            self.wait_for(stmt)
            self.emit(Opcode.POP, 0, None)
        elif isinstance(stmt, ast.If):
            self.if_(stmt)
        elif isinstance(stmt, ast.Switch):
            self.switch(stmt)
        elif isinstance(stmt, ast.Split):
            self.split(stmt)
        elif isinstance(stmt, ast.Emit):
            resolved = self.program.calls.get(stmt.id)
            args = resolved.args if resolved is not None else tuple((a.name or "", a.value) for a in stmt.args)
            for _, value in args:
                self.expr(value)
            k = self.const([stmt.trigger, [name for name, _ in args]])
            self.emit(Opcode.EMIT, k, span)
        elif isinstance(stmt, ast.Stop):
            self.emit(Opcode.HALT, 0, span)
        elif isinstance(stmt, ast.Repeat):
            self.expr(stmt.count)
            self.emit(Opcode.LOOP_COUNT, 0, stmt.count.span)
            self.loop(Opcode.FOR_RANGE, None, stmt.body, span)
        elif isinstance(stmt, ast.For):
            self.expr(stmt.items)
            self.emit(Opcode.LOOP_LIST, 0, stmt.items.span)
            self.loop(Opcode.FOR_ITER, stmt.name, stmt.body, span)
        elif isinstance(stmt, ast.Break):
            # the innermost loop's two state values are all a statement leaves on the stack
            self.emit(Opcode.POP, 0, span)
            self.emit(Opcode.POP, 0, None)
            self.breaks[-1].append(self.emit(Opcode.JUMP, 0, None))
        else:
            raise CodegenError(f"cannot compile statement {type(stmt).__name__}")

    def loop(self, step: Opcode, name: str | None, body: tuple[ast.Stmt, ...], span: Span) -> None:
        """top: STEP end; [STORE_LOCAL name]; body; JUMP top; end: (the state is popped by STEP)."""
        top = self.emit(step, 0, span)
        if name is not None:
            self.emit(Opcode.STORE_LOCAL, self.name_of(name), None)
        self.breaks.append([])
        self.block(body)
        self.emit(Opcode.JUMP, top, None)
        self.patch(top)
        for at in self.breaks.pop():
            self.patch(at)

    def branch(self, label: str, span: Span) -> None:
        self.emit(Opcode.BRANCH, self.const(label), span)

    def if_(self, stmt: ast.If) -> None:
        to_end = []
        for i, branch in enumerate(stmt.branches):
            self.expr(branch.cond)
            skip = self.emit(Opcode.JUMP_IF_FALSE, 0, branch.cond.span)
            self.branch("then" if i == 0 else f"elif {i}", branch.span)
            self.block(branch.body)
            to_end.append(self.emit(Opcode.JUMP, 0, None))
            self.patch(skip)
        if stmt.else_body is not None:
            self.branch("else", stmt.span)
            self.block(stmt.else_body)
        else:
            self.branch("none", stmt.span)
        for at in to_end:
            self.patch(at)

    def switch(self, stmt: ast.Switch) -> None:
        to_end = []
        if stmt.subject is None:
            # each case holds one condition: an if/elif chain
            for i, case in enumerate(stmt.cases):
                self.expr(case.values[0])
                skip = self.emit(Opcode.JUMP_IF_FALSE, 0, case.span)
                self.branch(f"case {i + 1}", case.span)
                self.block(case.body)
                to_end.append(self.emit(Opcode.JUMP, 0, None))
                self.patch(skip)
            self.else_(stmt)
        else:
            # the subject stays on the stack while the cases compare with `=` semantics
            self.expr(stmt.subject)
            to_case: list[list[int]] = []
            for case in stmt.cases:
                jumps = []
                for value in case.values:
                    self.emit(Opcode.DUP, 0, None)
                    self.expr(value)
                    self.emit(Opcode.EQ, 0, value.span)
                    jumps.append(self.emit(Opcode.JUMP_IF_TRUE, 0, None))
                to_case.append(jumps)
            self.emit(Opcode.POP, 0, None)
            self.else_(stmt)
            to_end.append(self.emit(Opcode.JUMP, 0, None))
            for i, (case, jumps) in enumerate(zip(stmt.cases, to_case, strict=True)):
                for at in jumps:
                    self.patch(at)
                self.emit(Opcode.POP, 0, None)
                self.branch(f"case {i + 1}", case.span)
                self.block(case.body)
                to_end.append(self.emit(Opcode.JUMP, 0, None))
        for at in to_end:
            self.patch(at)

    def split(self, stmt: ast.Split) -> None:
        """[by]; SPLIT → the case number (1-based) stays on the stack while it is compared."""
        self.splits += 1
        if stmt.by is not None:
            self.expr(stmt.by)
        shares = [case.share for case in stmt.cases]
        k = self.const([self.rule_name, self.splits, shares, stmt.by is not None])
        self.emit(Opcode.SPLIT, k, stmt.span)
        jumps = []
        for i in range(len(stmt.cases)):
            self.emit(Opcode.DUP, 0, None)
            self.emit(Opcode.CONST, self.const(i + 1), None)
            self.emit(Opcode.EQ, 0, None)
            jumps.append(self.emit(Opcode.JUMP_IF_TRUE, 0, None))
        self.emit(Opcode.POP, 0, None)
        to_end = [self.emit(Opcode.JUMP, 0, None)]
        for case, at in zip(stmt.cases, jumps, strict=True):
            self.patch(at)
            self.emit(Opcode.POP, 0, None)
            self.block(case.body)
            to_end.append(self.emit(Opcode.JUMP, 0, None))
        for at in to_end:
            self.patch(at)

    def else_(self, stmt: ast.Switch) -> None:
        if stmt.else_body is not None:
            self.branch("else", stmt.span)
            self.block(stmt.else_body)
        else:
            self.branch("none", stmt.span)

    def wait_for(self, wait: ast.WaitFor) -> None:
        where_index = -1
        pairs: list[tuple[str, ast.Expr]] = []
        if wait.where is not None:
            sub = _Builder(self.program, self.timezone, f"wait for {wait.trigger}", self.locale)
            sub.condition(wait.where)
            sub.emit(Opcode.RETURN, 0, None)
            self.codes.append(sub.build())
            where_index = len(self.codes) - 1
            pairs = correlation_pairs(self.program, wait.where)
        if wait.within is not None:
            self.expr(wait.within)
        for _, expr in pairs:
            self.expr(expr)
        k = self.const([wait.trigger, where_index, wait.within is not None, [f for f, _ in pairs]])
        self.emit(Opcode.WAIT_FOR, k, wait.span)

    # -- calls
    def call_value(self, value: ast.Expr) -> None:
        """A statement's or `let`'s value: an action call, or any expression."""
        resolved = self.program.calls.get(value.id) if isinstance(value, ast.Call) else None
        if resolved is None or resolved.kind != "action":
            self.expr(value)
            return
        if self.window is not None:  # checked before the arguments: they are evaluated when it happens
            self.emit(Opcode.WAIT_WINDOW, self.const([*self.window, resolved.name]), None)
        for _, value in resolved.args:
            self.expr(value)
        k = self.const([resolved.name, [name for name, _ in resolved.args]])
        self.emit(Opcode.CALL_ACTION, k, value.span)

    def function_call(self, call: ast.Call) -> None:
        resolved = self.program.calls.get(call.id)
        if resolved is None or resolved.kind != "function":
            raise CodegenError(f"call to {call.func} is not a resolved function call")
        sig = self.program.schema.functions.get(resolved.name)
        given = dict(resolved.args)
        if sig is None or sig.variadic:
            args = [value for _, value in resolved.args]
            for value in args:
                self.expr(value)
        else:
            # declared order; a parameter left out takes its default
            for param in sig.params:
                if param.name in given:
                    self.expr(given[param.name])
                elif param.default is FILE_LOCALE:
                    self.emit(Opcode.CONST, self.const(self.locale), None)
                elif param.has_default:
                    self.emit(Opcode.CONST, self.const(param.default), None)
                else:
                    raise CodegenError(f"missing argument {param.name} to {resolved.name}")
            args = list(sig.params)
        self.emit(Opcode.CALL_FUNC, self.const([resolved.name, len(args)]), call.span)

    # -- expressions
    def expr(self, expr: ast.Expr) -> None:
        ok, value = constant_value(expr, self.timezone)
        if ok:
            self.emit(Opcode.CONST, self.const(value), expr.span)
        elif isinstance(expr, ast.Template):
            for part in expr.parts:
                if isinstance(part, str):
                    self.emit(Opcode.CONST, self.const(part), None)
                else:
                    self.expr(part)
                    self.emit(Opcode.FORMAT, 0, part.span)
            self.emit(Opcode.BUILD_STRING, len(expr.parts), None)
        elif isinstance(expr, ast.ListLit):
            for item in expr.items:
                self.expr(item)
            self.emit(Opcode.BUILD_LIST, len(expr.items), expr.span)
        elif isinstance(expr, ast.ObjectLit):
            for f in expr.fields:
                self.expr(f.value)
            self.emit(Opcode.BUILD_OBJECT, self.const([f.name for f in expr.fields]), expr.span)
        elif isinstance(expr, ast.Name):
            self.load_name(expr)
        elif isinstance(expr, ast.Attr):
            field = _start_field(self.program, expr)
            if field is not None:
                self.emit(Opcode.LOAD_FIELD, self.name_of(field), expr.span)
            else:
                self.expr(expr.obj)
                self.emit(Opcode.ATTR, self.name_of(expr.name), expr.span)
        elif isinstance(expr, ast.Call):
            self.function_call(expr)
        elif isinstance(expr, ast.Unary):
            self.expr(expr.operand)
            self.emit(Opcode.NOT if expr.op == "not" else Opcode.NEG, 0, expr.span)
        elif isinstance(expr, ast.Is):
            self.expr(expr.operand)
            self.emit(Opcode.IS_NULL if expr.what == "null" else Opcode.IS_EMPTY, 0, expr.span)
            if expr.negated:
                self.emit(Opcode.NOT, 0, None)
        elif isinstance(expr, ast.Binary):
            self.binary(expr)
        else:
            raise CodegenError(f"cannot compile expression {type(expr).__name__}")

    def condition(self, expr: ast.Expr) -> None:
        """An expression used as a condition: its value made strictly true or false."""
        self.expr(expr)
        if not _is_boolean(expr):
            self.emit(Opcode.BOOL, 0, None)

    def load_name(self, expr: ast.Name) -> None:
        ref = self.program.refs.get(expr.id)
        if ref is None:
            raise CodegenError(f"unresolved name {expr.name!r}")
        if ref.kind == "let":
            self.emit(Opcode.LOAD_LOCAL, self.name_of(ref.name), expr.span)
        elif ref.kind == "field":
            self.emit(Opcode.LOAD_FIELD, self.name_of(ref.name), expr.span)
        elif ref.kind == "event":
            self.emit(Opcode.LOAD_EVENT, 0, expr.span)
        else:
            self.emit(Opcode.LOAD_CLAUSE, self.name_of(ref.name), expr.span)

    def binary(self, expr: ast.Binary) -> None:
        if expr.op in ("and", "or"):
            self.expr(expr.left)
            op = Opcode.JUMP_IF_FALSE_OR_POP if expr.op == "and" else Opcode.JUMP_IF_TRUE_OR_POP
            jump = self.emit(op, 0, None)
            self.condition(expr.right)
            self.patch(jump)
            return
        self.expr(expr.left)
        self.expr(expr.right)
        self.emit(BINARY_OPS[expr.op], 0, expr.span)
