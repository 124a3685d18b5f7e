"""The disassembler: a stable, readable listing of compiled rules, with their source lines.

Like CPython's `dis`: one instruction per line with its index, opcode name, argument and the
argument's meaning in parentheses; `>>` marks jump targets; a source line is shown above the
first instruction that comes from it. The text is stable so it can be golden-tested.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from whenthen.calendar import describe_window
from whenthen.compiler.code import Code, RuleCode
from whenthen.compiler.opcodes import COUNT_OPS, HAS_ARG, JUMPS, NAME_OPS, Opcode
from whenthen.diagnostics import CompileError, UnknownName
from whenthen.source import Source
from whenthen.values import format_datetime, format_duration


def show_const(value: Any) -> str:
    """A constant in the language's literal syntax."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"
    if isinstance(value, dt.datetime):
        return format_datetime(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return format_duration(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show_const(v) for v in value) + "]"
    return repr(value)


def _describe(code: Code, op: Opcode, arg: int) -> str:
    """What an instruction's argument means, for the parenthesis after it."""
    if op in JUMPS:
        return f"to {arg}"
    if op in NAME_OPS:
        return code.names[arg]
    if op in COUNT_OPS:
        return ""
    const = code.consts[arg]
    if op is Opcode.CONST:
        return show_const(const)
    if op is Opcode.BRANCH:
        return str(const)
    if op is Opcode.CALL_FUNC:
        name, count = const
        return f"{name}/{count}"
    if op in (Opcode.CALL_ACTION, Opcode.EMIT):
        name, fields = const
        return f"{name}({', '.join(fields)})"
    if op is Opcode.WAIT_FOR:
        trigger, where, has_within, fields = const
        parts = [trigger]
        if where >= 0:
            parts.append(f"where code {where}")
        if has_within:
            parts.append("within")
        if fields:
            parts.append("correlate " + ", ".join(fields))
        return "; ".join(parts)
    if op is Opcode.WAIT_WINDOW:
        start, end, days, action = const
        return f"during {describe_window({'start': start, 'end': end, 'days': days})} before {action}"
    if op is Opcode.BUILD_OBJECT:
        return "{" + ", ".join(const) + "}"
    if op is Opcode.SPLIT:
        _rule, number, shares, has_by = const
        return f"split {number}: " + " / ".join(f"{s}%" for s in shares) + (" by value" if has_by else " by run")
    return show_const(const)


def disassemble_code(code: Code, source_lines: dict[int, str] | None = None, indent: str = "  ") -> str:
    """The listing of one Code object (and its nested codes after it)."""
    targets = {arg for op, arg in code.instrs if op in JUMPS}
    line_at = {pc: line for pc, line, _ in code.lines}
    out = []
    shown_line = None
    for pc, (op, arg) in enumerate(code.instrs):
        line = line_at.get(pc)
        if line is not None and line != shown_line:
            shown_line = line
            text = (source_lines or {}).get(line)
            out.append(f"{indent}{line:>4} | {text.strip()}" if text is not None else f"{indent}{line:>4} |")
        marker = ">>" if pc in targets else "  "
        text = f"{indent}     {marker} {pc:>4} {op.name:<22}"
        if op in HAS_ARG:
            meaning = _describe(code, op, arg)
            text += f"{arg:>4}" + (f" ({meaning})" if meaning else "")
        out.append(text.rstrip())
    for index, child in enumerate(code.codes):
        out.append(f"{indent}code {index}: {child.name}")
        out.append(disassemble_code(child, source_lines, indent + "  "))
    return "\n".join(out)


def _source_lines(rule: RuleCode) -> dict[int, str]:
    return {rule.first_line + i: text for i, text in enumerate(rule.source.splitlines())}


def disassemble(rule: RuleCode) -> str:
    """The listing of a compiled rule: its header, filter, exit clauses and body."""
    lines = _source_lines(rule)
    head = f'rule "{rule.name}" on {rule.trigger}'
    if rule.schedule is not None:
        shown = {k: (show_const(v) if not isinstance(v, (int, str)) else v) for k, v in rule.schedule.items()}
        head += " " + " ".join(f"{k}={v}" for k, v in shown.items())
    out = [head, f"  file {Path(rule.file).name or '?'}, line {rule.first_line}, timezone {rule.timezone}"]
    if rule.equalities:
        out.append("  equalities: " + ", ".join(f"{f} = {show_const(v)}" for f, v in rule.equalities))
    if rule.filter is not None:
        out.append("filter:")
        out.append(disassemble_code(rule.filter, lines))
    if rule.limit_keys is not None:
        within = f" within {rule.limit_within}s" if rule.limit_within is not None else " (ever)"
        out.append(f"once per{within}:")
        out.append(disassemble_code(rule.limit_keys, lines))
    for index, clause in enumerate(rule.exits):
        out.append(f"exit {index} when {clause.trigger}:")
        if clause.where is not None:
            out.append(disassemble_code(clause.where, lines))
        if clause.correlation is not None:
            out.append(f"exit {index} correlation ({', '.join(clause.correlation_fields)}):")
            out.append(disassemble_code(clause.correlation, lines))
    out.append("body:")
    out.append(disassemble_code(rule.body, lines))
    return "\n".join(out) + "\n"


def disasm_paths(paths: str | Path | Sequence[str | Path | Source], rule: str | None = None) -> str:
    """Check and compile a program, and list its rules (or only `rule`), separated by a blank line.

    Raises CompileError when the program has errors, UnknownName when `rule` is not in it.
    """
    from whenthen.compiler.checker import check_program
    from whenthen.compiler.codegen import compile_rules
    from whenthen.compiler.sources import load_sources

    program = check_program(load_sources(paths))
    if not program.ok:
        raise CompileError(program.diagnostics)
    rules = compile_rules(program)
    if rule is not None:
        if rule not in rules:
            raise UnknownName("rule", rule, list(rules), where=" in the program")
        rules = {rule: rules[rule]}
    return "\n".join(disassemble(code) for code in rules.values())
