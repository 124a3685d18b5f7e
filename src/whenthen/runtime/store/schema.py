"""The schema of a whenthen database: its version, the tables (SQLite and PostgreSQL dialects), the migrations.

`_TABLES` is always the newest schema: a new database is created from it directly. An older
database is brought to it by the `MIGRATIONS` after its recorded version, in order, inside one
transaction (`Store.upgrade`). Each migration is written once for every backend, against the
small `Migrator` interface (`?` placeholders; each backend adapts them), and must leave an old
database with exactly the tables and columns a new one has (tests/test_migrations.py compares).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

SCHEMA_VERSION = 3

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS rules (
  name TEXT PRIMARY KEY, state TEXT NOT NULL, version INTEGER NOT NULL, trigger TEXT NOT NULL,
  created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
  rule TEXT NOT NULL, version INTEGER NOT NULL, source TEXT NOT NULL, bytecode BLOB NOT NULL,
  hash TEXT NOT NULL, author TEXT, created_at TEXT NOT NULL, trigger TEXT NOT NULL, checksum TEXT,
  PRIMARY KEY (rule, version));
CREATE TABLE IF NOT EXISTS uses (
  rule TEXT NOT NULL, version INTEGER NOT NULL, trigger TEXT NOT NULL, how TEXT NOT NULL,
  PRIMARY KEY (rule, version, trigger, how));
CREATE TABLE IF NOT EXISTS decls (kind TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY (kind, name));
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY, trigger TEXT, data TEXT, at TEXT NOT NULL, status TEXT NOT NULL,
  error TEXT, depth INTEGER NOT NULL DEFAULT 0, origin TEXT NOT NULL DEFAULT 'external',
  parent_run INTEGER, lease_owner TEXT, lease_expires REAL);
CREATE INDEX IF NOT EXISTS events_status_page ON events (status, id);
CREATE TABLE IF NOT EXISTS idempotency_keys (
  key TEXT PRIMARY KEY, event_id INTEGER NOT NULL, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS events_pending ON events (status) WHERE status IN ('pending', 'processing');
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY, rule TEXT NOT NULL, version INTEGER NOT NULL, event_id INTEGER,
  status TEXT NOT NULL, frame BLOB, deadline REAL, wait_trigger TEXT, resume_event INTEGER,
  depth INTEGER NOT NULL DEFAULT 0, started_at TEXT NOT NULL, updated_at TEXT NOT NULL,
  error TEXT, lease_owner TEXT, lease_expires REAL, fence INTEGER NOT NULL DEFAULT 0,
  activation INTEGER NOT NULL DEFAULT 0, frame_sum TEXT, UNIQUE (event_id, rule));
CREATE INDEX IF NOT EXISTS runs_due ON runs (deadline, id) WHERE status IN ('running', 'waiting');
CREATE INDEX IF NOT EXISTS runs_rule ON runs (rule, status);
CREATE INDEX IF NOT EXISTS runs_rule_page ON runs (rule, id);
CREATE INDEX IF NOT EXISTS runs_status_page ON runs (status, id);
CREATE TABLE IF NOT EXISTS steps (
  run_id INTEGER NOT NULL, activation INTEGER NOT NULL, ordinal INTEGER NOT NULL,
  attempt INTEGER NOT NULL DEFAULT 0, at TEXT NOT NULL, kind TEXT NOT NULL, action TEXT,
  step INTEGER, idem_key TEXT UNIQUE, status TEXT, args TEXT, result BLOB, error TEXT, data TEXT,
  result_sum TEXT, PRIMARY KEY (run_id, activation, ordinal, attempt));
CREATE INDEX IF NOT EXISTS steps_action ON steps (run_id, step) WHERE step IS NOT NULL;
CREATE TABLE IF NOT EXISTS waits (
  run_id INTEGER NOT NULL, kind TEXT NOT NULL, clause INTEGER NOT NULL, trigger TEXT NOT NULL,
  field TEXT, value TEXT);
CREATE INDEX IF NOT EXISTS waits_lookup ON waits (trigger, kind, field, value);
CREATE INDEX IF NOT EXISTS waits_run ON waits (run_id);
CREATE TABLE IF NOT EXISTS wait_fields (trigger TEXT NOT NULL, kind TEXT NOT NULL, field TEXT NOT NULL,
  PRIMARY KEY (trigger, kind, field));
CREATE TABLE IF NOT EXISTS counters (rule TEXT NOT NULL, version INTEGER NOT NULL,
  filtered INTEGER NOT NULL DEFAULT 0, unstarted INTEGER NOT NULL DEFAULT 0, limited INTEGER NOT NULL DEFAULT 0,
  counted INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (rule, version));
CREATE TABLE IF NOT EXISTS split_counts (rule TEXT NOT NULL, version INTEGER NOT NULL, split INTEGER NOT NULL,
  branch INTEGER NOT NULL, share INTEGER NOT NULL, n INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (rule, version, split, branch));
CREATE TABLE IF NOT EXISTS entries (rule TEXT NOT NULL, key TEXT NOT NULL, started REAL NOT NULL,
  run_id INTEGER NOT NULL, PRIMARY KEY (rule, key));
CREATE TABLE IF NOT EXISTS active_sets (set_id TEXT NOT NULL, rule TEXT NOT NULL, version INTEGER NOT NULL,
  PRIMARY KEY (set_id, rule, version));
CREATE TABLE IF NOT EXISTS trigger_seen (trigger TEXT NOT NULL, set_id TEXT NOT NULL,
  n INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (trigger, set_id));
CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY, run_id INTEGER, action TEXT NOT NULL, args TEXT NOT NULL,
  idem_key TEXT UNIQUE, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS schedules (
  rule TEXT PRIMARY KEY, last_slot REAL NOT NULL, event_id INTEGER);
"""


# Every table of the current schema with its columns and the order its rows are exported in
# (`db copy`: each backend exports and imports exactly these; tests compare with the tables).
TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "meta": (("key", "value"), ("key",)),
    "rules": (("name", "state", "version", "trigger", "created_at"), ("name",)),
    "versions": (("rule", "version", "source", "bytecode", "hash", "author", "created_at", "trigger", "checksum"),
                 ("rule", "version")),
    "uses": (("rule", "version", "trigger", "how"), ("rule", "version", "trigger", "how")),
    "decls": (("kind", "name", "body"), ("kind", "name")),
    "idempotency_keys": (("key", "event_id", "created"), ("key",)),
    "events": (("id", "trigger", "data", "at", "status", "error", "depth", "origin", "parent_run", "lease_owner",
                "lease_expires"), ("id",)),
    "runs": (("id", "rule", "version", "event_id", "status", "frame", "deadline", "wait_trigger", "resume_event",
              "depth", "started_at", "updated_at", "error", "lease_owner", "lease_expires", "fence", "activation",
              "frame_sum"), ("id",)),
    "steps": (("run_id", "activation", "ordinal", "attempt", "at", "kind", "action", "step", "idem_key", "status",
               "args", "result", "error", "data", "result_sum"), ("run_id", "activation", "ordinal", "attempt")),
    "waits": (("run_id", "kind", "clause", "trigger", "field", "value"),
              ("run_id", "kind", "clause", "trigger", "field", "value")),
    "wait_fields": (("trigger", "kind", "field"), ("trigger", "kind", "field")),
    "counters": (("rule", "version", "filtered", "unstarted", "limited", "counted"), ("rule", "version")),
    "split_counts": (("rule", "version", "split", "branch", "share", "n"), ("rule", "version", "split", "branch")),
    "entries": (("rule", "key", "started", "run_id"), ("rule", "key")),
    "active_sets": (("set_id", "rule", "version"), ("set_id", "rule", "version")),
    "trigger_seen": (("trigger", "set_id", "n"), ("trigger", "set_id")),
    "outbox": (("id", "run_id", "action", "args", "idem_key", "created_at"), ("id",)),
    "schedules": (("rule", "last_slot", "event_id"), ("rule",)),
}


def statements(script: str) -> list[str]:
    """The statements of a DDL script, to run one by one inside a transaction (sqlite3's
    `executescript` would commit first)."""
    return [s.strip() for s in script.split(";") if s.strip()]


class Migrator(Protocol):
    """What a migration may do to a database, the same on every backend."""

    dialect: str  # "sqlite" or "postgresql": for the rare statement that differs

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...
    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...


@dataclass(frozen=True)
class Migration:
    """Brings a database from version `to_version - 1` to `to_version`."""

    to_version: int
    summary: str
    apply: Callable[[Migrator], None]


def _v2_checksums(m: Migrator) -> None:
    """Checksums on bytecode, snapshots and journaled results (SPEC 3.2), and the count of events
    an unloadable version could not start. The blobs already stored are summed as they are: what
    was damaged before this version cannot be told apart any more (it fails as it did)."""
    from whenthen.runtime.store.checksum import frame_sum, result_sum, version_sum

    m.execute("ALTER TABLE versions ADD COLUMN checksum TEXT")
    m.execute("ALTER TABLE runs ADD COLUMN frame_sum TEXT")
    m.execute("ALTER TABLE steps ADD COLUMN result_sum TEXT")
    m.execute("ALTER TABLE counters ADD COLUMN unstarted INTEGER NOT NULL DEFAULT 0")
    # the HTTP service's idempotency keys and keyset-page indexes (added to version 1's tables
    # before versions were migrated; created here for version-1 databases that lack them)
    m.execute("CREATE TABLE IF NOT EXISTS idempotency_keys (\n  key TEXT PRIMARY KEY, event_id INTEGER NOT NULL, "
              "created REAL NOT NULL)")
    for index, table, columns in (("events_status_page", "events", "status, id"), ("runs_rule_page", "runs", "rule, id"),
                                  ("runs_status_page", "runs", "status, id")):
        m.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {table} ({columns})")
    m.executemany("UPDATE versions SET checksum = ? WHERE rule = ? AND version = ?",
                  [(version_sum(rule, version, bytes(blob)), rule, version)
                   for rule, version, blob in m.rows("SELECT rule, version, bytecode FROM versions")])
    m.executemany("UPDATE runs SET frame_sum = ? WHERE id = ?",
                  [(frame_sum(run_id, bytes(blob)), run_id)
                   for run_id, blob in m.rows("SELECT id, frame FROM runs WHERE frame IS NOT NULL")])
    m.executemany("UPDATE steps SET result_sum = ? WHERE idem_key = ?",
                  [(result_sum(key, bytes(blob)), key) for key, blob in m.rows(
                      "SELECT idem_key, result FROM steps WHERE result IS NOT NULL AND idem_key IS NOT NULL")])


def _v3_policies(m: Migrator) -> None:
    """Journey policies (SPEC 2.10–2.13): `limited` and `counted` per rule version, the runs each
    split's branches took, and the last start per entry-limit key (one row per rule and key, so
    the limit is one primary-key lookup however many runs there were)."""
    big = "BIGINT" if m.dialect == "postgresql" else "INTEGER"
    real = "DOUBLE PRECISION" if m.dialect == "postgresql" else "REAL"
    m.execute(f"ALTER TABLE counters ADD COLUMN limited {big} NOT NULL DEFAULT 0")
    m.execute(f"ALTER TABLE counters ADD COLUMN counted {big} NOT NULL DEFAULT 0")
    m.execute(f"CREATE TABLE IF NOT EXISTS split_counts (rule TEXT NOT NULL, version {big} NOT NULL, "
              f"split {big} NOT NULL,\n  branch {big} NOT NULL, share {big} NOT NULL, n {big} NOT NULL DEFAULT 0,"
              "\n  PRIMARY KEY (rule, version, split, branch))")
    m.execute(f"CREATE TABLE IF NOT EXISTS entries (rule TEXT NOT NULL, key TEXT NOT NULL, started {real} NOT NULL,"
              f"\n  run_id {big} NOT NULL, PRIMARY KEY (rule, key))")


# In order; the last one's `to_version` is SCHEMA_VERSION.
MIGRATIONS: list[Migration] = [
    Migration(2, "checksums on bytecode, run snapshots and journaled results", _v2_checksums),
    Migration(3, "journey policies: limited/counted counts, split branch counts, entry-limit keys", _v3_policies),
]


def pending(recorded: int) -> list[Migration]:
    """The migrations a database at version `recorded` needs, in order."""
    return [m for m in MIGRATIONS if m.to_version > recorded]


def too_new(path: str, recorded: int) -> str:
    """The refusal of a database written by a newer whenthen."""
    return (f"database {path} has schema version {recorded}, newer than this whenthen's {SCHEMA_VERSION}: "
            "it was written by a newer whenthen; use that version (or newer) with it")


def too_old(path: str, recorded: int) -> str:
    """A read-only command on a database that needs upgrading first."""
    return (f"database {path} has schema version {recorded}, older than this whenthen's {SCHEMA_VERSION}: "
            f"run `whenthen --db {path} db upgrade` (commands that only read never upgrade it)")


# The same tables in PostgreSQL's dialect (store/postgres.py): 64-bit integers, double precision
# epoch seconds, bytea blobs, identity ids (BY DEFAULT, so a copy can keep a database's ids).
PG_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS rules (
  name TEXT PRIMARY KEY, state TEXT NOT NULL, version BIGINT NOT NULL, trigger TEXT NOT NULL,
  created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
  rule TEXT NOT NULL, version BIGINT NOT NULL, source TEXT NOT NULL, bytecode BYTEA NOT NULL,
  hash TEXT NOT NULL, author TEXT, created_at TEXT NOT NULL, trigger TEXT NOT NULL, checksum TEXT,
  PRIMARY KEY (rule, version));
CREATE TABLE IF NOT EXISTS uses (
  rule TEXT NOT NULL, version BIGINT NOT NULL, trigger TEXT NOT NULL, how TEXT NOT NULL,
  PRIMARY KEY (rule, version, trigger, how));
CREATE TABLE IF NOT EXISTS decls (kind TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY (kind, name));
CREATE TABLE IF NOT EXISTS events (
  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, trigger TEXT, data TEXT, at TEXT NOT NULL,
  status TEXT NOT NULL, error TEXT, depth BIGINT NOT NULL DEFAULT 0, origin TEXT NOT NULL DEFAULT 'external',
  parent_run BIGINT, lease_owner TEXT, lease_expires DOUBLE PRECISION);
CREATE INDEX IF NOT EXISTS events_pending ON events (id) WHERE status IN ('pending', 'processing');
CREATE INDEX IF NOT EXISTS events_status_page ON events (status, id);
CREATE TABLE IF NOT EXISTS idempotency_keys (
  key TEXT PRIMARY KEY, event_id BIGINT NOT NULL, created DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, rule TEXT NOT NULL, version BIGINT NOT NULL,
  event_id BIGINT, status TEXT NOT NULL, frame BYTEA, deadline DOUBLE PRECISION, wait_trigger TEXT,
  resume_event BIGINT, depth BIGINT NOT NULL DEFAULT 0, started_at TEXT NOT NULL, updated_at TEXT NOT NULL,
  error TEXT, lease_owner TEXT, lease_expires DOUBLE PRECISION, fence BIGINT NOT NULL DEFAULT 0,
  activation BIGINT NOT NULL DEFAULT 0, frame_sum TEXT, UNIQUE (event_id, rule));
CREATE INDEX IF NOT EXISTS runs_due ON runs (deadline, id) WHERE status IN ('running', 'waiting');
CREATE INDEX IF NOT EXISTS runs_rule ON runs (rule, status);
CREATE INDEX IF NOT EXISTS runs_rule_page ON runs (rule, id);
CREATE INDEX IF NOT EXISTS runs_status_page ON runs (status, id);
CREATE TABLE IF NOT EXISTS steps (
  run_id BIGINT NOT NULL, activation BIGINT NOT NULL, ordinal BIGINT NOT NULL,
  attempt BIGINT NOT NULL DEFAULT 0, at TEXT NOT NULL, kind TEXT NOT NULL, action TEXT,
  step BIGINT, idem_key TEXT UNIQUE, status TEXT, args TEXT, result BYTEA, error TEXT, data TEXT,
  result_sum TEXT, PRIMARY KEY (run_id, activation, ordinal, attempt));
CREATE INDEX IF NOT EXISTS steps_action ON steps (run_id, step) WHERE step IS NOT NULL;
CREATE TABLE IF NOT EXISTS waits (
  run_id BIGINT NOT NULL, kind TEXT NOT NULL, clause BIGINT NOT NULL, trigger TEXT NOT NULL,
  field TEXT, value TEXT);
CREATE INDEX IF NOT EXISTS waits_lookup ON waits (trigger, kind, field, value);
CREATE INDEX IF NOT EXISTS waits_run ON waits (run_id);
CREATE TABLE IF NOT EXISTS wait_fields (trigger TEXT NOT NULL, kind TEXT NOT NULL, field TEXT NOT NULL,
  PRIMARY KEY (trigger, kind, field));
CREATE TABLE IF NOT EXISTS counters (rule TEXT NOT NULL, version BIGINT NOT NULL,
  filtered BIGINT NOT NULL DEFAULT 0, unstarted BIGINT NOT NULL DEFAULT 0, limited BIGINT NOT NULL DEFAULT 0,
  counted BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (rule, version));
CREATE TABLE IF NOT EXISTS split_counts (rule TEXT NOT NULL, version BIGINT NOT NULL, split BIGINT NOT NULL,
  branch BIGINT NOT NULL, share BIGINT NOT NULL, n BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (rule, version, split, branch));
CREATE TABLE IF NOT EXISTS entries (rule TEXT NOT NULL, key TEXT NOT NULL, started DOUBLE PRECISION NOT NULL,
  run_id BIGINT NOT NULL, PRIMARY KEY (rule, key));
CREATE TABLE IF NOT EXISTS active_sets (set_id TEXT NOT NULL, rule TEXT NOT NULL, version BIGINT NOT NULL,
  PRIMARY KEY (set_id, rule, version));
CREATE TABLE IF NOT EXISTS trigger_seen (trigger TEXT NOT NULL, set_id TEXT NOT NULL,
  n BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (trigger, set_id));
CREATE TABLE IF NOT EXISTS outbox (
  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, run_id BIGINT, action TEXT NOT NULL,
  args TEXT NOT NULL, idem_key TEXT UNIQUE, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS schedules (
  rule TEXT PRIMARY KEY, last_slot DOUBLE PRECISION NOT NULL, event_id BIGINT);
"""
