"""The Starlette application: routes, health, metrics, the OpenAPI document, workers started and stopped with it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

import whenthen
from whenthen.runtime.store.schema import SCHEMA_VERSION
from whenthen.service import api, console, ingest, openapi
from whenthen.service.auth import require
from whenthen.service.http import Service, http_error, json_response, service_of


async def healthz(request: Request) -> Response:
    """The process is up (no database access: a slow database must not get the process killed)."""
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    """The database answers and has this version's schema."""
    svc = service_of(request)

    def probe() -> tuple[int, str]:
        try:
            with svc.engines.lease() as engine:
                found = engine.store.schema_version()
        except Exception as exc:  # any failure to reach the database means not ready
            return 503, f"database unreachable: {type(exc).__name__}: {exc}"
        if found != SCHEMA_VERSION:
            return 503, f"database schema version {found}, this whenthen needs {SCHEMA_VERSION}"
        return 200, "ready"

    status, message = await run_in_threadpool(probe)
    return json_response({"status": "ok" if status == 200 else "unavailable", "detail": message}, status)


async def metrics(request: Request) -> Response:
    svc = service_of(request)
    require(request, svc.config, "read")
    body = await run_in_threadpool(svc.metrics.render)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


async def openapi_json(request: Request) -> Response:
    """The document; with tokens configured, any token may read it (clients are generated from it)."""
    svc = service_of(request)
    require(request, svc.config, "ingest")

    def build() -> dict:
        with svc.engines.lease() as engine:
            triggers = engine.triggers()
        return openapi.document(triggers, set(svc.config.signatures), version=whenthen.__version__,
                                secured=not svc.config.open)

    return json_response(await run_in_threadpool(build))


def routes() -> list[BaseRoute]:
    return [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Route("/openapi.json", openapi_json),
        Route("/v1/events", ingest.post_batch, methods=["POST"]),
        Route("/v1/events", api.list_events, methods=["GET"]),
        Route("/v1/events/{id:int}", api.get_event, methods=["GET"]),
        Route("/v1/events/{trigger}", ingest.post_event, methods=["POST"]),
        Route("/v1/rules", api.list_rules),
        Route("/v1/rules/{name}", api.get_rule),
        Route("/v1/rules/{name}/revert/{n:int}", api.revert_rule, methods=["POST"]),
        Route("/v1/rules/{name}/{change}", api.rule_state, methods=["POST"]),
        Route("/v1/runs", api.list_runs),
        Route("/v1/runs/{id:int}", api.get_run),
        Route("/v1/explain/{rule}/{event:int}", api.explain),
        *console.routes(),
    ]


def create_app(service: Service) -> Starlette:
    """The app; its lifespan starts the service's workers and, at shutdown, stops them and closes the engines."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if service.workers is not None:
            service.workers.start()
        try:
            yield
        finally:
            if service.workers is not None:
                await run_in_threadpool(service.workers.stop)
            service.engines.close()

    app = Starlette(routes=routes(), lifespan=lifespan, exception_handlers={HTTPException: http_error})
    app.state.service = service
    return app
