"""What every endpoint shares: the service object, JSON answers, bounded bodies, errors as JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from whenthen.service.config import ServeConfig
from whenthen.service.engines import Engines
from whenthen.service.metrics import Metrics
from whenthen.views import dumps


@dataclass
class Service:
    """Everything a request needs: engines on the database, who may call, the metrics."""

    engines: Engines
    config: ServeConfig
    metrics: Metrics
    workers: Any = None  # the WorkerPool, started with the app
    state: dict[str, Any] = field(default_factory=dict)


def service_of(request: Request) -> Service:
    return request.app.state.service


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """The CLI's `--format json` serializer, compact, as an HTTP answer."""
    return Response(dumps(value, indent=None), status_code=status, media_type="application/json", headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, or 413 once it passes `limit` bytes (read in chunks: never more than that in memory)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def http_error(request: Request, exc: Exception) -> Response:
    """`{"error": message}` for the API's errors; an HTML page for the console's (a browser asking)."""
    assert isinstance(exc, HTTPException)
    path = request.url.path
    api = path.startswith("/v1/") or path in ("/openapi.json", "/metrics", "/healthz", "/readyz")
    if api or "text/html" not in request.headers.get("accept", ""):
        return json_response({"error": exc.detail}, exc.status_code, headers=exc.headers)
    from whenthen.service.console import error_page

    return error_page(request, exc)
