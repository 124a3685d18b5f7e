"""The embedding API of SPEC section 4: check, compile and evaluate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from whenthen.diagnostics import CompileError, Diagnostic

if TYPE_CHECKING:
    from whenthen.compiler.checked import CheckedProgram
    from whenthen.compiler.code import RuleCode
    from whenthen.compiler.decls import Schema

SourceOrPaths = str | Path | Sequence[str | Path]


@dataclass
class Program:
    """A checked, compiled program: its rules' bytecode, its declarations and any warnings."""

    checked: CheckedProgram
    rules: dict[str, RuleCode] = field(default_factory=dict)

    @property
    def schema(self) -> Schema:
        return self.checked.schema

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.checked.diagnostics if not d.is_error]

    @property
    def rule_names(self) -> list[str]:
        return list(self.rules)


def _check_program(source_or_paths: SourceOrPaths, schema: Schema | None = None) -> CheckedProgram:
    from whenthen.compiler.checker import check_program
    from whenthen.compiler.sources import load_sources

    return check_program(load_sources(source_or_paths), schema)


def check(source_or_paths: SourceOrPaths, schema: Schema | None = None) -> list[Diagnostic]:
    """Every diagnostic of the program (errors and warnings); never raises on bad rules.

    A path that does not exist raises `whenthen.compiler.sources.SourceError`.
    """
    return list(_check_program(source_or_paths, schema).diagnostics)


def compile(source_or_paths: SourceOrPaths, schema: Schema | None = None) -> Program:
    """Check and compile a program; raises `CompileError(diagnostics)` when it has errors."""
    from whenthen.compiler.codegen import compile_rules

    checked = _check_program(source_or_paths, schema)
    if not checked.ok:
        raise CompileError(checked.diagnostics)
    return Program(checked, compile_rules(checked))


def evaluate(
    expression: str,
    trigger: str | None = None,
    event: dict[str, Any] | None = None,
    schema: Program | Schema | SourceOrPaths | None = None,
) -> Any:
    """Evaluate one expression or condition against an event of `trigger`; a plain Python value.

    `schema` may be a compiled `Program`, a `Schema`, or rules source/paths declaring the trigger.
    Raises `CompileError` when the expression does not check, `EventError` when the event does
    not fit the trigger's schema.
    """
    from whenthen.runtime.evaluate import evaluate_expression

    return evaluate_expression(expression, trigger=trigger, event=event, schema=_schema_of(schema))


def _schema_of(schema: Program | Schema | SourceOrPaths | None) -> Schema:
    from whenthen.compiler.decls import Schema
    from whenthen.stdlib import default_schema

    if schema is None:
        return default_schema()
    if isinstance(schema, Program):
        return schema.schema
    if isinstance(schema, Schema):
        return schema
    checked = _check_program(schema)
    if not checked.ok:
        raise CompileError(checked.diagnostics)
    return checked.schema
