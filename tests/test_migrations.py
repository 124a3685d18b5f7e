"""Schema versions (SPEC 3.2): an older database is upgraded in one transaction, a newer one refused."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from whenthen.runtime.store import SQLiteStore, StoreError
from whenthen.runtime.store.checksum import frame_sum, result_sum, version_sum
from whenthen.runtime.store.schema import MIGRATIONS, SCHEMA_VERSION

FIXTURE = Path(__file__).resolve().parent.parent / "testdata" / "db" / "v1-waiting.db"


def whenthen(db: Path, *args: str, now: str = "2026-11-20T10:40:00Z") -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "whenthen", "--db", str(db), "--now", now, *args],
                          capture_output=True, text=True, timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    return done


@pytest.fixture
def old(tmp_path: Path) -> Path:
    target = tmp_path / "old.db"
    shutil.copyfile(FIXTURE, target)
    return target


def layout(path: Path) -> dict[str, list]:
    """Every table's columns (name, type, not null, default, primary key) and every index's SQL."""
    conn = sqlite3.connect(path)
    found: dict[str, list] = {}
    for name, kind, sql in conn.execute("SELECT name, type, sql FROM sqlite_master ORDER BY name"):
        if kind == "table":
            found[name] = [tuple(r[1:]) for r in conn.execute(f"PRAGMA table_info({name})")]
        elif sql is not None:
            found[name] = [" ".join(sql.split())]
    conn.close()
    return found


def recorded_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
    finally:
        conn.close()


def test_the_migrations_are_in_order_and_end_at_this_version() -> None:
    assert [m.to_version for m in MIGRATIONS] == list(range(2, SCHEMA_VERSION + 1))


def test_db_upgrade_reports_and_gives_the_layout_of_a_new_database(old: Path, tmp_path: Path) -> None:
    done = whenthen(old, "db", "upgrade")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{old}: upgraded from schema version 1 to {SCHEMA_VERSION}"
    again = whenthen(old, "db", "upgrade")
    assert again.stdout.strip() == f"{old}: schema version {SCHEMA_VERSION}, nothing to upgrade"
    fresh = tmp_path / "fresh.db"
    SQLiteStore(str(fresh)).close()
    assert layout(old) == layout(fresh)
    assert recorded_version(old) == SCHEMA_VERSION


def test_the_upgrade_keeps_every_row_and_sums_every_blob(old: Path) -> None:
    before = sqlite3.connect(old)
    counts = {t: before.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
              for t in ("rules", "versions", "uses", "decls", "events", "runs", "steps", "waits", "outbox",
                        "schedules", "counters", "trigger_seen", "active_sets")}
    before.close()
    assert whenthen(old, "db", "upgrade").returncode == 0
    conn = sqlite3.connect(old)
    assert counts == {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in counts}
    versions = conn.execute("SELECT rule, version, bytecode, checksum FROM versions").fetchall()
    assert len(versions) == 7 and all(s == version_sum(r, v, b) for r, v, b, s in versions)
    frames = conn.execute("SELECT id, frame, frame_sum FROM runs WHERE frame IS NOT NULL").fetchall()
    assert len(frames) >= 5 and all(s == frame_sum(i, f) for i, f, s in frames)
    results = conn.execute("SELECT idem_key, result, result_sum FROM steps WHERE result IS NOT NULL").fetchall()
    assert results and all(s == result_sum(k, r) for k, r, s in results)
    conn.close()


def test_a_writing_command_upgrades_and_says_so(old: Path) -> None:
    done = whenthen(old, "emit", "payment.received", '{"order_id": "A2", "amount": 7}', now="2026-11-20T11:30:00Z")
    assert done.returncode == 0, done.stderr
    assert f"note: upgraded {old} from schema version 1 to {SCHEMA_VERSION}" in done.stderr
    assert recorded_version(old) == SCHEMA_VERSION
    runs = json.loads(whenthen(old, "runs", "--format", "json").stdout)
    assert [r["status"] for r in runs if r["id"] == 5] == ["completed"]  # the wait-for resumed


def test_a_read_only_command_on_an_older_database_asks_for_an_upgrade(old: Path) -> None:
    digest = hashlib.sha256(old.read_bytes()).hexdigest()
    for args in (("runs",), ("rules", "--format", "json"), ("run", "3"), ("outbox",)):
        done = whenthen(old, *args)
        assert done.returncode == 2
        assert done.stderr.strip() == (
            f"error: database {old} has schema version 1, older than this whenthen's {SCHEMA_VERSION}: "
            f"run `whenthen --db {old} db upgrade` (commands that only read never upgrade it)")
    assert hashlib.sha256(old.read_bytes()).hexdigest() == digest
    # a SQLite reader of a WAL file may leave its -shm and an empty -wal, never a written page
    wal = old.parent / "old.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0


def test_a_database_of_a_newer_whenthen_is_refused_by_every_command(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    SQLiteStore(str(db)).close()
    conn = sqlite3.connect(db)
    conn.execute("UPDATE meta SET value = '1001' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    rules = tmp_path / "a.rules"
    rules.write_text('trigger t.go { n: int }\nrule "A" when t.go then log(message: "a")\n')
    for args in (("publish", str(rules), "--enable"), ("emit", "t.go", '{"n": 1}'), ("worker", "--once"),
                 ("db", "upgrade"), ("runs",), ("rules",)):
        done = whenthen(db, *args)
        assert done.returncode == 2, args
        assert done.stderr.strip() == (
            f"error: database {db} has schema version 1001, newer than this whenthen's {SCHEMA_VERSION}: "
            "it was written by a newer whenthen; use that version (or newer) with it"), args
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest  # not one byte written


def test_an_upgrade_that_fails_midway_changes_nothing(old: Path) -> None:
    # a column the last step of the migration adds, already there: the steps before it must not stay
    conn = sqlite3.connect(old)
    conn.execute("ALTER TABLE counters ADD COLUMN unstarted INTEGER NOT NULL DEFAULT 0")
    conn.commit()
    conn.close()
    before = layout(old)
    done = whenthen(old, "db", "upgrade")
    assert done.returncode == 2
    assert "duplicate column name: unstarted" in done.stderr
    assert layout(old) == before and recorded_version(old) == 1
    with pytest.raises(StoreError, match="duplicate column"):
        SQLiteStore(str(old))
    assert layout(old) == before


def test_another_programs_database_is_not_taken_over(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    for args in (("db", "upgrade"), ("runs",)):
        done = whenthen(db, *args)
        assert done.returncode == 2
        assert done.stderr.strip() == f"error: {db} is not a whenthen database (no schema version recorded)"
    assert layout(db) == {"invoices": [("id", "INTEGER", 0, None, 1)]}


def test_an_empty_file_is_created_at_this_version(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    db.write_bytes(b"")
    done = whenthen(db, "db", "upgrade")
    assert done.returncode == 0 and done.stdout.strip() == f"{db}: created at schema version {SCHEMA_VERSION}"
    assert recorded_version(db) == SCHEMA_VERSION


def test_writers_opening_an_old_database_at_once_upgrade_it_once(old: Path) -> None:
    procs = [subprocess.Popen([sys.executable, "-m", "whenthen", "--db", str(old), "--now", "2026-11-20T10:40:00Z",
                               "worker", "--once"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outcomes = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert all(code == 0 for code, _ in outcomes), outcomes
    notes = [err for _, err in outcomes if "note: upgraded" in err]
    assert len(notes) == 1, outcomes  # the others waited for its transaction, then found it done
    assert recorded_version(old) == SCHEMA_VERSION
