"""A throwaway PostgreSQL cluster a test owns: initdb in a temp folder, start, restart, stop."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from _servers import free_port

# Debian puts the server binaries here; PATH may only hold the client wrappers
_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def server_binary(name: str) -> str | None:
    """The path of `initdb`, `pg_ctl`, … from Debian's package or PATH, or None when not installed."""
    for folder in _BIN_DIRS:
        if (folder / name).exists():
            return str(folder / name)
    return shutil.which(name)


class Cluster:
    """One PostgreSQL server on 127.0.0.1:`port` whose data folder is `data`. The server refuses to
    run as root, so when the tests run as root every command runs as the `postgres` user."""

    def __init__(self, folder: Path, port: int):
        self.folder = folder
        self.data = folder / "data"
        self.port = port
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def _run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
        command = list(argv)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=timeout)

    def init(self) -> None:
        initdb = server_binary("initdb")
        assert initdb is not None
        self._run(initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        # fsync off: the tests kill processes, not the machine; a crash restart still replays the WAL
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off "
                   "-c synchronous_commit=on -c max_connections=100")
        self._run(server_binary("pg_ctl") or "pg_ctl", "-D", str(self.data), "-o", options,
                  "-l", str(self.folder / "server.log"), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; `mode="immediate"` is a crash (no checkpoint, connections cut)."""
        self._run(server_binary("pg_ctl") or "pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def log(self) -> str:
        path = self.folder / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""


def can_start_cluster() -> str | None:
    """Why a throwaway cluster cannot be started here, or None when it can."""
    if server_binary("initdb") is None or server_binary("pg_ctl") is None:
        return "PostgreSQL's server binaries (initdb, pg_ctl) are not installed"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser to become the postgres user"
    return None


@contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """A fresh, started cluster, stopped and deleted afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="whenthen-pg-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
        cluster = Cluster(folder, free_port())
        cluster.init()
        cluster.start()
        try:
            yield cluster
        finally:
            try:
                cluster.stop("immediate")
            except subprocess.CalledProcessError:
                pass  # already stopped by the test
    finally:
        shutil.rmtree(folder, ignore_errors=True)
