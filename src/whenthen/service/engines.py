"""Engines on the service's database: a bounded pool lent to requests, and one of its own for each worker."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from whenthen.runtime.clock import Clock, RealClock
from whenthen.stdlib.config import StdlibConfig


class Engines:
    """Opens engines alike (database, clock, settings, host actions and triggers) and closes them all."""

    def __init__(self, db: str, *, config: StdlibConfig | None = None, clock: Clock | None = None,
                 actions: list[Callable[..., Any]] = (), triggers: dict[str, Any] | None = None, size: int = 4):
        self.db = db
        self.config = config if config is not None else StdlibConfig.load(db=db)
        self.clock = clock or RealClock()
        self.actions = list(actions)
        self.triggers = dict(triggers or {})
        self.size = size  # engines (connections) lent to requests at most; more requests wait for one
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lent = 0
        self._lock = threading.Lock()
        self._open: list[Any] = []

    def new(self) -> Any:  # -> Engine
        """A fresh engine (a worker's own)."""
        from whenthen.runtime.engine import Engine

        engine = Engine(self.db, self.clock, config=self.config)
        for fn in self.actions:
            engine.action(fn)
        for name, model in self.triggers.items():
            engine.trigger(name, model)
        with self._lock:
            self._open.append(engine)
        return engine

    @contextmanager
    def lease(self) -> Iterator[Any]:  # Iterator[Engine]
        """An engine for one request: an idle one, a new one while fewer than `size` exist, or
        the next one given back. Opening an engine costs far more than a request's read, so
        they are kept; and a bounded number keeps the database's connection count bounded."""
        try:
            engine = self._idle.get_nowait()
        except queue.Empty:
            with self._lock:
                grow = self._lent < self.size
                if grow:
                    self._lent += 1
            engine = self.new() if grow else self._idle.get()
        try:
            yield engine
        finally:
            self._idle.put(engine)

    def close(self) -> None:
        with self._lock:
            engines, self._open = self._open, []
        for engine in engines:
            try:
                engine.close()
            except Exception:  # closing at shutdown: one that fails must not keep the others open
                pass
