"""`db copy FROM TO` (SPEC 3.2): everything moves, and the copy behaves as the source would have."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from whenthen.runtime.store import SQLiteStore
from whenthen.runtime.store.schema import TABLES

FIXTURE = Path(__file__).resolve().parent.parent / "testdata" / "db" / "v1-waiting.db"


def whenthen(*args: str, db: Path | str | None = None, now: str = "2026-11-20T10:40:00Z"
             ) -> subprocess.CompletedProcess:
    prefix = ["--db", str(db)] if db is not None else []
    done = subprocess.run([sys.executable, "-m", "whenthen", *prefix, "--now", now, *args],
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    return done


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """The v1 fixture, upgraded: waiting runs (timers, wait-fors, exits), a failed run, a schedule
    slot, counters, an outbox row, journal results."""
    db = tmp_path / "source.db"
    shutil.copyfile(FIXTURE, db)
    assert whenthen("db", "upgrade", db=db).returncode == 0
    return db


def dump(db: Path) -> dict[str, list[tuple]]:
    store = SQLiteStore(str(db), read_only=True)
    try:
        return {table: list(store.export_rows(table)) for table in TABLES}
    finally:
        store.close()


def test_the_copy_table_list_is_the_schema(tmp_path: Path) -> None:
    SQLiteStore(str(tmp_path / "new.db")).close()
    conn = sqlite3.connect(tmp_path / "new.db")
    found = {name: tuple(r[1] for r in conn.execute(f"PRAGMA table_info({name})"))
             for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert found == {table: columns for table, (columns, _) in TABLES.items()}


def test_sqlite_to_sqlite_copies_every_row_and_leaves_the_source_alone(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "copy.db"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    done = whenthen("db", "copy", str(source), str(target))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (f"copied {source} to {target}: 5 rule(s), 7 version(s), 9 run(s) (5 waiting), "
                                   "5 event(s), 13 step(s), 1 outbox message(s), 1 schedule(s)")
    assert dump(target) == dump(source)
    assert hashlib.sha256(source.read_bytes()).hexdigest() == digest


def play(db: Path) -> dict:
    """What test_fixture_db plays: wait-fors, exits, timers, schedules; everything observable after."""
    steps = [("2026-11-20T11:30:00Z", "emit", "payment.received", '{"order_id": "A2", "amount": 7}'),
             ("2026-11-20T12:00:00Z", "emit", "order.cancelled", '{"id": "A1"}'),
             ("2026-11-21T10:04:00Z", "worker", "--once"),
             ("2026-11-21T10:06:00Z", "worker", "--once"),
             ("2026-11-23T10:06:00Z", "worker", "--once")]
    for now, *args in steps:
        done = whenthen(*args, db=db, now=now)
        assert done.returncode == 0, done.stderr
    seen = {}
    for args in (("runs", "--format", "json"), ("rules", "--format", "json"), ("outbox", "--format", "json")):
        seen[args[0]] = json.loads(whenthen(*args, db=db).stdout)
    seen["steps"] = {r["id"]: json.loads(whenthen("run", str(r["id"]), "--format", "json", db=db).stdout)["steps"]
                     for r in seen["runs"]}
    return seen


def test_the_copy_behaves_as_the_source_would_have(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "copy.db"
    assert whenthen("db", "copy", str(source), str(target)).returncode == 0
    original, copied = play(source), play(target)
    assert copied == original
    assert [(o["run_id"], o["args"]["subject"]) for o in copied["outbox"]] == [
        (1, "Paid A1: 50"), (5, "Paid A2: 7"), (3, "First day after A1"), (7, "A day after A2"),
        (6, "Three days after A2")]


def test_a_non_empty_target_is_refused_and_left_alone(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "copy.db"
    assert whenthen("db", "copy", str(source), str(target)).returncode == 0
    before = dump(target)
    done = whenthen("db", "copy", str(source), str(target))
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {target} is not empty: db copy writes only into an empty database"
    assert dump(target) == before


def test_missing_old_or_same_sources_are_refused(tmp_path: Path) -> None:
    done = whenthen("db", "copy", str(tmp_path / "typo.db"), str(tmp_path / "t.db"))
    assert done.returncode == 2 and done.stderr.strip() == f"error: no database at {tmp_path / 'typo.db'}"
    old = tmp_path / "old.db"
    shutil.copyfile(FIXTURE, old)
    done = whenthen("db", "copy", str(old), str(tmp_path / "t.db"))
    assert done.returncode == 2 and "db upgrade" in done.stderr
    assert not (tmp_path / "t.db").exists()
    assert whenthen("db", "upgrade", db=old).returncode == 0
    done = whenthen("db", "copy", str(old), str(old))
    assert done.returncode == 2 and done.stderr.strip() == f"error: cannot copy {old} onto itself"


def test_sqlite_to_postgresql_to_sqlite_behaves_as_the_source(source: Path, tmp_path: Path, pg_server) -> None:
    url = pg_server.fresh()  # tests/conftest.py: a throwaway cluster, or $WHENTHEN_TEST_PG
    there = whenthen("db", "copy", str(source), url)
    assert there.returncode == 0, there.stderr
    back = tmp_path / "back.db"
    again = whenthen("db", "copy", url, str(back))
    assert again.returncode == 0, again.stderr
    assert dump(back) == dump(source)  # every row, blob and checksum survived the round trip
    refused = whenthen("db", "copy", str(source), url)
    assert refused.returncode == 2 and "is not empty" in refused.stderr
    assert play(back) == play(source)
