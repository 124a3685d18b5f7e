"""Clocks: the one source of "now" for the engine — real, fixed (`--now`) and simulated."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from whenthen.calendar import to_utc

UTC = dt.UTC


class Clock(Protocol):
    """Anything that tells the engine the current time (timezone-aware, UTC)."""

    def now(self) -> dt.datetime: ...


class RealClock:
    """The wall clock."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC)


class FixedClock:
    """A clock stopped at one instant: `whenthen --now 2026-11-24T00:00:00Z …`."""

    def __init__(self, at: dt.datetime):
        self.at = to_utc(at)

    def now(self) -> dt.datetime:
        return self.at


class SimulatedClock:
    """A clock that only moves when told to (simulate, the REPL's `:advance`)."""

    def __init__(self, start: dt.datetime):
        self.at = to_utc(start)

    def now(self) -> dt.datetime:
        return self.at

    def set(self, at: dt.datetime) -> None:
        """Move to `at`; the clock never goes back."""
        at = to_utc(at)
        if at > self.at:
            self.at = at

    def advance(self, delta: dt.timedelta) -> None:
        self.set(self.at + delta)
