"""Test and benchmark inspection of a store's tables: counts, rows, one stored blob, deliberate damage."""

from __future__ import annotations

import re
from typing import Any

from whenthen.runtime.store.protocol import Store

# the tables and blob columns a caller may name (never free SQL)
_TABLES = {"meta", "rules", "versions", "uses", "decls", "events", "runs", "steps", "waits", "wait_fields",
           "counters", "active_sets", "trigger_seen", "outbox", "schedules", "idempotency_keys"}
_BLOBS = {("runs", "frame"), ("versions", "bytecode"), ("steps", "result")}
# the checksum column of each blob column
_SUMS = {("runs", "frame"): "frame_sum", ("versions", "bytecode"): "checksum", ("steps", "result"): "result_sum"}


_COLUMN = re.compile(r"[a-z_]+\??")


class _Conn:
    """The store's connection, taking `?` placeholders on either backend."""

    def __init__(self, store: Store):
        self.conn = store.conn  # type: ignore[attr-defined]
        self.postgres = getattr(store, "dialect", "sqlite") == "postgresql"

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self.conn.execute(sql.replace("?", "%s") if self.postgres else sql, params)


def _conn(store: Store) -> _Conn:
    return _Conn(store)


def rows(store: Store, table: str, *columns: str) -> list[tuple[Any, ...]]:
    """Some columns of every row, oldest first; `name?` gives 1 where the column is set, else 0."""
    if table not in _TABLES or not columns or not all(_COLUMN.fullmatch(c) for c in columns):
        raise ValueError(f"unknown table or columns: {table} {columns}")
    select = ", ".join(f"CASE WHEN {c[:-1]} IS NULL THEN 0 ELSE 1 END" if c.endswith("?") else c for c in columns)
    order = " ORDER BY id" if table in ("events", "runs", "outbox") else ""
    return [tuple(r) for r in _conn(store).execute(f"SELECT {select} FROM {table}{order}").fetchall()]


def count(store: Store, table: str) -> int:
    """How many rows a table holds."""
    if table not in _TABLES:
        raise ValueError(f"unknown table {table!r}")
    return int(_conn(store).execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def journal_mode(store: Store) -> str:
    """SQLite's journal mode (`wal` for files)."""
    return str(_conn(store).execute("PRAGMA journal_mode").fetchone()[0])


def first_blob(store: Store, table: str, column: str) -> bytes:
    """The blob of a table's first row (the frame a benchmark's raw baseline writes)."""
    if (table, column) not in _BLOBS:
        raise ValueError(f"unknown blob column {table}.{column}")
    return bytes(_conn(store).execute(f"SELECT {column} FROM {table} LIMIT 1").fetchone()[0])


def overwrite_blobs(store: Store, table: str, column: str, blob: bytes) -> None:
    """Replace every row's blob, leaving the checksums as they were (damage tests)."""
    if (table, column) not in _BLOBS:
        raise ValueError(f"unknown blob column {table}.{column}")
    _conn(store).execute(f"UPDATE {table} SET {column} = ?", (blob,))


def _blob_column(table: str, column: str) -> None:
    if (table, column) not in _BLOBS:
        raise ValueError(f"unknown blob column {table}.{column}")


def blob_rows(store: Store, table: str, column: str) -> list[tuple[int, bytes]]:
    """(row id, blob) of every row that holds a blob in that column, in row order."""
    _blob_column(table, column)
    rows = _conn(store).execute(f"SELECT rowid, {column} FROM {table} WHERE {column} IS NOT NULL ORDER BY rowid")
    return [(int(rowid), bytes(blob)) for rowid, blob in rows]


def set_blob(store: Store, table: str, column: str, row_id: int, blob: bytes) -> None:
    """Replace one row's blob, leaving its checksum as it was (damage tests)."""
    _blob_column(table, column)
    _conn(store).execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?", (blob, row_id))


def copy_blob(store: Store, table: str, column: str, from_row: int, to_row: int) -> None:
    """Copy one row's blob and its checksum into another row (a misplaced row, as a bad restore
    or a bug could leave it)."""
    _blob_column(table, column)
    summed = _SUMS[(table, column)]
    conn = _conn(store)
    blob, stored = conn.execute(f"SELECT {column}, {summed} FROM {table} WHERE rowid = ?", (from_row,)).fetchone()
    conn.execute(f"UPDATE {table} SET {column} = ?, {summed} = ? WHERE rowid = ?", (blob, stored, to_row))


def rewrite_bytecode(store: Store, rule: str, version: int, blob: bytes) -> None:
    """Store other bytecode for a version with its correct checksum (an older format's blob, as
    the schema upgrade sums the blobs it finds)."""
    from whenthen.runtime.store.checksum import version_sum

    _conn(store).execute("UPDATE versions SET bytecode = ?, checksum = ? WHERE rule = ? AND version = ?",
                         (blob, version_sum(rule, version, blob), rule, version))
