"""Checksums (SPEC 3.2): a damaged or foreign blob never runs, and never fails silently."""

from __future__ import annotations

import datetime as dt
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from whenthen.api import compile as compile_rules
from whenthen.runtime.clock import SimulatedClock
from whenthen.runtime.engine import Engine, RetryPolicy
from whenthen.runtime.store import inspect

T0 = dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.UTC)
RULES = """
trigger order.placed { id: str, amount: int }
rule "Pay" when order.placed then
  wait 1h
  let p = price(id: id, amount: amount)
  charge(id: id, total: p.total, note: "card ending 4242")
end
"""
ORDERS = [("A1", 5), ("B22", 70), ("C333", 900)]
EXPECTED = {oid: {"id": oid, "total": amount * 2, "note": "card ending 4242"} for oid, amount in ORDERS}


class Shop:
    """The host actions: `price` journals a result; `charge` fails its first attempt, so the retry
    replays `price` from the journal (the journaled result is read back)."""

    def __init__(self) -> None:
        self.charged: list[dict] = []
        self.tried: set[str] = set()

    def actions(self) -> list:
        def price(id: str, amount: int) -> dict[str, int]:
            return {"total": amount * 2}

        def charge(id: str, total: int, note: str) -> None:
            if id not in self.tried:
                self.tried.add(id)
                raise RuntimeError("card network busy")
            self.charged.append({"id": id, "total": total, "note": note})

        return [price, charge]


def engine_on(db: str, clock: SimulatedClock, shop: Shop) -> Engine:
    engine = Engine(db, clock, retry=RetryPolicy(attempts=3, base_delay=1.0, factor=1.0))
    for fn in shop.actions():
        engine.action(fn)
    return engine


def shop_engine(db: str = ":memory:") -> tuple[Engine, SimulatedClock, Shop]:
    clock = SimulatedClock(T0)
    shop = Shop()
    engine = engine_on(db, clock, shop)
    engine.publish(compile_rules(RULES, engine.schema), enable=True)
    return engine, clock, shop


def to_the_retry(engine: Engine, clock: SimulatedClock) -> None:
    """Every run has its snapshot, its version's bytecode and a journaled result stored, and
    is due again for `charge`'s second attempt."""
    for oid, amount in ORDERS:
        engine.emit("order.placed", {"id": oid, "amount": amount})
    clock.advance(dt.timedelta(hours=1))
    engine.run_due()
    assert [r["status"] for r in engine.runs()] == ["waiting"] * 3


def finish(engine: Engine, clock: SimulatedClock) -> None:
    for step in (2, 2, 2, 3600, 2, 2):  # the retries, then a later order's wait and retry
        clock.advance(dt.timedelta(seconds=step))
        engine.run_due()
        engine.process_pending()


def test_undamaged_the_runs_charge_each_order_once() -> None:
    engine, clock, shop = shop_engine()
    to_the_retry(engine, clock)
    finish(engine, clock)
    assert sorted(shop.charged, key=lambda c: c["id"]) == [EXPECTED[oid] for oid, _ in ORDERS]
    assert [r["status"] for r in engine.runs()] == ["completed"] * 3


BLOBS = [("runs", "frame"), ("versions", "bytecode"), ("steps", "result")]


@pytest.mark.slow
def test_200_trials_of_flipped_bytes_never_alter_arguments_nor_hide_a_failure(tmp_path: Path) -> None:
    rng = random.Random(20261203)
    detected = {blob: 0 for blob in BLOBS}
    for trial in range(200):
        db = str(tmp_path / f"t{trial}.db")
        engine, clock, shop = shop_engine(db)
        to_the_retry(engine, clock)
        table, column = blob = rng.choice(BLOBS)
        rows = inspect.blob_rows(engine.store, table, column)
        row_id, data = rng.choice(rows)
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            damaged[rng.randrange(len(damaged))] ^= rng.randint(1, 255)
        if bytes(damaged) == data:
            continue
        inspect.set_blob(engine.store, table, column, row_id, bytes(damaged))
        engine.close()
        engine = engine_on(db, clock, shop)  # the next worker reads what is stored
        engine.emit("order.placed", {"id": "D4", "amount": 1})  # a new event, after the damage
        finish(engine, clock)

        # never altered arguments: every charge is exactly what its order asked for, once
        for call in shop.charged:
            assert call == EXPECTED.get(call["id"], {"id": "D4", "total": 2, "note": "card ending 4242"}), call
        assert len({c["id"] for c in shop.charged}) == len(shop.charged)
        # never hidden: each of the three runs completed with its charge, or failed naming the damage
        failed = {json.loads(e["data"])["run_id"] for e in engine.events() if e["trigger"] == "run.failed"}
        runs = engine.runs()
        charged = {c["id"] for c in shop.charged}
        for run in runs[:3]:
            order = engine.run(run["id"])["event"]["data"]["id"]
            if run["status"] == "completed":
                assert order in charged
            else:
                assert run["status"] == "failed", run
                assert "checksum" in run["error"], run["error"]
                assert str(run["id"]) in failed and order not in charged
        # the new event started its run, or the version is shown unloadable with the event counted
        [pay] = engine.rules()
        if len(runs) == 3:
            assert "does not match its checksum" in pay["unloadable"] and pay["unstarted"] == 1
        else:
            assert "unloadable" not in pay and runs[3]["status"] == "completed"
        if len(charged) < 4:
            detected[blob] += 1
        engine.close()
    # every blob kind was damaged and caught many times over
    assert all(n >= 40 for n in detected.values()), detected


def test_an_edited_string_constant_in_the_bytecode_never_runs(tmp_path: Path) -> None:
    published, clock, shop = shop_engine(str(tmp_path / "wt.db"))
    (row_id, blob), = inspect.blob_rows(published.store, "versions", "bytecode")
    at = blob.index(b"card ending 4242")
    edited = blob[:at] + b"card ending 4243" + blob[at + 16:]
    inspect.set_blob(published.store, "versions", "bytecode", row_id, edited)
    published.close()
    engine = engine_on(str(tmp_path / "wt.db"), clock, shop)
    engine.emit("order.placed", {"id": "A1", "amount": 5})
    assert engine.runs() == []
    [pay] = engine.rules()
    assert pay["unloadable"] == ("version 1 of rule 'Pay' is unloadable: its stored bytecode does not match "
                                 "its checksum")
    assert pay["unstarted"] == 1
    clock.advance(dt.timedelta(hours=2))
    engine.run_due()
    assert shop.charged == []


def test_a_snapshot_copied_into_another_run_is_refused() -> None:
    engine, clock, shop = shop_engine()
    for oid, amount in ORDERS[:2]:
        engine.emit("order.placed", {"id": oid, "amount": amount})
    (first, _), (second, _) = inspect.blob_rows(engine.store, "runs", "frame")
    inspect.copy_blob(engine.store, "runs", "frame", first, second)  # run 2 now holds run 1's snapshot
    clock.advance(dt.timedelta(hours=1))
    finish(engine, clock)
    one, two = engine.runs()
    assert one["status"] == "completed" and two["status"] == "failed"
    assert two["error"] == ("the snapshot of run 2 does not match its checksum (damaged, or copied from another "
                            "run); the run cannot continue")
    assert shop.charged == [EXPECTED["A1"]]  # run 1's charge happened once, never repeated by run 2
    assert any(e["trigger"] == "run.failed" and json.loads(e["data"])["run_id"] == "2" for e in engine.events())


def test_rules_shows_an_unloadable_version_and_the_events_it_missed(tmp_path: Path) -> None:
    db = tmp_path / "wt.db"
    engine, _clock, _shop = shop_engine(str(db))
    inspect.overwrite_blobs(engine.store, "versions", "bytecode", b"\x01\x02")
    engine.close()

    def whenthen(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "whenthen", "--db", str(db), *args],
                              capture_output=True, text=True, timeout=60)

    for n in range(2):
        assert whenthen("emit", "order.placed", json.dumps({"id": f"X{n}", "amount": 1})).returncode == 0
    listed = whenthen("rules")
    assert listed.returncode == 0 and "Traceback" not in listed.stderr
    assert listed.stdout.splitlines()[1].split()[:3] == ["Pay", "1", "unloadable"]
    assert listed.stderr.strip() == ("warning: version 1 of rule 'Pay' is unloadable: its stored bytecode does not "
                                     "match its checksum; 2 event(s) it could not start")
    [pay] = json.loads(whenthen("rules", "--format", "json").stdout)
    assert pay["state"] == "active" and pay["unstarted"] == 2 and pay["runs"] == 0
