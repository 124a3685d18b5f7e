"""`whenthen serve` as processes, on both backends: a clean SIGTERM; several servers on one PostgreSQL
database each processing an event exactly once; no accepted event lost or duplicated across SIGKILLs."""

from __future__ import annotations

import json
import random
import signal
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from _serve import cli_env, rows, start_server, wait_for
from _serve import publish as publish_rules
from whenthen.runtime.engine import Engine

# `work` appends [id, step, pid] to $WT_LOG before it returns (O_APPEND lines: atomic), so the log is
# what the outside world saw, repeats included; then it takes $WT_ACTION_SECONDS.
ACTIONS = """
import json, os, time


def work(id: str, step: int) -> dict:
    with open(os.environ["WT_LOG"], "a") as log:
        log.write(json.dumps([id, step, os.getpid()]) + "\\n")
    time.sleep(float(os.environ.get("WT_ACTION_SECONDS", "0")))
    return {"ok": True}
"""
RULES = """
trigger job.created { id: str }
trigger note.posted { name: str }

rule "Job" when job.created then
  work(id: id, step: 1)
  work(id: id, step: 2)
end
"""


def setup(db: str, folder: Path) -> Path:
    (folder / "actions.py").write_text(ACTIONS)
    publish_rules(db, RULES, folder=folder, actions=folder / "actions.py")
    return folder / "actions.py"


def serve(db: str, folder: Path, *, action_seconds: float = 0.0, **kwargs):
    env = {"WT_LOG": str(folder / "actions.log"), "WT_ACTION_SECONDS": str(action_seconds)}
    return start_server(db, folder=folder, env=env, extra=["--actions", str(folder / "actions.py")], **kwargs)


def action_log(folder: Path) -> list[tuple[str, int, int]]:
    path = folder / "actions.log"
    return [tuple(json.loads(line)) for line in path.read_text().splitlines()] if path.exists() else []


def finish_with_a_worker(db: str, folder: Path) -> None:
    """`whenthen worker --once`: what the servers left (pending events, claimable steps) is done now."""
    import subprocess
    import sys

    env = cli_env(WT_LOG=str(folder / "actions.log"))
    done = subprocess.run([sys.executable, "-m", "whenthen", "--db", db, "worker", "--once", "--actions",
                           str(folder / "actions.py")], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr


def stored(db: str, trigger: str) -> list[dict]:
    engine = Engine(db)
    try:
        found = [e for e in engine.events() if e["trigger"] == trigger]
        return [dict(e, data=json.loads(e["data"]) if isinstance(e["data"], str) else e["data"]) for e in found]
    finally:
        engine.close()


def test_sigterm_refuses_new_connections_finishes_requests_and_steps_in_flight(db, tmp_path):
    """SIGTERM while a request is half-sent and a worker is inside an action: new connections are
    refused at once; the half-sent request completes with its 202 (after its commit); the action
    in hand finishes and is recorded (never done twice); the process exits 0; every event
    accepted is stored, and what no worker reached is processed by the next one."""
    setup(db, tmp_path)
    srv = serve(db, tmp_path, action_seconds=0.4)
    accepted = []
    with srv.client() as http:
        for n in range(6):
            answer = http.post("/v1/events/job.created", json={"id": f"j{n}"})
            assert answer.status_code == 202, answer.text
            accepted.append(answer.json()["event"])
    wait_for(lambda: action_log(tmp_path), what="a worker inside an action")
    body = json.dumps({"id": "slow"}).encode()
    slow = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    slow.sendall(b"POST /v1/events/job.created HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:5])
    time.sleep(0.3)  # the server has the request's head: it is in flight
    srv.proc.send_signal(signal.SIGTERM)

    def refused() -> bool:
        try:
            socket.create_connection(("127.0.0.1", srv.port), timeout=1).close()
        except OSError:
            return True
        return False

    wait_for(refused, timeout=10, what="new connections refused")
    assert srv.proc.poll() is None  # still there: finishing the request in flight
    slow.sendall(body[5:])
    answer = slow.makefile("rb").read().decode()
    slow.close()
    assert answer.startswith("HTTP/1.1 202"), answer
    accepted.append(json.loads(answer.split("\r\n\r\n", 1)[1])["event"])
    assert srv.proc.wait(60) == 0, srv.output()
    assert "Application shutdown complete" in srv.output()
    assert {e["id"] for e in stored(db, "job.created")} == set(accepted)
    calls = action_log(tmp_path)
    assert calls and all(n == 1 for n in Counter(c[:2] for c in calls).values()), calls  # finished, not redone
    finish_with_a_worker(db, tmp_path)
    calls = Counter(c[:2] for c in action_log(tmp_path))
    jobs = [f"j{n}" for n in range(6)] + ["slow"]
    assert calls == Counter({(job, step): 1 for job in jobs for step in (1, 2)})
    engine = Engine(db)
    try:
        assert Counter(r["status"] for r in engine.runs()) == {"completed": 7}
    finally:
        engine.close()


@pytest.fixture
def pg_db(pg_server):
    url = pg_server.fresh()
    yield url
    pg_server.drop(url)


def test_several_serve_processes_on_one_postgresql_database(pg_db, tmp_path):
    """Three `serve` processes (two workers each) on one database, events posted to all of them
    (single and in batches): each event starts one run, each action is called once, and the
    work is shared between the processes."""
    setup(pg_db, tmp_path)
    servers = [serve(pg_db, tmp_path, action_seconds=0.01) for _ in range(3)]
    try:
        clients = [s.client() for s in servers]
        ids = []
        for n in range(90):
            answer = clients[n % 3].post("/v1/events/job.created", json={"id": f"s{n}"})
            assert answer.status_code == 202, answer.text
            ids.append(answer.json()["event"])
        for b in range(3):
            batch = [{"trigger": "job.created", "data": {"id": f"b{b}-{i}"}} for i in range(20)]
            answer = clients[b].post("/v1/events", json=batch)
            assert answer.status_code == 200
            ids += [r["event"] for r in answer.json()["results"]]
        for client in clients:
            client.close()
        total = len(ids)
        assert total == 150 and len(set(ids)) == total

        def all_done() -> bool:
            engine = Engine(pg_db)
            try:
                return len(engine.runs(status="completed")) == total
            finally:
                engine.close()

        wait_for(all_done, timeout=120, what=f"{total} completed runs")
    finally:
        codes = [s.stop() for s in servers]
    assert codes == [0, 0, 0], [s.output()[-2000:] for s in servers]
    calls = action_log(tmp_path)
    per_call = Counter(c[:2] for c in calls)
    assert len(per_call) == 2 * total and set(per_call.values()) == {1}, "an action called twice"
    assert len({c[2] for c in calls}) >= 2, "one process did all the work"
    engine = Engine(pg_db)
    try:
        runs = engine.store.runs(None, None)
        assert Counter(r["event_id"] for r in runs) == Counter({i: 1 for i in ids})  # one run per event
        assert {e["status"] for e in engine.events()} == {"processed"}
    finally:
        engine.close()


@pytest.mark.slow
def test_sigkill_under_load_keeps_every_accepted_event_exactly_once(db, tmp_path):
    """A load generator posts events while another thread SIGKILLs the server at random moments and
    it is restarted. Single events carry an Idempotency-Key and are retried until answered; batches
    carry none and are not retried. Afterwards: every event answered is stored exactly once, its key
    names it, a retry of any key answers the first event's id as a duplicate; a batch that got no
    answer is stored whole or not at all; nothing else is stored."""
    setup(db, tmp_path)
    current = {"srv": serve(db, tmp_path)}
    port = current["srv"].port
    answered: dict[str, int] = {}  # single events: name -> event id
    batches: dict[str, list[int] | None] = {}  # batch tag -> its ids, or None when it got no answer
    kills: list[float] = []
    done = threading.Event()
    rng = random.Random(15)

    def killer() -> None:
        while len(kills) < 4 and not done.is_set():
            time.sleep(rng.uniform(0.3, 0.9))
            if done.is_set():
                return
            proc = current["srv"].proc
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills.append(time.monotonic())

    def restart_if_dead() -> None:
        if current["srv"].proc.poll() is not None:
            current["srv"] = serve(db, tmp_path, port=port)

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        with httpx.Client(timeout=5.0) as http:
            n = 0
            deadline = time.monotonic() + 150
            # at least 300 events, and on until the killer is done (bounded in count and time)
            while (n < 300 or len(kills) < 4) and n < 20_000 and time.monotonic() < deadline:
                n += 1
                if n % 10 == 0:  # a batch of 5, without keys: answered, or not at all
                    tag = f"b{n}"
                    items = [{"trigger": "note.posted", "data": {"name": f"{tag}-{i}"}} for i in range(5)]
                    try:
                        answer = http.post(f"{current['srv'].url}/v1/events", json=items)
                        assert answer.status_code == 200, answer.text
                        batches[tag] = [r["event"] for r in answer.json()["results"]]
                    except httpx.TransportError:
                        batches[tag] = None
                        restart_if_dead()
                    continue
                name = f"k{n}"
                while name not in answered:
                    try:
                        answer = http.post(f"{current['srv'].url}/v1/events/note.posted", json={"name": name},
                                           headers={"Idempotency-Key": name})
                    except httpx.TransportError:
                        restart_if_dead()
                        continue
                    assert answer.status_code in (200, 202), answer.text
                    answered[name] = answer.json()["event"]
    finally:
        done.set()
        thread.join(10)
    assert len(kills) == 4, "the load ended before the server was killed four times"
    restart_if_dead()  # killed after the last answer: start it once more
    try:
        with current["srv"].client() as http:  # every key, retried now, names its first event
            for name in rng.sample(sorted(answered), min(60, len(answered))):
                again = http.post("/v1/events/note.posted", json={"name": name}, headers={"Idempotency-Key": name})
                assert again.status_code == 200 and again.json() == {"event": answered[name], "duplicate": True}
    finally:
        assert current["srv"].stop() == 0
    events = stored(db, "note.posted")
    by_name = Counter(e["data"]["name"] for e in events)
    assert all(count == 1 for count in by_name.values()), [k for k, c in by_name.items() if c > 1]
    ids = {e["data"]["name"]: e["id"] for e in events}
    singles = {name: ids[name] for name in ids if name.startswith("k")}
    assert singles == answered  # every single event answered is stored once, and nothing else
    for tag, got in batches.items():
        names = [f"{tag}-{i}" for i in range(5)]
        kept = [ids.get(name) for name in names]
        if got is not None:
            assert kept == got, tag
        else:
            assert kept == [None] * 5 or None not in kept, (tag, kept)  # whole or nothing
    assert {name for name in ids if not name.startswith(("k", "b"))} == set()
    assert dict(rows(db, "SELECT key, event_id FROM idempotency_keys")) == answered
    assert sum(got is None for got in batches.values()) + len(kills) > 0
