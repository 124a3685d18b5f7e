"""The engine through its Python API: versions, dispatch, waits, exits, emits, failures, actions."""

from __future__ import annotations

import datetime as dt
import json
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from whenthen.api import compile as compile_rules
from whenthen.diagnostics import EventError
from whenthen.runtime.clock import SimulatedClock
from whenthen.runtime.engine import Engine, EngineError, RetryPolicy
from whenthen.runtime.events import validate_event
from whenthen.runtime.store import inspect, open_store
from whenthen.values import unpack

T0 = dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.UTC)

SCHEMA = """
trigger guest.added { id: str, email: str, category: 'VIP' | 'Visitor', company: str? }
trigger message.sent { client_id: str, thread: str }
trigger message.received { client_id: str, thread: str, text: str }
trigger order.placed { customer_id: str }
trigger ping.sent { n: int }
"""
DECLARED = "action set_status(guest_id: str, status: str) -> { ok: bool }\n"


class Status(BaseModel):
    ok: bool


def make(db, rules: str, *, actions=(), retry=None, enable=True) -> tuple[Engine, SimulatedClock]:
    clock = SimulatedClock(T0)
    engine = Engine(db, clock, retry=retry or RetryPolicy(attempts=3, base_delay=0.001))
    for fn in actions:
        engine.action(fn)
    engine.publish(compile_rules(SCHEMA + rules, engine.schema), author="test", enable=enable)
    return engine, clock


def advance(engine: Engine, clock: SimulatedClock, delta: dt.timedelta) -> int:
    clock.advance(delta)
    return engine.run_due()


def action_steps(engine: Engine, run_id: int) -> list[dict]:
    return [s for s in engine.run(run_id)["steps"] if s["kind"] == "action"]


def test_filter_starts_runs_and_counts_filtered(db):
    engine, _ = make(db, """
rule "VIP" when guest.added where category = 'VIP' then send_email(to: email, subject: "hi"); wait 1h; log(message: 'x')
""")
    engine.emit("guest.added", {"id": "g1", "email": "a@x.io", "category": "VIP"})
    engine.emit("guest.added", {"id": "g2", "email": "b@x.io", "category": "Visitor"})
    runs = engine.runs(rule="VIP")
    assert [r["status"] for r in runs] == ["waiting"]
    assert engine.rules()[0]["filtered"] == 1
    # an event seen only by nobody still counts as filtered per rule and version
    assert engine.store.filtered_by_version() == {("VIP", 1): 1}


def test_wait_resumes_when_due_and_outbox_records_email(db):
    engine, clock = make(db, """
rule "W" when guest.added then send_email(to: email, subject: "one"); wait 24h; send_email(to: email, subject: "two")
""")
    engine.emit("guest.added", {"id": "g1", "email": "a@x.io", "category": "VIP"})
    assert advance(engine, clock, dt.timedelta(hours=23)) == 0
    assert advance(engine, clock, dt.timedelta(hours=1)) == 1
    run = engine.runs()[0]
    assert run["status"] == "completed"
    steps = action_steps(engine, run["id"])
    assert [s["args"]["subject"] for s in steps] == ["one", "two"]
    assert steps[1]["at"] == "2026-11-23T10:00:00Z"
    assert steps[0]["result"]["message_id"].startswith("outbox:")
    assert [o["args"]["subject"] for o in engine.outbox()] == ["one", "two"]
    assert engine.outbox()[0]["args"]["body"] == ""  # defaults applied for the host


def test_wait_for_matches_by_correlation_only_after_the_wait_began(db):
    engine, clock = make(db, """
rule "Reply"
when message.sent
then
  let reply = wait for message.received where thread = message.thread within 24h
  if reply is null then log(message: "none {thread}") else log(message: "got {reply.text}") end
end
""")
    # an event before the wait began cannot match
    engine.emit("message.received", {"client_id": "c1", "thread": "A", "text": "early"})
    engine.emit("message.sent", {"client_id": "c1", "thread": "A"})
    engine.emit("message.sent", {"client_id": "c2", "thread": "B"})
    clock.advance(dt.timedelta(hours=1))
    engine.emit("message.received", {"client_id": "c2", "thread": "C", "text": "wrong"})
    engine.emit("message.received", {"client_id": "c1", "thread": "A", "text": "thanks"})
    advance(engine, clock, dt.timedelta(hours=24))
    messages = {r["id"]: [s["args"]["message"] for s in action_steps(engine, r["id"])] for r in engine.runs()}
    assert sorted(messages.values()) == [["got thanks"], ["none B"]]
    # the lookup went through the index: a registration per waiting run, removed when resumed
    assert inspect.count(engine.store, "waits") == 0


def test_exit_beats_a_matching_wait_for(db):
    engine, _ = make(db, """
rule "Both"
when order.placed
exit when message.received where client_id = order.customer_id
then
  wait for message.received where client_id = order.customer_id
  log(message: 'resumed')
end
""")
    engine.emit("order.placed", {"customer_id": "c1"})
    engine.emit("message.received", {"client_id": "c1", "thread": "t", "text": "x"})
    run = engine.runs()[0]
    assert run["status"] == "exited"
    assert action_steps(engine, run["id"]) == []
    assert [s["kind"] for s in engine.run(run["id"])["steps"]][-1] == "exit"


def test_exit_applies_only_to_runs_that_already_existed(db):
    engine, _ = make(db, """
rule "Self" when ping.sent exit when ping.sent then wait 1h
""")
    engine.emit("ping.sent", {"n": 1})
    engine.emit("ping.sent", {"n": 2})
    assert [r["status"] for r in engine.runs()] == ["exited", "waiting"]


def test_emit_chain_is_fifo_after_the_emitter_suspends_and_depth_is_limited(db):
    engine, _ = make(db, """
rule "Loop" when ping.sent then emit ping.sent(n: n + 1)
""")
    engine.emit("ping.sent", {"n": 0})
    runs = engine.runs()
    assert len(runs) == 33  # depths 0..32; the run at depth 32 cannot emit
    assert runs[-1]["status"] == "failed" and "emit depth exceeded" in runs[-1]["error"]
    failed = [e for e in engine.events() if e["trigger"] == "run.failed"]
    assert len(failed) == 1


def test_failed_action_retries_then_fires_action_failed_and_run_failed(db):
    calls: list[str] = []

    def set_status(guest_id: str, status: str, idempotency_key: str) -> dict:
        calls.append(idempotency_key)
        raise RuntimeError("backend down")

    engine, clock = make(db, """
rule "Try" when guest.added then set_status(guest_id: id, status: 'x')
rule "Alert" when action.failed then log(message: "{action.action}: {action.error}")
rule "RunAlert" when run.failed then log(message: run.error)
""", actions=[set_status], retry=RetryPolicy(attempts=3, base_delay=60, factor=2, max_delay=600))
    engine.emit("guest.added", {"id": "g1", "email": "a@x.io", "category": "VIP"})
    assert len(calls) == 1
    # the run waits for its retry (durably: nothing sleeps) and is due after 60 s, then 120 s more
    assert engine.runs(rule="Try")[0]["status"] == "waiting"
    assert advance(engine, clock, dt.timedelta(seconds=59)) == 0
    assert advance(engine, clock, dt.timedelta(seconds=1)) == 1 and len(calls) == 2
    assert advance(engine, clock, dt.timedelta(seconds=119)) == 0
    assert advance(engine, clock, dt.timedelta(seconds=1)) == 1 and len(calls) == 3
    run_id = engine.runs(rule="Try")[0]["id"]
    assert calls == [f"{run_id}:0:1", f"{run_id}:0:2", f"{run_id}:0:3"]
    assert engine.runs(rule="Try")[0]["status"] == "failed"
    alert = engine.runs(rule="Alert")[0]
    assert action_steps(engine, alert["id"])[0]["args"]["message"] == "set_status: backend down"
    assert engine.runs(rule="RunAlert")[0]["status"] == "completed"
    attempts = action_steps(engine, run_id)
    assert [(s["attempt"], s["status"], s["at"][11:]) for s in attempts] == [
        (1, "failed", "10:00:00Z"), (2, "failed", "10:01:00Z"), (3, "failed", "10:03:00Z")]


def test_retry_succeeds_and_result_is_typed(db):
    outcomes = [RuntimeError("flaky"), Status(ok=True)]

    def set_status(guest_id: str, status: str) -> Status:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    engine, clock = make(db, """
rule "R" when guest.added then
  log(message: 'before')
  let r = set_status(guest_id: id, status: 'x')
  log(message: "ok={r.ok}")
end
""", actions=[set_status])
    engine.emit("guest.added", {"id": "g1", "email": "a@x.io", "category": "VIP"})
    advance(engine, clock, dt.timedelta(seconds=1))
    run = engine.runs()[0]
    # the replay after the backoff did not call `log` again: its result came from the journal
    assert [s["args"].get("message") for s in action_steps(engine, run["id"])] == [
        "before", None, None, "ok=true"]
    assert run["status"] == "completed"
    assert action_steps(engine, run["id"])[-1]["args"] == {"message": "ok=true"}


def test_unimplemented_host_action_fails_clearly(db):
    engine, _ = make(db, DECLARED + "rule \"R\" when guest.added then set_status(guest_id: id, status: 'x')\n")
    engine.emit("guest.added", {"id": "g1", "email": "a@x.io", "category": "VIP"})
    run = engine.runs()[0]
    assert run["status"] == "failed"
    assert "no implementation" in run["error"]


def test_versions_pinning_revert_and_states(db):
    clock = SimulatedClock(T0)
    engine = Engine(db, clock)
    v1 = SCHEMA + 'rule "V" when ping.sent then log(message: "v1 a"); wait 1h; log(message: "v1 b")\n'
    v2 = SCHEMA + 'rule "V" when ping.sent then log(message: "v2 a"); wait 1h; log(message: "v2 b")\n'
    report = engine.publish(compile_rules(v1, engine.schema))
    assert (report[0].version, report[0].new_version, report[0].state) == (1, True, "paused")
    engine.emit("ping.sent", {"n": 1})
    assert engine.runs() == []  # paused rules start nothing
    engine.enable("V")
    engine.emit("ping.sent", {"n": 1})
    engine.publish(compile_rules(v2, engine.schema))
    assert engine.publish(compile_rules(v2, engine.schema))[0].new_version is False
    assert engine.rules()[0]["state"] == "active"  # a new version keeps the state
    engine.emit("ping.sent", {"n": 2})
    advance(engine, clock, dt.timedelta(hours=1))
    texts = {r["version"]: [s["args"]["message"] for s in action_steps(engine, r["id"])] for r in engine.runs()}
    assert texts == {1: ["v1 a", "v1 b"], 2: ["v2 a", "v2 b"]}
    assert engine.revert("V", 1) == 3
    assert [(v["version"], v["current"]) for v in engine.versions("V")] == [(1, False), (2, False), (3, True)]
    engine.pause("V")
    assert engine.rules()[0]["state"] == "paused"
    with pytest.raises(EngineError, match="unknown rule 'v'; did you mean 'V'"):
        engine.enable("v")
    with pytest.raises(EngineError, match="no version 9"):
        engine.revert("V", 9)


def test_uses_lists_start_await_exit_and_emit(db):
    engine, _ = make(db, """
rule "U" when order.placed exit when ping.sent then
  wait for message.received where client_id = order.customer_id
  emit ping.sent(n: 1)
end
""")
    assert [(u["rule"], u["how"]) for u in engine.uses("ping.sent")] == [("U", "emit"), ("U", "exit")]
    assert [u["how"] for u in engine.uses("message.received")] == ["await"]
    assert [u["how"] for u in engine.uses("order.placed")] == ["start"]


def test_bad_events_are_rejected_recorded_and_change_nothing(db):
    engine, _ = make(db, "rule \"R\" when guest.added then log(message: id)\n")
    with pytest.raises(EventError, match="field 'email'"):
        engine.emit("guest.added", {"id": "g1", "category": "VIP"})
    with pytest.raises(EventError, match="unknown trigger 'guest.addd'; did you mean 'guest.added'"):
        engine.emit("guest.addd", {})
    with pytest.raises(EventError, match="'Boss' is not one of"):
        engine.emit("guest.added", {"id": "g1", "email": "e", "category": "Boss"})
    with pytest.raises(EventError, match="cannot be emitted"):
        engine.emit("run.failed", {"rule": "x", "run_id": "1", "error": "e"})
    assert engine.runs() == []
    assert [e["status"] for e in engine.events()] == ["rejected"] * 4
    assert "field 'email'" in engine.events()[0]["error"]


def test_enqueued_events_are_processed_by_a_worker_pass(db):
    engine, _ = make(db, "rule \"R\" when ping.sent then log(message: 'x')\n")
    engine.emit("ping.sent", {"n": 1}, dispatch=False)
    assert engine.runs() == []
    other = Engine(db, SimulatedClock(T0))
    assert other.work(once=True) == 1
    assert [r["status"] for r in engine.runs()] == ["completed"]


def test_crash_between_intent_and_result_replays_with_the_same_key(db):
    """A worker that dies mid-action leaves an intent; the next one calls again with the same key,
    and actions already done are not called again."""
    calls: list[str] = []

    def set_status(guest_id: str, status: str, idempotency_key: str) -> dict:
        calls.append(f"{status}@{idempotency_key}")
        if status == "second" and len(calls) == 2:
            raise SystemExit  # stands in for the process dying mid-call (not an Exception)
        return {"ok": True}

    engine, clock = make(db, """
rule "C" when guest.added then
  set_status(guest_id: id, status: 'first')
  set_status(guest_id: id, status: 'second')
end
""", actions=[set_status])
    engine.lease_seconds = 0.0
    with pytest.raises(SystemExit):
        engine.emit("guest.added", {"id": "g1", "email": "a@x.io", "category": "VIP"})
    run = engine.runs()[0]
    assert run["status"] == "running"
    survivor = Engine(db, clock)
    survivor.action(set_status)
    assert survivor.run_due() == 1
    assert survivor.runs()[0]["status"] == "completed"
    rid = run["id"]
    assert calls == [f"first@{rid}:0:1", f"second@{rid}:1:1", f"second@{rid}:1:1"]
    done = [s for s in action_steps(survivor, rid) if s["status"] == "done"]
    assert [s["idempotency_key"] for s in done] == [f"{rid}:0:1", f"{rid}:1:1"]


def test_stale_worker_cannot_commit_after_takeover(db):
    engine, clock = make(db, "rule \"S\" when ping.sent then wait 1h; log(message: 'x')\n")
    engine.emit("ping.sent", {"n": 1})
    clock.advance(dt.timedelta(hours=2))
    store = engine.store
    import time

    first = store.claim_next_due_run(clock.now().timestamp(), time.time(), "a", time.time() - 1)
    second = store.claim_next_due_run(clock.now().timestamp(), time.time(), "b", time.time() + 60)
    assert first is not None and second is not None and second.fence == first.fence + 1
    from whenthen.runtime.store import LeaseLost

    with pytest.raises(LeaseLost):
        store.commit_activation(first, status="completed", frame=None, deadline=None, wait_trigger=None,
                                waits=[], steps=[], error=None, at="x", emits=[])
    assert engine.runs()[0]["status"] == "running"


def test_damaged_snapshots_and_bytecode_fail_visibly(db):
    engine, clock = make(db, """
rule "A" when ping.sent then wait 1h; log(message: 'a')
rule "B" when ping.sent then wait for message.received; log(message: 'b')
""")
    engine.emit("ping.sent", {"n": 1})
    inspect.overwrite_blobs(engine.store, "runs", "frame", b"\x00\xff")
    engine.emit("message.received", {"client_id": "c", "thread": "t", "text": "x"})  # fails B, no crash
    statuses = {r["rule"]: (r["status"], r.get("error", "")) for r in engine.runs()}
    assert statuses["B"] == ("failed", "the snapshot of run 2 does not match its checksum (damaged, or copied "
                                       "from another run); the run cannot continue")
    assert statuses["A"][0] == "waiting"
    assert advance(engine, clock, dt.timedelta(hours=2)) == 1
    statuses = {r["rule"]: (r["status"], r.get("error", "")) for r in engine.runs()}
    assert statuses["A"][0] == "failed" and "snapshot of run 1 does not match its checksum" in statuses["A"][1]
    failed = [json.loads(e["data"]) for e in engine.events() if e["trigger"] == "run.failed"]
    assert sorted(f["run_id"] for f in failed) == ["1", "2"]
    inspect.overwrite_blobs(engine.store, "versions", "bytecode", b"\x01\x02")
    fresh = Engine(db, clock)
    fresh.emit("ping.sent", {"n": 2})  # the unreadable versions start nothing; the event is kept
    assert len(fresh.runs()) == 2 and fresh.events()[-1]["status"] == "processed"
    listed = {r["name"]: r for r in fresh.rules()}
    assert listed["A"]["unloadable"] == ("version 1 of rule 'A' is unloadable: its stored bytecode does not "
                                         "match its checksum")
    assert listed["A"]["unstarted"] == 1 and listed["B"]["unstarted"] == 1


PLAY_RULES = """
rule "Reply" when message.sent exit when order.placed where customer_id = message.client_id then
  log(message: "sent {thread}")
  let r = wait for message.received where thread = message.thread within 2h
  if r is null then log(message: "timeout {thread}") else log(message: "reply {r.text}"); emit ping.sent(n: 1) end
  wait 30m
  log(message: "done {thread}")
end
rule "Ping" when ping.sent then wait 1h; log(message: "ping {n}")
"""


def _play(path, steps, reopen: bool) -> list[tuple]:
    clock = SimulatedClock(T0)
    engine = Engine(path, clock)
    engine.publish(compile_rules(SCHEMA + PLAY_RULES, engine.schema), enable=True)
    for minutes, trigger, data in [*steps, (24 * 60, None, None)]:
        target = clock.now() + dt.timedelta(minutes=minutes)
        while (due := engine.store.next_deadline()) is not None and due <= target.timestamp():
            if reopen:  # a new process resumes every run from its snapshot alone
                engine.close()
                engine = Engine(path, clock)
            clock.set(dt.datetime.fromtimestamp(due, dt.UTC))
            engine.run_due()
        clock.set(target)
        if reopen:
            engine.close()
            engine = Engine(path, clock)
        if trigger is not None:
            engine.emit(trigger, data)
    return [(r["rule"], r["status"], tuple((s["at"], s["args"]["message"]) for s in action_steps(engine, r["id"])))
            for r in engine.runs()]


event_steps = st.lists(st.tuples(
    st.integers(0, 180),
    st.sampled_from(["message.sent", "message.received", "order.placed"]),
    st.sampled_from(["A", "B"]),
), min_size=1, max_size=8).map(lambda items: [
    (m, t, {"message.sent": {"client_id": k, "thread": k},
            "message.received": {"client_id": k, "thread": k, "text": "hi"},
            "order.placed": {"customer_id": k}}[t]) for m, t, k in items])


@settings(max_examples=15, deadline=None)
@given(event_steps)
def test_resuming_from_snapshots_in_new_processes_gives_the_same_trace(tmp_path_factory, steps):
    base = tmp_path_factory.mktemp("play")
    assert _play(base / "one.db", steps, reopen=False) == _play(base / "many.db", steps, reopen=True)


INDEXED = """
trigger job.created { owner: str, size: int, due: datetime? }
rule "A" when job.created where owner = 'a' then log(message: owner)
rule "B" when job.created where owner = 'b' and size > 1 then log(message: owner)
rule "C" when job.created where size > 2 then log(message: owner)
rule "D" when job.created then log(message: owner)
rule "E" when job.created where size = 3.0 or owner = 'e' then log(message: owner)
rule "F" when job.created where due = 2026-11-22T10:00 and size >= 0 then log(message: owner)
"""


def test_equality_index_starts_the_same_rules_and_counts_filtered(db):
    engine, _ = make(db, INDEXED)
    engine.emit("job.created", {"owner": "a", "size": 1})
    engine.emit("job.created", {"owner": "b", "size": 3.0, "due": "2026-11-22T11:00:00+01:00"})
    engine.pause("D")
    engine.emit("job.created", {"owner": "a", "size": 3})
    started = [r["rule"] for r in engine.runs()]
    assert started == ["A", "D", "B", "C", "D", "E", "F", "A", "C", "E"]
    assert engine.store.filtered_counts() == {"A": 1, "B": 2, "C": 1, "D": 0, "E": 1, "F": 2}


@settings(max_examples=25, deadline=None)
@given(st.lists(st.fixed_dictionaries({
    "owner": st.sampled_from(["a", "b", "e", "z"]),
    "size": st.integers(0, 4) | st.sampled_from([3.0]),
    "due": st.sampled_from([None, "2026-11-22T10:00:00Z", "2026-11-22T09:00:00Z"]),
}), min_size=1, max_size=6))
def test_equality_index_agrees_with_evaluating_every_filter(tmp_path_factory, events):
    from whenthen.runtime import vm

    engine, _ = make(tmp_path_factory.mktemp("idx") / "wt.db", INDEXED)
    expected = []
    for data in events:
        engine.emit("job.created", data)
        typed = validate_event(engine.trigger_schema("job.created"), data)
        expected += [rule for rule in "ABCDEF"
                     if vm.eval_filter(engine.catalog.load(rule, 1).code, typed)]  # every filter, the slow way
    assert [r["rule"] for r in engine.runs()] == expected


INDEXED_SCHEMA = "trigger job.created { owner: str, size: int }\n"
SAME_FIELD = "".join(f"rule \"O{k}\" when job.created where owner = '{k}' and size > {i % 3} then\nend\n"
                     for i, k in enumerate("abcdefg")) + "".join(
    f"rule \"N{k}\" when ping.sent where n = {k} then\nend\n" for k in range(5))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.one_of(
    st.fixed_dictionaries({"owner": st.sampled_from(["a", "c", "g", "z", "1"]), "size": st.integers(0, 4)}),
    st.fixed_dictionaries({"n": st.integers(-1, 6)})), min_size=1, max_size=8))
def test_single_field_index_agrees_with_evaluating_every_filter(tmp_path_factory, events):
    """Many rules testing one field against their own constants (str or int): one lookup finds
    the rules to evaluate, and they are exactly the rules whose filter holds."""
    from whenthen.runtime import vm

    engine, _ = make(tmp_path_factory.mktemp("one") / "wt.db", INDEXED_SCHEMA + SAME_FIELD)
    expected = []
    for data in events:
        trigger = "ping.sent" if "n" in data else "job.created"
        engine.emit(trigger, data)
        typed = validate_event(engine.trigger_schema(trigger), data)
        expected += [r.name for r in engine.catalog.starts[trigger].rules if vm.eval_filter(r.code, typed)]
    assert [r["rule"] for r in engine.runs()] == expected


def test_an_event_is_processing_and_its_run_stored_before_an_action_is_called(db):
    """The dispatch writes an event `processed` and a new run once, at the end, when nothing
    commits earlier; an action's intent commits first what a crash must not lose: the event as
    `processing` under our lease, the run with its start snapshot."""
    seen: list[tuple] = []

    def set_status(guest_id: str, status: str) -> dict:
        other = open_store(db)  # what another process sees during the call
        seen.append(inspect.rows(other, "events", "status", "lease_owner?"))
        seen.append(inspect.rows(other, "runs", "status", "frame?"))
        other.close()
        return {"ok": True}

    engine, _ = make(db, """
rule "S" when guest.added then
  set_status(guest_id: id, status: 'seen')
  wait 1h
end
""", actions=[set_status])
    engine.emit("guest.added", {"id": "g1", "email": "a@x.io", "category": "VIP"})
    assert seen == [[("processing", 1)], [("running", 1)]]
    assert [(e["status"]) for e in engine.events()] == ["processed"]
    assert [r["status"] for r in engine.runs()] == ["waiting"]


def test_ingest_commits_in_groups_and_a_crash_keeps_a_prefix(db):
    engine, _ = make(db, "rule \"W\" when ping.sent then\n  wait 1h\nend\n")
    lines = [f'{{"trigger": "ping.sent", "data": {{"n": {i}}}}}' for i in range(1, 8)]
    lines.insert(2, "not json")

    def crash_at(line: int, error: str | None) -> None:
        if line == 6:
            raise SystemExit  # the process dies while line 6 is not committed

    with pytest.raises(SystemExit):
        engine.ingest(lines, on_line=crash_at, commit_every=2)
    fresh = Engine(db)
    stored = [(e["status"], e["data"]) for e in fresh.events()]
    assert stored == [("processed", '{"n":1}'), ("processed", '{"n":2}'), ("rejected", "not json"),
                      ("processed", '{"n":3}')]  # lines 1-4; 5 and 6 were in the open group
    assert len(fresh.runs(status="waiting")) == 3
    accepted, rejected = fresh.ingest(lines[4:])  # the rest of the file, once
    assert (accepted, rejected) == (4, [])
    assert len(fresh.runs(status="waiting")) == 7


def test_a_database_with_blobs_stored_before_uses_keeps_working(db):
    # Versions published before RuleCode carried `uses`: blobs without it, uses rows beside them.
    from whenthen.compiler.code import FORMAT_VERSION, MAGIC, RuleCode
    from whenthen.runtime.engine import compiled_hash
    from whenthen.values import pack

    rules = """
rule "U" when order.placed exit when ping.sent then
  wait for message.received where client_id = order.customer_id
  log(message: "got it")
end
"""
    engine, clock = make(db, rules)
    blob = inspect.first_blob(engine.store, "versions", "bytecode")  # U's only version
    data = unpack(blob[6:])
    del data["uses"]
    # summed as the schema upgrade sums the blobs it finds
    inspect.rewrite_bytecode(engine.store, "U", 1, MAGIC + struct.pack(">H", FORMAT_VERSION) + pack(data))
    engine.close()

    engine = Engine(db, clock)
    assert [u["how"] for u in engine.uses("message.received")] == ["await"]
    engine.emit("order.placed", {"customer_id": "c1"})
    engine.emit("message.received", {"client_id": "c1", "thread": "t", "text": "hi"})
    [run] = engine.runs()
    assert run["status"] == "completed"
    # The hash leaves `uses` out: the same rule hashes alike with and without it (as stored by
    # older versions), so publishing it again adds no version.
    program = compile_rules(SCHEMA + rules, engine.schema)
    assert compiled_hash(RuleCode.from_data(data)) == compiled_hash(program.rules["U"])
    [published] = engine.publish(program, author="test")
    assert published.new_version is False
    assert engine.revert("U", 1) == 2  # copies the uses rows of the old version
    assert [(u["rule"], u["how"]) for u in engine.uses("ping.sent")] == [("U", "exit")]
