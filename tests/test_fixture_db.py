"""Databases written by an older whenthen (testdata/db: SQLite at version 1, PostgreSQL at 2): their waiting runs resume."""
import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from whenthen.runtime.store.schema import SCHEMA_VERSION

FIXTURES = Path(__file__).resolve().parent.parent / "testdata" / "db"
_names = itertools.count(1)


def _sqlite_copy(tmp_path: Path) -> tuple[str, int]:
    target = tmp_path / "old.db"
    shutil.copyfile(FIXTURES / "v1-waiting.db", target)  # never touch the committed file
    return str(target), 1


def _postgres_copy(pg_server) -> tuple[str, int]:
    """An empty database holding what the version-2 dump holds (replayed with psycopg, no psql)."""
    import psycopg

    name = f"{pg_server.prefix}fixture{next(_names)}"
    pg_server.admin.execute(f'CREATE DATABASE "{name}"')
    pg_server.created.append(name)
    url = pg_server.url_of(name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute((FIXTURES / "v2-waiting.pg.sql").read_text(encoding="utf-8"))
    return url, 2


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        target, version = _sqlite_copy(tmp_path)
    else:
        target, version = _postgres_copy(request.getfixturevalue("pg_server"))
    # read-only commands never upgrade (they ask for `db upgrade`): upgrade first, explicitly
    upgraded = wt(target, "2026-11-20T10:00:00Z", "db", "upgrade")
    assert upgraded.stdout.strip() == f"{target}: upgraded from schema version {version} to {SCHEMA_VERSION}"
    return target


def wt(db: str, now: str, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "whenthen", "--db", str(db), "--now", now, *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


def runs(db: str) -> dict[int, tuple[str, int, str]]:
    out = wt(db, "2026-11-20T10:00:00Z", "runs", "--format", "json").stdout
    return {r["id"]: (r["rule"], r["version"], r["status"]) for r in json.loads(out)}


def outbox_subjects(db: str) -> list[tuple[int, str]]:
    out = wt(db, "2026-11-20T10:00:00Z", "outbox", "--format", "json").stdout
    return [(o["run_id"], o["args"]["subject"]) for o in json.loads(out)]


def steps(db: str, run_id: int) -> list[dict]:
    return json.loads(wt(db, "2026-11-20T10:00:00Z", "run", str(run_id), "--format", "json").stdout)["steps"]


def test_fixture_is_what_the_readme_says(db: str) -> None:
    assert runs(db) == {
        1: ("Await payment", 1, "completed"), 2: ("Cancellable", 1, "waiting"),
        3: ("Day later", 1, "waiting"), 4: ("Ratio", 1, "completed"),
        5: ("Await payment", 1, "waiting"), 6: ("Cancellable", 2, "waiting"),
        7: ("Day later", 2, "waiting"), 8: ("Ratio", 1, "failed"), 9: ("Hourly", 1, "completed"),
    }
    assert outbox_subjects(db) == [(1, "Paid A1: 50")]


def test_waiting_runs_resume_on_their_branch_version_and_time(db: str) -> None:
    wt(db, "2026-11-20T11:30:00Z", "emit", "payment.received", '{"order_id": "A2", "amount": 7}')
    assert runs(db)[5][2] == "completed"  # the wait-for matched before its 2h timeout
    wt(db, "2026-11-20T12:00:00Z", "emit", "order.cancelled", '{"id": "A1"}')
    assert runs(db)[2][2] == "exited" and runs(db)[6][2] == "waiting"  # exit clause keyed on A1 only
    wt(db, "2026-11-21T10:04:00Z", "worker", "--once")
    assert runs(db)[3][2] == "completed" and runs(db)[7][2] == "waiting"  # 24h after 10:00, not 10:05
    wt(db, "2026-11-21T10:06:00Z", "worker", "--once")
    assert runs(db)[7][2] == "completed"
    wt(db, "2026-11-23T10:06:00Z", "worker", "--once")
    assert runs(db)[6][2] == "completed" and runs(db)[2][2] == "exited"
    assert outbox_subjects(db) == [
        (1, "Paid A1: 50"), (5, "Paid A2: 7"),
        (3, "First day after A1"),  # run 3 stays on version 1 of "Day later"
        (7, "A day after A2"),
        (6, "Three days after A2"),
    ]


def test_wait_for_times_out_to_the_null_branch(db: str) -> None:
    wt(db, "2026-11-20T12:04:00Z", "worker", "--once")
    assert runs(db)[5][2] == "waiting"
    wt(db, "2026-11-20T12:05:00Z", "worker", "--once")
    assert runs(db)[5][2] == "completed"
    logged = [s["args"]["message"] for s in steps(db, 5) if s.get("action") == "log"]
    assert logged == ["unpaid A2"]


def test_schedule_state_resumes_after_the_last_fired_slot(db: str) -> None:
    wt(db, "2026-11-20T12:00:00Z", "worker", "--once")
    hourly = [i for i, (rule, _, _) in runs(db).items() if rule == "Hourly"]
    ticks = sorted(m for i in hourly for s in steps(db, i) if s.get("action") == "log"
                   for m in [s["args"]["message"]])
    assert ticks == ["tick 2026-11-20T11:00:00Z", "tick 2026-11-20T12:00:00Z"]  # 11:00 not fired twice
