"""Spans, diagnostics and their text/JSON rendering; the public error classes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Span:
    """A region of one source file: character offsets and 1-based line/column (end exclusive)."""

    file: str
    start: int
    end: int
    line: int
    column: int
    end_line: int
    end_column: int

    def cover(self, other: Span) -> Span:
        """The smallest span containing both."""
        a, b = (self, other) if self.start <= other.start else (other, self)
        last = a if a.end >= b.end else b
        return Span(a.file, a.start, last.end, a.line, a.column, last.end_line, last.end_column)


NO_SPAN = Span("", 0, 0, 1, 1, 1, 1)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in a program: where, how bad, a stable code and a message."""

    span: Span
    severity: Severity
    code: str
    message: str

    @property
    def file(self) -> str:
        return self.span.file

    @property
    def line(self) -> int:
        return self.span.line

    @property
    def column(self) -> int:
        return self.span.column

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def to_json(self) -> dict[str, Any]:
        s = self.span
        return {
            "file": s.file,
            "line": s.line,
            "column": s.column,
            "end_line": s.end_line,
            "end_column": s.end_column,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
        }

    def render(self, source_text: str | None = None) -> str:
        """`file:line:col: error[CODE]: message`, then the source line and a caret under the span."""
        s = self.span
        head = f"{s.file}:{s.line}:{s.column}: {self.severity}[{self.code}]: {self.message}"
        if source_text is None:
            return head
        lines = source_text.splitlines()
        if not 1 <= s.line <= len(lines):
            return head
        text = lines[s.line - 1].replace("\t", " ")
        width = (s.end_column - s.column) if s.end_line == s.line else len(text) - s.column + 1
        width = max(1, width)
        gutter = f"{s.line:>4} | "
        caret = " " * (len(gutter) + s.column - 1) + "^" * width
        return f"{head}\n{gutter}{text}\n{caret}"


def error(span: Span, code: str, message: str) -> Diagnostic:
    return Diagnostic(span, "error", code, message)


def warning(span: Span, code: str, message: str) -> Diagnostic:
    return Diagnostic(span, "warning", code, message)


def render_all(diagnostics: list[Diagnostic], sources: dict[str, str]) -> str:
    """Render diagnostics with carets, given the text of each file by name."""
    return "\n".join(d.render(sources.get(d.file)) for d in diagnostics)


class WhenthenError(Exception):
    """Base class of every error whenthen raises on purpose."""


class UnknownName(WhenthenError):
    """A rule or trigger named on the command line that the program or database does not have
    (exit status 1, like every other unknown name)."""

    def __init__(self, kind: str, name: str, known: list[str] | tuple[str, ...] = (), where: str = ""):
        import difflib

        lowered = {k.lower(): k for k in known}  # `w` finds `W`
        close = difflib.get_close_matches(name.lower(), list(lowered), n=1)
        hint = f"; did you mean '{lowered[close[0]]}'?" if close else ""
        super().__init__(f"unknown {kind} '{name}'{where}{hint}")


class CompileError(WhenthenError):
    """The program has errors; `.diagnostics` lists them all."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        errors = [d for d in diagnostics if d.is_error]
        first = errors[0] if errors else (diagnostics[0] if diagnostics else None)
        summary = f"{first.file}:{first.line}:{first.column}: {first.message}" if first else "compile error"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(summary + more)


class EventError(WhenthenError):
    """An event was rejected: unknown trigger, bad JSON, missing or mistyped fields."""

    def __init__(self, message: str, trigger: str | None = None, field: str | None = None):
        self.trigger = trigger
        self.field = field
        # every bad field as (field, reason) when the payload was validated field by field
        self.errors: list[tuple[str, str]] = [(field, message)] if field else []
        super().__init__(message)


class RuntimeFailure(WhenthenError):
    """A run failed: raised inside the VM and turned into a Failed result with its position."""
