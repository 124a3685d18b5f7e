"""Action calls: the journal (intent, result), idempotency keys, retries, transports and the outbox."""

from __future__ import annotations

import datetime as dt
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from whenthen import values
from whenthen.calendar import epoch
from whenthen.compiler.decls import ActionSig
from whenthen.runtime import vm
from whenthen.runtime.catalog import Catalog
from whenthen.runtime.context import Context, dumps
from whenthen.runtime.events import coerce_value
from whenthen.runtime.store import LeaseLost, RunRow
from whenthen.stdlib.errors import PermanentActionError
from whenthen.stdlib.transports import ActionCall, Transports
from whenthen.values import format_datetime

MAX_EMIT_DEPTH = vm.MAX_EMIT_DEPTH


@dataclass(frozen=True)
class RetryPolicy:
    """How often an action that raises is tried again, with exponential backoff between tries
    (the run waits, durably, for each retry; simulate retries at once)."""

    attempts: int = 3
    base_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return min(self.max_delay, self.base_delay * self.factor ** (attempt - 1))


class ActionUnavailable(PermanentActionError):  # noqa: N818 - never retried
    """An action has no implementation here; retrying cannot help."""


class Journaling(Protocol):
    """What an action call reads and changes of the activation that makes it."""

    run: RunRow
    steps: list[dict[str, Any]]  # written with the next intent
    emits: list[tuple[str, dict[str, Any], int, str]]
    ordinal: int
    lease_lost: bool


class Actions:
    """Calls actions for runs: each call journaled (intent, then result) under its idempotency key,
    retried durably with backoff, through a host function, a stdlib transport or the outbox."""

    def __init__(self, ctx: Context, catalog: Catalog, transports: Transports, retry: RetryPolicy,
                 dry_run: bool):
        self.ctx = ctx
        self.store = ctx.store
        self.catalog = catalog
        self.transports = transports
        self.retry = retry
        self.dry_run = dry_run  # simulate: actions are recorded; only host actions give results
        # called after each action call with (name, seconds, failed): the service's metrics
        self.on_action: Callable[[str, float, bool], None] | None = None

    def call(self, act: Journaling, name: str, args: dict[str, Any], step: int, due: dt.datetime | None = None) -> Any:
        """Journal the intent, call the action (with retries), journal the result. `due`: when a
        delayed action (SPEC 2.12) was due; its trace record and step say so."""
        ctx, store = self.ctx, self.store
        run = act.run
        sig = self.catalog.actions.get(name)
        now = ctx.clock.now()
        at = format_datetime(now)
        record = {"kind": "action", "at": at, "rule": run.rule, "run": run.id, "action": name,
                  "args": values.to_json(args)}
        if due is not None:
            record["due_at"] = format_datetime(due)
        ctx.trace(record)
        previous = store.journal_get(run.id, step)
        for row in previous:
            if row.get("damaged"):  # never replay an altered result: the run fails naming it
                raise RuntimeError(row["damaged"])
            if row["status"] == "done":  # replaying after a crash: the action already happened
                act.ordinal += 1
                return values.unpack(row["result"]) if row["result"] is not None else None
        attempt = previous[-1]["attempt"] if previous and previous[-1]["status"] == "started" else len(previous) + 1
        ordinal = act.ordinal
        act.ordinal += 1
        full = _with_defaults(sig, args)
        while True:
            key = f"{run.id}:{step}:{attempt}"
            row = {"ordinal": ordinal, "attempt": attempt, "at": at, "action": name, "step": step,
                   "idem_key": key, "args": dumps(values.to_json(args)),
                   "data": dumps({"due_at": format_datetime(due)}) if due is not None else None}
            store.journal_intent(run, ctx.lease_expiry(), act.steps, row)
            act.steps = []
            outbox = None
            started = time.perf_counter()
            try:
                call = ActionCall(run.rule, run.id, key, f"{run.id}:{step}", at)
                result, outbox = self.invoke(sig, name, full, call)
                if sig is not None and sig.result is not None and result is not None:
                    result = coerce_value(sig.result, result, f"result of {name}")
            except Exception as exc:
                if self.on_action is not None:
                    self.on_action(name, time.perf_counter() - started, True)
                error = str(exc) or type(exc).__name__
                store.journal_result(run, key, "failed", None, error)
                if isinstance(exc, PermanentActionError) or attempt >= self.retry.attempts:
                    if run.depth <= MAX_EMIT_DEPTH:  # bounded: a failure beyond it fires nothing
                        act.emits.append(("action.failed", {"rule": run.rule, "run_id": str(run.id),
                                                            "action": name, "error": error},
                                          run.depth + 1, "system"))
                    raise RuntimeError(error) from None
                if not self.dry_run:
                    # Retry later, durably: the run goes back to its last snapshot, due after the
                    # backoff; the replay then finds this attempt failed in the journal and makes
                    # the next one. The worker is free meanwhile.
                    due = epoch(ctx.clock.now()) + self.retry.delay(attempt)
                    try:
                        store.defer_run(run, due, at)
                    except LeaseLost:
                        pass
                    act.lease_lost = True  # abandon this activation without committing it
                    raise vm.HostAbort() from None
                attempt += 1
                continue
            if self.on_action is not None:
                self.on_action(name, time.perf_counter() - started, False)
            store.journal_result(run, key, "done", values.pack(result), None, outbox)
            return result

    def invoke(self, sig: ActionSig | None, name: str, args: dict[str, Any], call: ActionCall
               ) -> tuple[Any, tuple[str, str, str] | None]:
        """Call one action once: (its result, the outbox row it records or None)."""
        host = self.catalog.host_actions.get(name)  # a host action may replace a stdlib one (send_message)
        if host is not None and host.impl is not None:
            return _call_with_key(host.impl, args, call.key), None
        if self.dry_run:
            return None, None
        if sig is not None and sig.impl is not None:
            return _call_with_key(sig.impl, args, call.key), None
        if sig is not None and sig.origin == "stdlib":
            return self.transports.call(name, args, call)
        if self.ctx.config.unbound_actions == "outbox":  # opted in: record the call, the result is null
            return None, (name, dumps(values.to_json(args)), call.at)
        raise ActionUnavailable(f"action '{name}' has no implementation here (register it with "
                                "engine.action, or load it with --actions)")


def _with_defaults(sig: ActionSig | None, args: dict[str, Any]) -> dict[str, Any]:
    if sig is None:
        return dict(args)
    full = {}
    for p in sig.params:
        if p.name in args:
            full[p.name] = args[p.name]
        elif p.has_default:
            full[p.name] = p.default
    for k, v in args.items():
        full.setdefault(k, v)
    return full


def _call_with_key(fn: Callable[..., Any], args: dict[str, Any], key: str) -> Any:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    kwargs = dict(args)
    if "idempotency_key" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        kwargs["idempotency_key"] = key
    result = fn(**kwargs)
    if hasattr(result, "model_dump"):  # a pydantic model
        result = result.model_dump()
    return result
