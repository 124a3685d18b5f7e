"""A throwaway PostgreSQL cluster for tests (initdb and pg_ctl in a temp folder), and fresh databases."""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from _servers import free_port

_names = itertools.count(1)


def _bindir() -> Path | None:
    """The newest PostgreSQL's binaries: PATH's initdb, else Debian's /usr/lib/postgresql/*/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(Path(d).parent.name)
                  if Path(d).parent.name.isdigit() else 0)
    return Path(dirs[-1]) if dirs else None


class Cluster:
    """A PostgreSQL server of our own on 127.0.0.1 (fsync off): start, restart, stop. As root it
    runs as the `postgres` user (the server refuses root)."""

    def __init__(self, options: str = "") -> None:
        """`options`: more server settings (`-c name=value …`), e.g. `-c synchronous_commit=on`."""
        bindir = _bindir()
        if bindir is None:
            raise RuntimeError("no PostgreSQL server binaries (initdb) on PATH or under /usr/lib/postgresql/*/bin")
        self.bindir = bindir
        self.port = free_port()
        self.options = options
        self.dir = Path(tempfile.mkdtemp(prefix="whenthen-pg-"))
        self.data = self.dir / "data"
        self._as: list[str] = []
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                raise RuntimeError("running as root without runuser: cannot start PostgreSQL as 'postgres'")
            self._as = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.dir, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.start()

    def _run(self, tool: str, *args: str, timeout: float = 120) -> None:
        done = subprocess.run([*self._as, str(self.bindir / tool), *args], capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-800:]}")

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 "
                   f"{self.options}").strip()
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-t", "60", "-o", options,
                  "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


class Server:
    """Fresh databases on one server (a URL): each a copy of an empty whenthen database."""

    def __init__(self, url: str, cluster: Cluster | None = None):
        import psycopg

        from whenthen.runtime.store.postgres import PostgresStore

        self.url = url
        self.cluster = cluster
        self.admin = psycopg.connect(url, autocommit=True)
        self.prefix = f"pg_t{os.getpid()}_"
        self.template = f"{self.prefix}template"
        self.admin.execute(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')
        self.admin.execute(f'CREATE DATABASE "{self.template}"')
        PostgresStore(self.url_of(self.template)).close()  # the tables, once
        self.created: list[str] = []

    def url_of(self, name: str) -> str:
        base, _, _ = self.url.rpartition("/")
        return f"{base}/{name}"

    def fresh(self) -> str:
        """The URL of a new database holding empty whenthen tables."""
        name = f"{self.prefix}{next(_names)}"
        for attempt in range(50):  # a template still in use by a closing session: retry shortly
            try:
                self.admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
                break
            except Exception:
                if attempt == 49:
                    raise
                time.sleep(0.1)
        self.created.append(name)
        return self.url_of(name)

    def drop(self, url: str) -> None:
        name = url.rpartition("/")[2]
        try:
            self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except Exception:
            pass

    def close(self) -> None:
        for name in [*self.created, self.template]:
            try:
                self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception:
                pass
        self.admin.close()


def unavailable(reason: str) -> None:
    """No PostgreSQL here: skip, saying why, or fail under WHENTHEN_REQUIRE_PG=1 (CI)."""
    message = f"PostgreSQL is not available: {reason}"
    if os.environ.get("WHENTHEN_REQUIRE_PG") == "1":
        pytest.fail(message + " (WHENTHEN_REQUIRE_PG=1)", pytrace=False)
    pytest.skip(message)
