"""Host declarations from Python: trigger schemas from pydantic models, and the schema arguments of the API."""

from __future__ import annotations

import functools
import inspect
import os
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from whenthen.compiler.decls import ActionSig, ParamSig, Schema, TriggerSchema
from whenthen.compiler.types import Type
from whenthen.diagnostics import WhenthenError
from whenthen.runtime.context import EngineError
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


def action_signature(fn: Callable[..., Any], name: str | None = None) -> ActionSig:
    """An ActionSig from a Python function's annotations (`idempotency_key` is not a parameter)."""
    try:
        hints = inspect.get_annotations(fn, eval_str=True)
    except Exception:
        hints = getattr(fn, "__annotations__", {})
    params = []
    for p in inspect.signature(fn).parameters.values():
        if p.name == "idempotency_key" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        typ = python_type(hints.get(p.name, Any))
        has_default = p.default is not inspect.Parameter.empty
        params.append(ParamSig(p.name, typ, has_default, p.default if has_default else None))
    result_hint = hints.get("return", None)
    result: Type | None = None if result_hint in (None, type(None)) else python_type(result_hint)
    return ActionSig(name or fn.__name__, tuple(params), result, origin="host", doc=inspect.getdoc(fn) or "",
                     impl=with_model_arguments(fn, hints))


_HOST_MODULES: dict[str, Any] = {}


def load_actions_module(spec: str) -> list[Callable[..., Any]]:
    """The public functions of a Python file (`actions.py`) or importable module (`pkg.actions`),
    or those in its `ACTIONS` list or dict."""
    module = _host_module(spec)
    exported = getattr(module, "ACTIONS", None)
    if exported is not None:
        return list(exported.values()) if isinstance(exported, dict) else list(exported)
    return [obj for name, obj in vars(module).items()
            if inspect.isfunction(obj) and not name.startswith("_") and obj.__module__ == module.__name__]


def load_host_triggers(spec: str) -> dict[str, Any]:
    """The `TRIGGERS` dict of the same module: trigger name -> pydantic model (for `engine.trigger`)."""
    exported = getattr(_host_module(spec), "TRIGGERS", None) or {}
    if not isinstance(exported, dict):
        raise EngineError(f"{spec}: TRIGGERS must be a dict of trigger names to pydantic models")
    return dict(exported)


def _host_module(spec: str) -> Any:
    """The module, imported once per file version (actions and triggers come from one import)."""
    path = Path(spec)
    key = f"{path.resolve()}@{path.stat().st_mtime_ns}" if path.is_file() else spec
    if key not in _HOST_MODULES:
        _HOST_MODULES[key] = _import_host_module(spec)
    return _HOST_MODULES[key]


def _import_host_module(spec: str) -> Any:
    import importlib
    import importlib.util

    if spec.endswith(".py") or os.sep in spec or Path(spec).exists():
        path = Path(spec)
        if not path.exists():
            raise EngineError(f"actions file not found: {spec}")
        module_spec = importlib.util.spec_from_file_location(f"whenthen_actions_{path.stem}", path)
        if module_spec is None or module_spec.loader is None:
            raise EngineError(f"cannot load actions from {spec}")
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(spec)
        except ImportError as exc:
            raise EngineError(f"cannot import actions module {spec!r}: {exc}") from None
    return module
