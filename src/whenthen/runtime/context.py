"""What the engine's parts share: the store, the clock, settings, hooks and the cascade in progress."""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from whenthen import values
from whenthen.diagnostics import WhenthenError
from whenthen.runtime.clock import Clock
from whenthen.runtime.store.protocol import Store
from whenthen.stdlib.config import StdlibConfig


class EngineError(WhenthenError):
    """A request the engine cannot satisfy: unknown rule or version, bad program."""


@dataclass
class Queued:
    """An event to dispatch: recorded, with its typed data and emit depth."""

    event_id: int
    trigger: str
    data: dict[str, Any]
    depth: int


@dataclass
class Budget:
    """What one external event may still cause (docs/engine.md, "Fan-out budget")."""

    runs: int
    events: int
    work: int = 0  # units since the last commit
    since: float = field(default_factory=time.monotonic)  # when the current chunk began
    spent: bool = False

    def refusal(self, what: str, limit: int) -> str:
        """The error of what the budget refuses (and the budget is marked spent)."""
        self.spent = True
        return (f"fan-out budget exceeded: one external event may cause at most {limit} {what} "
                f"([limits] fan_out_{what.split()[0]} in whenthen.toml)")


class Context:
    """One engine's store, clock, settings and trace hook, and the cascade it is dispatching:
    the events queued by runs (first in, first out), the ones leased ahead, the fan-out budget."""

    def __init__(self, store: Store, clock: Clock, config: StdlibConfig, *, lease_seconds: float,
                 on_trace: Callable[[dict[str, Any]], None] | None):
        self.store = store
        self.clock = clock
        self.config = config
        self.lease_seconds = lease_seconds
        self.on_trace = on_trace
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.queue: deque[Queued] = deque()
        self.held: set[int] = set()  # queued events this process leased ahead of their dispatch
        self.budget = self.new_budget()

    def new_budget(self) -> Budget:
        """A fresh fan-out budget, for one external event (or one due run, or one slot)."""
        return Budget(self.config.fan_out_runs, self.config.fan_out_events)

    def lease_expiry(self) -> float:
        """When a lease taken now expires (wall-clock seconds)."""
        return time.time() + self.lease_seconds

    def trace(self, record: dict[str, Any]) -> None:
        """Report one trace record (simulate, the REPL) when a hook is set."""
        if self.on_trace is not None:
            self.on_trace(record)


# ----------------------------------------------------------------------------- stored text

_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                           default=values.to_json).encode


def storable(text: str) -> str:
    """Text with lone surrogates written as `\\udXXX` escapes, so it can be stored and printed."""
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode("utf-8")


def dump_values(value: Any) -> str:
    """`dumps(values.to_json(value))` in one pass: the encoder calls `to_json` only for what JSON
    lacks (datetimes, dates, durations); it falls back to the two passes for what it would write
    differently (a non-finite float, which `to_json` makes null)."""
    try:
        return _ENCODE(value)
    except (TypeError, ValueError):
        return dumps(values.to_json(value))


def dumps(value: Any, lenient: bool = False) -> str:
    """Compact JSON text as stored; `lenient`: a value JSON cannot hold is stored as its repr."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        if not lenient:
            raise
        return json.dumps(repr(value))
