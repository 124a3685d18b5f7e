"""The HTTP API of SPEC 7 against a real `whenthen serve` process on loopback: events, batches, reads, rule changes."""

from __future__ import annotations

import json

import pytest

from _serve import GUEST, cli, publish, rows, start_server, wait_for


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request, tmp_path_factory):
    """One server per backend: every test of this file runs against SQLite and PostgreSQL."""
    folder = tmp_path_factory.mktemp(f"serve-{request.param}")
    pg = request.getfixturevalue("pg_server") if request.param == "postgres" else None
    db = pg.fresh() if pg is not None else str(folder / "app.db")
    publish(db, folder=folder)
    srv = start_server(db, folder=folder)
    yield srv
    assert srv.stop() == 0, srv.output()
    if pg is not None:
        pg.drop(db)


def events_in_db(db):
    return rows(db, "SELECT id, trigger, status FROM events")


def test_an_event_is_accepted_after_commit_and_dispatched_by_the_workers(server):
    with server.client() as http:
        answer = http.post("/v1/events/guest.added", json=GUEST)
        assert answer.status_code == 202, answer.text
        event_id = answer.json()["event"]
        assert (event_id, "guest.added") in [(i, t) for i, t, _ in events_in_db(server.db)]  # committed
        runs = wait_for(lambda: [r for r in http.get("/v1/runs", params={"rule": "VIP welcome"}).json()["runs"]
                                 if r["status"] == "waiting"], what="the run to wait")
        run = http.get(f"/v1/runs/{runs[0]['id']}").json()
        assert run["event"]["id"] == event_id
        assert [s["action"] for s in run["steps"] if s["kind"] == "action"] == ["send_email"]
        event = http.get(f"/v1/events/{event_id}").json()
        assert event.pop("received_at").endswith("Z")
        assert event == {"id": event_id, "trigger": "guest.added", "status": "processed", "error": None,
                         "data": {**GUEST, "age": None, "tags": None, "address": None}}


def test_the_objects_are_the_clis_json_objects(server):
    with server.client() as http:
        event_id = http.post("/v1/events/guest.added", json=dict(GUEST, id="g-cli")).json()["event"]
        wait_for(lambda: http.get(f"/v1/events/{event_id}").json()["status"] == "processed", what="dispatch")
        runs = http.get("/v1/runs", params={"limit": 500}).json()["runs"]
        rules = http.get("/v1/rules").json()["rules"]
        one = http.get(f"/v1/runs/{runs[-1]['id']}").json()
        versions = http.get("/v1/rules/VIP welcome").json()["versions"]
    assert json.loads(cli(server.db, "runs", "--format", "json").stdout)[::-1][:len(runs)] == runs
    assert json.loads(cli(server.db, "rules", "--format", "json").stdout) == rules
    assert json.loads(cli(server.db, "run", str(runs[-1]["id"]), "--format", "json").stdout) == one
    assert json.loads(cli(server.db, "versions", "VIP welcome", "--format", "json").stdout) == versions


def test_422_names_every_bad_field_and_records_the_rejection(server):
    bad = {"id": 7, "emial": "x@y.z", "category": "Staff", "address": {"zip": 1}}
    with server.client() as http:
        answer = http.post("/v1/events/guest.added", json=bad)
        assert answer.status_code == 422
        errors = {e["field"]: e["message"] for e in answer.json()["errors"]}
        assert set(errors) == {"emial", "id", "email", "first_name", "category", "address.city", "address.zip"}
        assert "did you mean 'email'" in errors["emial"]
        assert "'Staff' is not one of" in errors["category"]
        rejected = http.get("/v1/events", params={"status": "rejected"}).json()["events"]
        assert rejected[0]["trigger"] == "guest.added" and "emial" in rejected[0]["error"]
        not_json = http.post("/v1/events/guest.added", content=b"{not json")
        assert not_json.status_code == 422 and "invalid JSON" in not_json.json()["errors"][0]["message"]
        not_object = http.post("/v1/events/guest.added", json=[1])
        assert not_object.status_code == 422 and not_object.json()["errors"][0]["field"] is None


def test_unknown_and_engine_fired_triggers_are_404(server):
    with server.client() as http:
        answer = http.post("/v1/events/guest.add", json=GUEST)
        assert answer.status_code == 404 and "did you mean 'guest.added'" in answer.json()["error"]
        assert http.post("/v1/events/run.failed", json={"rule": "x", "run_id": "1", "error": "e"}).status_code == 404


def test_an_idempotency_key_makes_a_retry_safe(server):
    with server.client() as http:
        first = http.post("/v1/events/form.submitted", json={"name": "once"}, headers={"Idempotency-Key": "k-1"})
        again = http.post("/v1/events/form.submitted", json={"name": "once"}, headers={"Idempotency-Key": "k-1"})
        other = http.post("/v1/events/form.submitted", json={"name": "once"}, headers={"Idempotency-Key": "k-2"})
        events = http.get("/v1/events", params={"limit": 500}).json()["events"]
    assert first.status_code == 202
    assert again.status_code == 200 and again.json() == {"event": first.json()["event"], "duplicate": True}
    assert other.status_code == 202 and other.json()["event"] != first.json()["event"]
    assert sum(e["data"] == {"name": "once"} for e in events) == 2


def test_batches_as_a_json_array_and_as_json_lines(server):
    items = [{"trigger": "form.submitted", "data": {"name": "a"}},
             {"trigger": "form.submitted", "data": {"nme": "b"}},
             {"trigger": "nope", "data": {}},
             {"trigger": "guest.added", "data": dict(GUEST, id="batch")}]
    with server.client() as http:
        answer = http.post("/v1/events", json=items)
        assert answer.status_code == 200, answer.text
        results = answer.json()["results"]
        assert [sorted(r) for r in results] == [["event"], ["errors"], ["errors"], ["event"]]
        assert {e["field"] for e in results[1]["errors"]} == {"nme", "name"}
        lines = "\n".join(json.dumps(i) for i in items[:2]) + "\n{broken\n"
        answer = http.post("/v1/events", content=lines, headers={"Content-Type": "application/x-ndjson"})
        results = answer.json()["results"]
        assert [sorted(r) for r in results] == [["event"], ["errors"], ["errors"]]
        assert "line 3" in results[2]["errors"][0]["message"]
        assert http.post("/v1/events", content="x", headers={"Content-Type": "text/plain"}).status_code == 415


def test_runs_page_newest_first_by_keyset(server):
    with server.client() as http:
        ids = [http.post("/v1/events/form.submitted", json={"name": f"p{i}"}).json()["event"] for i in range(7)]
        wait_for(lambda: len(http.get("/v1/runs", params={"rule": "Form thanks", "status": "completed",
                                                           "limit": 500}).json()["runs"]) >= 7, what="7 runs")
        seen, cursor, pages = [], None, 0
        while True:
            params = {"rule": "Form thanks", "limit": 3, **({"before": cursor} if cursor else {})}
            page = http.get("/v1/runs", params=params).json()
            seen += [r["id"] for r in page["runs"]]
            pages += 1
            cursor = page["next"]
            if cursor is None:
                break
        assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)) >= len(ids)
        assert pages == -(-len(seen) // 3)
        assert http.get("/v1/runs", params={"status": "nope"}).status_code == 400
        assert http.get("/v1/runs", params={"limit": 0}).status_code == 400


def test_rule_changes_pause_enable_revert(server):
    with server.client() as http:
        assert http.post("/v1/rules/Form thanks/pause").json()["state"] == "paused"
        assert http.get("/v1/rules/Form thanks").json()["state"] == "paused"
        assert http.post("/v1/rules/Form thanks/enable").json()["state"] == "active"
        reverted = http.post("/v1/rules/Form thanks/revert/1").json()
        assert reverted == {"rule": "Form thanks", "version": 2, "reverted_to": 1}
        detail = http.get("/v1/rules/Form thanks").json()
        assert [v["version"] for v in detail["versions"]] == [1, 2] and detail["versions"][1]["current"]
        assert 'rule "Form thanks"' in detail["source"]
        assert http.post("/v1/rules/Form thanks/archive").json()["state"] == "archived"
        assert "Form thanks" not in [r["name"] for r in http.get("/v1/rules").json()["rules"]]
        assert "Form thanks" in [r["name"] for r in http.get("/v1/rules", params={"all": 1}).json()["rules"]]
        assert http.get("/v1/rules/Form thanks").json()["state"] == "archived"
        assert json.loads(cli(server.db, "rules", "--format", "json").stdout) == http.get("/v1/rules").json()["rules"]
        assert http.post("/v1/rules/Form thanks/enable").json()["state"] == "active"
        assert http.post("/v1/rules/Nope/pause").status_code == 404
        assert http.post("/v1/rules/Nope/archive").status_code == 404
        assert http.post("/v1/rules/Form thanks/delete").status_code == 404
        assert http.post("/v1/rules/Form thanks/revert/9").status_code == 404
        assert http.get("/v1/runs/999999").status_code == 404
        assert http.get("/v1/events/999999").status_code == 404


def test_health_and_readiness(server):
    with server.client() as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ok"


def test_metrics_have_specs_names(server):
    with server.client() as http:
        http.post("/v1/events/guest.added", json=dict(GUEST, id="m1"))
        http.post("/v1/events/guest.added", json={"id": "m2"})
        wait_for(lambda: "whenthen_action_calls_total{" in http.get("/metrics").text, what="an action call")
        text = http.get("/metrics").text
    for name in ("whenthen_events_accepted_total{trigger=\"guest.added\"}",
                 "whenthen_events_rejected_total{trigger=\"guest.added\"}",
                 "whenthen_runs_started_total{rule=\"VIP welcome\"}",
                 "whenthen_runs_finished_total{rule=\"Form thanks\",status=\"completed\"}",
                 "whenthen_action_calls_total{action=\"send_email\"}",
                 "whenthen_action_failures_total", "whenthen_action_seconds_bucket{action=\"send_email\"",
                 "whenthen_runs_waiting ", "whenthen_runs_due ", "whenthen_oldest_due_seconds "):
        assert name in text, name


def test_an_event_accepted_while_no_worker_runs_is_processed_when_one_starts(db, tmp_path):
    publish(db, folder=tmp_path)
    srv = start_server(db, workers=0, folder=tmp_path)
    try:
        with srv.client() as http:
            event_id = http.post("/v1/events/form.submitted", json={"name": "later"}).json()["event"]
            assert http.get(f"/v1/events/{event_id}").json()["status"] == "pending"
    finally:
        assert srv.stop() == 0
    assert cli(db, "worker", "--once").returncode == 0
    assert json.loads(cli(db, "runs", "--format", "json").stdout)[0]["status"] == "completed"


def test_readyz_says_why_it_is_not_ready(tmp_path):
    """`/readyz` is 503 with the reason when the database's schema is not this version's (an old
    copy restored under the service); `/healthz` stays 200."""
    import sqlite3

    db = tmp_path / "r.db"
    publish(db, folder=tmp_path)
    srv = start_server(db, workers=0, folder=tmp_path)
    try:
        with srv.client() as http:
            assert http.get("/readyz").status_code == 200
            with sqlite3.connect(db) as conn:
                conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
            answer = http.get("/readyz")
            assert answer.status_code == 503 and "schema version 1" in answer.json()["detail"]
            assert http.get("/healthz").status_code == 200
    finally:
        srv.stop()
