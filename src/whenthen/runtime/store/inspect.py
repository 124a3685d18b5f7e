"""Test and benchmark inspection of a store's tables: counts, one stored blob, deliberate damage."""

from __future__ import annotations

from typing import Any

from whenthen.runtime.store.protocol import Store

# the tables and blob columns a caller may name (never free SQL)
_TABLES = {"meta", "rules", "versions", "uses", "decls", "events", "runs", "steps", "waits", "wait_fields",
           "counters", "active_sets", "trigger_seen", "outbox", "schedules"}
_BLOBS = {("runs", "frame"), ("versions", "bytecode"), ("steps", "result")}
# the checksum column of each blob column
_SUMS = {("runs", "frame"): "frame_sum", ("versions", "bytecode"): "checksum", ("steps", "result"): "result_sum"}


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
