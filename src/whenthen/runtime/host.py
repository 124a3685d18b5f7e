"""Host declarations from Python: trigger schemas from pydantic models, and the schema arguments of the API."""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable, Mapping
from typing import Any

from whenthen.compiler.decls import Schema, TriggerSchema
from whenthen.compiler.types import Type
from whenthen.diagnostics import WhenthenError
from whenthen.runtime.events import python_type


def trigger_schema(name: str, model: Any) -> TriggerSchema:
    """A host trigger named `name` whose payload is `model`: a pydantic model class, a TypedDict,
    or a whenthen object Type."""
    if not isinstance(name, str) or name.count(".") < 1 or not all(part for part in name.split(".")):
        raise WhenthenError(f"a trigger name has two or more dotted segments (like 'order.placed'), not {name!r}")
    typ = model if isinstance(model, Type) else python_type(model)
    if typ.kind != "object":
        raise WhenthenError(f"trigger '{name}': the schema must be a pydantic model or TypedDict with fields, "
                            f"not {model!r}")
    return TriggerSchema(name, typ.as_optional(False), origin="host")


def is_model(value: Any) -> bool:
    """A pydantic model class (or a TypedDict): something `trigger_schema` can read."""
    return isinstance(value, type) and (isinstance(getattr(value, "model_fields", None), dict)
                                        or (issubclass(value, dict) and bool(getattr(value, "__annotations__", None))))


def schema_with_triggers(triggers: Mapping[str, Any], base: Schema | None = None) -> Schema:
    """`base` (default: the stdlib) plus one host trigger per `name: model` entry."""
    from whenthen.stdlib import default_schema

    schema = base.copy() if base is not None else default_schema()
    for name, model in triggers.items():
        schema.triggers[name] = trigger_schema(name, model)
    return schema


def with_model_arguments(fn: Callable[..., Any], hints: Mapping[str, Any]) -> Callable[..., Any]:
    """`fn`, or a wrapper that turns the dicts rules pass into the pydantic models its parameters
    are annotated with (`Address`, `list[Address]`, `Address | None`); other arguments pass as they are."""
    adapters = {}
    for name, hint in hints.items():
        if name != "return" and _mentions_model(hint):
            from pydantic import TypeAdapter

            adapters[name] = TypeAdapter(hint)
    if not adapters:
        return fn

    @functools.wraps(fn)  # keeps the signature, so `idempotency_key` is still detected
    def call(**kwargs: Any) -> Any:
        for name, adapter in adapters.items():
            if name in kwargs:
                kwargs[name] = adapter.validate_python(kwargs[name])
        return fn(**kwargs)

    return call


def _mentions_model(hint: Any) -> bool:
    if isinstance(hint, type) and isinstance(getattr(hint, "model_fields", None), dict):
        return True
    return any(_mentions_model(arg) for arg in typing.get_args(hint))
