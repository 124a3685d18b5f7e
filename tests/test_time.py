"""Dates, datetimes and time zones end to end: literals, today()/date(), arithmetic, `wait until`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from whenthen.runtime.simulate import simulate

WHENTHEN = [sys.executable, "-m", "whenthen"]  # this interpreter's whenthen, never PATH's

SCHEMA = "trigger appt.booked { id: str, starts_at: datetime, day: date }\n"


def play(tmp_path: Path, rules: dict[str, str], events: list[dict], until: str | None = None) -> list[tuple[str, str]]:
    """Simulate `rules` (file name -> text) on `events`; the (time, message) of every `log`."""
    paths = []
    for name, text in {"schema.rules": SCHEMA, **rules}.items():
        (tmp_path / name).write_text(text)
        paths.append(tmp_path / name)
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    from whenthen.calendar import parse_datetime

    result = simulate(paths, tmp_path / "events.jsonl", until=parse_datetime(until) if until else None)
    assert result.ok, (result.diagnostics, result.event_errors)
    assert all(r.get("status") != "failed" for r in result.trace), result.trace
    return [(r["at"], r["args"]["message"]) for r in result.trace if r["kind"] == "action"]


def booked(at: str, starts_at: str = "2026-03-29T10:00:00+02:00", day: str = "2026-03-08") -> dict:
    return {"trigger": "appt.booked", "at": at, "data": {"id": "a", "starts_at": starts_at, "day": day}}


def test_today_and_date_are_in_the_file_zone(tmp_path):
    # 04:30Z on 2026-03-08 is still the evening of the 7th in New York
    logs = play(tmp_path, {
        "ny.rules": 'timezone "America/New_York"\n'
                    'rule "NY" when appt.booked then log(message: "NY {today()} {date(event.starts_at)} {now()}")\n',
        "utc.rules": 'rule "UTC" when appt.booked then log(message: "UTC {today()} {date(event.starts_at)} {now()}")\n',
    }, [booked("2026-03-08T04:30:00Z", starts_at="2026-03-09T02:00:00Z")])
    assert sorted(message for _, message in logs) == [
        "NY 2026-03-07 2026-03-08 2026-03-07T23:30:00-05:00",
        "UTC 2026-03-08 2026-03-09 2026-03-08T04:30:00Z",
    ]


def test_datetime_literals_offsets_and_dst_edges(tmp_path):
    logs = play(tmp_path, {"paris.rules": 'timezone "Europe/Paris"\nrule "Lit" when appt.booked then\n'
                           '  log(message: "{2026-03-01T09:00} {2026-03-01T09:00:00Z} {2026-03-01T09:00:00-05:00}")\n'
                           '  log(message: "gap {2026-03-29T02:30} twice {2026-10-25T02:30}")\n'
                           '  log(message: "{2026-10-25T02:30 = 2026-10-25T00:30:00Z} {2026-03-01T09:00:00.250Z}")\n'
                           'end\n'},
                [booked("2026-03-01T00:00:00Z")])
    assert [message for _, message in logs] == [
        "2026-03-01T09:00:00+01:00 2026-03-01T10:00:00+01:00 2026-03-01T15:00:00+01:00",
        # 02:30 does not exist on 03-29: the first instant after the gap; on 10-25 it occurs twice
        "gap 2026-03-29T03:00:00+02:00 twice 2026-10-25T02:30:00+02:00",
        "true 2026-03-01T10:00:00.25+01:00",
    ]


def test_durations_are_exact_seconds_across_dst(tmp_path):
    logs = play(tmp_path, {"paris.rules": 'timezone "Europe/Paris"\nrule "Exact" when appt.booked then\n'
                           '  log(message: "{event.starts_at + 1d} {2026-03-30T00:00 - 2026-03-29T00:00} {day + 1d} {day - 1w}")\n'
                           '  wait 1d\n'
                           '  log(message: "a day later: {now()}")\n'
                           'end\n'},
                [booked("2026-03-28T11:00:00Z", starts_at="2026-03-28T12:00:00+01:00")])
    assert logs == [
        ("2026-03-28T11:00:00Z", "2026-03-29T13:00:00+02:00 23h 2026-03-09 2026-03-01"),
        ("2026-03-29T11:00:00Z", "a day later: 2026-03-29T13:00:00+02:00"),
    ]


def test_wait_until_with_zones_and_offsets(tmp_path):
    logs = play(tmp_path, {"ny.rules": 'timezone "America/New_York"\nrule "Until" when appt.booked then\n'
                           '  wait until starts_at - 1h\n'
                           '  log(message: "hour before {starts_at}")\n'
                           '  wait until 2026-03-08T02:30\n'  # in New York's gap: 03:00 EDT
                           '  log(message: "gap")\n'
                           '  wait until 2026-03-09T09:00\n'
                           '  log(message: "nine local")\n'
                           '  wait until 2026-03-09T09:00:00Z\n'  # already past: continues at once
                           '  log(message: "past")\n'
                           'end\n'},
                [booked("2026-03-07T12:00:00Z", starts_at="2026-03-08T03:30:00+05:00")])
    assert logs == [
        ("2026-03-07T21:30:00Z", "hour before 2026-03-07T17:30:00-05:00"),
        ("2026-03-08T07:00:00Z", "gap"),
        ("2026-03-09T13:00:00Z", "nine local"),
        ("2026-03-09T13:00:00Z", "past"),
    ]


def test_wait_until_across_dst_resumes_at_the_right_instant_in_a_worker(tmp_path):
    """A run waits in a real SQLite file; `worker --once` processes resume it exactly when due."""
    (tmp_path / "schema.rules").write_text(SCHEMA)
    (tmp_path / "remind.rules").write_text(
        'timezone "Europe/Paris"\n'
        'rule "Remind" when appt.booked then wait until starts_at - 1h; log(message: "see you at {starts_at}")\n')

    def cli(now: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        done = subprocess.run([*WHENTHEN, "--db", str(tmp_path / "wt.db"), "--now", now, *args], cwd=tmp_path,
                              capture_output=True, text=True, input=stdin, timeout=60)
        assert done.returncode == 0, done.stderr
        return done

    cli("2026-03-28T20:00:00Z", "publish", "schema.rules", "remind.rules", "--enable")
    # 10:00 Paris on the 29th is summer time already (08:00Z): the reminder is due at 07:00Z
    cli("2026-03-28T20:00:00Z", "emit", "appt.booked",
        '{"id": "a", "starts_at": "2026-03-29T10:00:00+02:00", "day": "2026-03-29"}')
    cli("2026-03-29T06:59:59Z", "worker", "--once")
    run = json.loads(cli("2026-03-29T06:59:59Z", "run", "1", "--format", "json").stdout)
    assert run["status"] == "waiting" and run["waiting_until"] == "2026-03-29T07:00:00Z"
    cli("2026-03-29T07:00:00Z", "worker", "--once")
    run = json.loads(cli("2026-03-29T07:00:00Z", "run", "1", "--format", "json").stdout)
    assert run["status"] == "completed"
    assert [(s["at"], s["args"]) for s in run["steps"] if s["kind"] == "action"] == [
        ("2026-03-29T07:00:00Z", {"message": "see you at 2026-03-29T10:00:00+02:00"})]
