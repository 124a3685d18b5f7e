"""What only PostgreSQL does: NOTIFY wakes idle workers, a server restart is survived, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from whenthen.api import compile as compile_rules
from whenthen.runtime.engine import Engine

RULES = """
trigger job.created { id: str }
rule "Job" when job.created then
  wait 2s
  log(message: id)
end
"""


def cli(db: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("WHENTHEN_DB", "WHENTHEN_NOW")}
    return subprocess.run([sys.executable, "-m", "whenthen", "--db", db, *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def worker(db: str, idle: float, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("WHENTHEN_DB", "WHENTHEN_NOW")}
    return subprocess.Popen([sys.executable, "-m", "whenthen", "--db", db, "worker", "--idle", str(idle),
                             "--lease", "2"], env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))


def publish(db: str) -> Engine:
    engine = Engine(db)
    engine.publish(compile_rules(RULES, engine.schema), enable=True)
    return engine


def statuses(engine: Engine) -> list[str]:
    return [r["status"] for r in engine.runs()]


def wait_for(predicate, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, f"not {what} after {timeout}s"
        time.sleep(0.05)
    return time.monotonic() - started


def listening(admin, db: str) -> bool:
    """Whether a worker on `db` holds its LISTEN connection (`admin`: a connection to the server)."""
    name = db.rpartition("/")[2]
    row = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND "
                               "application_name = 'whenthen-listen'", (name,)).fetchone()
    return row[0] > 0


def test_an_idle_worker_wakes_on_notify_for_new_events_and_near_deadlines(pg_server, tmp_path):
    db = pg_server.fresh()
    engine = publish(db)
    proc = worker(db, idle=60, log=tmp_path / "worker.log")  # its poll alone would take a minute
    try:
        wait_for(lambda: listening(pg_server.admin, db), 60, "listening")
        time.sleep(0.5)  # in its wait now
        engine.emit("job.created", {"id": "a"}, dispatch=False)  # a pending event: NOTIFY
        wait_for(lambda: statuses(engine) == ["waiting"], 20, "dispatched by the idle worker")
        # the run's 2 s deadline was announced with the commit: the worker wakes for it, not for its poll
        wait_for(lambda: statuses(engine) == ["completed"], 20, "resumed at its deadline")
        engine.emit("job.created", {"id": "b"})  # dispatched here; its deadline is announced too
        wait_for(lambda: statuses(engine) == ["completed", "completed"], 20, "resumed by the idle worker")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        engine.close()
    assert "Traceback" not in (tmp_path / "worker.log").read_text()


@pytest.mark.slow
def test_a_worker_survives_a_server_restart_and_loses_nothing(tmp_path):
    import psycopg

    import _pg

    try:
        cluster = _pg.Cluster("-c synchronous_commit=on")  # with it off, a stop may lose commits itself
    except Exception as exc:
        _pg.unavailable(f"{type(exc).__name__}: {exc}")
    try:
        server = _pg.Server(cluster.url, cluster)
        db = server.fresh()
        engine = publish(db)
        for i in range(20):
            engine.emit("job.created", {"id": f"a{i}"}, dispatch=False)
        engine.close()
        log = tmp_path / "worker.log"
        proc = worker(db, idle=0.2, log=log)
        try:
            wait_for(lambda: listening(server.admin, db), 60, "working")
            server.admin.close()
            cluster.restart("fast")  # connections cut while the worker claims and commits
            engine = Engine(db)
            for i in range(20):
                engine.emit("job.created", {"id": f"b{i}"}, dispatch=False)
            wait_for(lambda: statuses(engine) == ["completed"] * 40, 120, "all completed")
            assert proc.poll() is None  # still working
            with psycopg.connect(cluster.url, autocommit=True) as admin:  # its cut connections came back
                wait_for(lambda: listening(admin, db), 30, "listening again")
            engine.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        assert "Traceback" not in log.read_text()
    finally:
        cluster.destroy()


def test_unreachable_server_and_missing_database_exit_2_with_the_reason(pg_server):
    down = cli("postgresql://someone:secret@127.0.0.1:1/nothing", "runs")
    assert down.returncode == 2 and "Traceback" not in down.stderr
    assert "cannot connect to postgresql://someone:***@127.0.0.1:1/nothing" in down.stderr
    assert "secret" not in down.stderr
    missing = cli(pg_server.url_of("pg_no_such_database"), "runs")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert 'database "pg_no_such_database" does not exist' in missing.stderr
    assert cli(pg_server.fresh(), "worker", "--once").returncode == 0


def test_pending_writes_are_committed_even_when_nothing_followed_them(pg_server):
    # Statements without a result are queued and sent with the COMMIT: a transaction made only of
    # them must still write them (here `pause`: one UPDATE and the generation counter).
    db = pg_server.fresh()
    engine = publish(db)
    before = engine.store.generation()
    engine.pause("Job")
    other = Engine(db)
    assert other.rules()[0]["state"] == "paused" and other.store.generation() == before + 1
    other.close()
    engine.close()
