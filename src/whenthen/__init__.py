"""whenthen: a rule-engine language for event automation."""

from typing import Any

from whenthen.api import Program, check, compile, evaluate
from whenthen.diagnostics import CompileError, Diagnostic, EventError, WhenthenError
from whenthen.stdlib.errors import PermanentActionError

__all__ = ["CompileError", "Diagnostic", "Engine", "EventError", "FixedClock", "PermanentActionError", "Program",
           "RetryPolicy", "SimulatedClock", "StdlibConfig", "WhenthenError", "check", "compile", "evaluate"]
__version__ = "0.1.0"

_LAZY = {"Engine": "whenthen.runtime.engine", "RetryPolicy": "whenthen.runtime.engine",
         "StdlibConfig": "whenthen.stdlib.config", "FixedClock": "whenthen.runtime.clock",
         "SimulatedClock": "whenthen.runtime.clock"}


def __getattr__(name: str) -> Any:
    """The engine is imported on first use: `import whenthen` stays cheap for the CLI's startup."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'whenthen' has no attribute {name!r}")
