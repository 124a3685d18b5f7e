"""Run the service: uvicorn in the foreground, workers in threads; SIGTERM drains requests, then stops the workers."""

from __future__ import annotations

import ipaddress
import logging
import signal
import socket

import uvicorn

from whenthen.service.app import create_app
from whenthen.service.config import ServeConfig
from whenthen.service.engines import Engines
from whenthen.service.http import Service
from whenthen.service.metrics import Metrics
from whenthen.service.workers import WorkerPool


def is_loopback_host(host: str) -> bool:
    """Whether every address `host` names is a loopback one (`localhost` resolves)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def build_service(engines: Engines, config: ServeConfig, workers: int) -> Service:
    metrics = Metrics(engines.lease)
    pool = WorkerPool(engines, workers, on_action=metrics.on_action) if workers > 0 else None
    return Service(engines=engines, config=config, metrics=metrics, workers=pool)


def run(engines: Engines, config: ServeConfig, host: str, port: int, workers: int,
        log_level: str = "info") -> None:
    """Serve until SIGTERM or SIGINT: uvicorn stops accepting, finishes the requests in flight
    (each `202` is sent only after its commit), then the lifespan stops the workers."""
    service = build_service(engines, config, workers)
    logging.getLogger("whenthen.serve").setLevel(log_level.upper())
    server = uvicorn.Server(uvicorn.Config(create_app(service), host=host, port=port, log_level=log_level,
                                           lifespan="on", timeout_graceful_shutdown=30, server_header=False))
    # uvicorn handles SIGTERM/SIGINT while serving, then re-raises the signal to the handler that was
    # there before: this one, so that a clean stop exits with status 0 instead of dying by the signal
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: None)
    server.run()
