"""The standard library: pure functions, stdlib actions and system triggers."""

from __future__ import annotations

from whenthen.compiler.decls import Schema


def default_schema() -> Schema:
    """A fresh Schema holding the stdlib functions and actions and the system/schedule triggers."""
    from whenthen.stdlib.actions import ACTIONS
    from whenthen.stdlib.functions import FUNCTIONS
    from whenthen.stdlib.triggers import TRIGGERS

    return Schema(triggers=dict(TRIGGERS), actions=dict(ACTIONS), functions=dict(FUNCTIONS))


__all__ = ["default_schema"]
