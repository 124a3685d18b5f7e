"""The engine's storage: `open_store` picks the backend for a path or URL (see protocol.py)."""

from __future__ import annotations

import os

from whenthen.runtime.store.protocol import LeaseLost, RunRow, Store, StoreError, StoreUnavailable
from whenthen.runtime.store.sqlite import SQLiteStore

__all__ = ["LeaseLost", "RunRow", "SQLiteStore", "Store", "StoreError", "StoreUnavailable", "is_url",
           "open_store"]


def is_url(target: str | os.PathLike[str]) -> bool:
    """Whether a --db value names a PostgreSQL server rather than a SQLite file."""
    return str(target).startswith(("postgresql://", "postgres://"))


def open_store(target: str | os.PathLike[str] = ":memory:", *, read_only: bool = False) -> Store:
    """The store for a SQLite path (`":memory:"` included) or a `postgresql://` URL.

    `read_only` (commands that only read): never creates or writes the database; a missing one,
    or one that needs an upgrade, is a StoreError."""
    if is_url(target):
        from whenthen.runtime.store.postgres import PostgresStore  # psycopg loads only for a server

        return PostgresStore(str(target), read_only=read_only)
    return SQLiteStore(str(target), read_only=read_only)
