"""A real `whenthen serve` process on loopback for the service tests, and a database with rules for it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from _servers import free_port

RULES = """\
trigger guest.added { id: str, email: str, first_name: str, category: 'VIP' | 'Press', age: int?,
  tags: list[str]?, address: { city: str, zip: str? }? }
trigger form.submitted { name: str }

rule "VIP welcome"
when guest.added where category = 'VIP'
then
  send_email(to: email, subject: "Welcome {first_name}!", body: "Your badge is ready")
  wait 1h
  send_message(to: email, text: "How is it going?")
end

rule "Form thanks"
when form.submitted
then
  send_message(to: name, text: "Thanks")
end
"""

GUEST = {"id": "g1", "email": "ada@example.com", "first_name": "Ada", "category": "VIP"}


def folder_of(db: str | Path, folder: Path | None = None) -> Path:
    """Where a test's files beside the database go: `folder`, or a SQLite file's directory."""
    if folder is not None:
        return folder
    assert "://" not in str(db), "a PostgreSQL database needs a folder for the files beside it"
    return Path(db).parent


def publish(db: str | Path, rules: str = RULES, *, enable: bool = True, folder: Path | None = None,
            actions: Path | None = None) -> None:
    """Publish `rules` into `db` (a SQLite path or a postgresql:// URL) with the CLI (the way a user sets a service up)."""
    source = folder_of(db, folder) / "app.rules"
    source.write_text(rules, encoding="utf-8")
    cmd = [sys.executable, "-m", "whenthen", "--db", str(db), "publish", str(source)] + (["--enable"] if enable else [])
    cmd += ["--actions", str(actions)] if actions is not None else []
    done = subprocess.run(cmd, capture_output=True, text=True, env=cli_env())
    assert done.returncode == 0, done.stderr


def rows(db: str | Path, sql: str) -> list[tuple]:
    """A query's rows on either backend (the tests read tables the engine has no listing for)."""
    if "://" in str(db):
        import psycopg

        with psycopg.connect(str(db)) as conn:
            return [tuple(r) for r in conn.execute(sql).fetchall()]
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHENTHEN_")}
    env.update(WHENTHEN_UNBOUND_ACTIONS="outbox", **extra)
    return env


def cli(db: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "whenthen", "--db", str(db), *args], capture_output=True,
                          text=True, env=cli_env())


@dataclass
class Server:
    """One `whenthen serve` process; `client` talks to it."""

    db: str | Path
    port: int
    proc: subprocess.Popen
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def start_server(db: str | Path, *, workers: int = 2, env: dict[str, str] | None = None, port: int | None = None,
                 extra: list[str] = (), log_level: str = "info", folder: Path | None = None) -> Server:
    """Start `whenthen serve` on a free loopback port and wait until `/healthz` answers."""
    port = port or free_port()
    log = folder_of(db, folder) / f"serve-{port}-{time.monotonic_ns()}.log"
    full_env = cli_env(**(env or {}))
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "whenthen", "--db", str(db), "serve", "--port", str(port),
                                 "--workers", str(workers), "--log-level", log_level, *extra],
                                stdout=out, stderr=subprocess.STDOUT, env=full_env)
    server = Server(db, port, proc, log, full_env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited with {proc.returncode}:\n{server.output()}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1.0).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    server.stop(signal.SIGKILL)
    raise AssertionError(f"serve did not answer /healthz within 30 s:\n{server.output()}")


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    """Poll `predicate()` until it returns something truthy (the workers run asynchronously)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
