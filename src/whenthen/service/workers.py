"""The service's workers: N threads, each with its own engine, dispatching events, resuming runs and firing schedules."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from whenthen.service.engines import Engines

log = logging.getLogger("whenthen.serve")


class WorkerPool:
    """`Engine.work` in N threads until `stop()`: each run step is taken under a lease, so a
    stopped worker's run is finished here or, after the lease, by any other worker."""

    def __init__(self, engines: Engines, count: int, on_action: Callable[[str, float, bool], None] | None = None,
                 idle: float = 0.2):
        self.engines = engines
        self.count = count
        self.on_action = on_action
        self.idle = idle
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for n in range(self.count):
            thread = threading.Thread(target=self._loop, name=f"whenthen-worker-{n + 1}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _loop(self) -> None:
        engine = self.engines.new()
        engine.on_action = self.on_action
        while not self._stop.is_set():
            try:
                engine.work(idle=self.idle, stop=self._stop.is_set)
            except Exception:  # a database hiccup must not end the worker: log it, retry after a pause
                log.exception("worker %s: error; retrying in 1 s", threading.current_thread().name)
                self._stop.wait(1.0)

    def stop(self, timeout: float = 30.0) -> None:
        """Let each worker finish the step in hand (what is left stays claimable), then return."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    @property
    def alive(self) -> int:
        return sum(t.is_alive() for t in self._threads)
