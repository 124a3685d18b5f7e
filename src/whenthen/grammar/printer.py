"""AST to canonical source text, parenthesised by precedence, so that `parse(print(ast)) == ast`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

from whenthen.grammar import ast

INDENT = "  "

# Binding strength, loosest first (SPEC 2.4); atoms bind tightest.
_OR, _AND, _NOT, _COMPARE, _SUM, _PRODUCT, _UNARY, _POSTFIX, _ATOM = range(1, 10)
_BINARY_LEVEL = {
    "or": _OR, "and": _AND,
    "+": _SUM, "-": _SUM, "*": _PRODUCT, "/": _PRODUCT, "%": _PRODUCT,
    **{op: _COMPARE for op in ast.COMPARISON_OPS + ast.TEST_OPS},
}
_UNITS = (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


# ----------------------------------------------------------------------------- literals


def format_duration(seconds: int) -> str:
    """`5400` → `1h30m`; `0` → `0s`."""
    parts = []
    rest = seconds
    for unit, size in _UNITS:
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts) or "0s"


def format_float(value: float) -> str:
    """A float as the grammar's FLOAT (`digits.digits`, no exponent) that reads back equal."""
    text = repr(value)
    if "e" in text or "E" in text:
        text = format(Decimal(value), "f")
    if "." not in text:
        text += ".0"
    return text


def format_datetime(value: dt.datetime) -> str:
    text = value.strftime("%Y-%m-%dT%H:%M")
    if value.second or value.microsecond:
        text += f":{value.second:02d}"
        if value.microsecond:
            text += "." + f"{value.microsecond:06d}".rstrip("0")
    offset = value.utcoffset()
    if offset is not None:
        if offset == dt.timedelta(0):
            text += "Z"
        else:
            sign = "-" if offset < dt.timedelta(0) else "+"
            minutes = abs(int(offset.total_seconds())) // 60
            text += f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    return text


def quote_single(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_plain(value: str) -> str:
    """A double-quoted string without templating (rule names, timezones, cron expressions)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def _template(node: ast.Template) -> str:
    out = []
    for part in node.parts:
        if isinstance(part, str):
            out.append(quote_plain(part)[1:-1].replace("{", "{{").replace("}", "}}"))
        else:
            out.append("{" + print_expr(part) + "}")
    return '"' + "".join(out) + '"'


# ----------------------------------------------------------------------------- expressions


def _level(node: ast.Expr) -> int:
    if isinstance(node, ast.Binary):
        return _BINARY_LEVEL[node.op]
    if isinstance(node, ast.Is):
        return _COMPARE
    if isinstance(node, ast.Unary):
        return _NOT if node.op == "not" else _UNARY
    if isinstance(node, (ast.Attr, ast.Call)):
        return _POSTFIX
    return _ATOM


def _at_least(node: ast.Expr, level: int) -> str:
    """`node` printed, in parentheses when it binds more loosely than `level` needs."""
    text = print_expr(node)
    return text if _level(node) >= level else f"({text})"


def _args(args: tuple[ast.Arg, ...]) -> str:
    return ", ".join(print_expr(a.value) if a.name is None else f"{a.name}: {print_expr(a.value)}" for a in args)


def print_expr(expr: ast.Expr) -> str:
    """One expression as canonical source."""
    match expr:
        case ast.StrLit(value=value):
            return quote_single(value)
        case ast.Template():
            return _template(expr)
        case ast.IntLit(value=value):
            return str(value)
        case ast.FloatLit(value=value):
            return format_float(value)
        case ast.BoolLit(value=value):
            return "true" if value else "false"
        case ast.NullLit():
            return "null"
        case ast.DurationLit(seconds=seconds):
            return format_duration(seconds)
        case ast.DateLit(value=value):
            return value.isoformat()
        case ast.DateTimeLit(value=value):
            return format_datetime(value)
        case ast.ListLit(items=items):
            return "[" + ", ".join(print_expr(i) for i in items) + "]"
        case ast.ObjectLit(fields=fields):
            return "{" + ", ".join(f"{f.name}: {print_expr(f.value)}" for f in fields) + "}"
        case ast.Name(name=name):
            return name
        case ast.Attr(obj=ast.BoolLit() | ast.NullLit() as obj, name=name):
            return f"({print_expr(obj)}).{name}"  # a keyword before `.` would read as a name
        case ast.Attr(obj=obj, name=name):
            return f"{_at_least(obj, _POSTFIX)}.{name}"
        case ast.Call(func=func, args=args):
            return f"{func}({_args(args)})"
        case ast.Unary(op="not", operand=operand):
            return f"not {_at_least(operand, _NOT)}"
        case ast.Unary(op=op, operand=operand):
            return f"{op}{_at_least(operand, _UNARY)}"
        case ast.Is(operand=operand, what=what, negated=negated):
            return f"{_at_least(operand, _SUM)} is {'not ' if negated else ''}{what}"
        case ast.Binary(op=op, left=left, right=right):
            level = _BINARY_LEVEL[op]
            if level == _COMPARE:  # comparisons do not chain: both sides one level tighter
                return f"{_at_least(left, _SUM)} {op} {_at_least(right, _SUM)}"
            return f"{_at_least(left, level)} {op} {_at_least(right, level + 1)}"
    raise TypeError(f"not an expression node: {expr!r}")


# ----------------------------------------------------------------------------- types and declarations


def print_type(node: ast.TypeExpr) -> str:
    match node:
        case ast.NamedType(name=name):
            return name
        case ast.ListType(item=item):
            return f"list[{print_type(item)}]"
        case ast.EnumType(values=values):
            return " | ".join(quote_single(v) for v in values)
        case ast.ObjectType(fields=fields):
            if not fields:
                return "{}"
            return "{ " + ", ".join(_field(f) for f in fields) + " }"
        case ast.OptionalType(inner=inner):
            return f"{print_type(inner)}?"
    raise TypeError(f"not a type node: {node!r}")


def _field(node: ast.FieldDecl) -> str:
    return f"{node.name}: {print_type(node.type)}"


def _trigger_decl(node: ast.TriggerDecl) -> str:
    if not node.fields:
        return f"trigger {node.name} {{}}"
    body = "".join(f"{INDENT}{_field(f)}\n" for f in node.fields)
    return f"trigger {node.name} {{\n{body}}}"


def _action_decl(node: ast.ActionDecl) -> str:
    params = []
    for p in node.params:
        text = f"{p.name}: {print_type(p.type)}"
        if p.default is not None:
            text += f" = {print_expr(p.default)}"
        params.append(text)
    result = f" -> {print_type(node.result)}" if node.result is not None else ""
    return f"action {node.name}({', '.join(params)}){result}"


# ----------------------------------------------------------------------------- rules and statements


def print_when(node: ast.TriggerRef | ast.Schedule) -> str:
    """What follows `when`: a trigger name or a schedule, as written."""
    match node:
        case ast.TriggerRef(name=name):
            return name
        case ast.Every(seconds=seconds):
            return f"every {format_duration(seconds)}"
        case ast.EveryAt(day=day, time=time):
            return f"every {day} at {time.strftime('%H:%M')}"
        case ast.Cron(expr=expr):
            return f"cron {quote_plain(expr)}"
        case ast.At(when=when):
            return f"at {format_datetime(when)}"
    raise TypeError(f"not a trigger or schedule: {node!r}")


def _wait_for(node: ast.WaitFor) -> str:
    text = f"wait for {node.trigger}"
    if node.where is not None:
        text += f" where {print_expr(node.where)}"
    if node.within is not None:
        text += f" within {print_expr(node.within)}"
    return text


def _block(body: tuple[ast.Stmt, ...], depth: int) -> list[str]:
    lines: list[str] = []
    for stmt in body:
        lines.extend(_stmt(stmt, depth))
    return lines


def _stmt(node: ast.Stmt, depth: int) -> list[str]:
    pad = INDENT * depth
    match node:
        case ast.CallStmt(call=call):
            return [pad + print_expr(call)]
        case ast.Let(name=name, value=value):
            shown = _wait_for(value) if isinstance(value, ast.WaitFor) else print_expr(value)
            return [f"{pad}let {name} = {shown}"]
        case ast.Wait(duration=duration):
            return [f"{pad}wait {print_expr(duration)}"]
        case ast.WaitUntil(when=when):
            return [f"{pad}wait until {print_expr(when)}"]
        case ast.WaitFor():
            return [pad + _wait_for(node)]
        case ast.If(branches=branches, else_body=else_body):
            lines = []
            for i, branch in enumerate(branches):
                keyword = "if" if i == 0 else "elif"
                lines.append(f"{pad}{keyword} {print_expr(branch.cond)} then")
                lines.extend(_block(branch.body, depth + 1))
            if else_body is not None:
                lines.append(f"{pad}else")
                lines.extend(_block(else_body, depth + 1))
            lines.append(f"{pad}end")
            return lines
        case ast.Switch(subject=subject, cases=cases, else_body=else_body):
            lines = [f"{pad}switch" + (f" {print_expr(subject)}" if subject is not None else "")]
            for case in cases:
                values = ", ".join(print_expr(v) for v in case.values)
                lines.append(f"{pad}case {values} then")
                lines.extend(_block(case.body, depth + 1))
            if else_body is not None:
                lines.append(f"{pad}else")
                lines.extend(_block(else_body, depth + 1))
            lines.append(f"{pad}end")
            return lines
        case ast.Split(by=by, cases=cases):
            lines = [f"{pad}split" + (f" by {print_expr(by)}" if by is not None else "")]
            for case in cases:
                lines.append(f"{pad}case {case.share}% then")
                lines.extend(_block(case.body, depth + 1))
            lines.append(f"{pad}end")
            return lines
        case ast.Emit(trigger=trigger, args=args):
            return [f"{pad}emit {trigger}({_args(args)})"]
        case ast.Stop():
            return [f"{pad}stop"]
        case ast.Break():
            return [f"{pad}break"]
        case ast.Repeat(count=count, body=body):
            return [f"{pad}repeat {print_expr(count)} times", *_block(body, depth + 1), f"{pad}end"]
        case ast.For(name=name, items=items, body=body):
            return [f"{pad}for {name} in {print_expr(items)}", *_block(body, depth + 1), f"{pad}end"]
    raise TypeError(f"not a statement: {node!r}")


def print_once(node: ast.Once, expr: Callable[[ast.Expr], str]) -> str:
    text = "once per " + ", ".join(expr(k) for k in node.keys)
    return text + (f" within {expr(node.within)}" if node.within is not None else "")


def print_during(node: ast.During) -> str:
    """`during HH:MM-HH:MM [on DAYS]` as written (SPEC 2.12)."""
    days = ", ".join(d.first if d.last is None else f"{d.first}-{d.last}" for d in node.days)
    return f"during {node.start}-{node.end}" + (f" on {days}" if days else "")


def _rule(node: ast.Rule) -> str:
    lines = []
    if node.name is not None:
        lines.append(f"rule {quote_plain(node.name)}")
    lines.append(f"when {print_when(node.when)}")
    if node.where is not None:
        lines.append(f"where {print_expr(node.where)}")
    if node.once is not None:
        lines.append(print_once(node.once, print_expr))
    if node.during is not None:
        lines.append(print_during(node.during))
    for clause in node.exits:
        text = f"exit when {clause.trigger.name}"
        if clause.where is not None:
            text += f" where {print_expr(clause.where)}"
        lines.append(text)
    lines.append("then")
    lines.extend(_block(node.body, 1))
    lines.append("end")
    return "\n".join(lines)


def print_item(node: ast.Item) -> str:
    """One top-level item as canonical source (no trailing newline)."""
    match node:
        case ast.TimezoneDecl(name=name):
            return f"timezone {quote_plain(name)}"
        case ast.LocaleDecl(name=name):
            return f"locale {quote_plain(name)}"
        case ast.TriggerDecl():
            return _trigger_decl(node)
        case ast.ActionDecl():
            return _action_decl(node)
        case ast.Rule():
            return _rule(node)
    raise TypeError(f"not a top-level item: {node!r}")


def print_file(file: ast.File) -> str:
    """A whole file as canonical source: items separated by a blank line."""
    return "\n\n".join(print_item(item) for item in file.items) + ("\n" if file.items else "")
