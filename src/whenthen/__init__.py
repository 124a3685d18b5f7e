"""whenthen: a rule-engine language for event automation."""

from whenthen.diagnostics import CompileError, Diagnostic, EventError, WhenthenError

__all__ = ["CompileError", "Diagnostic", "EventError", "WhenthenError"]
__version__ = "0.1.0"
