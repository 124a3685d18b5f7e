"""Schedules: slot arithmetic across daylight-saving changes, simulate, the REPL and worker catch-up."""

from __future__ import annotations

import datetime as dt
import json
import shlex
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from whenthen.calendar import describe, latest_fire, next_fire, slots, wall_to_instant

PARIS = "Europe/Paris"  # 2026: spring forward 03-29 02:00 CET -> 03:00 CEST; fall back 10-25 03:00 -> 02:00
NEW_YORK = "America/New_York"  # 2026: spring forward 03-08 02:00 -> 03:00; fall back 11-01 02:00 -> 01:00
TESTDATA = Path(__file__).parent.parent / "testdata"
WHENTHEN = [sys.executable, "-m", "whenthen"]  # this interpreter's whenthen, never PATH's


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def every_day_at(time: str) -> dict:
    return {"kind": "every_at", "day": "day", "time": time}


def cron(expr: str) -> dict:
    return {"kind": "cron", "expr": expr}


# ----------------------------------------------------------------------------- every DURATION


def test_every_fires_at_whole_multiples_since_the_epoch():
    hourly = {"kind": "every", "seconds": 3600}
    assert next_fire(hourly, PARIS, utc(2026, 3, 29, 0, 17)) == utc(2026, 3, 29, 1)
    assert next_fire(hourly, PARIS, utc(2026, 3, 29, 1)) == utc(2026, 3, 29, 2)  # strictly after
    ninety = {"kind": "every", "seconds": 5400}
    assert next_fire(ninety, "UTC", utc(2026, 1, 1)) == utc(2026, 1, 1, 1, 30)
    weekly = {"kind": "every", "seconds": 7 * 86400}  # 1970-01-01 was a Thursday
    assert next_fire(weekly, "UTC", utc(2026, 3, 2)).weekday() == 3


def test_every_ignores_the_time_zone_and_keeps_elapsed_time_across_dst():
    hourly = {"kind": "every", "seconds": 3600}
    fall_back_day = slots(hourly, PARIS, utc(2026, 10, 24, 22), utc(2026, 10, 25, 22))
    assert len(fall_back_day) == 24  # one per elapsed hour, though the Paris day has 25
    assert all(b - a == dt.timedelta(hours=1) for a, b in zip(fall_back_day, fall_back_day[1:], strict=False))


def test_every_latest_slot_in_a_window():
    hourly = {"kind": "every", "seconds": 3600}
    assert latest_fire(hourly, "UTC", utc(2026, 1, 1), utc(2026, 1, 3, 5, 59)) == utc(2026, 1, 3, 5)
    assert latest_fire(hourly, "UTC", utc(2026, 1, 3, 5), utc(2026, 1, 3, 5, 59)) is None


# ----------------------------------------------------------------------------- wall-clock schedules and DST

# (zone, schedule, window start, window end, the slots in UTC)
DST_CASES = [
    # 09:00 is always a real time: it stays 09:00 local, so the UTC slot moves by an hour
    (PARIS, every_day_at("09:00"), utc(2026, 3, 27), utc(2026, 3, 31),
     [utc(2026, 3, 27, 8), utc(2026, 3, 28, 8), utc(2026, 3, 29, 7), utc(2026, 3, 30, 7)]),
    (PARIS, every_day_at("09:00"), utc(2026, 10, 23), utc(2026, 10, 27),
     [utc(2026, 10, 23, 7), utc(2026, 10, 24, 7), utc(2026, 10, 25, 8), utc(2026, 10, 26, 8)]),
    (NEW_YORK, every_day_at("09:00"), utc(2026, 3, 6), utc(2026, 3, 10),
     [utc(2026, 3, 6, 14), utc(2026, 3, 7, 14), utc(2026, 3, 8, 13), utc(2026, 3, 9, 13)]),
    (NEW_YORK, every_day_at("09:00"), utc(2026, 10, 30), utc(2026, 11, 3),
     [utc(2026, 10, 30, 13), utc(2026, 10, 31, 13), utc(2026, 11, 1, 14), utc(2026, 11, 2, 14)]),
    (PARIS, cron("0 9 * * *"), utc(2026, 3, 28), utc(2026, 3, 30),
     [utc(2026, 3, 28, 8), utc(2026, 3, 29, 7)]),
    (PARIS, cron("0 9 * * *"), utc(2026, 10, 24), utc(2026, 10, 26),
     [utc(2026, 10, 24, 7), utc(2026, 10, 25, 8)]),
    (NEW_YORK, cron("0 9 * * *"), utc(2026, 3, 7), utc(2026, 3, 9),
     [utc(2026, 3, 7, 14), utc(2026, 3, 8, 13)]),
    (NEW_YORK, cron("0 9 * * *"), utc(2026, 10, 31), utc(2026, 11, 2),
     [utc(2026, 10, 31, 13), utc(2026, 11, 1, 14)]),
    # a time in the spring-forward gap fires once, at the first instant after it (03:00 local)
    (PARIS, every_day_at("02:30"), utc(2026, 3, 28), utc(2026, 3, 31),
     [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30)]),
    (NEW_YORK, cron("30 2 * * *"), utc(2026, 3, 7), utc(2026, 3, 10),
     [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7), utc(2026, 3, 9, 6, 30)]),
    # every half hour from 01:00 to 03:30: 02:00 and 02:30 do not exist; both become 03:00, once
    (PARIS, cron("*/30 1-3 * * *"), utc(2026, 3, 28, 22), utc(2026, 3, 29, 3),
     [utc(2026, 3, 29, 0), utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1), utc(2026, 3, 29, 1, 30)]),
    # a time that occurs twice fires once, at its first occurrence (summer time)
    (PARIS, every_day_at("02:30"), utc(2026, 10, 24), utc(2026, 10, 27),
     [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]),
    (NEW_YORK, cron("30 1 * * *"), utc(2026, 10, 31), utc(2026, 11, 3),
     [utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]),
    (PARIS, cron("*/30 1-3 * * *"), utc(2026, 10, 24, 22), utc(2026, 10, 25, 3),
     [utc(2026, 10, 24, 23), utc(2026, 10, 24, 23, 30), utc(2026, 10, 25, 0), utc(2026, 10, 25, 0, 30),
      utc(2026, 10, 25, 2), utc(2026, 10, 25, 2, 30)]),
]


@pytest.mark.parametrize(("zone", "schedule", "start", "end", "expected"), DST_CASES)
def test_wall_clock_slots_across_dst(zone, schedule, start, end, expected):
    assert slots(schedule, zone, start, end) == expected


@pytest.mark.parametrize(("zone", "schedule", "start", "end", "expected"), DST_CASES)
def test_latest_fire_agrees_with_the_slot_sequence(zone, schedule, start, end, expected):
    for slot in expected:
        assert latest_fire(schedule, zone, start, slot) == slot
        assert latest_fire(schedule, zone, start, slot + dt.timedelta(minutes=1)) == slot
        assert latest_fire(schedule, zone, slot, slot + dt.timedelta(seconds=1)) is None


def test_latest_fire_inside_the_repeated_hour():
    # 01:15Z is 02:15 CET, the second pass of 02:00-03:00: 02:30's only slot (00:30Z) is behind it
    assert latest_fire(every_day_at("02:30"), PARIS, utc(2026, 10, 24, 12), utc(2026, 10, 25, 1, 15)) \
        == utc(2026, 10, 25, 0, 30)
    # and nothing fires again during the second pass
    assert next_fire(every_day_at("02:30"), PARIS, utc(2026, 10, 25, 1, 15)) == utc(2026, 10, 26, 1, 30)


def test_weekday_schedules():
    monday = {"kind": "every_at", "day": "monday", "time": "09:00"}
    assert slots(monday, NEW_YORK, utc(2026, 3, 1), utc(2026, 3, 20)) == [
        utc(2026, 3, 2, 14), utc(2026, 3, 9, 13), utc(2026, 3, 16, 13)]
    assert next_fire(monday, NEW_YORK, utc(2026, 3, 2, 14)) == utc(2026, 3, 9, 13)


def test_at_fires_once_and_never_in_the_past():
    once = {"kind": "at", "when": utc(2026, 12, 1, 8)}
    assert next_fire(once, PARIS, utc(2026, 11, 30)) == utc(2026, 12, 1, 8)
    assert next_fire(once, PARIS, utc(2026, 12, 1, 8)) is None
    assert latest_fire(once, PARIS, utc(2026, 11, 30), utc(2026, 12, 5)) == utc(2026, 12, 1, 8)
    assert latest_fire(once, PARIS, utc(2026, 12, 2), utc(2026, 12, 5)) is None


def test_cron_on_a_day_that_never_comes_never_fires():
    never = cron("0 0 30 2 *")
    assert next_fire(never, PARIS, utc(2026, 1, 1)) is None
    assert latest_fire(never, PARIS, utc(2026, 1, 1), utc(2027, 1, 1)) is None


def test_describe_reads_like_the_source():
    assert describe({"kind": "every", "seconds": 5400}, PARIS) == "every 1h30m"
    assert describe(every_day_at("09:00"), PARIS) == "every day at 09:00 (Europe/Paris)"
    assert describe(cron("0 9 * * 1"), "UTC") == 'cron "0 9 * * 1"'
    assert describe({"kind": "at", "when": utc(2026, 12, 1, 8)}, PARIS) == "at 2026-12-01T08:00:00Z"


def first_instant_at_or_after(naive: dt.datetime, zone: str) -> dt.datetime:
    """An independent reading of the DST rule: scan UTC minute by minute for the first instant
    whose wall time has reached `naive` (the first occurrence, or the end of a gap)."""
    tz = ZoneInfo(zone)
    t = naive.replace(tzinfo=dt.UTC) - dt.timedelta(hours=15)
    while t.astimezone(tz).replace(tzinfo=None) < naive:
        t += dt.timedelta(minutes=1)
    return t


TRANSITIONS = [(PARIS, dt.datetime(2026, 3, 29, 2)), (PARIS, dt.datetime(2026, 10, 25, 2)),
               (NEW_YORK, dt.datetime(2026, 3, 8, 2)), (NEW_YORK, dt.datetime(2026, 11, 1, 1)),
               ("Australia/Lord_Howe", dt.datetime(2026, 10, 4, 2)), ("Europe/London", dt.datetime(2026, 3, 29, 1))]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(TRANSITIONS), st.integers(min_value=-180, max_value=180))
def test_wall_to_instant_matches_a_minute_scan(transition, minutes):
    zone, around = transition
    naive = around + dt.timedelta(minutes=minutes)
    assert wall_to_instant(naive, ZoneInfo(zone)) == first_instant_at_or_after(naive, zone)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([every_day_at("02:30"), every_day_at("09:00"), cron("*/20 1-3 * * *"),
                        cron("0 9 * * 1-5"), {"kind": "every_at", "day": "sunday", "time": "01:30"}]),
       st.sampled_from([PARIS, NEW_YORK]),
       st.datetimes(min_value=dt.datetime(2026, 3, 1), max_value=dt.datetime(2026, 11, 10)))
def test_next_and_latest_are_consistent(schedule, zone, naive_after):
    after = naive_after.replace(tzinfo=dt.UTC)
    slot = next_fire(schedule, zone, after)
    assert slot is not None and slot > after
    assert latest_fire(schedule, zone, after, slot - dt.timedelta(microseconds=1)) is None
    assert latest_fire(schedule, zone, after, slot) == slot


# ----------------------------------------------------------------------------- simulate


def run_cli(*args: str, cwd: Path | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*WHENTHEN, *args], capture_output=True, text=True, cwd=cwd, input=stdin, timeout=60)


def test_simulate_case_with_reminders_and_schedules():
    """testdata/schedules played through `whenthen simulate`, compared as the conformance runner does."""
    case = TESTDATA / "schedules"
    args = shlex.split((case / "args.txt").read_text())
    done = run_cli("simulate", str(case), "--events", str(case / "events.jsonl"), "--format", "jsonl", *args)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    expect = [json.loads(line) for line in (case / "expect.jsonl").read_text().splitlines() if line.strip()]

    def canon(record: dict) -> str:
        return json.dumps({k: v for k, v in record.items() if k != "run"}, sort_keys=True)

    got = sorted(canon(r) for r in records if r["kind"] in ("action", "emit"))
    assert got == sorted(canon(r) for r in expect if r["kind"] in ("action", "emit"))
    assert [r for r in records if r["kind"] == "summary"] == [r for r in expect if r["kind"] == "summary"]

    # SPEC 5, at one instant: due waits first, then schedules, then the file's events
    order = [(r["at"], r["rule"]) for r in records if r["kind"] in ("action", "run") and r.get("status") != "completed"]
    assert order.index(("2026-03-29T07:00:00Z", "Appointment reminder")) \
        < order.index(("2026-03-29T07:00:00Z", "Daily agenda"))
    assert order.index(("2026-03-30T07:00:00Z", "Daily agenda")) \
        < order.index(("2026-03-30T07:00:00Z", "Appointment reminder"))


SOURCES = {  # schedule as written -> its plain data, for the simulate property below
    "every 90m": {"kind": "every", "seconds": 5400},
    "every day at 02:30": every_day_at("02:30"),
    "every sunday at 09:00": {"kind": "every_at", "day": "sunday", "time": "09:00"},
    'cron "*/20 1-3 * * *"': cron("*/20 1-3 * * *"),
}


@settings(max_examples=12, deadline=None)
@given(st.sampled_from(sorted(SOURCES)), st.sampled_from([PARIS, NEW_YORK]),
       st.sampled_from([utc(2026, 3, 6), utc(2026, 3, 27), utc(2026, 10, 23), utc(2026, 10, 30)]),
       st.integers(min_value=0, max_value=47))
def test_simulate_fires_exactly_the_computed_slots(tmp_path_factory, written, zone, day, hours):
    from whenthen.runtime.simulate import simulate

    folder = tmp_path_factory.mktemp("sim")
    (folder / "r.rules").write_text(f'timezone "{zone}"\ntrigger go.now {{ }}\n'
                                    f'rule "S" when {written} then log(message: "{{event.at}}")\n')
    start = day + dt.timedelta(hours=hours)
    (folder / "e.jsonl").write_text(json.dumps({"trigger": "go.now", "at": start.isoformat(), "data": {}}) + "\n")
    until = start + dt.timedelta(days=4)
    result = simulate([folder / "r.rules"], folder / "e.jsonl", until=until)
    assert result.ok, result.diagnostics
    fired = [r["at"] for r in result.trace if r["kind"] == "action"]
    assert fired == [slot.strftime("%Y-%m-%dT%H:%M:%SZ") for slot in slots(SOURCES[written], zone, start, until)]


def test_simulate_without_until_fires_schedules_up_to_the_end(tmp_path):
    (tmp_path / "r.rules").write_text(
        'trigger job.queued { id: str }\n'
        'rule "Job" when job.queued then wait 3h; log(message: id)\n'
        'rule "Tick" when every 1h then log(message: "tick {event.at}")\n')
    (tmp_path / "e.jsonl").write_text('{"trigger": "job.queued", "at": "2026-05-01T10:30:00Z", "data": {"id": "j"}}\n')
    done = run_cli("simulate", str(tmp_path / "r.rules"), "--events", str(tmp_path / "e.jsonl"), "--format", "jsonl")
    assert done.returncode == 0, done.stderr
    ticks = [r["at"] for r in map(json.loads, done.stdout.splitlines()) if r.get("rule") == "Tick" and r["kind"] == "action"]
    # the last wait ends at 13:30: slots strictly after 10:30 and up to then
    assert ticks == ["2026-05-01T11:00:00Z", "2026-05-01T12:00:00Z", "2026-05-01T13:00:00Z"]


def test_repl_advance_fires_schedules(tmp_path):
    rules = tmp_path / "m.rules"
    rules.write_text('timezone "America/New_York"\nrule "Morning" when every day at 09:00 then log(message: "hi")\n')
    done = run_cli("--now", "2026-03-07T12:00:00Z", "repl", str(rules), stdin=":advance 2d\n:runs\n")
    assert done.returncode == 0, done.stderr
    fired = [line for line in done.stdout.splitlines() if "log(" in line]
    # 09:00 EST on the 7th is 14:00Z (after the start); 09:00 EDT on the 8th is 13:00Z
    assert [line.split()[0] for line in fired] == ["2026-03-07T09:00:00-05:00", "2026-03-08T09:00:00-04:00"]


# ----------------------------------------------------------------------------- worker catch-up

DAILY = """
timezone "Europe/Paris"
rule "Daily report" when every day at 09:00 then log(message: "report for {date(event.at)}")
"""


class Worker:
    """`whenthen --db DB --now … COMMAND` against one database, as separate processes."""

    def __init__(self, tmp_path: Path, db: str):
        self.db = db
        self.tmp = tmp_path

    def __call__(self, now: str, *args: str) -> subprocess.CompletedProcess:
        done = run_cli("--db", self.db, "--now", now, *args, cwd=self.tmp)
        assert done.returncode == 0, done.stderr
        return done

    def fired(self) -> list[tuple[str, str]]:
        """(slot `event.at`, started_at) of each run of the schedule rule, in order."""
        runs = json.loads(run_cli("--db", self.db, "runs", "--format", "json").stdout)
        out = []
        for run in runs:
            detail = json.loads(run_cli("--db", self.db, "run", str(run["id"]), "--format", "json").stdout)
            out.append((detail["event"]["data"]["at"], run["started_at"]))
        return out


def test_worker_down_for_days_fires_the_latest_missed_slot_once(tmp_path, db):
    (tmp_path / "daily.rules").write_text(DAILY)
    wt = Worker(tmp_path, db)
    wt("2026-03-26T12:00:00Z", "publish", "daily.rules", "--enable")
    wt("2026-03-26T12:00:00Z", "worker", "--once")
    assert wt.fired() == []  # enabled after today's 09:00: nothing owed
    # down from the 26th to the 30th at 08:30Z: the slots of the 27th, 28th, 29th and 30th were
    # missed; only the latest fires, once (the 29th is the spring-forward day: 09:00 CEST = 07:00Z)
    wt("2026-03-30T08:30:00Z", "worker", "--once")
    wt("2026-03-30T08:45:00Z", "worker", "--once")  # a restart in the same slot fires nothing more
    assert wt.fired() == [("2026-03-30T07:00:00Z", "2026-03-30T08:30:00Z")]
    wt("2026-03-31T07:00:00Z", "worker", "--once")  # on time the next day
    assert wt.fired()[1:] == [("2026-03-31T07:00:00Z", "2026-03-31T07:00:00Z")]
    [rule] = json.loads(wt("2026-03-31T07:00:00Z", "rules", "--format", "json").stdout)
    assert (rule["schedule"], rule["next_fire"]) == ("every day at 09:00 (Europe/Paris)", "2026-04-01T07:00:00Z")


def test_paused_schedule_owes_nothing_for_the_pause(tmp_path):
    (tmp_path / "daily.rules").write_text(DAILY)
    wt = Worker(tmp_path, str(tmp_path / "wt.db"))  # the CLI on PostgreSQL: the test above
    wt("2026-04-01T06:00:00Z", "publish", "daily.rules", "--enable")
    wt("2026-04-01T07:30:00Z", "worker", "--once")
    wt("2026-04-01T08:00:00Z", "pause", "Daily report")
    wt("2026-04-05T08:00:00Z", "enable", "Daily report")
    wt("2026-04-05T08:10:00Z", "worker", "--once")  # 09:00 on the 5th passed while paused
    wt("2026-04-06T07:00:00Z", "worker", "--once")
    assert [slot for slot, _ in wt.fired()] == ["2026-04-01T07:00:00Z", "2026-04-06T07:00:00Z"]


def test_a_slot_recorded_by_a_clock_set_ahead_does_not_silence_the_schedule(tmp_path, db):
    """Issue 13.6: `worker --once --now 2036-…` records a slot in 2036; a worker on the real (here:
    earlier) clock warns and goes on from its clock instead of firing nothing for ten years."""
    (tmp_path / "daily.rules").write_text(DAILY)
    wt = Worker(tmp_path, db)
    wt("2026-04-01T06:00:00Z", "publish", "daily.rules", "--enable")
    wt("2036-01-01T08:00:00Z", "worker", "--once")  # fires 2036-01-01 07:00Z, recorded as the last slot
    assert [slot for slot, _ in wt.fired()] == ["2036-01-01T08:00:00Z"]  # 09:00 CET
    [rule] = json.loads(wt("2026-04-02T06:00:00Z", "rules", "--format", "json").stdout)
    assert rule["next_fire"] == "2026-04-02T07:00:00Z"  # from the clock, not after 2036
    back = wt("2026-04-02T07:30:00Z", "worker", "--once")
    assert "last fired slot 2036-01-01T08:00:00Z is after the clock (2026-04-02T07:30:00Z)" in back.stderr
    wt("2026-04-03T07:30:00Z", "worker", "--once")
    again = wt("2026-04-03T07:40:00Z", "worker", "--once")
    assert "after the clock" not in again.stderr  # warned once, when it moved the slot back
    assert [slot for slot, _ in wt.fired()][1:] == ["2026-04-03T07:00:00Z"]


def test_at_schedule_in_the_past_never_fires(tmp_path):
    (tmp_path / "once.rules").write_text(
        'rule "Launch" when at 2026-06-01T10:00:00Z then log(message: "go")\n'
        'rule "Past" when at 2026-01-01T10:00:00Z then log(message: "never")\n')
    wt = Worker(tmp_path, str(tmp_path / "wt.db"))  # the CLI on PostgreSQL: the test above
    wt("2026-05-01T00:00:00Z", "publish", "once.rules", "--enable")
    wt("2026-05-31T00:00:00Z", "worker", "--once")
    wt("2026-06-03T00:00:00Z", "worker", "--once")
    wt("2026-06-04T00:00:00Z", "worker", "--once")
    runs = json.loads(run_cli("--db", wt.db, "runs", "--format", "json").stdout)
    assert [(r["rule"], r["status"]) for r in runs] == [("Launch", "completed")]


def test_two_engines_on_one_database_fire_a_slot_once(db):
    from whenthen.api import compile as compile_rules
    from whenthen.runtime.clock import FixedClock
    from whenthen.runtime.engine import Engine

    first = Engine(db, FixedClock(utc(2026, 4, 1, 6)))
    first.publish(compile_rules(DAILY, first.schema), enable=True)
    first.clock = second_clock = FixedClock(utc(2026, 4, 3, 7, 30))
    second = Engine(db, second_clock)
    assert first.fire_schedules() + second.fire_schedules() == 1
    assert first.fire_schedules() + second.fire_schedules() == 0
    # a new version of the rule keeps its last slot: nothing is owed again
    first.publish(compile_rules(DAILY.replace("report for", "daily report for"), first.schema), enable=True)
    assert second.fire_schedules() == 0
    assert [r["status"] for r in second.runs()] == ["completed"]
    first.close()
    second.close()


def test_checker_rejects_a_cron_that_never_fires():
    from whenthen.api import check

    [never] = check('rule "Never" when cron "0 0 30 2 *" then log(message: "x")\n')
    assert (never.code, never.line) == ("E112", 1) and "never fires" in never.message
    assert check('rule "Leap" when cron "0 0 29 2 *" then log(message: "x")\n') == []
