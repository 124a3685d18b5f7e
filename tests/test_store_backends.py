"""Store methods the engine tests do not reach, the same on both backends."""

from __future__ import annotations

from whenthen.api import compile as compile_rules
from whenthen.runtime.engine import Engine
from whenthen.runtime.store import open_store


def test_accept_event_keys_pages_and_gauges(db):
    store = open_store(db)
    first, dup = store.accept_event("t.x", '{"n":1}', "2026-01-01T00:00:00Z", idempotency_key="k", wall_now=100.0)
    again, dup2 = store.accept_event("t.x", '{"n":1}', "2026-01-01T00:00:00Z", idempotency_key="k", wall_now=150.0)
    assert (dup, again, dup2) == (False, first, True)
    later, dup3 = store.accept_event("t.x", '{"n":1}', "2026-01-01T00:00:00Z", idempotency_key="k",
                                     wall_now=100.0 + 86400.0 + 1)  # the key expired: a new event
    assert later > first and not dup3
    other, _ = store.accept_event("t.x", '{"n":2}', "2026-01-01T00:00:00Z")
    assert [e["id"] for e in store.events_page()] == [other, later, first]
    assert [e["id"] for e in store.events_page(status="pending", before=later)] == [first]
    assert store.has_claimable_event(0.0)
    assert store.schema_version() >= 1
    store.close()


def test_runs_page_and_gauges(db):
    engine = Engine(db)
    engine.publish(compile_rules('trigger t.x { n: int }\nrule "W" when t.x then wait 1h\n', engine.schema),
                   enable=True)
    ids = [engine.emit("t.x", {"n": n}) for n in range(3)]
    runs = engine.store.runs_page(rule="W")
    assert [r["event_id"] for r in runs] == ids[::-1]
    assert [r["id"] for r in engine.store.runs_page(before=runs[0]["id"], limit=1)] == [runs[1]["id"]]
    waiting, due, oldest = engine.store.run_gauges(runs[0]["deadline"] - 1)
    assert (waiting, due, oldest) == (3, 0, None)
    waiting, due, oldest = engine.store.run_gauges(runs[0]["deadline"] + 1)
    assert waiting == 3 and due == 3 and oldest == min(r["deadline"] for r in runs)
    engine.close()
