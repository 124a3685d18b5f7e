"""`GET /metrics`: the Prometheus metrics of SPEC 7, counted in this process or read from the database."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

disable_created_metrics()  # the *_created series double the output and no dashboard reads them
UNKNOWN_TRIGGER = "(unknown)"  # one label for every unknown name: a client cannot grow the series


class Metrics:
    """The service's registry: event and action counters, and the run metrics read at scrape time."""

    def __init__(self, engine: Callable[[], AbstractContextManager[Any]]):
        self.registry = CollectorRegistry()
        self.events_accepted = Counter("whenthen_events_accepted", "Events accepted (answered 202 or in a batch).",
                                       ["trigger"], registry=self.registry)
        self.events_rejected = Counter("whenthen_events_rejected", "Events rejected (422, 404, bad signature).",
                                       ["trigger"], registry=self.registry)
        self.action_calls = Counter("whenthen_action_calls", "Action calls made by this process's workers.",
                                    ["action"], registry=self.registry)
        self.action_failures = Counter("whenthen_action_failures", "Action calls that raised.",
                                       ["action"], registry=self.registry)
        self.action_seconds = Histogram("whenthen_action_seconds", "Time an action call took.", ["action"],
                                        registry=self.registry)
        self.registry.register(_RunCollector(engine))

    def on_action(self, name: str, seconds: float, failed: bool) -> None:
        """The engine's hook after each action call (any thread)."""
        self.action_calls.labels(name).inc()
        self.action_seconds.labels(name).observe(seconds)
        if failed:
            self.action_failures.labels(name).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _RunCollector(Collector):
    """Run counts from the database at each scrape: exact across restarts and shared by every
    `serve` process on the database (so aggregate them with max, not sum)."""

    def __init__(self, engine: Callable[[], AbstractContextManager[Any]]):
        self.engine = engine

    def describe(self) -> list[Metric]:
        return []  # so that registering does not query the database (the names are fixed)

    def collect(self) -> Iterator[Metric]:
        with self.engine() as engine:
            yield from self._collect(engine.store)

    def _collect(self, store: Any) -> Iterator[Metric]:
        started = CounterMetricFamily("whenthen_runs_started", "Runs started, per rule.", labels=["rule"])
        finished = CounterMetricFamily("whenthen_runs_finished", "Runs that ended, per rule and status.",
                                       labels=["rule", "status"])
        for rule, counts in sorted(store.run_counts().items()):
            started.add_metric([rule], sum(counts.values()))
            for status in ("completed", "failed", "exited"):
                finished.add_metric([rule, status], counts.get(status, 0))
        now = time.time()
        waiting, due, oldest = store.run_gauges(now)
        yield started
        yield finished
        yield GaugeMetricFamily("whenthen_runs_waiting", "Runs waiting (for time or an event).", value=waiting)
        yield GaugeMetricFamily("whenthen_runs_due", "Runs due but not yet resumed.", value=due)
        yield GaugeMetricFamily("whenthen_oldest_due_seconds", "How long the oldest due run has been due.",
                                value=max(0.0, now - oldest) if oldest is not None else 0.0)
