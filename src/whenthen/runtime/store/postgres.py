"""The engine's store on a PostgreSQL server (psycopg 3 and its pool), for workers on many machines.

The behaviour is SQLiteStore's (sqlite.py), statement for statement; what differs is how workers
share the database. SQLite serializes writers with one lock; here claims take rows with
`FOR UPDATE SKIP LOCKED`, so workers never wait for each other's work, and the lease and fence
columns keep a worker that lost a run from committing it. Idle workers `LISTEN`; a commit that
adds a pending event or a near deadline `NOTIFY`s them (`wait_for_work`).

Round trips cost about a thousand times what SQLite's calls do, so statements without a result
to wait for (BEGIN, SAVEPOINT, RELEASE, index rows, trace steps, the NOTIFY) are queued and sent
in one message with the next statement that needs one, or with the COMMIT; a transaction that
wrote nothing sends nothing.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from whenthen.runtime.store.checksum import (
    frame_damage,
    frame_sum,
    result_damage,
    result_sum,
    version_damage,
    version_sum,
)
from whenthen.runtime.store.protocol import LeaseLost, RunRow, StoreError, StoreUnavailable
from whenthen.runtime.store.schema import PG_TABLES, SCHEMA_VERSION, TABLES, pending, too_new, too_old

_RUN_COLS = "id, rule, version, event_id, status, frame, deadline, resume_event, depth, fence, activation, frame_sum"
# checksum.frame_sum computed by the server, in the INSERT that picks the new run's id (`n`)
_SQL_FRAME_SUM = ("left(encode(sha256(convert_to('whenthen:frame:' || length(n::text) || ':' || n::text, 'UTF8') "
                  "|| %s::bytea), 'hex'), 32)")
_NEXT_RUN = "(SELECT nextval(pg_get_serial_sequence('runs', 'id')) AS n) AS next_run"


def _run_row(row: Sequence[Any]) -> RunRow:
    """A run as read, its snapshot verified: a damaged or foreign one is withheld (`frame` None)
    and `damaged` says why (as in sqlite.py)."""
    *fields, stored = row
    run = RunRow(*fields)
    damage = frame_damage(run.id, run.frame, stored)
    if damage is not None:
        run.frame, run.damaged = None, damage
    return run


class _Migrator:
    """`schema.Migrator` inside the upgrade's transaction (`?` placeholders become `%s`)."""

    dialect = "postgresql"

    def __init__(self, store: PostgresStore):
        self.store = store

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.store._x(sql.replace("?", "%s"), tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        for row in rows:
            self.store._x(sql.replace("?", "%s"), tuple(row))

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.store._x(sql.replace("?", "%s"), tuple(params)).fetchall()]
_CHANNEL = "whenthen"
# A commit that sets a deadline sooner than this (seconds) wakes idle workers; later ones are found
# by their next poll (an idle worker polls every `--idle` seconds, far less than this).
_NOTIFY_HORIZON = 60.0
# How long a read outside any transaction keeps reconnecting before it gives up.
_RECONNECT_SECONDS = 15.0
_ENDED = ("completed", "failed", "exited")
_UTILITY = ("BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK TO")

# psycopg_pool logs each failed reconnection attempt; the store reports what matters itself.
logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())
logging.getLogger("psycopg.pool").propagate = False


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


# what a server says while it cannot take connections for now (down, starting, stopping, full)
_PASSING = ("connection refused", "starting up", "shutting down", "timeout expired", "could not connect",
            "server closed the connection", "no such file or directory", "too many clients", "recovery mode",
            "terminating connection", "not yet accepting connections")


def _cannot_connect(url: str, exc: BaseException) -> StoreError:
    """StoreUnavailable when trying later may work (the server is down or starting), else StoreError
    (a database that does not exist, a refused role or password)."""
    message = f"cannot connect to {redact(url)}: {_reason(exc)}"
    text = str(exc).lower()
    return StoreUnavailable(message) if any(p in text for p in _PASSING) else StoreError(message)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _text(value: str | None) -> str | None:
    """PostgreSQL's text cannot hold NUL, which a rejected line or an error message may contain."""
    return value.replace("\x00", "\\u0000") if value is not None and "\x00" in value else value


class _Transaction:
    """`Store.transaction()`, as in sqlite.py: a top-level transaction, or a savepoint inside one."""

    __slots__ = ("store", "savepoint", "kind", "name")

    def __init__(self, store: PostgresStore, savepoint: bool):
        self.store = store
        self.savepoint = savepoint

    def __enter__(self) -> PostgresStore:
        store = self.store
        if store.read_only:
            raise StoreError(f"database {redact(store.path)} is open read-only: this command cannot write to it")
        store._lock.acquire()
        try:
            if store._depth:
                if not store._open:  # the batch committed early (commit_now)
                    store._begin()
                if not self.savepoint:
                    self.kind = "joined"
                    return store
                self.kind = "savepoint"
                self.name = f"t{store._depth}"
                store._pending.append((f"SAVEPOINT {self.name}", None))
                store._depth += 1
                return store
            store._connection()  # reconnects if the server went away since the last transaction
            store._begin()
            self.kind = "top"
            store._depth = 1
            return store
        except BaseException:
            store._lock.release()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        store = self.store
        try:
            if self.kind == "savepoint":
                store._depth -= 1
                opened = (f"SAVEPOINT {self.name}", None)
                if store._pending and store._pending[-1] == opened:
                    store._pending.pop()  # nothing was written inside: nothing to send
                elif store._open and store._doomed is None:
                    if exc_type is not None:
                        store._pending.append((f"ROLLBACK TO {self.name}", None))
                    store._pending.append((f"RELEASE {self.name}", None))
            elif self.kind == "top":
                store._depth = 0
                if exc_type is not None or store._doomed is not None:
                    doomed = store._doomed
                    store._rollback()
                    if exc_type is None:  # something inside swallowed the failure: nothing was committed
                        raise StoreUnavailable(f"the transaction was aborted: {doomed}")
                elif store._open:
                    store._commit()
            return False
        finally:
            store._lock.release()


class PostgresStore:
    """One PostgreSQL database. Like SQLiteStore, one store per process (or per thread)."""

    dialect = "postgresql"

    def __init__(self, url: str, *, read_only: bool = False, pool_size: int | None = None):
        self.path = url
        self._url = url
        self.read_only = read_only
        self.shared = True  # other processes and machines write to it (a long dispatch pauses for them)
        self.upgraded_from: int | None = None  # the version this open upgraded from (0: created)
        self._lock = threading.RLock()
        self._depth = 0
        self._grouped = False  # inside `group`
        self._in_batch = False  # inside a batch that joined a group
        self._open = False  # a transaction is begun (maybe only queued in `_pending`)
        self._sent = False  # … and its BEGIN has reached the server
        self._doomed: str | None = None  # the server aborted this transaction: why
        self._pending: list[tuple[str, Any]] = []  # statements sent with the next one that has a result
        self._wake_event = False  # this transaction adds a pending event: NOTIFY on commit
        self._wake_deadline: float | None = None  # … or sets a deadline this soon
        self._unfinished: dict[int, tuple[str, float]] = {}  # as in sqlite.py (`open_event`)
        self._listener: psycopg.Connection | None = None
        self._deadlines: list[float] = []  # near deadlines other workers announced
        self._conn: psycopg.Connection | None = None
        self._setup()
        size = pool_size or int(os.environ.get("WHENTHEN_PG_POOL", "2"))
        self.pool = ConnectionPool(url, min_size=1, max_size=max(1, size), open=False, name="whenthen",
                                   kwargs={"autocommit": True, "application_name": "whenthen"},
                                   check=ConnectionPool.check_connection)
        try:
            self.pool.open(wait=True, timeout=10.0)
        except PoolTimeout as exc:
            self.pool.close()
            raise StoreUnavailable(f"cannot connect to {redact(url)}: {_reason(exc)}") from None
        try:
            recorded = self._recorded_version()
            if recorded is None:
                raise StoreError(f"{redact(url)} is not a whenthen database (no schema version recorded)")
            if recorded > SCHEMA_VERSION:
                raise StoreError(too_new(redact(url), recorded))
            if recorded < SCHEMA_VERSION:
                if read_only:
                    raise StoreError(too_old(redact(url), recorded))
                before, after = self.upgrade()
                if before != after:
                    self.upgraded_from = before
        except BaseException:
            self.close()
            raise

    def _setup(self) -> None:
        """Connect once (so an unreachable server is one clear message) and create the tables."""
        try:
            conn = psycopg.connect(self._url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise _cannot_connect(self._url, exc) from None
        try:
            with conn:
                if conn.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()[0]:
                    return
                if self.read_only:
                    raise StoreError(f"no whenthen database at {redact(self._url)} (it has no tables)")
                with conn.transaction():
                    # concurrent first opens (several workers starting at once) create the tables once
                    conn.execute("SELECT pg_advisory_xact_lock(7369887)")
                    if conn.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()[0]:
                        return  # another process created them while we waited
                    conn.execute(PG_TABLES)
                    conn.execute("INSERT INTO meta VALUES ('schema_version', %s) ON CONFLICT DO NOTHING",
                                 (str(SCHEMA_VERSION),))
                    conn.execute("INSERT INTO meta VALUES ('generation', '0') ON CONFLICT DO NOTHING")
        except StoreError:
            raise
        except psycopg.Error as exc:
            kind = StoreUnavailable if isinstance(exc, psycopg.OperationalError) else StoreError
            raise kind(f"cannot open database {redact(self._url)}: {_reason(exc)}") from None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self.pool.putconn(self._conn)
                self._conn = None
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            self.pool.close()

    @property
    def conn(self) -> psycopg.Connection:
        """The connection (inspect.py's counts and damage tests)."""
        return self._connection()

    # ------------------------------------------------------------------ connection and statements

    def _connection(self) -> psycopg.Connection:
        """The store's connection: taken from the pool, and replaced when the server dropped it."""
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if conn is not None:
            self._conn = None
            self.pool.putconn(conn)  # the pool discards a broken connection and opens another
        try:
            self._conn = self.pool.getconn(timeout=5.0)
        except PoolTimeout as exc:
            raise StoreUnavailable(f"the database {redact(self._url)} is unreachable: {_reason(exc)}") from None
        return self._conn

    def _lost(self, exc: psycopg.Error) -> StoreUnavailable:
        """A failure of the server or the connection (not of a statement): the transaction is gone."""
        if self._depth:
            self._doomed = _reason(exc)
        conn = self._conn
        if conn is not None and (conn.closed or conn.broken):
            return StoreUnavailable(f"lost the connection to {redact(self._url)}: {_reason(exc)}")
        return StoreUnavailable(f"the database aborted a transaction: {_reason(exc)}")

    def _begin(self) -> None:
        self._pending.append(("BEGIN", None))
        self._open, self._sent = True, False

    def _x(self, sql: str, params: Any = None) -> psycopg.Cursor:
        """Execute one statement inside the current transaction and return its cursor. Queued
        statements go first, in the same message: a multi-statement query, bound on the client
        (one round trip; here a pipeline costs more than two)."""
        if self._doomed is not None:
            raise StoreUnavailable(f"the transaction was aborted: {self._doomed}")
        conn = self._connection() if self._depth == 0 else self._conn
        if conn is None:
            raise StoreUnavailable(f"lost the connection to {redact(self._url)}")
        try:
            if self._pending:
                pending, self._pending = self._pending, []
                cur: psycopg.Cursor = psycopg.ClientCursor(conn)
                parts = [stmt if args is None else cur.mogrify(stmt, args) for stmt, args in pending]
                parts.append(sql if params is None else cur.mogrify(sql, params))
                cur.execute("; ".join(parts))
                while cur.nextset():  # the last statement's result is the caller's
                    pass
                self._sent = True
                return cur
            return conn.execute(sql, params)
        except psycopg.OperationalError as exc:
            raise self._lost(exc) from None

    def _read(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """A query's rows. Outside a transaction a lost connection is retried (reconnecting, with
        backoff) for a while: a read can always be repeated."""
        if self._depth:
            return self._x(sql, params).fetchall()
        delay, give_up = 0.05, time.monotonic() + _RECONNECT_SECONDS
        with self._lock:
            while True:
                try:
                    return self._x(sql, params).fetchall()
                except StoreUnavailable:
                    if time.monotonic() + delay > give_up:
                        raise
                    time.sleep(delay)
                    delay = min(delay * 2, 1.0)

    def _one(self, sql: str, params: Any = None) -> tuple[Any, ...] | None:
        rows = self._read(sql, params)
        return rows[0] if rows else None

    def _commit(self) -> None:
        if not self._sent and all(args is None and stmt.startswith(_UTILITY) for stmt, args in self._pending):
            # nothing was written: nothing to send
            self._pending.clear()
            self._open = False
            self._wake_event, self._wake_deadline = False, None
            return
        if self._unfinished:
            self._mark_unfinished()
        if self._wake_event or self._wake_deadline is not None:
            payload = "" if self._wake_deadline is None else repr(self._wake_deadline)
            self._pending.append(("SELECT pg_notify(%s, %s)", (_CHANNEL, payload)))
            self._wake_event, self._wake_deadline = False, None
        try:
            self._x("COMMIT")
        finally:
            self._open = self._sent = False
            self._pending.clear()

    def _rollback(self) -> None:
        self._unfinished.clear()
        self._pending.clear()
        self._wake_event, self._wake_deadline = False, None
        doomed, self._doomed = self._doomed, None
        sent, self._open, self._sent = self._sent, False, False
        conn = self._conn
        if not sent or conn is None or conn.closed or conn.broken:
            return  # the server ends a transaction whose connection dropped
        try:
            conn.execute("ROLLBACK")
        except psycopg.Error:
            if doomed is None:
                raise

    def _wake(self, deadline: float | None) -> None:
        """Note that this transaction's commit must wake idle workers (a new event, when
        `deadline` is None, or a deadline this soon)."""
        if deadline is None:
            self._wake_event = True
        elif deadline < time.time() + _NOTIFY_HORIZON:
            self._wake_deadline = deadline if self._wake_deadline is None else min(deadline, self._wake_deadline)

    # ------------------------------------------------------------------ transactions

    def transaction(self, savepoint: bool = True) -> _Transaction:
        """BEGIN … COMMIT (rollback on error); inside a `batch`, a savepoint, as in sqlite.py
        (`savepoint=False` joins the batch's transaction, under the same conditions)."""
        return _Transaction(self, savepoint)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group the transactions inside into one commit; directly inside a `group`, join it."""
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
        """One transaction for several batches (`Engine.ingest`), committed at the end or at
        `commit_now()`."""
        with self.transaction():
            self._grouped = True
            try:
                yield
            finally:
                self._grouped = False

    def commit_now(self) -> None:
        """Inside a batch, make everything written so far durable (the batch's next write opens
        a new transaction); outside one, nothing to do."""
        if self._depth == 1 and self._open:
            self._commit()

    def _mark_unfinished(self) -> None:
        """As in sqlite.py: events opened in this batch whose dispatch has not finished become
        `processing` under their lease before anything commits."""
        items = list(self._unfinished.items())
        self._unfinished.clear()
        self._pending.append((
            "UPDATE events SET status = 'processing', lease_owner = u.o, lease_expires = u.x "
            "FROM unnest(%s::bigint[], %s::text[], %s::float8[]) AS u(i, o, x) WHERE events.id = u.i",
            ([i for i, _ in items], [o for _, (o, _) in items], [x for _, (_, x) in items])))

    def wait_for_work(self, timeout: float, stop: Callable[[], bool] | None = None) -> None:
        """Block until another process commits work for idle workers (a NOTIFY), a deadline one
        announced comes, `timeout` seconds pass (the poll, a fallback), or `stop()` is true."""
        end = time.monotonic() + max(0.0, timeout)
        while (left := end - time.monotonic()) > 0 and not (stop is not None and stop()):
            if self._wait_once(min(left, 0.5)):
                return

    def _wait_once(self, timeout: float) -> bool:
        """Up to `timeout` seconds of waiting; True when there may be work now."""
        now = time.time()
        self._deadlines = [d for d in self._deadlines if d > now]
        if self._deadlines:
            timeout = min(timeout, min(self._deadlines) - now)
        if self._listener is None:
            try:
                self._listener = psycopg.connect(self._url, autocommit=True, connect_timeout=5,
                                                 application_name="whenthen-listen")
                self._listener.execute(f"LISTEN {_CHANNEL}")
            except psycopg.Error:
                self._listener = None
                time.sleep(max(0.0, timeout))
                return False
            return True  # listening from now on: the caller looks for work once more before waiting
        woken = False
        try:
            for note in self._listener.notifies(timeout=max(0.0, timeout), stop_after=1):
                self._note(note.payload)
                woken = True
            for note in self._listener.notifies(timeout=0.0):  # what else arrived meanwhile
                self._note(note.payload)
        except psycopg.Error:
            self._listener.close()
            self._listener = None  # reconnected at the next wait
            time.sleep(max(0.0, timeout))
            return False
        # a notified deadline that has come is work too
        return woken or any(d <= time.time() for d in self._deadlines)

    def _note(self, payload: str) -> None:
        if payload:
            try:
                self._deadlines.append(float(payload))
            except ValueError:
                pass

    def schema_version(self) -> int:
        """The schema version this database records (a cheap query: `/readyz` calls it)."""
        row = self._one("SELECT value FROM meta WHERE key = 'schema_version'")
        return int(row[0]) if row else 0

    def _recorded_version(self) -> int | None:
        row = self._one("SELECT value FROM meta WHERE key = 'schema_version'")
        try:
            return int(row[0]) if row else None
        except ValueError:
            return None

    def upgrade(self) -> tuple[int, int]:
        """Bring the database to this whenthen's schema in one transaction (schema.MIGRATIONS);
        (from, to). Concurrent upgrades take turns (an advisory lock): the second finds it done."""
        if self.read_only:
            raise StoreError(f"database {redact(self.path)} is open read-only")
        with self.transaction():
            self._x("SELECT pg_advisory_xact_lock(7369887)")
            recorded = self._recorded_version()
            if recorded is None:
                raise StoreError(f"{redact(self.path)} is not a whenthen database (no schema version recorded)")
            if recorded > SCHEMA_VERSION:
                raise StoreError(too_new(redact(self.path), recorded))
            migrator = _Migrator(self)
            for migration in pending(recorded):
                migration.apply(migrator)
            self._x("UPDATE meta SET value = %s WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
            return recorded, SCHEMA_VERSION

    # ------------------------------------------------------------------ bulk (db copy)

    def is_empty(self) -> bool:
        return all(self._one(f"SELECT 1 FROM {table} LIMIT 1") is None for table in TABLES if table != "meta")

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One REPEATABLE READ, READ ONLY transaction: every export inside sees the same state."""
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            self._depth, self._open, self._sent = 1, True, True
            try:
                yield
            finally:
                self._depth, self._open, self._sent = 0, False, False
                if not conn.closed and not conn.broken:
                    conn.execute("COMMIT")

    def export_rows(self, table: str) -> Iterator[tuple[Any, ...]]:
        columns, order = TABLES[table]
        yield from (tuple(r) for r in self._read(
            f"SELECT {', '.join(columns)} FROM {table} ORDER BY {', '.join(order)}"))

    def import_rows(self, table: str, rows: Iterable[tuple[Any, ...]]) -> int:
        columns, _ = TABLES[table]
        count = 0
        marks = ", ".join(["%s"] * len(columns))
        conflict = " ON CONFLICT (key) DO UPDATE SET value = excluded.value" if table == "meta" else ""
        with self.transaction():
            batch: list[tuple[Any, ...]] = []
            for row in rows:
                batch.append(tuple(row))
                count += 1
                if len(batch) >= 500:
                    self._insert_many(table, columns, marks, conflict, batch)
                    batch = []
            if batch:
                self._insert_many(table, columns, marks, conflict, batch)
            if table in ("events", "runs", "outbox"):  # the copied ids: new ones continue after them
                self._x(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"greatest((SELECT max(id) FROM {table}), 1), (SELECT max(id) IS NOT NULL FROM {table}))")
        return count

    def _insert_many(self, table: str, columns: Sequence[str], marks: str, conflict: str,
                     rows: list[tuple[Any, ...]]) -> None:
        values = ", ".join([f"({marks})"] * len(rows))
        self._x(f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}{conflict}",
                [v for row in rows for v in row])

    # ------------------------------------------------------------------ rules and versions

    def generation(self) -> int:
        """A counter bumped by every change to rules, versions or declarations."""
        return int(self._one("SELECT value FROM meta WHERE key = 'generation'")[0])

    def bump_generation(self) -> None:
        self._pending.append(("UPDATE meta SET value = (value::bigint + 1)::text WHERE key = 'generation'", ()))

    def rule(self, name: str) -> dict[str, Any] | None:
        row = self._one("SELECT name, state, version, trigger, created_at FROM rules WHERE name = %s", (name,))
        return dict(zip(("name", "state", "version", "trigger", "created_at"), row, strict=False)) if row else None

    def rules(self) -> list[dict[str, Any]]:
        rows = self._read("SELECT name, state, version, trigger, created_at FROM rules ORDER BY name")
        return [dict(zip(("name", "state", "version", "trigger", "created_at"), r, strict=False)) for r in rows]

    def run_counts(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for rule, status, n in self._read("SELECT rule, status, count(*) FROM runs GROUP BY rule, status"):
            counts.setdefault(rule, {})[status] = n
        return counts

    def filtered_by_version(self) -> dict[tuple[str, int], int]:
        """As in sqlite.py: what each version saw on its trigger minus the runs it started, plus
        the per-rule counts of schedule events."""
        counts: dict[tuple[str, int], int] = {}
        for rule, version, n in self._read(
                "SELECT a.rule, a.version, sum(t.n) FROM trigger_seen t JOIN active_sets a ON a.set_id = t.set_id "
                "GROUP BY a.rule, a.version"):
            counts[(rule, version)] = int(n)
        for rule, version, n in self._read(
                "SELECT r.rule, r.version, count(*) FROM runs r JOIN versions v ON v.rule = r.rule "
                "AND v.version = r.version WHERE r.event_id IS NOT NULL AND v.trigger != 'schedule.fired' "
                "GROUP BY r.rule, r.version"):
            if (rule, version) in counts:
                counts[(rule, version)] = max(0, counts[(rule, version)] - n)
        for rule, version, n in self._read("SELECT rule, version, filtered - limited - counted FROM counters"):
            counts[(rule, version)] = max(0, counts.get((rule, version), 0) + n)  # limited/counted: not filtered
        return counts

    def unstarted_counts(self) -> dict[str, int]:
        """Per rule: events its active versions could not consider, being unloadable."""
        return {rule: int(n) for rule, n in self._read(
            "SELECT rule, sum(unstarted) FROM counters GROUP BY rule HAVING sum(unstarted) > 0")}

    def filtered_counts(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for (rule, _), n in self.filtered_by_version().items():
            totals[rule] = totals.get(rule, 0) + n
        return totals

    def save_active_set(self, set_id: str, members: list[tuple[str, int]]) -> None:
        if not members:
            return
        with self.transaction():
            self._pending.append((
                "INSERT INTO active_sets SELECT %s, r, v FROM unnest(%s::text[], %s::bigint[]) AS m(r, v) "
                "ON CONFLICT DO NOTHING", (set_id, [r for r, _ in members], [v for _, v in members])))

    def version(self, rule: str, version: int) -> dict[str, Any] | None:
        row = self._one(
            "SELECT rule, version, source, bytecode, hash, author, created_at, trigger, checksum FROM versions "
            "WHERE rule = %s AND version = %s", (rule, version))
        if row is None:
            return None
        keys = ("rule", "version", "source", "bytecode", "hash", "author", "created_at", "trigger")
        found = dict(zip(keys, row, strict=False))
        found["damaged"] = version_damage(rule, version, bytes(row[3]), row[8])  # None when intact
        return found

    def versions(self, rule: str) -> list[dict[str, Any]]:
        rows = self._read(
            "SELECT version, hash, author, created_at, trigger FROM versions WHERE rule = %s ORDER BY version",
            (rule,))
        return [dict(zip(("version", "hash", "author", "created_at", "trigger"), r, strict=False)) for r in rows]

    def add_version(self, rule: str, source: str, bytecode: bytes, hash_: str, author: str | None,
                    at: str, trigger: str, state_if_new: str) -> int:
        """Append a version and make it current; create the rule (in `state_if_new`) if new."""
        with self.transaction():
            # the number and the row in one statement; the rule's row and the counter are queued
            try:
                number = int(self._x(
                    "INSERT INTO versions (rule, version, source, bytecode, hash, author, created_at, trigger) "
                    "SELECT %s, coalesce(max(version), 0) + 1, %s, %s, %s, %s, %s, %s "
                    "FROM versions WHERE rule = %s RETURNING version",
                    (rule, _text(source), bytecode, hash_, author, at, trigger, rule)).fetchone()[0])
                self._pending.append(("UPDATE versions SET checksum = %s WHERE rule = %s AND version = %s",
                                      (version_sum(rule, number, bytecode), rule, number)))
            except psycopg.errors.UniqueViolation:
                self._doomed = "concurrent publish"
                raise StoreError(f"rule '{rule}' was published by another process at the same moment: "
                                 "publish again") from None
            self._pending.append((
                "INSERT INTO rules (name, state, version, trigger, created_at) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (name) DO UPDATE SET version = excluded.version, trigger = excluded.trigger",
                (rule, state_if_new, number, trigger, at)))
            self.bump_generation()
        return number

    def set_state(self, rule: str, state: str) -> None:
        with self.transaction():
            self._pending.append(("UPDATE rules SET state = %s WHERE name = %s", (state, rule)))
            self.bump_generation()

    def active_versions(self) -> list[tuple[str, int, str, bytes]]:
        """(rule, version, trigger, bytecode) of every active rule's current version."""
        return [tuple(r) for r in self._read(
            "SELECT r.name, r.version, r.trigger, v.bytecode FROM rules r JOIN versions v "
            "ON v.rule = r.name AND v.version = r.version WHERE r.state = 'active' ORDER BY r.name")]

    def save_uses(self, rule: str, version: int, uses: list[tuple[str, str]]) -> None:
        if not uses:
            return
        with self.transaction():
            self._pending.append((
                "INSERT INTO uses SELECT %s, %s, t, h FROM unnest(%s::text[], %s::text[]) AS u(t, h) "
                "ON CONFLICT DO NOTHING", (rule, version, [t for t, _ in uses], [h for _, h in uses])))

    def version_uses(self, rule: str, version: int) -> list[tuple[str, str]]:
        """The (trigger, how) pairs stored for one version (`revert` copies them)."""
        rows = self._read("SELECT trigger, how FROM uses WHERE rule = %s AND version = %s ORDER BY trigger, how",
                          (rule, version))
        return [(t, h) for t, h in rows]

    def uses(self, trigger: str) -> list[dict[str, Any]]:
        rows = self._read(
            "SELECT u.rule, u.version, u.how, r.state FROM uses u JOIN rules r "
            "ON r.name = u.rule AND r.version = u.version WHERE u.trigger = %s ORDER BY u.how, u.rule",
            (trigger,))
        return [dict(zip(("rule", "version", "how", "state"), r, strict=False)) for r in rows]

    def save_decl(self, kind: str, name: str, body: Any) -> None:
        with self.transaction():
            self._pending.append((
                "INSERT INTO decls VALUES (%s, %s, %s) ON CONFLICT (kind, name) DO UPDATE SET body = excluded.body",
                (kind, name, json.dumps(body))))
            self.bump_generation()

    def decls(self, kind: str) -> dict[str, Any]:
        rows = self._read("SELECT name, body FROM decls WHERE kind = %s", (kind,))
        return {name: json.loads(body) for name, body in rows}

    # ------------------------------------------------------------------ events

    def insert_event(self, trigger: str | None, data: str, at: str, status: str, *, error: str | None = None,
                     depth: int = 0, origin: str = "external", parent_run: int | None = None,
                     owner: str | None = None, lease_expires: float | None = None) -> int:
        with self.transaction(savepoint=False):  # one statement
            row = self._x(
                "INSERT INTO events (trigger, data, at, status, error, depth, origin, parent_run, lease_owner, "
                "lease_expires) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (_text(trigger), _text(data), at, status, _text(error), depth, origin, parent_run, owner,
                 lease_expires)).fetchone()
            if status == "pending":
                self._wake(None)
            return int(row[0])

    def open_event(self, trigger: str, data: str, at: str, origin: str, owner: str, lease_expires: float) -> int:
        """Record an event about to be dispatched in this batch, as `emit` does (sqlite.py says
        why it is written `processed`)."""
        with self.transaction(savepoint=False):
            row = self._x("INSERT INTO events (trigger, data, at, status, origin) VALUES (%s, %s, %s, 'processed', %s) "
                          "RETURNING id", (trigger, data, at, origin)).fetchone()
            event_id = int(row[0])
            self._unfinished[event_id] = (owner, lease_expires)
            return event_id

    def accept_event(self, trigger: str, data: str, at: str, *, idempotency_key: str | None = None,
                     wall_now: float = 0.0, key_ttl: float = 86400.0) -> tuple[int, bool]:
        """Record a validated event `pending` for the workers (waking idle ones); returns (id,
        duplicate). The key is stored in the same transaction; a key seen less than `key_ttl`
        seconds ago returns the first event's id and records nothing. Two requests with one key
        take turns (an advisory lock on the key), so only one records an event."""
        with self.transaction():
            if idempotency_key is not None:
                self._pending.append(("SELECT pg_advisory_xact_lock(7369889, hashtext(%s))", (idempotency_key,)))
                row = self._x("SELECT event_id, created FROM idempotency_keys WHERE key = %s",
                              (idempotency_key,)).fetchone()
                if row is not None and row[1] > wall_now - key_ttl:
                    return int(row[0]), True
            event_id = int(self._x("INSERT INTO events (trigger, data, at, status) VALUES (%s, %s, %s, 'pending') "
                                   "RETURNING id", (trigger, _text(data), at)).fetchone()[0])
            if idempotency_key is not None:
                self._pending.append((
                    "INSERT INTO idempotency_keys (key, event_id, created) VALUES (%s, %s, %s) ON CONFLICT (key) "
                    "DO UPDATE SET event_id = excluded.event_id, created = excluded.created",
                    (idempotency_key, event_id, wall_now)))
            self._wake(None)
            return event_id, False

    def events_page(self, status: str | None = None, before: int | None = None, limit: int = 50
                    ) -> list[dict[str, Any]]:
        """Events newest first with an id below `before` (keyset paging: no OFFSET scan)."""
        where, params = [], []
        if status is not None:
            where.append("status = %s")
            params.append(status)
        if before is not None:
            where.append("id < %s")
            params.append(before)
        sql = "SELECT id, trigger, data, at, status, error, depth, origin FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY id DESC LIMIT {int(limit)}"
        keys = ("id", "trigger", "data", "at", "status", "error", "depth", "origin")
        return [dict(zip(keys, r, strict=False)) for r in self._read(sql, params)]

    def claim_next_event(self, owner: str, wall_now: float, lease_expires: float
                         ) -> tuple[int, str, str, str, int] | None:
        """Take the oldest pending event (or a processing one whose holder's lease expired) that
        no other worker is taking; returns (id, trigger, data, at, depth), or None."""
        with self.transaction():
            row = self._x(
                "UPDATE events SET status = 'processing', lease_owner = %s, lease_expires = %s WHERE id = ("
                "SELECT id FROM events WHERE status IN ('pending', 'processing') AND (status = 'pending' OR "
                "lease_expires IS NULL OR lease_expires < %s) ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) "
                "RETURNING id, trigger, data, at, depth", (owner, lease_expires, wall_now)).fetchone()
            return tuple(row) if row else None

    def claim_event(self, event_id: int, owner: str, wall_now: float, lease_expires: float) -> bool:
        with self.transaction():
            cur = self._x(
                "UPDATE events SET status = 'processing', lease_owner = %s, lease_expires = %s WHERE id = ("
                "SELECT id FROM events WHERE id = %s AND (status = 'pending' OR (status = 'processing' AND "
                "(lease_expires IS NULL OR lease_expires < %s))) FOR UPDATE SKIP LOCKED)",
                (owner, lease_expires, event_id, wall_now))
            return cur.rowcount == 1

    def finish_event(self, event_id: int, owner: str, filtered: dict[tuple[str, int], int],
                     seen: tuple[str, str] | None = None, unstarted: dict[tuple[str, int], int] | None = None
                     ) -> bool:
        """Mark an event processed and count it, once (fenced by the event's lease)."""
        with self.transaction(savepoint=False):
            if self._unfinished.pop(event_id, None) is None:
                cur = self._x(
                    "UPDATE events SET status = 'processed', lease_owner = NULL, lease_expires = NULL "
                    "WHERE id = %s AND status = 'processing' AND lease_owner = %s", (event_id, owner))
                if cur.rowcount != 1:
                    return False
            if filtered:
                keys = sorted(filtered)
                self._pending.append((
                    "INSERT INTO counters (rule, version, filtered) SELECT * FROM unnest(%s::text[], %s::bigint[], "
                    "%s::bigint[]) ON CONFLICT (rule, version) DO UPDATE SET filtered = counters.filtered + "
                    "excluded.filtered", ([r for r, _ in keys], [v for _, v in keys], [filtered[k] for k in keys])))
            if unstarted:
                keys = sorted(unstarted)
                self._pending.append((
                    "INSERT INTO counters (rule, version, unstarted) SELECT * FROM unnest(%s::text[], %s::bigint[], "
                    "%s::bigint[]) ON CONFLICT (rule, version) DO UPDATE SET unstarted = counters.unstarted + "
                    "excluded.unstarted", ([r for r, _ in keys], [v for _, v in keys], [unstarted[k] for k in keys])))
            if seen is not None:
                self._pending.append((
                    "INSERT INTO trigger_seen (trigger, set_id, n) VALUES (%s, %s, 1) ON CONFLICT (trigger, set_id) "
                    "DO UPDATE SET n = trigger_seen.n + 1", seen))
            return True

    def entry(self, rule: str, key: str) -> tuple[float, int] | None:
        """The last start of a run of `rule` for an entry-limit key: (epoch seconds, run id); one
        primary-key lookup, whatever the number of runs (SPEC 2.11)."""
        row = self._one("SELECT started, run_id FROM entries WHERE rule = %s AND key = %s", (rule, key))
        return (float(row[0]), int(row[1])) if row else None

    def record_entry(self, rule: str, key: str, started: float, run_id: int) -> None:
        """A run of `rule` started for `key`: it is now the last one."""
        with self.transaction(savepoint=False):
            self._pending.append((
                "INSERT INTO entries (rule, key, started, run_id) VALUES (%s, %s, %s, %s) ON CONFLICT (rule, key) "
                "DO UPDATE SET started = excluded.started, run_id = excluded.run_id", (rule, key, started, run_id)))

    def add_counts(self, column: str, counts: dict[tuple[str, int], int]) -> None:
        """Add to a per-version counter: `limited` (SPEC 2.11) or `counted` (2.10)."""
        if column not in ("limited", "counted"):
            raise ValueError(f"not a policy counter: {column}")
        if not counts:
            return
        with self.transaction(savepoint=False):
            for (rule, version), n in sorted(counts.items()):
                self._pending.append((
                    f"INSERT INTO counters (rule, version, {column}) VALUES (%s, %s, %s) ON CONFLICT (rule, version) "
                    f"DO UPDATE SET {column} = counters.{column} + excluded.{column}", (rule, version, n)))

    def policy_counts(self) -> dict[str, dict[str, int]]:
        """Per rule: its `limited` and `counted` totals over all versions."""
        return {rule: {"limited": int(limited), "counted": int(counted)} for rule, limited, counted in self._read(
            "SELECT rule, sum(limited), sum(counted) FROM counters GROUP BY rule")}

    def count_branches(self, rule: str, version: int, taken: list[tuple[int, int, int]]) -> None:
        """One more run per (split, branch, share) a run of this version took (SPEC 2.13)."""
        if not taken:
            return
        with self.transaction(savepoint=False):
            for split, branch, share in taken:
                self._pending.append((
                    "INSERT INTO split_counts (rule, version, split, branch, share, n) VALUES (%s, %s, %s, %s, %s, 1) "
                    "ON CONFLICT (rule, version, split, branch) DO UPDATE SET n = split_counts.n + 1, "
                    "share = excluded.share", (rule, version, split, branch, share)))

    def split_steps(self, run_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
        """The split choices (`branch` steps with a `split`) of these runs, in step order."""
        found: dict[int, list[dict[str, Any]]] = {}
        for i in range(0, len(run_ids), 500):
            chunk = run_ids[i:i + 500]
            marks = ", ".join(["%s"] * len(chunk))
            for run_id, data in self._read(
                    f"SELECT run_id, data FROM steps WHERE run_id IN ({marks}) AND kind = 'branch' "
                    "AND data LIKE %s ORDER BY run_id, activation, ordinal, attempt", (*chunk, '%"split"%')):
                step = json.loads(data)
                found.setdefault(int(run_id), []).append(
                    {"split": step["split"], "case": step["case"], "share": step["share"]})
        return found

    def branch_counts(self) -> list[tuple[str, int, int, int, int, int]]:
        """(rule, version, split, branch, share, runs) for every branch a split took."""
        return [tuple(int(v) if i else v for i, v in enumerate(r)) for r in self._read(
            "SELECT rule, version, split, branch, share, n FROM split_counts ORDER BY rule, version, split, branch")]

    def reject_event(self, event_id: int, error: str) -> None:
        """A claimed event whose payload no longer validates: `rejected`, with the reason."""
        with self.transaction(savepoint=False):
            self._x("UPDATE events SET status = 'rejected', error = %s WHERE id = %s", (_text(error), event_id))

    def event(self, event_id: int) -> dict[str, Any] | None:
        row = self._one("SELECT id, trigger, data, at, status, error, depth, origin FROM events WHERE id = %s",
                        (event_id,))
        keys = ("id", "trigger", "data", "at", "status", "error", "depth", "origin")
        return dict(zip(keys, row, strict=False)) if row else None

    def events(self, status: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT id, trigger, data, at, status, error, depth, origin FROM events"
        rows = self._read(sql + (" WHERE status = %s ORDER BY id" if status else " ORDER BY id"),
                          (status,) if status else None)
        keys = ("id", "trigger", "data", "at", "status", "error", "depth", "origin")
        return [dict(zip(keys, r, strict=False)) for r in rows]

    # ------------------------------------------------------------------ runs

    def get_run(self, run_id: int) -> RunRow | None:
        row = self._one(f"SELECT {_RUN_COLS} FROM runs WHERE id = %s", (run_id,))
        return _run_row(row) if row else None

    def create_run(self, rule: str, version: int, event_id: int | None, frame: bytes, deadline: float,
                   depth: int, at: str, owner: str, lease_expires: float,
                   exits: list[tuple[str, int, str, str | None, str | None]] = ()) -> RunRow | None:
        """A new run, claimed by `owner`, due now; None if this event already started this rule."""
        with self.transaction(savepoint=False):  # ON CONFLICT DO NOTHING writes nothing on a duplicate
            row = self._x(
                "INSERT INTO runs (id, rule, version, event_id, status, frame, frame_sum, deadline, depth, started_at, "
                f"updated_at, lease_owner, lease_expires, fence) SELECT n, %s, %s, %s, 'running', %s, {_SQL_FRAME_SUM}, "
                f"%s, %s, %s, %s, %s, %s, 1 FROM {_NEXT_RUN} ON CONFLICT DO NOTHING RETURNING id",
                (rule, version, event_id, frame, frame, deadline, depth, at, at, owner, lease_expires)).fetchone()
            if row is None:
                return None
            run_id = int(row[0])
            self._queue_waits(run_id, list(exits))
            return RunRow(run_id, rule, version, event_id, "running", frame, deadline, None, depth, 1, 0)

    def store_new_run(self, rule: str, version: int, event_id: int | None, depth: int, *, status: str,
                      frame: bytes | None, deadline: float | None, wait_trigger: str | None,
                      waits: list[tuple[str, int, str, str | None, str | None]], steps: list[dict[str, Any]],
                      at: str, emits: list[tuple[str, str, int, str]]) -> tuple[RunRow, list[int]] | None:
        """A run whose first activation ended before anything needed it stored, written at once
        (sqlite.py); None, writing nothing, if this event already started this rule."""
        with self.transaction(savepoint=False):
            row = self._x(
                "INSERT INTO runs (id, rule, version, event_id, status, frame, frame_sum, deadline, wait_trigger, "
                f"depth, started_at, updated_at, fence, activation) SELECT n, %s, %s, %s, %s, %s, {_SQL_FRAME_SUM}, "
                f"%s, %s, %s, %s, %s, 1, 1 FROM {_NEXT_RUN} ON CONFLICT DO NOTHING RETURNING id",
                (rule, version, event_id, status, frame, frame, deadline, wait_trigger, depth, at, at)).fetchone()
            if row is None:
                return None
            run = RunRow(int(row[0]), rule, version, event_id, status, frame, deadline, None, depth, 1, 0)
            self._queue_steps(run, steps)
            if status not in _ENDED:
                self._queue_waits(run.id, waits)
                if deadline is not None:
                    self._wake(deadline)
            return run, self._insert_emits(run.id, emits, at)

    def has_due_run(self, now: float, wall_now: float) -> bool:
        """Is there anything for claim_next_due_run? (A read: it takes no lock.)"""
        return self._one(
            "SELECT 1 FROM runs WHERE status IN ('running', 'waiting') AND deadline <= %s "
            "AND (lease_owner IS NULL OR lease_expires < %s) LIMIT 1", (now, wall_now)) is not None

    def has_claimable_event(self, wall_now: float) -> bool:
        """Is there anything for claim_next_event? (A read: it takes no lock.)"""
        return self._one(
            "SELECT 1 FROM events WHERE status IN ('pending', 'processing') AND (status = 'pending' OR "
            "lease_expires IS NULL OR lease_expires < %s) LIMIT 1", (wall_now,)) is not None

    def claim_next_due_run(self, now: float, wall_now: float, owner: str, lease_expires: float) -> RunRow | None:
        """Take the run that is due first (by deadline, then creation) and that nobody holds or is
        taking right now."""
        with self.transaction():
            row = self._x(
                "UPDATE runs SET fence = fence + 1, lease_owner = %s, lease_expires = %s, status = 'running' "
                "WHERE id = (SELECT id FROM runs WHERE status IN ('running', 'waiting') AND deadline <= %s "
                "AND (lease_owner IS NULL OR lease_expires < %s) ORDER BY deadline, id LIMIT 1 FOR UPDATE SKIP LOCKED) "
                f"RETURNING {_RUN_COLS}", (owner, lease_expires, now, wall_now)).fetchone()
            return _run_row(row) if row else None

    def next_deadline(self) -> float | None:
        row = self._one("SELECT min(deadline) FROM runs WHERE status IN ('running', 'waiting')")
        return row[0] if row else None

    def claim_run(self, run: RunRow, owner: str, wall_now: float, lease_expires: float,
                  resume_event: int | None = None) -> RunRow | None:
        """Take a run if it is still as read (same fence) and free; returns it with its new fence.
        A run another worker is taking right now is theirs (SKIP LOCKED): as on SQLite, where
        that worker's claim would have come first."""
        with self.transaction():
            if resume_event is None:
                sets = "fence = fence + 1, lease_owner = %s, lease_expires = %s, status = 'running'"
                args: tuple[Any, ...] = (owner, lease_expires)
            else:  # resumed by this event: its wait registrations go in the same transaction
                sets = ("fence = fence + 1, lease_owner = %s, lease_expires = %s, status = 'running', "
                        "resume_event = %s, deadline = 0")
                args = (owner, lease_expires, resume_event)
            row = self._x(
                f"UPDATE runs SET {sets} WHERE id = (SELECT id FROM runs WHERE id = %s AND fence = %s "
                "AND status IN ('running', 'waiting') AND (lease_owner IS NULL OR lease_expires < %s) "
                f"FOR UPDATE SKIP LOCKED) RETURNING {_RUN_COLS}", (*args, run.id, run.fence, wall_now)).fetchone()
            if row is None:
                return None
            if resume_event is not None:
                self._pending.append(("DELETE FROM waits WHERE run_id = %s AND kind = 'wait'", (run.id,)))
            return _run_row(row)

    def commit_activation(self, run: RunRow, *, status: str, frame: bytes | None, deadline: float | None,
                          wait_trigger: str | None, waits: list[tuple[str, int, str, str | None, str | None]],
                          steps: list[dict[str, Any]], error: str | None, at: str,
                          emits: list[tuple[str, str, int, str]]) -> list[int]:
        """Snapshot, wait registration, deadline, trace steps and emitted events, in one
        transaction; raises LeaseLost (and writes nothing) if the run was taken over."""
        with self.transaction(savepoint=False):
            # The fence is checked by the first write: when it fails, nothing was written.
            cur = self._x(
                "UPDATE runs SET status = %s, frame = %s, frame_sum = %s, deadline = %s, wait_trigger = %s, "
                "resume_event = NULL, error = %s, updated_at = %s, lease_owner = NULL, lease_expires = NULL, "
                "activation = activation + 1 WHERE id = %s AND fence = %s",
                (status, frame, frame_sum(run.id, frame) if frame is not None else None, deadline, wait_trigger,
                 _text(error), at, run.id, run.fence))
            if cur.rowcount != 1:
                raise LeaseLost(f"run {run.id} was taken over by another worker")
            self._queue_steps(run, steps)
            if status in _ENDED:
                self._pending.append(("DELETE FROM waits WHERE run_id = %s", (run.id,)))
            elif run.activation > 0:  # a run in its first activation has no `wait` rows (sqlite.py)
                self._pending.append(("DELETE FROM waits WHERE run_id = %s AND kind = 'wait'", (run.id,)))
            self._queue_waits(run.id, waits)
            if status not in _ENDED and deadline is not None:
                self._wake(deadline)
            return self._insert_emits(run.id, emits, at)

    def _insert_emits(self, run_id: int, emits: list[tuple[str, str, int, str]], at: str) -> list[int]:
        if not emits:
            return []
        rows = self._x(
            "INSERT INTO events (trigger, data, at, status, depth, origin, parent_run) "
            "SELECT t, d, %s, 'pending', n, o, %s FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::text[]) "
            "WITH ORDINALITY AS e(t, d, n, o, k) ORDER BY k RETURNING id",
            (at, run_id, [e[0] for e in emits], [e[1] for e in emits], [e[2] for e in emits],
             [e[3] for e in emits])).fetchall()
        return [int(r[0]) for r in rows]

    def _queue_waits(self, run_id: int, waits: list[tuple[str, int, str, str | None, str | None]]) -> None:
        """Queue the wait index rows: they are sent with the next statement (or the commit)."""
        if not waits:
            return
        rows = [(run_id, *w) for w in waits]
        self._pending.append((
            "INSERT INTO waits SELECT * FROM unnest(%s::bigint[], %s::text[], %s::bigint[], %s::text[], "
            "%s::text[], %s::text[])", [list(col) for col in zip(*rows, strict=True)]))
        fields = sorted({(trigger, kind, fld) for kind, _, trigger, fld, _ in waits if fld is not None})
        if fields:
            self._pending.append((
                "INSERT INTO wait_fields SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]) "
                "ON CONFLICT DO NOTHING", [list(col) for col in zip(*fields, strict=True)]))

    def _queue_steps(self, run: RunRow, steps: list[dict[str, Any]]) -> None:
        if steps:
            self._pending.append((
                "INSERT INTO steps (run_id, activation, ordinal, attempt, at, kind, data) "
                "SELECT %s, %s, o, 0, a, k, d FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[]) "
                "AS s(o, a, k, d) ON CONFLICT DO NOTHING",
                (run.id, run.activation, [s["ordinal"] for s in steps], [s["at"] for s in steps],
                 [s["kind"] for s in steps], [_text(s["data"]) for s in steps])))

    def defer_run(self, run: RunRow, deadline: float, at: str) -> None:
        """Put a run back to its last snapshot, due again at `deadline` (an action's retry)."""
        with self.transaction():
            cur = self._x(
                "UPDATE runs SET status = 'waiting', deadline = %s, lease_owner = NULL, lease_expires = NULL, "
                "updated_at = %s WHERE id = %s AND fence = %s", (deadline, at, run.id, run.fence))
            if cur.rowcount != 1:
                raise LeaseLost(f"run {run.id} was taken over by another worker")
            self._wake(deadline)

    def exit_run(self, run_id: int, at: str, steps: list[dict[str, Any]]) -> bool:
        """End a waiting or running run with status `exited` (its holder, if any, loses its lease:
        this waits for a worker in the middle of committing it, then fences it out)."""
        with self.transaction():
            row = self._x(f"SELECT {_RUN_COLS} FROM runs WHERE id = %s FOR UPDATE", (run_id,)).fetchone()
            run = _run_row(row) if row else None
            if run is None or run.status not in ("running", "waiting"):
                return False
            self._queue_steps(run, steps)
            self._x(
                "UPDATE runs SET status = 'exited', fence = fence + 1, lease_owner = NULL, lease_expires = NULL, "
                "deadline = NULL, updated_at = %s, activation = activation + 1 WHERE id = %s", (at, run_id))
            self._pending.append(("DELETE FROM waits WHERE run_id = %s", (run_id,)))
            return True

    def wait_candidates(self, kind: str, trigger: str, field_value: dict[str, str | None]) -> list[tuple[int, int]]:
        """(run_id, clause) of registrations on `trigger` whose correlation matches the event."""
        found = [tuple(r) for r in self._read(
            "SELECT run_id, clause FROM waits WHERE trigger = %s AND kind = %s AND field IS NULL", (trigger, kind))]
        for fld, value in field_value.items():
            found += [tuple(r) for r in self._read(
                "SELECT run_id, clause FROM waits WHERE trigger = %s AND kind = %s AND field = %s AND value = %s",
                (trigger, kind, fld, value))]
        found.sort()
        return found

    def dispatch_candidates(self, trigger: str, key_of: Callable[[str], str | None]
                            ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(run_id, clause) of the `exit` and of the `wait` registrations on `trigger` that may match
        an event (sqlite.py); one statement, one more for the correlated ones."""
        found: dict[str, list[tuple[int, int]]] = {"exit": [], "wait": []}
        fields: list[tuple[str, str]] = []
        for is_run, kind, a, b in self._read(
                "SELECT 0, kind, field, NULL::bigint FROM wait_fields WHERE trigger = %s AND kind IN ('exit', 'wait') "
                "UNION ALL SELECT 1, kind, run_id::text, clause FROM waits WHERE trigger = %s "
                "AND kind IN ('exit', 'wait') AND field IS NULL", (trigger, trigger)):
            if is_run:
                found[kind].append((int(a), int(b)))
            else:
                fields.append((kind, a))
        if fields:
            kinds, names = [k for k, _ in fields], [f for _, f in fields]
            values = [key_of(f) for f in names]
            for kind, run_id, clause in self._read(
                    "SELECT w.kind, w.run_id, w.clause FROM unnest(%s::text[], %s::text[], %s::text[]) AS q(k, f, v) "
                    "JOIN waits w ON w.trigger = %s AND w.kind = q.k AND w.field = q.f AND w.value = q.v",
                    (kinds, names, values, trigger)):
                found[kind].append((run_id, clause))
        found["exit"].sort()
        found["wait"].sort()
        return found["exit"], found["wait"]

    def wait_fields(self, kind: str, trigger: str) -> list[str]:
        rows = self._read("SELECT field FROM wait_fields WHERE trigger = %s AND kind = %s", (trigger, kind))
        return [r[0] for r in rows]

    def runs(self, rule: str | None = None, status: str | None = None, limit: int | None = None,
             run_id: int | None = None) -> list[dict]:
        sql = ("SELECT id, rule, version, status, started_at, updated_at, event_id, error, deadline, "
               "wait_trigger, depth FROM runs")
        where, params = [], []
        if run_id is not None:
            where.append("id = %s")
            params.append(run_id)
        if rule is not None:
            where.append("rule = %s")
            params.append(rule)
        if status is not None:
            where.append("status = %s")
            params.append(status)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id"
        if limit:
            sql += f" LIMIT {int(limit)}"
        keys = ("id", "rule", "version", "status", "started_at", "updated_at", "event_id", "error",
                "deadline", "wait_trigger", "depth")
        return [dict(zip(keys, r, strict=False)) for r in self._read(sql, params)]

    def run_of_event(self, rule: str, event_id: int) -> dict[str, Any] | None:
        """The run of `rule` that `event_id` started: the `(event_id, rule)` unique index."""
        sql = ("SELECT id, rule, version, status, started_at, updated_at, event_id, error, deadline, "
               "wait_trigger, depth FROM runs WHERE event_id = %s AND rule = %s")
        row = self._one(sql, (event_id, rule))
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
            where.append("rule = %s")
            params.append(rule)
        if status is not None:
            where.append("status = %s")
            params.append(status)
        if before is not None:
            where.append("id < %s")
            params.append(before)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY id DESC LIMIT {int(limit)}"
        keys = ("id", "rule", "version", "status", "started_at", "updated_at", "event_id", "error",
                "deadline", "wait_trigger", "depth")
        return [dict(zip(keys, r, strict=False)) for r in self._read(sql, params)]

    def run_gauges(self, now: float) -> tuple[int, int, float | None]:
        """(runs waiting, runs due by `now` and not yet resumed, the earliest due deadline)."""
        waiting, due, oldest = self._one(
            "SELECT (SELECT count(*) FROM runs WHERE status = 'waiting'), count(*), min(deadline) FROM runs "
            "WHERE status IN ('running', 'waiting') AND deadline <= %s AND (lease_owner IS NULL OR "
            "lease_expires < %s)", (now, now))
        return int(waiting), int(due), oldest

    # ------------------------------------------------------------------ the action journal

    def journal_get(self, run_id: int, step: int) -> list[dict[str, Any]]:
        """The journal rows of one action step (one per attempt), oldest first."""
        rows = self._read(
            "SELECT attempt, status, result, error, idem_key, result_sum FROM steps WHERE run_id = %s AND step = %s "
            "ORDER BY attempt", (run_id, step))
        return [dict(zip(("attempt", "status", "result", "error", "idem_key"), r, strict=False),
                     damaged=result_damage(r[4], r[2], r[5])) for r in rows]

    def journal_intent(self, run: RunRow, lease_expires: float, pending_steps: list[dict[str, Any]],
                       row: dict[str, Any]) -> None:
        """Record that an action is about to be called (after the trace steps that preceded it),
        fenced and durable before the effect."""
        with self.transaction():
            cur = self._x("UPDATE runs SET lease_expires = %s WHERE id = %s AND fence = %s",
                          (lease_expires, run.id, run.fence))
            if cur.rowcount != 1:
                raise LeaseLost(f"run {run.id} was taken over by another worker")
            self._queue_steps(run, pending_steps)
            self._pending.append((
                "INSERT INTO steps (run_id, activation, ordinal, attempt, at, kind, action, step, idem_key, status, "
                "args, data) VALUES (%s, %s, %s, %s, %s, 'action', %s, %s, %s, 'started', %s, %s) ON CONFLICT DO NOTHING",
                (run.id, run.activation, row["ordinal"], row["attempt"], row["at"], row["action"], row["step"],
                 row["idem_key"], _text(row["args"]), _text(row.get("data")))))
        self.commit_now()  # the intent (and the claim before it) is durable before the effect

    def journal_result(self, run: RunRow, idem_key: str, status: str, result: bytes | None,
                       error: str | None, outbox: tuple[str, str, str] | None = None) -> None:
        """Record an attempt's outcome (`done` with its result, or `failed` with the error)."""
        with self.transaction():
            if outbox is not None:
                action, args, at = outbox
                self._pending.append((
                    "INSERT INTO outbox (run_id, action, args, idem_key, created_at) SELECT %s, %s, %s, %s, %s "
                    "WHERE EXISTS (SELECT 1 FROM runs WHERE id = %s AND fence = %s FOR SHARE) ON CONFLICT DO NOTHING",
                    (run.id, action, _text(args), idem_key, at, run.id, run.fence)))
            # one statement checks the fence and writes the result: none when the run was taken over
            cur = self._x(
                "UPDATE steps SET status = %s, result = %s, result_sum = %s, error = %s WHERE idem_key = %s "
                "AND EXISTS (SELECT 1 FROM runs WHERE id = %s AND fence = %s FOR SHARE)",
                (status, result, result_sum(idem_key, result) if result is not None else None, _text(error),
                 idem_key, run.id, run.fence))
            if cur.rowcount == 0 and self._one("SELECT 1 FROM runs WHERE id = %s AND fence = %s",
                                               (run.id, run.fence)) is None:
                raise LeaseLost(f"run {run.id} was taken over by another worker")

    def steps(self, run_id: int) -> list[dict[str, Any]]:
        rows = self._read(
            "SELECT at, kind, action, step, attempt, idem_key, status, args, result, error, data, result_sum "
            "FROM steps WHERE run_id = %s ORDER BY activation, ordinal, attempt", (run_id,))
        keys = ("at", "kind", "action", "step", "attempt", "idem_key", "status", "args", "result", "error", "data")
        return [dict(zip(keys, r, strict=False), damaged=result_damage(r[5], r[8], r[11])) for r in rows]

    def outbox(self) -> list[dict[str, Any]]:
        rows = self._read("SELECT id, run_id, action, args, idem_key, created_at FROM outbox ORDER BY id")
        return [dict(zip(("id", "run_id", "action", "args", "idem_key", "created_at"), r, strict=False)) for r in rows]

    # ------------------------------------------------------------------ schedules

    def schedule_slots(self) -> dict[str, float]:
        """Each schedule rule's last fired (or skipped) slot, in epoch seconds."""
        return {rule: slot for rule, slot in self._read("SELECT rule, last_slot FROM schedules")}

    def arm_schedule(self, rule: str, at: float) -> None:
        """Nothing before `at` is owed to `rule` (it was enabled then); never moves a slot back."""
        with self.transaction():
            self._x("INSERT INTO schedules (rule, last_slot) VALUES (%s, %s) ON CONFLICT (rule) "
                    "DO UPDATE SET last_slot = greatest(schedules.last_slot, excluded.last_slot)", (rule, at))

    def rewind_schedule(self, rule: str, at: float) -> bool:
        """Move `rule`'s last slot back to `at` when it is after it (recorded by a clock set
        ahead, `--now`); True when it moved."""
        with self.transaction():
            cur = self._x("UPDATE schedules SET last_slot = %s WHERE rule = %s AND last_slot > %s", (at, rule, at))
            return cur.rowcount == 1

    def claim_schedule_slot(self, rule: str, slot: float, trigger: str, data: str, at: str, owner: str,
                            lease_expires: float) -> int | None:
        """Record `slot` as fired and its event as ours to process, in one transaction; None when
        another worker fired this slot (or a later one) first."""
        with self.transaction():
            # the row lock makes concurrent workers take turns; the second finds the slot fired
            row = self._x(
                "UPDATE schedules SET last_slot = %s, event_id = nextval(pg_get_serial_sequence('events', 'id')) "
                "WHERE rule = %s AND last_slot < %s RETURNING event_id", (slot, rule, slot)).fetchone()
            if row is None:
                return None
            self._pending.append((
                "INSERT INTO events (id, trigger, data, at, status, origin, lease_owner, lease_expires) "
                "VALUES (%s, %s, %s, %s, 'processing', 'schedule', %s, %s)",
                (row[0], trigger, data, at, owner, lease_expires)))
            return int(row[0])

    def schedule_rule(self, event_id: int) -> str | None:
        """The rule a schedule event was fired for (it starts that rule only)."""
        row = self._one("SELECT rule FROM schedules WHERE event_id = %s", (event_id,))
        return row[0] if row else None
