"""`POST /v1/events/{trigger}` and `POST /v1/events`: validated events, committed before the answer, dispatched by the workers."""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from whenthen.diagnostics import EventError
from whenthen.runtime.events import MAX_PAYLOAD_BYTES, parse_payload
from whenthen.service.auth import require, signature_ok
from whenthen.service.http import Service, json_response, read_body, service_of
from whenthen.service.metrics import UNKNOWN_TRIGGER

MAX_BATCH_BYTES = 20 * MAX_PAYLOAD_BYTES
MAX_BATCH_ITEMS = 10_000
MAX_KEY_LENGTH = 255


def errors_of(exc: EventError) -> list[dict[str, Any]]:
    """`[{"field", "message"}]`: every bad field, or the one reason that has no field."""
    return [{"field": f, "message": m} for f, m in exc.errors] or [{"field": None, "message": str(exc)}]


async def post_event(request: Request) -> Response:
    svc = service_of(request)
    trigger = request.path_params["trigger"]
    body = await read_body(request, MAX_PAYLOAD_BYTES)
    secret = svc.config.signatures.get(trigger)
    if secret is not None:  # a webhook from another system: its signature replaces the token
        if not signature_ok(secret, body, request.headers.get("x-whenthen-signature")):
            svc.metrics.events_rejected.labels(trigger).inc()
            raise HTTPException(401, f"{trigger}: missing or bad X-Whenthen-Signature")
    else:
        require(request, svc.config, "ingest")
    key = request.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= MAX_KEY_LENGTH:
        raise HTTPException(400, f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters")
    status, answer = await run_in_threadpool(_accept_one, svc, trigger, body, key)
    return json_response(answer, status)


def _accept_one(svc: Service, trigger: str, body: bytes, key: str | None) -> tuple[int, dict[str, Any]]:
    with svc.engines.lease() as engine:
        return _accept_with(engine, svc, trigger, body, key)


def _accept_with(engine: Any, svc: Service, trigger: str, body: bytes, key: str | None) -> tuple[int, dict[str, Any]]:
    known = trigger in engine.triggers()
    label = trigger if known else UNKNOWN_TRIGGER
    try:
        if not known:
            engine.trigger_schema(trigger)  # raises the unknown-trigger error, with a suggestion
            raise EventError(f"'{trigger}' is fired by the engine; it cannot be emitted", trigger=trigger)
        try:
            data = parse_payload(body.decode("utf-8", "replace"), trigger)
        except EventError as exc:
            engine.reject(trigger, body.decode("utf-8", "replace"), str(exc))
            raise
        event_id, duplicate = engine.accept(trigger, data, idempotency_key=key)
    except EventError as exc:
        svc.metrics.events_rejected.labels(label).inc()
        if not known:
            engine.reject(trigger, body.decode("utf-8", "replace"), str(exc))
            return 404, {"error": str(exc), "errors": errors_of(exc)}
        return 422, {"errors": errors_of(exc)}
    if duplicate:
        return 200, {"event": event_id, "duplicate": True}
    svc.metrics.events_accepted.labels(trigger).inc()
    return 202, {"event": event_id}


async def post_batch(request: Request) -> Response:
    svc = service_of(request)
    require(request, svc.config, "ingest")
    body = await read_body(request, MAX_BATCH_BYTES)
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    text = body.decode("utf-8", "replace")
    if kind == "application/x-ndjson":
        items: list[Any] = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except ValueError as exc:
                items.append(EventError(f"line {number}: invalid JSON: {exc}"))
    elif kind == "application/json":
        try:
            items = json.loads(text)
        except ValueError as exc:
            raise HTTPException(400, f"invalid JSON: {exc}") from None
        if not isinstance(items, list):
            raise HTTPException(400, "POST /v1/events takes a JSON array of {\"trigger\", \"data\"} objects")
    else:
        raise HTTPException(415, "POST /v1/events takes application/json (an array) or application/x-ndjson")
    if len(items) > MAX_BATCH_ITEMS:
        raise HTTPException(413, f"a batch holds at most {MAX_BATCH_ITEMS} events")
    results = await run_in_threadpool(_accept_batch, svc, items)
    return json_response({"results": results})


def _accept_batch(svc: Service, items: list[Any]) -> list[dict[str, Any]]:
    with svc.engines.lease() as engine:
        return _batch_with(engine, svc, items)


def _batch_with(engine: Any, svc: Service, items: list[Any]) -> list[dict[str, Any]]:
    known = engine.triggers()
    pairs: list[tuple[Any, Any]] = []
    early: dict[int, EventError] = {}
    for index, item in enumerate(items):
        if isinstance(item, EventError):
            early[index] = item
        elif not isinstance(item, dict) or set(item) - {"trigger", "data"}:
            early[index] = EventError('each item is an object {"trigger": NAME, "data": {…}}')
        elif isinstance(item.get("trigger"), str) and item["trigger"] not in known:
            try:
                engine.trigger_schema(item["trigger"])
                early[index] = EventError(f"'{item['trigger']}' is fired by the engine; it cannot be emitted")
            except EventError as exc:
                early[index] = exc
        if index not in early:
            pairs.append((item.get("trigger"), item.get("data", {})))
    accepted = iter(engine.accept_batch(pairs))
    results: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        outcome = early.get(index) or next(accepted)
        trigger = item.get("trigger") if isinstance(item, dict) else None
        label = trigger if isinstance(trigger, str) and trigger in known else UNKNOWN_TRIGGER
        if isinstance(outcome, EventError):
            if index in early:
                engine.reject(trigger if isinstance(trigger, str) else None, json.dumps(item, default=str),
                              str(outcome))
            svc.metrics.events_rejected.labels(label).inc()
            results.append({"errors": errors_of(outcome)})
        else:
            svc.metrics.events_accepted.labels(label).inc()
            results.append({"event": outcome})
    return results
