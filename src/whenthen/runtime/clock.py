"""Clocks: the one source of "now" for the engine — real, fixed (`--now`) and simulated."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

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


def to_utc(value: dt.datetime) -> dt.datetime:
    """An aware UTC datetime; a naive one is taken as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_datetime(text: str) -> dt.datetime:
    """Parse an ISO 8601 datetime (`2026-11-22T10:00:00Z`, offsets, or naive = UTC; a bare date is
    midnight UTC). Raises ValueError with a readable message."""
    raw = text.strip()
    try:
        if len(raw) == 10:
            value = dt.datetime.combine(dt.date.fromisoformat(raw), dt.time())
        else:
            value = dt.datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw)
    except ValueError:
        raise ValueError(f"not an ISO 8601 datetime: {text!r}") from None
    return to_utc(value)


_last_formatted: tuple[dt.datetime | None, str] = (None, "")


def format_datetime(value: dt.datetime) -> str:
    """`2026-11-22T10:00:00Z` (UTC, with `Z`; fractions of a second only when present)."""
    global _last_formatted
    last, text = _last_formatted
    if value == last:  # the engine formats the same instant several times per event
        return text
    utc = to_utc(value)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    text += "Z"
    _last_formatted = (value, text)
    return text


def epoch(value: dt.datetime) -> float:
    """Seconds since 1970-01-01T00:00Z: how deadlines are stored and ordered."""
    return to_utc(value).timestamp()


def from_epoch(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, UTC)
