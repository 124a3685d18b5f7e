"""Events in: validate and record them (emit, accept, batches, rejections, JSON-lines ingest)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable
from typing import Any

from whenthen.diagnostics import EventError
from whenthen.runtime.catalog import Catalog
from whenthen.runtime.context import Context, Queued, dump_values, dumps, storable
from whenthen.runtime.dispatch import Dispatcher
from whenthen.runtime.events import lookup_trigger, parse_ingest_line, validate_event
from whenthen.runtime.jsonl import decode_line, shown_line
from whenthen.values import format_datetime


class Intake:
    """The way in for events: each is validated against its trigger's schema, then recorded."""

    def __init__(self, ctx: Context, catalog: Catalog, dispatcher: Dispatcher):
        self.ctx, self.catalog, self.dispatcher = ctx, catalog, dispatcher

    def _validated(self, trigger: str, data: Any, now: dt.datetime, *, engine_fired_ok: bool) -> dict[str, Any]:
        """The typed event, or EventError after recording the rejection."""
        try:
            schema = lookup_trigger(self.catalog.triggers, trigger)
            if schema.origin in ("schedule", "system") and not engine_fired_ok:
                raise EventError(f"'{trigger}' is fired by the engine; it cannot be emitted", trigger=trigger)
            return validate_event(schema, data)
        except EventError as exc:
            self._reject(trigger, data, now, str(exc))
            raise

    def emit(self, trigger: str, data: Any, *, dispatch: bool = True, origin: str = "external") -> int:
        """Validate, record and (with `dispatch`) dispatch one event in one commit; its id."""
        self.catalog.refresh()
        now = self.ctx.clock.now()
        typed = self._validated(trigger, data, now, engine_fired_ok=origin != "external")
        store = self.ctx.store
        with store.batch():  # one commit for the event and what it does (until an action's effect)
            text = dump_values(typed)
            if dispatch:  # `processing` under our lease if anything commits before its dispatch ends
                event_id = store.open_event(trigger, text, format_datetime(now), origin, self.ctx.owner,
                                            time.time() + self.ctx.lease_seconds)
                self.dispatcher.dispatch(Queued(event_id, trigger, typed, 0))
            else:
                event_id = store.insert_event(trigger, text, format_datetime(now), "pending", origin=origin)
        return event_id

    def accept(self, trigger: str, data: Any, *, idempotency_key: str | None = None) -> tuple[int, bool]:
        """Validate and record an event `pending` for the workers; (event id, duplicate)."""
        self.catalog.refresh()
        now = self.ctx.clock.now()
        typed = self._validated(trigger, data, now, engine_fired_ok=False)
        return self.ctx.store.accept_event(trigger, dump_values(typed), format_datetime(now),
                                           idempotency_key=idempotency_key, wall_now=time.time())

    def accept_batch(self, items: Iterable[tuple[Any, Any]]) -> list[int | EventError]:
        """`accept` for each (trigger, data) in one transaction: an id or an EventError each."""
        results: list[int | EventError] = []
        with self.ctx.store.batch():
            for trigger, data in items:
                try:
                    if not isinstance(trigger, str) or not trigger:
                        raise EventError("the event has no \"trigger\" (a trigger name like \"guest.added\")")
                    results.append(self.accept(trigger, data)[0])
                except EventError as exc:
                    results.append(exc)
        return results

    def reject(self, trigger: str | None, data: Any, error: str) -> None:
        """Record an event that could not even be read (bad JSON, no trigger)."""
        self._reject(trigger, data, self.ctx.clock.now(), error)

    def _reject(self, trigger: str | None, data: Any, now: dt.datetime, error: str) -> None:
        text = data if isinstance(data, str) else dumps(data, lenient=True)
        # what was refused may hold lone surrogates, which no UTF-8 column can store: escaped
        name = storable(trigger) if isinstance(trigger, str) else None
        self.ctx.store.insert_event(name, storable(text[:10_000]), format_datetime(now), "rejected",
                                    error=storable(error))

    def ingest(self, lines: Iterable[str | bytes], on_line: Callable[[int, str | None], None] | None = None,
               commit_every: int = 100, keep_rejected: bool = True) -> tuple[int, list[tuple[int, str]]]:
        """Emit each JSON line, committing `commit_every` lines at a time; (accepted, [(line, error)…])."""
        if commit_every <= 1:
            return self._ingest(lines, on_line, 1, keep_rejected)
        with self.ctx.store.group():
            return self._ingest(lines, on_line, commit_every, keep_rejected)

    def _ingest(self, lines: Iterable[str | bytes], on_line: Callable[[int, str | None], None] | None,
                commit_every: int, keep_rejected: bool) -> tuple[int, list[tuple[int, str]]]:
        accepted, rejected = 0, []
        uncommitted = 0
        for number, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            if uncommitted >= commit_every:
                self.ctx.store.commit_now()
                uncommitted = 0
            uncommitted += 1
            error = None
            try:
                trigger, data = parse_ingest_line(decode_line(raw))
            except EventError as exc:
                error = str(exc)
                self.reject(getattr(exc, "trigger", None), shown_line(raw), error)
            else:
                try:
                    self.emit(trigger, data)
                    accepted += 1
                except EventError as exc:
                    error = str(exc)
            if error and keep_rejected:
                rejected.append((number, error))
            if on_line:
                on_line(number, error)
        return accepted, rejected
