"""The embedding API of SPEC section 4: check, compile and evaluate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from whenthen.diagnostics import CompileError, Diagnostic

if TYPE_CHECKING:
    from whenthen.compiler.checked import CheckedProgram
    from whenthen.compiler.code import RuleCode
    from whenthen.compiler.decls import Schema

SourceOrPaths = str | Path | Sequence[str | Path]
# What `schema=` accepts besides a Schema: {"order.placed": OrderModel} (pydantic models), or an
# object with a `.schema` (an Engine, with its host triggers and actions; a Program).
SchemaLike = Any


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


def _check_program(source_or_paths: SourceOrPaths, schema: SchemaLike = None) -> CheckedProgram:
    from whenthen.compiler.checker import check_program
    from whenthen.compiler.sources import load_sources, with_sibling_hints

    sources = load_sources(source_or_paths)
    checked = check_program(sources, _as_schema(schema))
    if any(d.code in ("E101", "E104") for d in checked.diagnostics):
        checked.diagnostics = with_sibling_hints(checked.diagnostics, sources)
    return checked


def _as_schema(schema: SchemaLike) -> Schema | None:
    """A Schema from what the API accepts: None (the stdlib), a Schema, a mapping of trigger names
    to pydantic models, or an object with a `.schema` (Engine, Program)."""
    from whenthen.compiler.decls import Schema
    from whenthen.runtime.host import schema_with_triggers

    if schema is None or isinstance(schema, Schema):
        return schema
    if isinstance(schema, Mapping):
        return schema_with_triggers(schema)
    inner = getattr(schema, "schema", None)
    if isinstance(inner, Schema):
        return inner
    raise TypeError(f"schema must be a Schema, an Engine, a Program or a mapping of trigger names to "
                    f"pydantic models, not {type(schema).__name__}")


def check(source_or_paths: SourceOrPaths, schema: SchemaLike = None) -> list[Diagnostic]:
    """Every diagnostic of the program (errors and warnings); never raises on bad rules.

    A path that does not exist raises `whenthen.compiler.sources.SourceError`.
    """
    return list(_check_program(source_or_paths, schema).diagnostics)


def compile(source_or_paths: SourceOrPaths, schema: SchemaLike = None) -> Program:
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
    schema: Program | Schema | SourceOrPaths | SchemaLike = None,
) -> Any:
    """Evaluate one expression or condition against an event of `trigger`; a plain Python value.

    `schema` may be a compiled `Program`, a `Schema`, an Engine, rules source/paths declaring the
    trigger, a pydantic model (the schema of `trigger`) or a mapping of trigger names to models.
    Raises `CompileError` when the expression does not check, `EventError` when the event does
    not fit the trigger's schema.
    """
    from whenthen.runtime.evaluate import evaluate_expression

    return evaluate_expression(expression, trigger=trigger, event=event, schema=_schema_of(schema, trigger))


def _schema_of(schema: Program | Schema | SourceOrPaths | SchemaLike, trigger: str | None = None) -> Schema:
    from whenthen.compiler.decls import Schema
    from whenthen.runtime.host import is_model, schema_with_triggers
    from whenthen.stdlib import default_schema

    if schema is None:
        return default_schema()
    if isinstance(schema, Program):
        return schema.schema
    if isinstance(schema, Schema):
        return schema
    if is_model(schema):
        if trigger is None:
            raise TypeError("evaluate(schema=Model) needs trigger= to name the model's trigger")
        return schema_with_triggers({trigger: schema})
    if isinstance(schema, Mapping) or isinstance(getattr(schema, "schema", None), Schema):
        return _as_schema(schema)  # type: ignore[return-value]
    checked = _check_program(schema)
    if not checked.ok:
        raise CompileError(checked.diagnostics)
    return checked.schema
