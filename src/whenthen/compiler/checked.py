"""What the checker hands to the code generator: the AST plus side tables keyed by node id."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from whenthen.compiler.decls import DEFAULT_LOCALE, Schema
from whenthen.compiler.types import Type
from whenthen.diagnostics import Diagnostic
from whenthen.grammar import ast
from whenthen.source import Source

# What a bare `Name` node refers to:
#   'let'    a `let` variable (ref.name is the variable)
#   'field'  a top-level field of the start event (ref.name is the field)
#   'event'  the start event itself (`event`, or the alias: the trigger's first segment)
#   'clause' a top-level field of the event of the enclosing `wait for`/`exit when` clause
RefKind = Literal["let", "field", "event", "clause"]


@dataclass(frozen=True)
class NameRef:
    kind: RefKind
    name: str


@dataclass(frozen=True)
class ResolvedCall:
    """A call (or emit) with its arguments matched to declared parameter/field names, in the
    order written. `kind` is 'action', 'function' or 'emit'. For a variadic function, names are
    '0', '1', …"""

    kind: Literal["action", "function", "emit"]
    name: str
    args: tuple[tuple[str, ast.Expr], ...]


@dataclass
class RuleInfo:
    """A checked rule: its final name, where it lives, and what starts it."""

    name: str
    rule: ast.Rule
    file: str
    timezone: str  # the file's `timezone`, 'UTC' when none
    trigger: str  # the start trigger's name, or ast.SCHEDULE_TRIGGER for schedules
    source_text: str  # the rule's own text, for storage beside its bytecode
    locale: str = DEFAULT_LOCALE  # the file's `locale`, for the formatting functions

    @property
    def schedule(self) -> ast.Schedule | None:
        return None if isinstance(self.rule.when, ast.TriggerRef) else self.rule.when


@dataclass
class CheckedProgram:
    files: list[ast.File]
    sources: dict[str, Source]
    schema: Schema
    rules: list[RuleInfo]
    refs: dict[int, NameRef] = field(default_factory=dict)
    types: dict[int, Type] = field(default_factory=dict)
    calls: dict[int, ResolvedCall] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    @property
    def ok(self) -> bool:
        return not self.errors

    def rule(self, name: str) -> RuleInfo | None:
        for info in self.rules:
            if info.name == name:
                return info
        return None
