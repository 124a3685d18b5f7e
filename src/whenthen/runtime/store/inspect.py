"""Test and benchmark inspection of a store's tables: counts, one stored blob, deliberate damage."""

from __future__ import annotations

from typing import Any

from whenthen.runtime.store.protocol import Store

# the tables and blob columns a caller may name (never free SQL)
_TABLES = {"meta", "rules", "versions", "uses", "decls", "events", "runs", "steps", "waits", "wait_fields",
           "counters", "active_sets", "trigger_seen", "outbox", "schedules"}
_BLOBS = {("runs", "frame"), ("versions", "bytecode"), ("steps", "result")}


def _conn(store: Store) -> Any:
    return store.conn  # type: ignore[attr-defined]


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
    """Replace every row's blob (damage tests)."""
    if (table, column) not in _BLOBS:
        raise ValueError(f"unknown blob column {table}.{column}")
    _conn(store).execute(f"UPDATE {table} SET {column} = ?", (blob,))
