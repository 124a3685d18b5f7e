"""`GET /openapi.json`: an OpenAPI 3.1 document with one operation per declared trigger, typed from its schema."""

from __future__ import annotations

import re
from typing import Any

from whenthen.compiler.decls import TriggerSchema
from whenthen.compiler.types import Type

_PRIMITIVE = {"str": {"type": "string"}, "int": {"type": "integer", "format": "int64"},
              "float": {"type": "number"}, "bool": {"type": "boolean"},
              "datetime": {"type": "string", "format": "date-time"}, "date": {"type": "string", "format": "date"},
              "duration": {"type": "number", "description": "seconds"}}

_ERRORS = {"type": "object", "required": ["errors"], "properties": {"errors": {"type": "array", "items": {
    "type": "object", "required": ["field", "message"],
    "properties": {"field": {"type": ["string", "null"]}, "message": {"type": "string"}}}}}}


def json_schema(typ: Type) -> dict[str, Any]:
    """The JSON Schema of a whenthen type; an optional one also admits null."""
    kind = typ.kind
    if kind in ("json", "any", "null"):
        return {}  # any JSON value, null included
    if kind == "enum":
        schema: dict[str, Any] = {"type": "string", "enum": list(typ.values)}
    elif kind == "list":
        schema = {"type": "array", "items": json_schema(typ.item) if typ.item else {}}
    elif kind == "object":
        schema = object_schema(typ)
    else:
        schema = dict(_PRIMITIVE[kind])
    if typ.optional:
        schema["type"] = [schema["type"], "null"]
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
    return schema


def object_schema(typ: Type) -> dict[str, Any]:
    """Required fields listed; optional ones nullable and not required; no other field allowed."""
    schema: dict[str, Any] = {"type": "object", "properties": {n: json_schema(t) for n, t in typ.fields},
                              "additionalProperties": False}
    required = [n for n, t in typ.fields if not t.optional and t.kind not in ("json", "any", "null")]
    if required:
        schema["required"] = required
    return schema


def operation_id(name: str, taken: set[str]) -> str:
    base = "emit_" + (re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_") or "trigger")
    found, n = base, 2
    while found in taken:
        found, n = f"{base}_{n}", n + 1
    taken.add(found)
    return found


def document(triggers: dict[str, TriggerSchema], signed: set[str], *, version: str, secured: bool) -> dict[str, Any]:
    """The whole document: each trigger's ingestion operation, then the service's other endpoints."""
    taken: set[str] = set()
    paths: dict[str, Any] = {}
    for name, trig in sorted(triggers.items()):
        op: dict[str, Any] = {
            "operationId": operation_id(name, taken),
            "summary": f"Record one {name} event",
            "tags": ["events"],
            "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                            "schema": {"type": "string", "maxLength": 255},
                            "description": "A retry with the same key within 24 h records nothing new."}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": object_schema(trig.type)}}},
            "responses": {
                "202": _json_response("Accepted: committed, dispatched by the workers", _event_id(False)),
                "200": _json_response("A retry of an accepted event (same Idempotency-Key)", _event_id(True)),
                "422": _json_response("Rejected: every bad field", _ERRORS),
                "401": {"description": "Missing or unknown token, or a bad signature"},
            },
        }
        if name in signed:
            op["parameters"].append({"name": "X-Whenthen-Signature", "in": "header", "required": True,
                                     "schema": {"type": "string", "pattern": "^sha256=[0-9a-f]{64}$"},
                                     "description": "sha256=HEX: the HMAC-SHA256 of the raw body"})
            op["security"] = []
        paths[f"/v1/events/{name}"] = {"post": op}
    paths.update(_service_paths())
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "whenthen", "version": version,
                 "description": "Events in, one operation per declared trigger; rules, runs and events out."},
        "paths": paths,
    }
    if secured:
        doc["components"] = {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}
        doc["security"] = [{"bearer": []}]
    return doc


def _event_id(duplicate: bool) -> dict[str, Any]:
    props: dict[str, Any] = {"event": {"type": "integer"}}
    if duplicate:
        props["duplicate"] = {"type": "boolean", "const": True}
    return {"type": "object", "required": list(props), "properties": props}


def _json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _get(op_id: str, summary: str, params: list[dict[str, Any]] = ()) -> dict[str, Any]:
    return {"get": {"operationId": op_id, "summary": summary, "tags": ["read"], "parameters": list(params),
                    "responses": {"200": _json_response("OK", {"type": "object"}),
                                  "404": {"description": "Not found"}}}}


def _post(op_id: str, summary: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    return {"post": {"operationId": op_id, "summary": summary, "tags": ["rules"], "parameters": params,
                     "responses": {"200": _json_response("Done", {"type": "object"}),
                                   "404": {"description": "Unknown rule or version"}}}}


def _path_param(name: str, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": kind}}


def _query(name: str, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": kind}}


def _service_paths() -> dict[str, Any]:
    rule = _path_param("name")
    return {
        "/v1/events": {"post": {
            "operationId": "emit_batch", "summary": "Record several events", "tags": ["events"],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": {"type": "array", "items": {
                    "type": "object", "required": ["trigger"],
                    "properties": {"trigger": {"type": "string"}, "data": {"type": "object"}}}}},
                "application/x-ndjson": {"schema": {"type": "string"}}}},
            "responses": {"200": _json_response("One result per input, in order", {
                "type": "object", "properties": {"results": {"type": "array"}}})}}},
        "/v1/rules": _get("list_rules", "The rules with their state, trigger, version and counts"),
        "/v1/rules/{name}": _get("get_rule", "One rule: its counts, source and versions", [rule]),
        "/v1/rules/{name}/enable": _post("enable_rule", "Make a rule active", [rule]),
        "/v1/rules/{name}/pause": _post("pause_rule", "Pause a rule (runs in flight continue)", [rule]),
        "/v1/rules/{name}/revert/{n}": _post("revert_rule", "Append a version equal to version n",
                                             [rule, _path_param("n", "integer")]),
        "/v1/runs": _get("list_runs", "Runs newest first, one page", [
            _query("rule"), _query("status"), _query("limit", "integer"), _query("before")]),
        "/v1/runs/{id}": _get("get_run", "One run with its steps", [_path_param("id", "integer")]),
        "/v1/events/{id}": _get("get_event", "One event", [_path_param("id", "integer")]),
    }
