"""Reading what happened: runs with their steps, events and the outbox, as the views the CLI and service show."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from whenthen import values
from whenthen.runtime.catalog import Catalog
from whenthen.runtime.context import Context, EngineError
from whenthen.values import format_datetime
from whenthen.views import event_view


class History:
    """The stored runs and events, read through the store and shaped as their JSON views."""

    def __init__(self, ctx: Context, catalog: Catalog):
        self.ctx, self.catalog = ctx, catalog

    def runs(self, rule: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """Every run (of `rule`, with `status`); an unknown rule is an EngineError."""
        if rule is not None:
            self.catalog.rule_or_fail(rule)
        return self._with_splits([run_view(r) for r in self.ctx.store.runs(rule, status)])

    def runs_page(self, rule: str | None = None, status: str | None = None, before: int | None = None,
                  limit: int = 50) -> list[dict[str, Any]]:
        """One page of runs newest first, ids below `before` (keyset)."""
        return self._with_splits([run_view(r) for r in self.ctx.store.runs_page(rule, status, before, limit)])

    def _with_splits(self, views: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A run that went through a split shows each choice as `splits` (SPEC 2.13)."""
        store = self.ctx.store
        if views and store.branch_counts():
            found = store.split_steps([v["id"] for v in views])
            for view in views:
                if view["id"] in found:
                    view["splits"] = found[view["id"]]
        return views

    def run(self, run_id: int) -> dict[str, Any]:
        """One run with its start event and its `steps`."""
        store = self.ctx.store
        found = store.runs(run_id=run_id)
        if not found:
            raise EngineError(f"no run {run_id}")
        view = run_view(found[0])
        event = store.event(found[0]["event_id"]) if found[0]["event_id"] else None
        view["event"] = {"id": event["id"], "trigger": event["trigger"], "data": json.loads(event["data"])} \
            if event else None
        view["steps"] = [step_view(s) for s in store.steps(run_id)]
        return view

    def outbox(self) -> list[dict[str, Any]]:
        """The outbox's rows, their args decoded."""
        return [dict(o, args=json.loads(o["args"])) for o in self.ctx.store.outbox()]

    def events(self, status: str | None = None) -> list[dict[str, Any]]:
        """Every stored event's row (with `status`)."""
        return self.ctx.store.events(status)

    def event(self, event_id: int) -> dict[str, Any]:
        """One event as its view; an unknown id is an EngineError."""
        row = self.ctx.store.event(event_id)
        if row is None:
            raise EngineError(f"no event {event_id}")
        return event_view(row)

    def events_page(self, status: str | None = None, before: int | None = None, limit: int = 50
                    ) -> list[dict[str, Any]]:
        """One page of event views newest first, ids below `before` (keyset)."""
        return [event_view(r) for r in self.ctx.store.events_page(status, before, limit)]


def run_view(row: dict[str, Any]) -> dict[str, Any]:
    """A stored run as `runs` shows it; a waiting one says until when and for what."""
    view = {k: row[k] for k in ("id", "rule", "version", "status", "started_at", "updated_at")}
    if row.get("status") == "waiting":
        deadline = row.get("deadline")
        view["waiting_until"] = format_datetime(dt.datetime.fromtimestamp(deadline, dt.UTC)) \
            if deadline is not None else None
        view["waiting_for"] = row.get("wait_trigger")
    if row.get("error"):
        view["error"] = row["error"]
    return view


def step_view(row: dict[str, Any]) -> dict[str, Any]:
    """A stored step as `run ID` shows it: an action with its args, result and error."""
    view: dict[str, Any] = {"at": row["at"], "kind": row["kind"]}
    if row["kind"] == "action":
        damaged = row.get("damaged")
        result = values.unpack(row["result"]) if row["result"] is not None and not damaged else None
        view.update(action=row["action"], args=json.loads(row["args"]) if row["args"] else {},
                    result=values.to_json(result), error=row["error"] or damaged, status=row["status"],
                    attempt=row["attempt"], idempotency_key=row["idem_key"])
        if row.get("data"):  # a delayed action (SPEC 2.12): `due_at`, when it was due; `at` is when it ran
            view.update(json.loads(row["data"]))
    elif row["data"]:
        view.update(json.loads(row["data"]))
    return view
