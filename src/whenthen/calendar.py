"""Wall-clock arithmetic: parsing instants, local times to instants, and when schedules fire (docs/time.md).

A schedule is the plain data `RuleCode.schedule` holds: `{"kind": "every", "seconds": n}`,
`{"kind": "every_at", "day": "day" | "monday" | …, "time": "HH:MM"}`, `{"kind": "cron", "expr": "…"}`
or `{"kind": "at", "when": datetime}`. Every function here is pure: aware datetimes in, aware UTC
datetimes out.

Wall-clock schedules (`every day at`, `every <weekday> at`, `cron`) are computed as a sequence of
*naive* local times, each mapped to one instant by `wall_to_instant`: a time in a daylight-saving
gap becomes the first instant after the gap, a time that occurs twice becomes its first
occurrence. That mapping never decreases as the wall time grows, which is what lets `next_fire`
and `latest_fire` search the naive sequence in order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
# The trigger name every schedule rule starts on (its event has the field `at: datetime`).
SCHEDULE_TRIGGER = "schedule.fired"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# Naive slots skipped because they map to an instant already passed: at most the slots inside
# one repeated (fall-back) hour or one gap; far more means a schedule that never fires.
_MAX_SKIPPED = 100_000


class ScheduleError(ValueError):
    """A schedule's data is not one of the forms above (the checker lets no such rule through)."""


def next_fire(schedule: dict[str, Any], timezone: str, after: dt.datetime) -> dt.datetime | None:
    """The first slot strictly after `after`, in UTC; None when there is none (a past `at`)."""
    after = _aware(after)
    kind = schedule.get("kind")
    if kind == "every":
        step = _every_step(schedule)
        return EPOCH + ((after - EPOCH) // step + 1) * step
    if kind == "at":
        when = _aware(schedule["when"])
        return when if when > after else None
    tz = ZoneInfo(timezone)
    wall = after.astimezone(tz).replace(tzinfo=None)
    for skipped, naive in enumerate(_walls_after(schedule, wall)):
        slot = wall_to_instant(naive, tz)
        if slot > after:
            return slot
        if skipped > _MAX_SKIPPED:
            break
    return None


def latest_fire(schedule: dict[str, Any], timezone: str, after: dt.datetime, until: dt.datetime
                ) -> dt.datetime | None:
    """The last slot in (`after`, `until`], in UTC; None when that window holds no slot.

    This is what a worker that was down fires on start: one slot, the latest it missed.
    """
    after, until = _aware(after), _aware(until)
    if until <= after:
        return None
    kind = schedule.get("kind")
    if kind == "every":
        step = _every_step(schedule)
        slot = EPOCH + ((until - EPOCH) // step) * step
        return slot if slot > after else None
    if kind == "at":
        when = _aware(schedule["when"])
        return when if after < when <= until else None
    tz = ZoneInfo(timezone)
    local = until.astimezone(tz)
    wall = local.replace(tzinfo=None)
    if local.fold:
        # `until` is in the second pass of a repeated hour: wall times up to one shift later
        # already had their (first) occurrence before it.
        wall += local.replace(fold=0).utcoffset() - local.utcoffset()
    for skipped, naive in enumerate(_walls_at_or_before(schedule, wall)):
        slot = wall_to_instant(naive, tz)
        if slot <= until:
            return slot if slot > after else None
        if skipped > _MAX_SKIPPED:
            break
    return None


def slots(schedule: dict[str, Any], timezone: str, after: dt.datetime, until: dt.datetime) -> list[dt.datetime]:
    """Every slot in (`after`, `until`], in order (simulations and tests)."""
    found = []
    slot = next_fire(schedule, timezone, after)
    while slot is not None and slot <= _aware(until):
        found.append(slot)
        slot = next_fire(schedule, timezone, slot)
    return found


def describe(schedule: dict[str, Any], timezone: str) -> str:
    """The schedule as written (`every day at 09:00`), with the zone of wall-clock forms."""
    from whenthen.values import format_datetime, format_duration  # keeps msgpack out of `check`

    kind = schedule.get("kind")
    if kind == "every":
        return f"every {format_duration(_every_step(schedule))}"
    if kind == "at":
        return f"at {format_datetime(_aware(schedule['when']))}"
    text = f'cron "{schedule["expr"]}"' if kind == "cron" else f"every {schedule['day']} at {schedule['time']}"
    return text if timezone == "UTC" else f"{text} ({timezone})"


@lru_cache(maxsize=64)
def zone(name: str | None) -> dt.tzinfo:
    """The tzinfo of a time-zone name; UTC for None, 'UTC' or an unknown name."""
    if not name or name == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


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


def epoch(value: dt.datetime) -> float:
    """Seconds since 1970-01-01T00:00Z: how deadlines are stored and ordered."""
    return to_utc(value).timestamp()


def from_epoch(seconds: float) -> dt.datetime:
    """The aware UTC instant `seconds` after 1970-01-01T00:00Z."""
    return dt.datetime.fromtimestamp(seconds, UTC)


def localize(value: dt.datetime, timezone: str | None) -> dt.datetime:
    """A naive datetime read as a wall-clock time in `timezone`, as an aware UTC datetime; aware
    ones go to UTC. A time in a daylight-saving gap is the first instant after the gap, a time
    that occurs twice its first occurrence: the rule schedules follow (docs/time.md)."""
    if value.tzinfo is None:
        tz = zone(timezone)
        return wall_to_instant(value, tz) if isinstance(tz, ZoneInfo) else value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def wall_to_instant(naive: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    """The instant (UTC) a wall-clock time stands for: its first occurrence when it occurs twice,
    and the first instant after the gap when it does not occur at all."""
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == naive:
        return first
    # In a gap: fold=0 reads the wall time with the offset before the jump, fold=1 with the one
    # after, so the jump lies between the two instants. Find, to the second, the first instant
    # whose wall time is past `naive`: the moment the clocks jumped.
    other = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    low, high = int(min(other, first).timestamp()), int(max(other, first).timestamp())
    while high - low > 1:  # zone transitions fall on whole seconds
        middle = (low + high) // 2
        if dt.datetime.fromtimestamp(middle, tz).replace(tzinfo=None) > naive:
            high = middle
        else:
            low = middle
    return dt.datetime.fromtimestamp(high, UTC)


# ----------------------------------------------------------------------------- naive wall-clock slots


def _walls_after(schedule: dict[str, Any], wall: dt.datetime) -> Iterator[dt.datetime]:
    """The schedule's wall-clock times strictly after `wall`, ascending."""
    if schedule.get("kind") == "cron":
        from croniter import CroniterBadDateError, croniter  # ~10 ms to import: only cron rules pay it

        it = croniter(schedule["expr"], wall)
        while True:
            try:
                yield it.get_next(dt.datetime)
            except CroniterBadDateError:  # a day that never comes (`0 0 30 2 *`): never fires
                return
    time_of_day, weekday = _every_at(schedule)
    day = wall.date()
    while True:
        candidate = dt.datetime.combine(day, time_of_day)
        if candidate > wall and (weekday is None or day.weekday() == weekday):
            yield candidate
        day += dt.timedelta(days=1)


def _walls_at_or_before(schedule: dict[str, Any], wall: dt.datetime) -> Iterator[dt.datetime]:
    """The schedule's wall-clock times at or before `wall`, descending."""
    if schedule.get("kind") == "cron":
        from croniter import CroniterBadDateError, croniter

        # croniter's get_prev is strict; cron slots are whole minutes, so start one minute on.
        it = croniter(schedule["expr"], wall.replace(second=0, microsecond=0) + dt.timedelta(minutes=1))
        while True:
            try:
                yield it.get_prev(dt.datetime)
            except CroniterBadDateError:
                return
    time_of_day, weekday = _every_at(schedule)
    day = wall.date()
    while True:
        candidate = dt.datetime.combine(day, time_of_day)
        if candidate <= wall and (weekday is None or day.weekday() == weekday):
            yield candidate
        day -= dt.timedelta(days=1)


def _every_at(schedule: dict[str, Any]) -> tuple[dt.time, int | None]:
    if schedule.get("kind") != "every_at":
        raise ScheduleError(f"not a schedule: {schedule!r}")
    day = schedule["day"]
    if day != "day" and day not in WEEKDAYS:
        raise ScheduleError(f"unknown day {day!r} in a schedule")
    return dt.time.fromisoformat(schedule["time"]), None if day == "day" else WEEKDAYS.index(day)


def _every_step(schedule: dict[str, Any]) -> dt.timedelta:
    seconds = schedule.get("seconds")
    if not isinstance(seconds, int) or seconds <= 0:
        raise ScheduleError(f"`every` needs a positive whole number of seconds, not {seconds!r}")
    return dt.timedelta(seconds=seconds)


def _aware(value: dt.datetime) -> dt.datetime:
    """Aware UTC; a naive datetime is taken as UTC (stored schedule data is UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


# ----------------------------------------------------------------------------- sending windows (SPEC 2.12)
#
# A window is the plain data the WAIT_WINDOW instruction holds: `{"start": minutes, "end": minutes,
# "days": [weekday, …]}` (minutes since local midnight; weekdays 0 = monday, the days the window
# *opens*). On each such day D it is the interval of instants [open, close): open is D at `start`,
# close D at `end`, or the next day at `end` when `end` is before `start` (past midnight), each
# wall time mapped to an instant by `wall_to_instant` (a time in a gap is the first instant after
# it, a repeated one its first occurrence, as schedules do). An instant is inside the window when
# one of those intervals holds it.


def parse_clock(text: str) -> int | None:
    """Minutes since midnight of an `HH:MM` time of day (00:00 to 23:59), None when it is not one."""
    hours, sep, minutes = text.partition(":")
    if not (sep and len(hours) == 2 and len(minutes) == 2 and hours.isdigit() and minutes.isdigit()):
        return None
    h, m = int(hours), int(minutes)
    return h * 60 + m if h <= 23 and m <= 59 else None


def day_set(ranges: list[tuple[str, str | None]]) -> list[int]:
    """The weekdays (0 = monday) of day names and ranges; a range wraps past sunday (`friday-monday`).
    No ranges means every day. Raises ScheduleError on an unknown name."""
    if not ranges:
        return list(range(7))
    days: set[int] = set()
    for first, last in ranges:
        for name in (first, last):
            if name is not None and name not in WEEKDAYS:
                raise ScheduleError(f"unknown day {name!r}")
        a = WEEKDAYS.index(first)
        b = WEEKDAYS.index(last) if last is not None else a
        days.update((a + i) % 7 for i in range((b - a) % 7 + 1))
    return sorted(days)


def _window_interval(window: dict[str, Any], day: dt.date, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    start, end = window["start"], window["end"]
    opens = dt.datetime.combine(day, dt.time(start // 60, start % 60))
    closes = dt.datetime.combine(day + dt.timedelta(days=1 if end <= start else 0), dt.time(end // 60, end % 60))
    return wall_to_instant(opens, tz), wall_to_instant(closes, tz)


def _window_zone(timezone: str | None) -> ZoneInfo:
    tz = zone(timezone)
    return tz if isinstance(tz, ZoneInfo) else ZoneInfo("UTC")


def in_window(window: dict[str, Any], timezone: str | None, instant: dt.datetime) -> bool:
    """Is `instant` inside the window (its start included, its end excluded)?"""
    instant = _aware(instant)
    tz = _window_zone(timezone)
    local = instant.astimezone(tz).date()
    for back in (2, 1, 0):
        day = local - dt.timedelta(days=back)
        if day.weekday() in window["days"]:
            opens, closes = _window_interval(window, day, tz)
            if opens <= instant < closes:
                return True
    return False


def next_opening(window: dict[str, Any], timezone: str | None, after: dt.datetime) -> dt.datetime | None:
    """`after` itself when it is inside the window, else the instant the window next opens
    (None only for a window that never opens, which the checker lets no rule have)."""
    after = _aware(after)
    if in_window(window, timezone, after):
        return after
    tz = _window_zone(timezone)
    local = after.astimezone(tz).date()
    best: dt.datetime | None = None
    for ahead in range(-1, 16):
        day = local + dt.timedelta(days=ahead)
        if day.weekday() not in window["days"]:
            continue
        opens, closes = _window_interval(window, day, tz)
        if opens >= after and opens < closes and (best is None or opens < best):
            best = opens
        if best is not None and ahead >= 8:
            break
    return best


def describe_window(window: dict[str, Any], timezone: str | None = None) -> str:
    """The window as written in the rule (`09:00-20:00 on monday-friday, saturday`), with the zone."""
    def clock(minutes: int) -> str:
        return f"{minutes // 60:02d}:{minutes % 60:02d}"

    text = f"{clock(window['start'])}-{clock(window['end'])}"
    days = sorted(window["days"])
    if days != list(range(7)):
        runs: list[list[int]] = []
        for d in days:
            if runs and runs[-1][-1] == d - 1:
                runs[-1].append(d)
            else:
                runs.append([d])
        text += " on " + ", ".join(WEEKDAYS[r[0]] if len(r) == 1 else f"{WEEKDAYS[r[0]]}-{WEEKDAYS[r[-1]]}"
                                   for r in runs)
    return text if not timezone or timezone == "UTC" else f"{text} ({timezone})"
