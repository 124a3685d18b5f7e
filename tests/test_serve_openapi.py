"""`GET /openapi.json`: a valid OpenAPI 3.1 document, one operation per trigger, from which a working request is generated."""

from __future__ import annotations

import datetime as dt

import pytest
from openapi_spec_validator import validate

from _serve import publish, start_server
from whenthen.compiler.types import Type
from whenthen.service.openapi import json_schema


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = tmp_path_factory.mktemp("openapi") / "app.db"
    publish(db)
    srv = start_server(db, workers=0)
    yield srv
    assert srv.stop() == 0, srv.output()


def example(schema: dict, required: bool = True):
    """A value that the JSON Schema admits, built from the schema alone (as a client generator would)."""
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    if "enum" in schema:
        return schema["enum"][0]
    if "object" in kinds:
        needed = set(schema.get("required", ()))
        return {name: example(sub) for name, sub in schema.get("properties", {}).items() if name in needed}
    if "array" in kinds:
        return [example(schema.get("items", {}))]
    if "string" in kinds:
        return {"date-time": "2026-11-22T10:00:00Z", "date": "2026-11-22"}.get(schema.get("format"), "text")
    if "integer" in kinds:
        return 3
    if "number" in kinds:
        return 1.5
    if "boolean" in kinds:
        return True
    return {"any": "json"}


def test_the_document_validates_and_has_one_operation_per_trigger(server):
    with server.client() as http:
        doc = http.get("/openapi.json").json()
    validate(doc)  # openapi-spec-validator: raises on an invalid 3.1 document
    assert doc["openapi"].startswith("3.1")
    ops = {path: item["post"] for path, item in doc["paths"].items()
           if path.startswith("/v1/events/") and "{" not in path}
    assert set(ops) == {"/v1/events/guest.added", "/v1/events/form.submitted"}
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    guest = ops["/v1/events/guest.added"]["requestBody"]["content"]["application/json"]["schema"]
    assert guest["required"] == ["id", "email", "first_name", "category"]
    assert guest["properties"]["category"] == {"type": "string", "enum": ["VIP", "Press"]}
    assert guest["properties"]["age"] == {"type": ["integer", "null"], "format": "int64"}
    assert guest["properties"]["tags"] == {"type": ["array", "null"], "items": {"type": "string"}}
    assert guest["properties"]["address"]["properties"]["zip"] == {"type": ["string", "null"]}
    assert guest["properties"]["address"]["required"] == ["city"]
    assert guest["additionalProperties"] is False


def test_a_request_generated_from_the_document_is_accepted(server):
    with server.client() as http:
        doc = http.get("/openapi.json").json()
        for path, item in doc["paths"].items():
            if not path.startswith("/v1/events/") or "{" in path:
                continue
            schema = item["post"]["requestBody"]["content"]["application/json"]["schema"]
            answer = http.post(path, json=example(schema))
            assert answer.status_code == 202, (path, answer.text)


def test_every_type_maps_as_spec_7_says():
    assert json_schema(Type("str")) == {"type": "string"}
    assert json_schema(Type("int")) == {"type": "integer", "format": "int64"}
    assert json_schema(Type("float")) == {"type": "number"}
    assert json_schema(Type("bool")) == {"type": "boolean"}
    assert json_schema(Type("datetime")) == {"type": "string", "format": "date-time"}
    assert json_schema(Type("date")) == {"type": "string", "format": "date"}
    assert json_schema(Type("duration"))["type"] == "number"
    assert json_schema(Type("json")) == {}
    assert json_schema(Type("enum", values=("a", "b"), optional=True)) == {"type": ["string", "null"],
                                                                           "enum": ["a", "b", None]}
    assert dt.datetime.fromisoformat(example({"type": "string", "format": "date-time"}).replace("Z", "+00:00"))
