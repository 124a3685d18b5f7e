"""The SQLite store on real files: WAL, versions, fencing of run writes, the wait index, the journal."""

from __future__ import annotations

import sqlite3
import time

import pytest

from whenthen.runtime.store import LeaseLost, StoreError, inspect
from whenthen.runtime.store import SQLiteStore as Store


def new_run(store: Store, event_id: int = 1, owner: str = "w1", lease: float = 60.0):
    return store.create_run("R", 1, event_id, b"frame", 0.0, 0, "t0", owner, time.time() + lease,
                            [("exit", 0, "order.placed", "customer_id", '"c1"')])


def test_file_database_uses_wal_and_survives_reopening(tmp_path):
    path = tmp_path / "s.db"
    store = Store(str(path))
    assert inspect.journal_mode(store) == "wal"
    store.add_version("R", "src", b"code", "h1", "me", "t0", "a.b", "paused")
    store.close()
    again = Store(str(path))
    assert again.rule("R") == {"name": "R", "state": "paused", "version": 1, "trigger": "a.b", "created_at": "t0"}
    assert again.add_version("R", "src2", b"code2", "h2", None, "t1", "a.b", "active") == 2
    assert again.rule("R")["state"] == "paused"  # an existing rule keeps its state
    assert [v["version"] for v in again.versions("R")] == [1, 2]


def test_not_a_database_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open database"):
        Store(str(bad))


def test_one_run_per_event_and_rule(tmp_path):
    store = Store(str(tmp_path / "s.db"))
    assert new_run(store) is not None
    assert new_run(store) is None  # a retried event does not start the rule twice


def test_fencing_rejects_a_stale_holder(tmp_path):
    store = Store(str(tmp_path / "s.db"))
    run = new_run(store, lease=-1)  # lease already expired: anyone may take it
    taken = store.claim_next_due_run(1.0, time.time(), "w2", time.time() + 60)
    assert taken is not None and taken.fence == run.fence + 1
    with pytest.raises(LeaseLost):
        store.commit_activation(run, status="completed", frame=None, deadline=None, wait_trigger=None, waits=[],
                                steps=[], error=None, at="t1", emits=[("a.b", "{}", 1, "emit")])
    with pytest.raises(LeaseLost):
        store.journal_intent(run, time.time() + 60, [], {"ordinal": 0, "attempt": 1, "at": "t", "action": "x",
                                                         "step": 0, "idem_key": "k", "args": "{}"})
    assert store.events() == []  # nothing of the stale activation was written
    ids = store.commit_activation(taken, status="waiting", frame=b"f2", deadline=5.0, wait_trigger="m.r",
                                  waits=[("wait", 0, "m.r", "thread", '"A"')], steps=[], error=None, at="t1",
                                  emits=[("a.b", "{}", 1, "emit")])
    assert len(ids) == 1 and store.events()[0]["status"] == "pending"
    assert store.get_run(run.id).status == "waiting"


def test_held_runs_are_not_claimed_until_the_lease_expires(tmp_path):
    store = Store(str(tmp_path / "s.db"))
    new_run(store, lease=60)
    assert store.claim_next_due_run(1.0, time.time(), "w2", time.time() + 60) is None


def test_wait_index_lookup_by_correlation(tmp_path):
    store = Store(str(tmp_path / "s.db"))
    run = new_run(store)
    store.commit_activation(run, status="waiting", frame=b"f", deadline=None, wait_trigger="m.r",
                            waits=[("wait", 0, "m.r", "thread", '"A"')], steps=[], error=None, at="t", emits=[])
    assert store.wait_fields("wait", "m.r") == ["thread"]
    assert store.wait_candidates("wait", "m.r", {"thread": '"A"'}) == [(run.id, 0)]
    assert store.wait_candidates("wait", "m.r", {"thread": '"B"'}) == []
    assert store.wait_candidates("exit", "order.placed", {"customer_id": '"c1"'}) == [(run.id, 0)]
    assert store.exit_run(run.id, "t2", [])
    assert store.wait_candidates("exit", "order.placed", {"customer_id": '"c1"'}) == []
    assert not store.exit_run(run.id, "t3", [])  # already ended


def test_finish_event_counts_filtered_once(tmp_path):
    store = Store(str(tmp_path / "s.db"))
    event_id = store.insert_event("a.b", "{}", "t", "processing", owner="w1", lease_expires=time.time() + 60)
    assert store.finish_event(event_id, "w1", {("R", 1): 2})
    assert not store.finish_event(event_id, "w1", {("R", 1): 2})
    assert store.filtered_counts() == {"R": 2}


def test_transactions_roll_back_on_error(tmp_path):
    store = Store(str(tmp_path / "s.db"))
    with pytest.raises(sqlite3.IntegrityError):
        with store.transaction() as c:
            c.execute("INSERT INTO outbox (action, args, idem_key, created_at) VALUES ('a', '{}', 'k', 't')")
            c.execute("INSERT INTO outbox (action, args, idem_key, created_at) VALUES ('a', '{}', 'k', 't')")
    assert store.outbox() == []
