"""`db copy`: a whole database into an empty one, between any two backends, through the store protocol."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from whenthen.runtime.store import StoreError, is_url, open_store
from whenthen.runtime.store.schema import TABLES


def copy_database(source: str, target: str) -> dict[str, int]:
    """Copy every table of `source` into `target` (created if missing; refused unless empty), row
    for row with ids, checksums, leases and counters as they are, in one transaction on the
    target, from one consistent read of the source, which is never written. Returns the rows
    copied per table, and `waiting`, the waiting runs among them."""
    if (source == target or not is_url(source) and not is_url(target) and os.path.exists(source)
            and os.path.exists(target) and os.path.samefile(source, target)):
        raise StoreError(f"cannot copy {source} onto itself")
    src = open_store(source, read_only=True)  # missing, older or newer: refused before anything is written
    try:
        if not is_url(target) and os.path.exists(target):
            _refuse_unless_empty(open_store(target, read_only=True), target)
        dst = open_store(target)
        try:
            _refuse_unless_empty(dst, target)
            counts: dict[str, int] = {}
            waiting = [0]
            with src.snapshot(), dst.batch():  # all or nothing on the target
                for table in TABLES:
                    rows = src.export_rows(table)
                    if table == "runs":
                        rows = _count_waiting(rows, waiting)
                    counts[table] = dst.import_rows(table, rows)
            counts["waiting"] = waiting[0]
            return counts
        finally:
            dst.close()
    finally:
        src.close()


def _refuse_unless_empty(store: Any, target: str) -> None:
    try:
        if not store.is_empty():
            raise StoreError(f"{target} is not empty: db copy writes only into an empty database")
    finally:
        if store.read_only:
            store.close()


def _count_waiting(rows: Iterator[tuple[Any, ...]], waiting: list[int]) -> Iterator[tuple[Any, ...]]:
    status = TABLES["runs"][0].index("status")
    for row in rows:
        if row[status] == "waiting":
            waiting[0] += 1
        yield row
