"""`whenthen serve` as a process: a clean SIGTERM, and no accepted event lost or duplicated across SIGKILLs."""

from __future__ import annotations

import random
import signal
import sqlite3
import threading
import time

import httpx
import pytest

from _serve import cli, publish, start_server, wait_for


def stored_names(db) -> list[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT json_extract(data, '$.name') FROM events WHERE trigger = 'form.submitted' "
                            "AND status != 'rejected'").fetchall()
    return [r[0] for r in rows]


def test_sigterm_drains_and_exits_0(tmp_path):
    db = tmp_path / "t.db"
    publish(db)
    srv = start_server(db)
    accepted: list[int] = []
    stop = threading.Event()

    def load() -> None:
        with srv.client() as http:
            n = 0
            while not stop.is_set():
                try:
                    answer = http.post("/v1/events/form.submitted", json={"name": f"t{n}"})
                except httpx.TransportError:
                    return
                if answer.status_code == 202:
                    accepted.append(answer.json()["event"])
                n += 1

    thread = threading.Thread(target=load)
    thread.start()
    wait_for(lambda: len(accepted) >= 20, what="20 accepted events")
    assert srv.stop(signal.SIGTERM) == 0, srv.output()
    stop.set()
    thread.join(10)
    assert "Application shutdown complete" in srv.output()
    with sqlite3.connect(db) as conn:
        ids = {r[0] for r in conn.execute("SELECT id FROM events WHERE trigger = 'form.submitted'")}
    assert set(accepted) <= ids  # every 202 was committed before it was sent
    assert cli(db, "worker", "--once").returncode == 0  # what the workers had not reached yet runs now
    with sqlite3.connect(db) as conn:
        left = conn.execute("SELECT count(*) FROM events WHERE status IN ('pending', 'processing')").fetchone()[0]
    assert left == 0


@pytest.mark.slow
def test_sigkill_under_load_keeps_every_accepted_event_exactly_once(tmp_path):
    """A load generator posts events (each with its own Idempotency-Key, retried until answered) while
    another thread SIGKILLs the server at random moments and it is restarted: each event answered is
    stored exactly once, and no retry after a kill stored a second copy."""
    db = tmp_path / "k.db"
    publish(db)
    current = {"srv": start_server(db)}
    port = current["srv"].port
    total, answered, kills = 400, {}, []
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

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        with httpx.Client(timeout=5.0) as http:
            n = 0
            deadline = time.monotonic() + 120
            # at least `total` events, and on until the killer is done (bounded in count and time)
            while (n < total or len(kills) < 4) and n < 50 * total and time.monotonic() < deadline:
                name = f"k{n}"
                n += 1
                while name not in answered:
                    try:
                        answer = http.post(f"{current['srv'].url}/v1/events/form.submitted", json={"name": name},
                                           headers={"Idempotency-Key": name})
                    except httpx.TransportError:
                        if current["srv"].proc.poll() is not None:
                            current["srv"] = start_server(db, port=port)
                        continue
                    assert answer.status_code in (200, 202), answer.text
                    answered[name] = answer.json()["event"]
    finally:
        done.set()
        thread.join(10)
    assert len(kills) == 4, "the load ended before the server was killed four times"
    if current["srv"].proc.poll() is not None:  # killed after the last answer: start it once more
        current["srv"] = start_server(db, port=port)
    assert current["srv"].stop() == 0
    assert sorted(stored_names(db)) == sorted(answered)
    with sqlite3.connect(db) as conn:
        keys = dict(conn.execute("SELECT key, event_id FROM idempotency_keys"))
    assert keys == answered
