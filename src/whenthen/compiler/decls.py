"""Declarations: trigger schemas, action and function signatures — one object for checker and runtime.

A declaration gives the checker its types and the runtime its binding (an action's Python
implementation, a function's implementation), in the manner of cel-go. `Schema` is the set of
declarations a program is checked against: the stdlib, the system triggers, the host's
declarations and the program's own `trigger`/`action` declarations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from whenthen.compiler.types import Type
from whenthen.diagnostics import NO_SPAN, Span


@dataclass(frozen=True)
class TriggerSchema:
    """A trigger and the type of its payload (an object type)."""

    name: str
    type: Type
    origin: str = "program"  # 'program' | 'host' | 'system' | 'schedule'
    span: Span = NO_SPAN

    @property
    def alias(self) -> str:
        """The trigger's first segment, by which rules on it name their start event."""
        return self.name.split(".")[0]


class _FileLocale:
    """The default of a `locale` parameter: the file's `locale` declaration, else 'en' (SPEC 2.4).
    Code generation puts the file's locale in its place, so the bytecode holds a plain string."""

    def __repr__(self) -> str:
        return "FILE_LOCALE"


FILE_LOCALE = _FileLocale()
DEFAULT_LOCALE = "en"  # the locale of a file without a `locale` declaration


@dataclass(frozen=True)
class ParamSig:
    name: str
    type: Type
    has_default: bool = False
    default: Any = None  # a plain runtime value


@dataclass
class ActionSig:
    """A declared action: parameters in order, an optional result type, and its binding."""

    name: str
    params: tuple[ParamSig, ...]
    result: Type | None = None
    origin: str = "program"  # 'program' | 'host' | 'stdlib'
    span: Span = NO_SPAN
    doc: str = ""
    impl: Callable[..., Any] | None = field(default=None, compare=False)

    def param(self, name: str) -> ParamSig | None:
        for p in self.params:
            if p.name == name:
                return p
        return None


@dataclass
class FunctionSig:
    """A pure stdlib function. `result` computes the result type from the argument types (the
    checker has already checked the arguments against `params` unless `variadic`)."""

    name: str
    params: tuple[ParamSig, ...]
    result: Callable[[list[Type]], Type]
    impl: Callable[..., Any]
    doc: str = ""
    variadic: bool = False  # coalesce(a, b, …): any number of positional arguments
    null_in_null_out: bool = True  # given a null argument, returns null without calling impl
    # (parameter, literal value) -> why it is rejected, or None: checked at compile time (E103)
    literal_problem: Callable[[str, Any], str | None] | None = None
    # how docs and hovers show what `params`/`result` cannot say: {'items': 'list', 'return': 'str'}
    shown: dict[str, str] = field(default_factory=dict)


@dataclass
class Schema:
    """All declarations in scope for one program."""

    triggers: dict[str, TriggerSchema] = field(default_factory=dict)
    actions: dict[str, ActionSig] = field(default_factory=dict)
    functions: dict[str, FunctionSig] = field(default_factory=dict)

    def copy(self) -> Schema:
        return Schema(dict(self.triggers), dict(self.actions), dict(self.functions))
