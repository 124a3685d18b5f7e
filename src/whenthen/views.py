"""The JSON text of what the engine returns: one serializer for the CLI's `--format json` and the HTTP service."""

from __future__ import annotations

import json
from typing import Any


def dumps(value: Any, *, indent: int | None = 2) -> str:
    """The JSON the CLI prints and the service answers (UTF-8 text kept as is; other values as text)."""
    return json.dumps(value, indent=indent, ensure_ascii=False, default=str)


def event_view(row: dict[str, Any]) -> dict[str, Any]:
    """A stored event as `{"id", "trigger", "data", "status", "received_at", "error"}` (SPEC 7).

    A rejected event keeps the text that was refused: `data` is that text when it is not JSON."""
    text = row.get("data")
    try:
        data = json.loads(text) if text is not None else None
    except ValueError:
        data = text
    return {"id": row["id"], "trigger": row["trigger"], "data": data, "status": row["status"],
            "received_at": row["at"], "error": row.get("error")}


def describe_step(step: dict[str, Any]) -> str:
    """One trace step of `run ID`, in words."""
    kind = step["kind"]
    if kind == "wait":
        if step.get("wait") == "for":
            until = f" until {step['until']}" if step.get("until") else ""
            return f"wait for {step.get('trigger')} {dumps(step.get('correlation') or {}, indent=None)}{until}"
        if step.get("wait") == "window":  # SPEC 2.12: an action outside the rule's sending window
            return f"wait for the sending window {step.get('window')} until {step.get('until')} ({step.get('action')})"
        return f"wait until {step.get('until')}"
    if kind == "emit":
        return f"emit {step.get('trigger')} {dumps(step.get('data'), indent=None)}"
    if kind == "branch":
        if "split" in step:
            return f"split {step['split']}: case {step.get('case')} ({step.get('share')}%) (line {step.get('line')})"
        return f"branch {step.get('branch')} (line {step.get('line')})"
    if kind == "exit":
        return f"exit on {step.get('trigger')} {dumps(step.get('event'), indent=None)}"
    if kind == "error":
        return f"error: {step.get('error')}"
    extra = {k: v for k, v in step.items() if k not in ("at", "kind")}
    return f"{kind} {dumps(extra, indent=None)}"
