"""The engine's store on one SQLite file (WAL): rules, versions, events, runs, journal, indexes.

Every write that advances a run is fenced: it names the run's `fence` counter read when the run
was claimed, and fails with `LeaseLost` when another worker has claimed the run since. Times
shown to people are ISO 8601 text; deadlines and leases are epoch seconds, so they sort and
compare in SQL.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from whenthen.runtime.store.checksum import (
    frame_damage,
    frame_sum,
    result_damage,
    result_sum,
    version_damage,
    version_sum,
)
from whenthen.runtime.store.protocol import LeaseLost, RunRow, StoreError
from whenthen.runtime.store.schema import (
    _TABLES,
    SCHEMA_VERSION,
    TABLES,
    pending,
    statements,
    too_new,
    too_old,
)

# A snapshot's sum names its run, so a new run's id is chosen in its INSERT (the id SQLite would
# pick: the write lock is held and runs are never deleted) and summed there by a function this
# connection registers: one statement, as before checksums.
_NEXT_ID = "(SELECT coalesce(max(id), 0) + 1 AS n FROM runs)"


def _sql_frame_sum(run_id: int, frame: bytes | None) -> str | None:
    return frame_sum(run_id, frame) if frame is not None else None


_RUN_COLS = "id, rule, version, event_id, status, frame, deadline, resume_event, depth, fence, activation, frame_sum"


def _run_row(row: tuple[Any, ...]) -> RunRow:
    """A run as read, its snapshot verified: a damaged or foreign one is withheld (`frame` None)
    and `damaged` says why."""
    *fields, stored = row
    run = RunRow(*fields)
    damage = frame_damage(run.id, run.frame, stored)
    if damage is not None:
        run.frame, run.damaged = None, damage
    return run


class _Transaction:
    """`Store.transaction()`: a class rather than a generator context manager, because dispatch
    opens several per event and this costs a third as much."""

    __slots__ = ("store", "savepoint", "kind", "name")

    def __init__(self, store: SQLiteStore, savepoint: bool):
        self.store = store
        self.savepoint = savepoint

    def __enter__(self) -> sqlite3.Connection:
        store = self.store
        store._lock.acquire()
        conn = store.conn
        try:
            if store._depth:
                if not conn.in_transaction:  # the batch committed early (commit_now)
                    conn.execute("BEGIN IMMEDIATE")
                if not self.savepoint:
                    self.kind = "joined"
                    return conn
                self.kind = "savepoint"
                self.name = f"t{store._depth}"
                conn.execute(f"SAVEPOINT {self.name}")
                store._depth += 1
                return conn
            conn.execute("BEGIN IMMEDIATE")
            self.kind = "top"
            store._depth = 1
            return conn
        except BaseException:
            store._lock.release()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        store = self.store
        conn = store.conn
        try:
            if self.kind == "savepoint":
                store._depth -= 1
                if exc_type is not None:
                    conn.execute(f"ROLLBACK TO {self.name}")
                conn.execute(f"RELEASE {self.name}")
            elif self.kind == "top":
                store._depth = 0
                if exc_type is not None:
                    store._unfinished.clear()
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                elif conn.in_transaction:
                    store._mark_unfinished()
                    conn.execute("COMMIT")
            return False
        finally:
            store._lock.release()


class _SQLiteMigrator:
    """`schema.Migrator` on a SQLite connection inside the upgrade's transaction."""

    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.conn.execute(sql, tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, tuple(params)).fetchall()


class SQLiteStore:
    """One SQLite database. Not shared between threads; each process opens its own."""

    def __init__(self, path: str = ":memory:", *, read_only: bool = False):
        self.path = path
        self.read_only = read_only and path != ":memory:"
        self.upgraded_from: int | None = None  # the version this open upgraded from (0: created)
        self.shared = path != ":memory:"  # other processes may write to it (dispatch pauses for them)
        self._lock = threading.RLock()
        self._depth = 0
        self._grouped = False  # inside `group`
        self._in_batch = False  # inside a batch that joined a group
        # Events written as `processed` before their dispatch ends (`open_event`): id -> lease.
        self._unfinished: dict[int, tuple[str, float]] = {}
        try:
            self.conn = self._open_read_only() if self.read_only else self._open_for_writing()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open database {path}: {exc}") from None

    def _open_read_only(self) -> sqlite3.Connection:
        """A connection that can never create or write the file (URI `mode=ro`), on a database
        at this whenthen's schema version."""
        path = self.path
        if not os.path.isfile(path):
            raise StoreError(f"no database at {path}")
        uri = f"file:{urllib.parse.quote(os.path.abspath(path))}?mode=ro"
        # A WAL database needs its -shm beside it, which a reader creates when missing. Where it
        # cannot (a read-only folder) and no -wal exists, nobody with our rights can be writing
        # the file, so it is read as immutable.
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.exists(path + "-wal") and not os.access(folder, os.W_OK):
            uri += "&immutable=1"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=60.0, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 60000")
        recorded = self._recorded_version(conn)
        if recorded is None:
            conn.close()
            raise StoreError(f"{path} is not a whenthen database (no schema version recorded)")
        if recorded > SCHEMA_VERSION:
            conn.close()
            raise StoreError(too_new(path, recorded))
        if recorded == 0:
            # an empty file (what a first writer killed before its first commit leaves): it reads
            # as an empty database, from tables in memory, never written to the file
            conn.close()
            conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            for statement in statements(_TABLES):
                conn.execute(statement)
            conn.execute("INSERT INTO meta VALUES ('generation', '0')")
        elif recorded < SCHEMA_VERSION:
            conn.close()
            raise StoreError(too_old(path, recorded))
        return conn

    def _open_for_writing(self) -> sqlite3.Connection:
        """A connection for commands that write: creates the database, or upgrades an older one
        in one transaction; refuses one written by a newer whenthen."""
        path = self.path
        if path != ":memory:" and os.path.exists(path):
            folder = os.path.dirname(os.path.abspath(path))
            if not os.access(path, os.W_OK):
                raise StoreError(f"database {path} is read-only: this command writes to it "
                                 "(commands that only read, such as `runs`, can read it)")
            if not os.access(folder, os.W_OK) and not os.path.exists(path + "-wal"):
                raise StoreError(f"cannot write database {path}: its folder is read-only, and SQLite needs "
                                 "to create its -wal file beside it")
        conn = sqlite3.connect(path, isolation_level=None, timeout=60.0, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 60000")
        conn.create_function("whenthen_frame_sum", 2, _sql_frame_sum, deterministic=True)
        if path != ":memory:":
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        self.conn = conn
        try:
            if self._recorded_version(conn) != SCHEMA_VERSION:
                before, after = self.upgrade()
                if before != after:
                    self.upgraded_from = before
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _recorded_version(conn: sqlite3.Connection) -> int | None:
        """The schema version the database records; 0 for an empty file; None for a file of
        other tables (not a whenthen database)."""
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return 0
        if "meta" not in tables:
            return None
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        try:
            return int(row[0]) if row else None
        except ValueError:
            return None

    def upgrade(self) -> tuple[int, int]:
        """Bring the database to this whenthen's schema, in one transaction (all or nothing):
        create it when empty, else apply the migrations after its recorded version. Returns
        (from, to); refuses a database of a newer whenthen or of another program."""
        if self.read_only:
            raise StoreError(f"database {self.path} is open read-only")
        with self.transaction() as c:  # BEGIN IMMEDIATE: a concurrent upgrade waits, then finds it done
            recorded = self._recorded_version(c)
            if recorded is None:
                raise StoreError(f"{self.path} is not a whenthen database (no schema version recorded)")
            if recorded > SCHEMA_VERSION:
                raise StoreError(too_new(self.path, recorded))
            if recorded == 0:
                for statement in statements(_TABLES):
                    c.execute(statement)
                c.execute("INSERT INTO meta VALUES ('generation', '0')")
                c.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                return recorded, SCHEMA_VERSION
            migrator = _SQLiteMigrator(c)
            for migration in pending(recorded):
                migration.apply(migrator)
            c.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
            return recorded, SCHEMA_VERSION

    def close(self) -> None:
        self.conn.close()

    # ------------------------------------------------------------------ bulk (db copy)

    def is_empty(self) -> bool:
        return all(self.conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is None
                   for table in TABLES if table != "meta")

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A read transaction: every export inside sees the same committed state."""
        self.conn.execute("BEGIN")  # deferred: takes no write lock, even on a read-only connection
        try:
            yield
        finally:
            self.conn.execute("COMMIT")

    def export_rows(self, table: str) -> Iterator[tuple[Any, ...]]:
        columns, order = TABLES[table]
        cursor = self.conn.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {', '.join(order)}")
        for row in cursor:
            yield tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)

    def import_rows(self, table: str, rows: Iterable[tuple[Any, ...]]) -> int:
        columns, _ = TABLES[table]
        count = 0

        def counted() -> Iterator[tuple[Any, ...]]:
            nonlocal count
            for row in rows:
                count += 1
                yield row

        verb = "INSERT OR REPLACE" if table == "meta" else "INSERT"  # meta: the target's own rows
        with self.transaction() as c:
            c.executemany(f"{verb} INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                          counted())
        return count

    # ------------------------------------------------------------------ transactions

    def transaction(self, savepoint: bool = True) -> _Transaction:
        """BEGIN IMMEDIATE … COMMIT (rollback on error), as a context manager giving the
        connection. Inside a `batch`, a savepoint: an error undoes only this transaction's
        writes, and the commit waits for the batch's.

        `savepoint=False` (the dispatch hot path) skips the savepoint inside a batch: only for
        writes that either raise before writing anything (a fence or lease check done by the
        first statement) or whose errors nobody catches inside the batch, which then rolls back
        as a whole. Two statements fewer per call."""
        if self.read_only:
            raise StoreError(f"database {self.path} is open read-only: this command cannot write to it")
        return _Transaction(self, savepoint)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group the transactions inside into one commit (one event's dispatch, one resumed run).
        `commit_now()` commits what is pending early: before an action's effect. Directly inside
        a `group`, a batch joins the group's transaction."""
        if self._grouped and not self._in_batch and self._depth == 1:
            self._in_batch = True
            try:
                yield
            finally:
                self._in_batch = False
            return
        with self.transaction():
            yield

    @contextmanager
    def group(self) -> Iterator[None]:
        """One transaction for several batches (`Engine.ingest`): they commit together, at the end
        or at `commit_now()`. An error escaping a batch inside rolls back everything not yet
        committed."""
        with self.transaction():
            self._grouped = True
            try:
                yield
            finally:
                self._grouped = False

    def commit_now(self) -> None:
        """Inside a batch, make everything written so far durable and release the write lock
        (the batch's next write opens a new transaction); outside one, nothing to do."""
        if self._depth == 1 and self.conn.in_transaction:
            self._mark_unfinished()
            self.conn.execute("COMMIT")

    def wait_for_work(self, timeout: float, stop: Callable[[], bool] | None = None) -> None:
        """An idle worker's pause: a plain sleep (another process's commit cannot wake it), in
        slices so that `stop()` is honoured."""
        end = time.monotonic() + max(0.0, timeout)
        while (left := end - time.monotonic()) > 0 and not (stop is not None and stop()):
            time.sleep(min(left, 0.5))

    def _mark_unfinished(self) -> None:
        """Before a commit: events opened with `open_event` whose dispatch has not finished become
        `processing` under their lease, so that a worker finishes them if this process dies."""
        if self._unfinished:
            self.conn.executemany(
                "UPDATE events SET status = 'processing', lease_owner = ?, lease_expires = ? WHERE id = ?",
                [(owner, expires, event_id) for event_id, (owner, expires) in self._unfinished.items()])
            self._unfinished.clear()

    def schema_version(self) -> int:
        """The schema version this database records (a cheap query: `/readyz` calls it)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    # ------------------------------------------------------------------ rules and versions

    def generation(self) -> int:
        """A counter bumped by every change to rules, versions or declarations."""
        return int(self.conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])

    def bump_generation(self) -> None:
        self.conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")

    def rule(self, name: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT name, state, version, trigger, created_at FROM rules WHERE name = ?", (name,)
        ).fetchone()
        return dict(zip(("name", "state", "version", "trigger", "created_at"), row, strict=False)) if row else None

    def rules(self) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT name, state, version, trigger, created_at FROM rules ORDER BY name")
        return [dict(zip(("name", "state", "version", "trigger", "created_at"), r, strict=False)) for r in rows]

    def run_counts(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for rule, status, n in self.conn.execute("SELECT rule, status, count(*) FROM runs GROUP BY rule, status"):
            counts.setdefault(rule, {})[status] = n
        return counts

    def filtered_by_version(self) -> dict[tuple[str, int], int]:
        """Events of each rule version's start trigger whose `when … where` was false.

        An event is counted once against the set of versions that were active on its trigger
        (`trigger_seen`), so dispatch writes one row whatever the number of rules; filtered is
        then what each version saw minus the runs it started. Schedule events, which each
        target one rule, are counted per rule in `counters`."""
        counts: dict[tuple[str, int], int] = {}
        for rule, version, n in self.conn.execute(
                "SELECT a.rule, a.version, sum(t.n) FROM trigger_seen t JOIN active_sets a ON a.set_id = t.set_id "
                "GROUP BY a.rule, a.version"):
            counts[(rule, version)] = int(n)
        for rule, version, n in self.conn.execute(
                "SELECT r.rule, r.version, count(*) FROM runs r JOIN versions v ON v.rule = r.rule "
                "AND v.version = r.version WHERE r.event_id IS NOT NULL AND v.trigger != 'schedule.fired' "
                "GROUP BY r.rule, r.version"):
            if (rule, version) in counts:
                counts[(rule, version)] = max(0, counts[(rule, version)] - n)
        for rule, version, n in self.conn.execute("SELECT rule, version, filtered - limited - counted FROM counters"):
            counts[(rule, version)] = max(0, counts.get((rule, version), 0) + n)  # limited/counted: not filtered
        return counts

    def filtered_counts(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for (rule, _), n in self.filtered_by_version().items():
            totals[rule] = totals.get(rule, 0) + n
        return totals

    def unstarted_counts(self) -> dict[str, int]:
        """Per rule: events its active versions could not consider, being unloadable."""
        return {rule: int(n) for rule, n in self.conn.execute(
            "SELECT rule, sum(unstarted) FROM counters GROUP BY rule HAVING sum(unstarted) > 0")}

    def save_active_set(self, set_id: str, members: list[tuple[str, int]]) -> None:
        with self.transaction() as c:
            c.executemany("INSERT OR IGNORE INTO active_sets VALUES (?, ?, ?)",
                          [(set_id, rule, version) for rule, version in members])

    def version(self, rule: str, version: int) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT rule, version, source, bytecode, hash, author, created_at, trigger, checksum FROM versions "
            "WHERE rule = ? AND version = ?", (rule, version)).fetchone()
        if row is None:
            return None
        keys = ("rule", "version", "source", "bytecode", "hash", "author", "created_at", "trigger")
        found = dict(zip(keys, row, strict=False))
        found["damaged"] = version_damage(rule, version, bytes(row[3]), row[8])  # None when intact
        return found

    def versions(self, rule: str) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT version, hash, author, created_at, trigger FROM versions WHERE rule = ? ORDER BY version",
            (rule,))
        return [dict(zip(("version", "hash", "author", "created_at", "trigger"), r, strict=False)) for r in rows]

    def add_version(self, rule: str, source: str, bytecode: bytes, hash_: str, author: str | None,
                    at: str, trigger: str, state_if_new: str) -> int:
        """Append a version and make it current; create the rule (in `state_if_new`) if new."""
        with self.transaction() as c:
            row = c.execute("SELECT max(version) FROM versions WHERE rule = ?", (rule,)).fetchone()
            number = (row[0] or 0) + 1
            c.execute("INSERT INTO versions (rule, version, source, bytecode, hash, author, created_at, trigger, "
                      "checksum) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      (rule, number, source, bytecode, hash_, author, at, trigger,
                       version_sum(rule, number, bytecode)))
            c.execute(
                "INSERT INTO rules (name, state, version, trigger, created_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET version = excluded.version, trigger = excluded.trigger",
                (rule, state_if_new, number, trigger, at))
            self.bump_generation()
        return number

    def set_state(self, rule: str, state: str) -> None:
        with self.transaction() as c:
            c.execute("UPDATE rules SET state = ? WHERE name = ?", (state, rule))
            self.bump_generation()

    def active_versions(self) -> list[tuple[str, int, str, bytes]]:
        """(rule, version, trigger, bytecode) of every active rule's current version."""
        return self.conn.execute(
            "SELECT r.name, r.version, r.trigger, v.bytecode FROM rules r JOIN versions v "
            "ON v.rule = r.name AND v.version = r.version WHERE r.state = 'active' ORDER BY r.name"
        ).fetchall()

    def save_uses(self, rule: str, version: int, uses: list[tuple[str, str]]) -> None:
        with self.transaction() as c:
            c.executemany("INSERT OR IGNORE INTO uses VALUES (?, ?, ?, ?)",
                          [(rule, version, trigger, how) for trigger, how in uses])

    def version_uses(self, rule: str, version: int) -> list[tuple[str, str]]:
        """The (trigger, how) pairs stored for one version (`revert` copies them)."""
        rows = self.conn.execute("SELECT trigger, how FROM uses WHERE rule = ? AND version = ? ORDER BY trigger, how",
                                 (rule, version))
        return [(t, h) for t, h in rows]

    def uses(self, trigger: str) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT u.rule, u.version, u.how, r.state FROM uses u JOIN rules r "
            "ON r.name = u.rule AND r.version = u.version WHERE u.trigger = ? ORDER BY u.how, u.rule",
            (trigger,))
        return [dict(zip(("rule", "version", "how", "state"), r, strict=False)) for r in rows]

    def save_decl(self, kind: str, name: str, body: Any) -> None:
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO decls VALUES (?, ?, ?)", (kind, name, json.dumps(body)))
            self.bump_generation()

    def decls(self, kind: str) -> dict[str, Any]:
        rows = self.conn.execute("SELECT name, body FROM decls WHERE kind = ?", (kind,))
        return {name: json.loads(body) for name, body in rows}

    # ------------------------------------------------------------------ events

    def insert_event(self, trigger: str | None, data: str, at: str, status: str, *, error: str | None = None,
                     depth: int = 0, origin: str = "external", parent_run: int | None = None,
                     owner: str | None = None, lease_expires: float | None = None) -> int:
        with self.transaction(savepoint=False) as c:  # one statement
            cur = c.execute(
                "INSERT INTO events (trigger, data, at, status, error, depth, origin, parent_run, lease_owner, "
                "lease_expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (trigger, data, at, status, error, depth, origin, parent_run, owner, lease_expires))
            return int(cur.lastrowid)

    def open_event(self, trigger: str, data: str, at: str, origin: str, owner: str, lease_expires: float) -> int:
        """Record an event about to be dispatched in this batch, as `emit` does.

        It is written `processed` at once: the status and `finish_event` write one statement and
        one index entry fewer than `processing` then `processed`. If anything commits before its
        dispatch ends (an action's intent), it is marked `processing` under `owner`'s lease first
        (`_mark_unfinished`), exactly as if it had been inserted so; a rollback removes it."""
        with self.transaction(savepoint=False) as c:
            cur = c.execute(
                "INSERT INTO events (trigger, data, at, status, origin) VALUES (?, ?, ?, 'processed', ?)",
                (trigger, data, at, origin))
            event_id = int(cur.lastrowid)
            self._unfinished[event_id] = (owner, lease_expires)
            return event_id

    def accept_event(self, trigger: str, data: str, at: str, *, idempotency_key: str | None = None,
                     wall_now: float = 0.0, key_ttl: float = 86400.0) -> tuple[int, bool]:
        """Record a validated event `pending` for the workers; returns (id, duplicate). With a key,
        the key is stored in the same transaction as the event, so a crash keeps both or neither;
        a key seen less than `key_ttl` seconds ago returns the first event's id and records nothing."""
        with self.transaction() as c:
            if idempotency_key is not None:
                row = c.execute("SELECT event_id, created FROM idempotency_keys WHERE key = ?",
                                (idempotency_key,)).fetchone()
                if row is not None and row[1] > wall_now - key_ttl:
                    return int(row[0]), True
            cur = c.execute("INSERT INTO events (trigger, data, at, status) VALUES (?, ?, ?, 'pending')",
                            (trigger, data, at))
            event_id = int(cur.lastrowid)
            if idempotency_key is not None:
                c.execute("INSERT INTO idempotency_keys (key, event_id, created) VALUES (?, ?, ?) "
                          "ON CONFLICT (key) DO UPDATE SET event_id = excluded.event_id, created = excluded.created",
                          (idempotency_key, event_id, wall_now))
            return event_id, False

    def events_page(self, status: str | None = None, before: int | None = None, limit: int = 50
                    ) -> list[dict[str, Any]]:
        """Events newest first with an id below `before` (keyset paging: no OFFSET scan)."""
        where, params = [], []
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if before is not None:
            where.append("id < ?")
            params.append(before)
        sql = "SELECT id, trigger, data, at, status, error, depth, origin FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY id DESC LIMIT {int(limit)}"
        keys = ("id", "trigger", "data", "at", "status", "error", "depth", "origin")
        return [dict(zip(keys, r, strict=False)) for r in self.conn.execute(sql, params)]

    def claim_next_event(self, owner: str, wall_now: float, lease_expires: float
                         ) -> tuple[int, str, str, str, int] | None:
        """Take the oldest pending event (or a processing one whose holder's lease expired);
        returns (id, trigger, data, at, depth), or None when there is none."""
        with self.transaction() as c:
            row = c.execute(
                "SELECT id, trigger, data, at, depth FROM events WHERE status = 'pending' OR "
                "(status = 'processing' AND (lease_expires IS NULL OR lease_expires < ?)) ORDER BY id LIMIT 1",
                (wall_now,)).fetchone()
            if row is None:
                return None
            c.execute("UPDATE events SET status = 'processing', lease_owner = ?, lease_expires = ? WHERE id = ?",
                      (owner, lease_expires, row[0]))
            return row

    def claim_event(self, event_id: int, owner: str, wall_now: float, lease_expires: float) -> bool:
        with self.transaction() as c:
            cur = c.execute(
                "UPDATE events SET status = 'processing', lease_owner = ?, lease_expires = ? WHERE id = ? AND "
                "(status = 'pending' OR (status = 'processing' AND (lease_expires IS NULL OR lease_expires < ?)))",
                (owner, lease_expires, event_id, wall_now))
            return cur.rowcount == 1

    def finish_event(self, event_id: int, owner: str, filtered: dict[tuple[str, int], int],
                     seen: tuple[str, str] | None = None, unstarted: dict[tuple[str, int], int] | None = None
                     ) -> bool:
        """Mark an event processed and count it, once (fenced by the event's lease): `seen` is
        (trigger, active set id), `filtered` per-version counts (schedule events), `unstarted`
        the active versions that could not be loaded to consider it (SPEC 3.2)."""
        with self.transaction(savepoint=False) as c:  # the lease check writes nothing when it fails
            if self._unfinished.pop(event_id, None) is None:  # else written `processed`, never committed otherwise
                cur = c.execute(
                    "UPDATE events SET status = 'processed', lease_owner = NULL, lease_expires = NULL "
                    "WHERE id = ? AND status = 'processing' AND lease_owner = ?", (event_id, owner))
                if cur.rowcount != 1:
                    return False
            if filtered:
                c.executemany(
                    "INSERT INTO counters (rule, version, filtered) VALUES (?, ?, ?) ON CONFLICT (rule, version) "
                    "DO UPDATE SET filtered = filtered + excluded.filtered",
                    [(rule, version, n) for (rule, version), n in filtered.items()])
            if unstarted:
                c.executemany(
                    "INSERT INTO counters (rule, version, unstarted) VALUES (?, ?, ?) ON CONFLICT (rule, version) "
                    "DO UPDATE SET unstarted = unstarted + excluded.unstarted",
                    [(rule, version, n) for (rule, version), n in unstarted.items()])
            if seen is not None:
                c.execute("INSERT INTO trigger_seen (trigger, set_id, n) VALUES (?, ?, 1) ON CONFLICT (trigger, set_id) "
                          "DO UPDATE SET n = n + 1", seen)
            return True

    def entry(self, rule: str, key: str) -> tuple[float, int] | None:
        """The last start of a run of `rule` for an entry-limit key: (epoch seconds, run id); one
        primary-key lookup, whatever the number of runs (SPEC 2.11)."""
        row = self.conn.execute("SELECT started, run_id FROM entries WHERE rule = ? AND key = ?", (rule, key)).fetchone()
        return (float(row[0]), int(row[1])) if row else None

    def record_entry(self, rule: str, key: str, started: float, run_id: int) -> None:
        """A run of `rule` started for `key`: it is now the last one."""
        with self.transaction(savepoint=False) as c:
            c.execute("INSERT INTO entries (rule, key, started, run_id) VALUES (?, ?, ?, ?) ON CONFLICT (rule, key) "
                      "DO UPDATE SET started = excluded.started, run_id = excluded.run_id", (rule, key, started, run_id))

    def add_counts(self, column: str, counts: dict[tuple[str, int], int]) -> None:
        """Add to a per-version counter: `limited` (SPEC 2.11) or `counted` (2.10)."""
        if column not in ("limited", "counted"):
            raise ValueError(f"not a policy counter: {column}")
        if not counts:
            return
        with self.transaction(savepoint=False) as c:
            c.executemany(
                f"INSERT INTO counters (rule, version, {column}) VALUES (?, ?, ?) ON CONFLICT (rule, version) "
                f"DO UPDATE SET {column} = {column} + excluded.{column}",
                [(rule, version, n) for (rule, version), n in counts.items()])

    def policy_counts(self) -> dict[str, dict[str, int]]:
        """Per rule: its `limited` and `counted` totals over all versions."""
        return {rule: {"limited": int(limited), "counted": int(counted)} for rule, limited, counted in self.conn.execute(
            "SELECT rule, sum(limited), sum(counted) FROM counters GROUP BY rule")}

    def count_branches(self, rule: str, version: int, taken: list[tuple[int, int, int]]) -> None:
        """One more run per (split, branch, share) a run of this version took (SPEC 2.13)."""
        if not taken:
            return
        with self.transaction(savepoint=False) as c:
            c.executemany(
                "INSERT INTO split_counts (rule, version, split, branch, share, n) VALUES (?, ?, ?, ?, ?, 1) "
                "ON CONFLICT (rule, version, split, branch) DO UPDATE SET n = n + 1, share = excluded.share",
                [(rule, version, split, branch, share) for split, branch, share in taken])

    def split_steps(self, run_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
        """The split choices (`branch` steps with a `split`) of these runs, in step order."""
        found: dict[int, list[dict[str, Any]]] = {}
        for i in range(0, len(run_ids), 500):
            chunk = run_ids[i:i + 500]
            marks = ", ".join(["?"] * len(chunk))
            for run_id, data in self.conn.execute(
                    f"SELECT run_id, data FROM steps WHERE run_id IN ({marks}) AND kind = 'branch' "
                    "AND data LIKE ? ORDER BY run_id, activation, ordinal, attempt", (*chunk, '%"split"%')):
                step = json.loads(data)
                found.setdefault(int(run_id), []).append(
                    {"split": step["split"], "case": step["case"], "share": step["share"]})
        return found

    def branch_counts(self) -> list[tuple[str, int, int, int, int, int]]:
        """(rule, version, split, branch, share, runs) for every branch a split took."""
        return [tuple(r) for r in self.conn.execute(
            "SELECT rule, version, split, branch, share, n FROM split_counts ORDER BY rule, version, split, branch")]

    def reject_event(self, event_id: int, error: str) -> None:
        """A claimed event whose payload no longer validates: `rejected`, with the reason."""
        with self.transaction(savepoint=False) as c:  # one statement
            c.execute("UPDATE events SET status = 'rejected', error = ? WHERE id = ?", (error, event_id))

    def event(self, event_id: int) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT id, trigger, data, at, status, error, depth, origin FROM events WHERE id = ?",
            (event_id,)).fetchone()
        keys = ("id", "trigger", "data", "at", "status", "error", "depth", "origin")
        return dict(zip(keys, row, strict=False)) if row else None

    def events(self, status: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT id, trigger, data, at, status, error, depth, origin FROM events"
        rows = self.conn.execute(sql + (" WHERE status = ? ORDER BY id" if status else " ORDER BY id"),
                                 (status,) if status else ())
        keys = ("id", "trigger", "data", "at", "status", "error", "depth", "origin")
        return [dict(zip(keys, r, strict=False)) for r in rows]

    # ------------------------------------------------------------------ runs

    def get_run(self, run_id: int) -> RunRow | None:
        row = self.conn.execute(f"SELECT {_RUN_COLS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _run_row(row) if row else None

    def create_run(self, rule: str, version: int, event_id: int | None, frame: bytes, deadline: float,
                   depth: int, at: str, owner: str, lease_expires: float,
                   exits: list[tuple[str, int, str, str | None, str | None]] = ()) -> RunRow | None:
        """A new run, claimed by `owner`, due now; None if this event already started this rule."""
        with self.transaction(savepoint=False) as c:  # INSERT OR IGNORE writes nothing on a duplicate
            cur = c.execute(
                "INSERT OR IGNORE INTO runs (id, rule, version, event_id, status, frame, frame_sum, deadline, depth, "
                "started_at, updated_at, lease_owner, lease_expires, fence) "
                f"SELECT n, ?, ?, ?, 'running', ?, whenthen_frame_sum(n, ?), ?, ?, ?, ?, ?, ?, 1 FROM {_NEXT_ID}",
                (rule, version, event_id, frame, frame, deadline, depth, at, at, owner, lease_expires))
            if cur.rowcount != 1:
                return None
            self._insert_waits(c, int(cur.lastrowid), list(exits))
            return RunRow(int(cur.lastrowid), rule, version, event_id, "running", frame, deadline, None,
                          depth, 1, 0)

    def store_new_run(self, rule: str, version: int, event_id: int | None, depth: int, *, status: str,
                      frame: bytes | None, deadline: float | None, wait_trigger: str | None,
                      waits: list[tuple[str, int, str, str | None, str | None]], steps: list[dict[str, Any]],
                      at: str, emits: list[tuple[str, str, int, str]]) -> tuple[RunRow, list[int]] | None:
        """A run whose first activation ended (waiting or completed) before anything needed it
        stored: the rows `create_run` then `commit_activation` would leave, written at once (the
        run row once, in its final state). `waits` holds the exit registrations and the wait's.
        Returns the run (as `create_run` would have) and the emitted events' ids; None, writing
        nothing, if this event already started this rule."""
        with self.transaction(savepoint=False) as c:
            cur = c.execute(
                "INSERT OR IGNORE INTO runs (id, rule, version, event_id, status, frame, frame_sum, deadline, "
                "wait_trigger, depth, started_at, updated_at, fence, activation) "
                f"SELECT n, ?, ?, ?, ?, ?, whenthen_frame_sum(n, ?), ?, ?, ?, ?, ?, 1, 1 FROM {_NEXT_ID}",
                (rule, version, event_id, status, frame, frame, deadline, wait_trigger, depth, at, at))
            if cur.rowcount != 1:
                return None
            run = RunRow(int(cur.lastrowid), rule, version, event_id, status, frame, deadline, None, depth, 1, 0)
            self._insert_steps(c, run, steps)
            if status not in ("completed", "failed", "exited"):
                self._insert_waits(c, run.id, waits)
            return run, self._insert_emits(c, run.id, emits, at)

    def has_due_run(self, now: float, wall_now: float) -> bool:
        """A read without the write lock: is there anything for claim_next_due_run?"""
        return self.conn.execute(
            "SELECT 1 FROM runs WHERE status IN ('running', 'waiting') AND deadline <= ? "
            "AND (lease_owner IS NULL OR lease_expires < ?) LIMIT 1", (now, wall_now)).fetchone() is not None

    def has_claimable_event(self, wall_now: float) -> bool:
        """A read without the write lock: is there anything for claim_next_event?"""
        return self.conn.execute(
            "SELECT 1 FROM events WHERE status = 'pending' OR (status = 'processing' AND "
            "(lease_expires IS NULL OR lease_expires < ?)) LIMIT 1", (wall_now,)).fetchone() is not None

    def claim_next_due_run(self, now: float, wall_now: float, owner: str, lease_expires: float) -> RunRow | None:
        """Take the run that is due first (by deadline, then creation) and that nobody holds."""
        with self.transaction() as c:
            row = c.execute(
                f"SELECT {_RUN_COLS} FROM runs WHERE status IN ('running', 'waiting') AND deadline <= ? "
                "AND (lease_owner IS NULL OR lease_expires < ?) ORDER BY deadline, id LIMIT 1",
                (now, wall_now)).fetchone()
            if row is None:
                return None
            c.execute("UPDATE runs SET fence = fence + 1, lease_owner = ?, lease_expires = ?, status = 'running' "
                      "WHERE id = ?", (owner, lease_expires, row[0]))
            run = _run_row(row)
            run.fence += 1
            run.status = "running"
            return run

    def next_deadline(self) -> float | None:
        row = self.conn.execute(
            "SELECT min(deadline) FROM runs WHERE status IN ('running', 'waiting')").fetchone()
        return row[0]

    def claim_run(self, run: RunRow, owner: str, wall_now: float, lease_expires: float,
                  resume_event: int | None = None) -> RunRow | None:
        """Take a run if it is still as read (same fence) and free; returns it with its new fence.

        With `resume_event`, the run is being resumed by that event: its wait registrations go in
        the same transaction, so no other event can match them again.
        """
        with self.transaction() as c:
            cur = c.execute(
                "UPDATE runs SET fence = fence + 1, lease_owner = ?, lease_expires = ?, status = 'running', "
                "resume_event = coalesce(?, resume_event) WHERE id = ? AND fence = ? "
                "AND status IN ('running', 'waiting') AND (lease_owner IS NULL OR lease_expires < ?)",
                (owner, lease_expires, resume_event, run.id, run.fence, wall_now))
            if cur.rowcount != 1:
                return None
            if resume_event is not None:
                c.execute("DELETE FROM waits WHERE run_id = ? AND kind = 'wait'", (run.id,))
                c.execute("UPDATE runs SET deadline = 0 WHERE id = ?", (run.id,))
            row = c.execute(f"SELECT {_RUN_COLS} FROM runs WHERE id = ?", (run.id,)).fetchone()
            return _run_row(row)

    def check_fence(self, c: sqlite3.Connection, run_id: int, fence: int) -> None:
        row = c.execute("SELECT fence FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None or row[0] != fence:
            raise LeaseLost(f"run {run_id} was taken over by another worker")

    def extend_lease(self, c: sqlite3.Connection, run_id: int, lease_expires: float) -> None:
        c.execute("UPDATE runs SET lease_expires = ? WHERE id = ?", (lease_expires, run_id))

    def commit_activation(self, run: RunRow, *, status: str, frame: bytes | None, deadline: float | None,
                          wait_trigger: str | None, waits: list[tuple[str, int, str, str | None, str | None]],
                          steps: list[dict[str, Any]], error: str | None, at: str,
                          emits: list[tuple[str, str, int, str]]) -> list[int]:
        """Snapshot, wait registration, deadline, trace steps and emitted events, in one transaction.

        `waits` are (kind, clause, trigger, field, value) rows to add; a finished run loses all its
        rows. `emits` are (trigger, data JSON, depth, origin) queued as events owned by nobody yet;
        returns their ids. Raises LeaseLost (and writes nothing) if the run was taken over.
        """
        with self.transaction(savepoint=False) as c:
            # The fence is checked by the first write: when it fails, nothing was written.
            cur = c.execute(
                "UPDATE runs SET status = ?, frame = ?, frame_sum = ?, deadline = ?, wait_trigger = ?, "
                "resume_event = NULL, error = ?, updated_at = ?, lease_owner = NULL, lease_expires = NULL, "
                "activation = activation + 1 WHERE id = ? AND fence = ?",
                (status, frame, frame_sum(run.id, frame) if frame is not None else None, deadline, wait_trigger,
                 error, at, run.id, run.fence))
            if cur.rowcount != 1:
                raise LeaseLost(f"run {run.id} was taken over by another worker")
            self._insert_steps(c, run, steps)
            if status in ("completed", "failed", "exited"):
                c.execute("DELETE FROM waits WHERE run_id = ?", (run.id,))
            elif run.activation > 0:
                # `wait` rows are only written here, which also counts the activation: a run in its
                # first activation has none to remove.
                c.execute("DELETE FROM waits WHERE run_id = ? AND kind = 'wait'", (run.id,))
            self._insert_waits(c, run.id, waits)
            return self._insert_emits(c, run.id, emits, at)

    def _insert_emits(self, c: sqlite3.Connection, run_id: int, emits: list[tuple[str, str, int, str]],
                      at: str) -> list[int]:
        ids = []
        for trigger, data, depth, origin in emits:
            cur = c.execute(
                "INSERT INTO events (trigger, data, at, status, depth, origin, parent_run) "
                "VALUES (?, ?, ?, 'pending', ?, ?, ?)", (trigger, data, at, depth, origin, run_id))
            ids.append(int(cur.lastrowid))
        return ids

    def _insert_waits(self, c: sqlite3.Connection, run_id: int,
                      waits: list[tuple[str, int, str, str | None, str | None]]) -> None:
        if not waits:
            return
        c.executemany("INSERT INTO waits VALUES (?, ?, ?, ?, ?, ?)", [(run_id, *w) for w in waits])
        c.executemany("INSERT OR IGNORE INTO wait_fields VALUES (?, ?, ?)",
                      [(trigger, kind, fld) for kind, _, trigger, fld, _ in waits if fld is not None])

    def _insert_steps(self, c: sqlite3.Connection, run: RunRow, steps: list[dict[str, Any]]) -> None:
        if steps:
            c.executemany(
                "INSERT OR IGNORE INTO steps (run_id, activation, ordinal, attempt, at, kind, data) "
                "VALUES (?, ?, ?, 0, ?, ?, ?)",
                [(run.id, run.activation, s["ordinal"], s["at"], s["kind"], s["data"]) for s in steps])

    def defer_run(self, run: RunRow, deadline: float, at: str) -> None:
        """Put a run back to its last snapshot, due again at `deadline` (an action's retry)."""
        with self.transaction() as c:
            self.check_fence(c, run.id, run.fence)
            c.execute("UPDATE runs SET status = 'waiting', deadline = ?, lease_owner = NULL, lease_expires = NULL, "
                      "updated_at = ? WHERE id = ?", (deadline, at, run.id))

    def exit_run(self, run_id: int, at: str, steps: list[dict[str, Any]]) -> bool:
        """End a waiting or running run with status `exited` (its holder, if any, loses its lease)."""
        with self.transaction() as c:
            run = self.get_run(run_id)
            if run is None or run.status not in ("running", "waiting"):
                return False
            self._insert_steps(c, run, steps)
            c.execute(
                "UPDATE runs SET status = 'exited', fence = fence + 1, lease_owner = NULL, lease_expires = NULL, "
                "deadline = NULL, updated_at = ?, activation = activation + 1 WHERE id = ?", (at, run_id))
            c.execute("DELETE FROM waits WHERE run_id = ?", (run_id,))
            return True

    def wait_candidates(self, kind: str, trigger: str, field_value: dict[str, str | None]) -> list[tuple[int, int]]:
        """(run_id, clause) of registrations on `trigger` whose correlation matches the event:
        rows without a correlation field, and rows whose (field, value) equals the event's."""
        found = self.conn.execute(
            "SELECT run_id, clause FROM waits WHERE trigger = ? AND kind = ? AND field IS NULL",
            (trigger, kind)).fetchall()
        for fld, value in field_value.items():
            found += self.conn.execute(
                "SELECT run_id, clause FROM waits WHERE trigger = ? AND kind = ? AND field = ? AND value = ?",
                (trigger, kind, fld, value)).fetchall()
        found.sort()
        return found

    def dispatch_candidates(self, trigger: str, key_of: Callable[[str], str | None]
                            ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(run_id, clause) of the `exit` and of the `wait` registrations on `trigger` that may match
        an event: those without a correlation field, and those whose (field, value) equals the
        event's (`key_of(field)` is the event's index key for that field). One statement when no
        registration on `trigger` has a correlation field, one more per such field."""
        found: dict[str, list[tuple[int, int]]] = {"exit": [], "wait": []}
        fields: dict[str, list[str]] = {"exit": [], "wait": []}
        for is_run, kind, a, b in self.conn.execute(
                "SELECT 0, kind, field, NULL FROM wait_fields WHERE trigger = ? AND kind IN ('exit', 'wait') "
                "UNION ALL SELECT 1, kind, run_id, clause FROM waits WHERE trigger = ? AND kind IN ('exit', 'wait') "
                "AND field IS NULL", (trigger, trigger)):
            if is_run:
                found[kind].append((a, b))
            else:
                fields[kind].append(a)
        for kind, names in fields.items():
            for fld in names:
                found[kind] += self.conn.execute(
                    "SELECT run_id, clause FROM waits WHERE trigger = ? AND kind = ? AND field = ? AND value = ?",
                    (trigger, kind, fld, key_of(fld))).fetchall()
        found["exit"].sort()
        found["wait"].sort()
        return found["exit"], found["wait"]

    def wait_fields(self, kind: str, trigger: str) -> list[str]:
        rows = self.conn.execute("SELECT field FROM wait_fields WHERE trigger = ? AND kind = ?", (trigger, kind))
        return [r[0] for r in rows]

    def runs(self, rule: str | None = None, status: str | None = None, limit: int | None = None,
             run_id: int | None = None) -> list[dict]:
        sql = ("SELECT id, rule, version, status, started_at, updated_at, event_id, error, deadline, "
               "wait_trigger, depth FROM runs")
        where, params = [], []
        if run_id is not None:
            where.append("id = ?")
            params.append(run_id)
        if rule is not None:
            where.append("rule = ?")
            params.append(rule)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id"
        if limit:
            sql += f" LIMIT {int(limit)}"
        keys = ("id", "rule", "version", "status", "started_at", "updated_at", "event_id", "error",
                "deadline", "wait_trigger", "depth")
        return [dict(zip(keys, r, strict=False)) for r in self.conn.execute(sql, params)]

    def run_of_event(self, rule: str, event_id: int) -> dict[str, Any] | None:
        """The run of `rule` that `event_id` started: the `(event_id, rule)` unique index."""
        sql = ("SELECT id, rule, version, status, started_at, updated_at, event_id, error, deadline, "
               "wait_trigger, depth FROM runs WHERE event_id = ? AND rule = ?")
        row = self.conn.execute(sql, (event_id, rule)).fetchone()
        keys = ("id", "rule", "version", "status", "started_at", "updated_at", "event_id", "error",
                "deadline", "wait_trigger", "depth")
        return dict(zip(keys, row, strict=False)) if row else None

    def runs_page(self, rule: str | None = None, status: str | None = None, before: int | None = None,
                  limit: int = 50) -> list[dict]:
        """Runs newest first with an id below `before`: keyset paging, one index range per page."""
        sql = ("SELECT id, rule, version, status, started_at, updated_at, event_id, error, deadline, "
               "wait_trigger, depth FROM runs")
        where, params = [], []
        if rule is not None:
            where.append("rule = ?")
            params.append(rule)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if before is not None:
            where.append("id < ?")
            params.append(before)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY id DESC LIMIT {int(limit)}"
        keys = ("id", "rule", "version", "status", "started_at", "updated_at", "event_id", "error",
                "deadline", "wait_trigger", "depth")
        return [dict(zip(keys, r, strict=False)) for r in self.conn.execute(sql, params)]

    def run_gauges(self, now: float) -> tuple[int, int, float | None]:
        """(runs waiting, runs due by `now` and not yet resumed, the earliest due deadline)."""
        waiting = self.conn.execute("SELECT count(*) FROM runs WHERE status = 'waiting'").fetchone()[0]
        due, oldest = self.conn.execute(
            "SELECT count(*), min(deadline) FROM runs WHERE status IN ('running', 'waiting') "
            "AND deadline <= ? AND (lease_owner IS NULL OR lease_expires < ?)", (now, now)).fetchone()
        return int(waiting), int(due), oldest

    # ------------------------------------------------------------------ the action journal

    def journal_get(self, run_id: int, step: int) -> list[dict[str, Any]]:
        """The journal rows of one action step (one per attempt), oldest first."""
        rows = self.conn.execute(
            "SELECT attempt, status, result, error, idem_key, result_sum FROM steps WHERE run_id = ? AND step = ? "
            "ORDER BY attempt", (run_id, step))
        return [dict(zip(("attempt", "status", "result", "error", "idem_key"), r, strict=False),
                     damaged=result_damage(r[4], r[2], r[5])) for r in rows]

    def journal_intent(self, run: RunRow, lease_expires: float, pending_steps: list[dict[str, Any]],
                       row: dict[str, Any]) -> None:
        """Record that an action is about to be called (after the trace steps that preceded it)."""
        with self.transaction() as c:
            self.check_fence(c, run.id, run.fence)
            self.extend_lease(c, run.id, lease_expires)
            self._insert_steps(c, run, pending_steps)
            c.execute(
                "INSERT OR IGNORE INTO steps (run_id, activation, ordinal, attempt, at, kind, action, step, "
                "idem_key, status, args, data) VALUES (?, ?, ?, ?, ?, 'action', ?, ?, ?, 'started', ?, ?)",
                (run.id, run.activation, row["ordinal"], row["attempt"], row["at"], row["action"], row["step"],
                 row["idem_key"], row["args"], row.get("data")))
        self.commit_now()  # the intent (and the claim before it) is durable before the effect

    def journal_result(self, run: RunRow, idem_key: str, status: str, result: bytes | None,
                       error: str | None, outbox: tuple[str, str, str] | None = None) -> None:
        """Record an attempt's outcome (`done` with its result, or `failed` with the error)."""
        with self.transaction() as c:
            self.check_fence(c, run.id, run.fence)
            c.execute("UPDATE steps SET status = ?, result = ?, result_sum = ?, error = ? WHERE idem_key = ?",
                      (status, result, result_sum(idem_key, result) if result is not None else None, error,
                       idem_key))
            if outbox is not None:
                action, args, at = outbox
                c.execute("INSERT OR IGNORE INTO outbox (run_id, action, args, idem_key, created_at) "
                          "VALUES (?, ?, ?, ?, ?)", (run.id, action, args, idem_key, at))

    def steps(self, run_id: int) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT at, kind, action, step, attempt, idem_key, status, args, result, error, data, result_sum "
            "FROM steps WHERE run_id = ? ORDER BY activation, ordinal, attempt", (run_id,))
        keys = ("at", "kind", "action", "step", "attempt", "idem_key", "status", "args", "result", "error", "data")
        return [dict(zip(keys, r, strict=False), damaged=result_damage(r[5], r[8], r[11])) for r in rows]

    def outbox(self) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT id, run_id, action, args, idem_key, created_at FROM outbox ORDER BY id")
        return [dict(zip(("id", "run_id", "action", "args", "idem_key", "created_at"), r, strict=False)) for r in rows]

    # ------------------------------------------------------------------ schedules

    def schedule_slots(self) -> dict[str, float]:
        """Each schedule rule's last fired (or skipped) slot, in epoch seconds."""
        return dict(self.conn.execute("SELECT rule, last_slot FROM schedules").fetchall())

    def arm_schedule(self, rule: str, at: float) -> None:
        """Nothing before `at` is owed to `rule` (it was enabled then); never moves a slot back."""
        with self.transaction() as c:
            c.execute("INSERT INTO schedules (rule, last_slot) VALUES (?, ?) ON CONFLICT (rule) "
                      "DO UPDATE SET last_slot = max(last_slot, excluded.last_slot)", (rule, at))

    def rewind_schedule(self, rule: str, at: float) -> bool:
        """Move `rule`'s last slot back to `at` when it is after it (recorded by a clock set
        ahead, `--now`); True when it moved."""
        with self.transaction() as c:
            cur = c.execute("UPDATE schedules SET last_slot = ? WHERE rule = ? AND last_slot > ?", (at, rule, at))
            return cur.rowcount == 1

    def claim_schedule_slot(self, rule: str, slot: float, trigger: str, data: str, at: str, owner: str,
                            lease_expires: float) -> int | None:
        """Record `slot` as fired and its event as ours to process, in one transaction; None when
        another worker fired this slot (or a later one) first."""
        with self.transaction() as c:
            cur = c.execute("UPDATE schedules SET last_slot = ? WHERE rule = ? AND last_slot < ?",
                            (slot, rule, slot))
            if cur.rowcount != 1:
                return None
            cur = c.execute(
                "INSERT INTO events (trigger, data, at, status, origin, lease_owner, lease_expires) "
                "VALUES (?, ?, ?, 'processing', 'schedule', ?, ?)", (trigger, data, at, owner, lease_expires))
            event_id = int(cur.lastrowid)
            c.execute("UPDATE schedules SET event_id = ? WHERE rule = ?", (event_id, rule))
            return event_id

    def schedule_rule(self, event_id: int) -> str | None:
        """The rule a schedule event was fired for (it starts that rule only)."""
        row = self.conn.execute("SELECT rule FROM schedules WHERE event_id = ?", (event_id,)).fetchone()
        return row[0] if row else None
