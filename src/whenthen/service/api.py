"""The read and rule-change endpoints of `/v1`: rules, versions, runs (keyset pages), events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from whenthen.diagnostics import WhenthenError
from whenthen.service.auth import require
from whenthen.service.http import json_response, service_of

RUN_STATUSES = ("running", "waiting", "completed", "failed", "exited")
EVENT_STATUSES = ("pending", "processing", "processed", "rejected")
MAX_LIMIT = 500


async def _call(request: Request, scope: str, fn: Callable[[Any], Any]) -> Any:
    """`fn(engine)` in a worker thread, after the scope check; an unknown rule, run or event is 404."""
    svc = service_of(request)
    require(request, svc.config, scope)

    def work() -> Any:
        try:
            with svc.engines.lease() as engine:
                return fn(engine)
        except WhenthenError as exc:
            raise HTTPException(404, str(exc)) from None

    return await run_in_threadpool(work)


def _int(text: str | None, what: str, default: int | None = None) -> int | None:
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise HTTPException(400, f"{what} must be an integer, not {text!r}") from None


def page_params(request: Request, statuses: tuple[str, ...]) -> tuple[str | None, int | None, int]:
    """(status, before, limit) from the query, checked."""
    status = request.query_params.get("status") or None
    if status is not None and status not in statuses:
        raise HTTPException(400, f"status must be one of {', '.join(statuses)}, not {status!r}")
    before = _int(request.query_params.get("before"), "before")
    limit = _int(request.query_params.get("limit"), "limit", 50)
    if limit is None or not 1 <= limit <= MAX_LIMIT:
        raise HTTPException(400, f"limit must be 1 to {MAX_LIMIT}")
    return status, before, limit


def keyset(items: list[dict[str, Any]], limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """A page read with `limit + 1` rows: the page, and the cursor of the next one (or None)."""
    if len(items) > limit:
        return items[:limit], str(items[limit - 1]["id"])
    return items, None


async def list_rules(request: Request) -> Response:
    """The rules, as `whenthen rules --format json` lists them: archived ones only with `?all=1`."""
    show_all = request.query_params.get("all", "").lower() in ("1", "true", "yes")
    found = await _call(request, "read", lambda e: e.rules())
    return json_response({"rules": [r for r in found if show_all or r["state"] != "archived"]})


async def get_rule(request: Request) -> Response:
    name = request.path_params["name"]
    return json_response(await _call(request, "read", lambda e: e.rule(name)))


async def rule_state(request: Request) -> Response:
    name, change = request.path_params["name"], request.path_params["change"]
    if change not in ("enable", "pause", "archive"):
        raise HTTPException(404, f"no such change: {change}")

    def apply(engine: Any) -> dict[str, Any]:
        getattr(engine, change)(name)
        return next(r for r in engine.rules() if r["name"] == name)

    return json_response(await _call(request, "admin", apply))


async def revert_rule(request: Request) -> Response:
    name = request.path_params["name"]
    number = request.path_params["n"]
    author = request.query_params.get("author")

    def apply(engine: Any) -> dict[str, Any]:
        version = engine.revert(name, number, author=author)
        return {"rule": name, "version": version, "reverted_to": number}

    return json_response(await _call(request, "admin", apply))


async def list_runs(request: Request) -> Response:
    status, before, limit = page_params(request, RUN_STATUSES)
    rule = request.query_params.get("rule") or None
    runs = await _call(request, "read", lambda e: e.runs_page(rule, status, before, limit + 1))
    page, cursor = keyset(runs, limit)
    return json_response({"runs": page, "next": cursor})


async def get_run(request: Request) -> Response:
    run_id = request.path_params["id"]
    return json_response(await _call(request, "read", lambda e: e.run(run_id)))


async def list_events(request: Request) -> Response:
    status, before, limit = page_params(request, EVENT_STATUSES)
    events = await _call(request, "read", lambda e: e.events_page(status, before, limit + 1))
    page, cursor = keyset(events, limit)
    return json_response({"events": page, "next": cursor})


async def explain(request: Request) -> Response:
    """`GET /v1/explain/{rule}/{event}`: `Engine.explain(rule, event)`, the CLI's `explain --format json`."""
    rule, event_id = request.path_params["rule"], request.path_params["event"]

    def run(engine: Any) -> Any:
        if not hasattr(engine, "explain"):
            raise HTTPException(501, "explain is not available in this version of whenthen")
        return engine.explain(rule, event_id)

    return json_response(await _call(request, "read", run))


async def get_event(request: Request) -> Response:
    event_id = request.path_params["id"]
    return json_response(await _call(request, "read", lambda e: e.event(event_id)))
