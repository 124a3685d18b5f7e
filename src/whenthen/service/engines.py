"""One engine per thread on the service's database: request threads and workers never share a connection."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from whenthen.runtime.clock import Clock, RealClock
from whenthen.stdlib.config import StdlibConfig


class Engines:
    """Opens engines alike (database, clock, settings, host actions and triggers) and closes them all."""

    def __init__(self, db: str, *, config: StdlibConfig | None = None, clock: Clock | None = None,
                 actions: list[Callable[..., Any]] = (), triggers: dict[str, Any] | None = None):
        self.db = db
        self.config = config if config is not None else StdlibConfig.load(db=db)
        self.clock = clock or RealClock()
        self.actions = list(actions)
        self.triggers = dict(triggers or {})
        self._local = threading.local()
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

    def here(self) -> Any:  # -> Engine
        """This thread's engine, opened on first use."""
        engine = getattr(self._local, "engine", None)
        if engine is None:
            engine = self._local.engine = self.new()
        return engine

    def close(self) -> None:
        with self._lock:
            engines, self._open = self._open, []
        for engine in engines:
            try:
                engine.close()
            except Exception:  # closing at shutdown: one that fails must not keep the others open
                pass
