"""Read-only commands (SPEC 3) never create or write a database, and can read a read-only one."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parent.parent / "testdata" / "db" / "v1-waiting.db"
READERS = [("rules",), ("runs",), ("run", "3"), ("versions", "Day later"), ("uses", "order.placed"),
           ("outbox",), ("graph", "Day later"), ("runs", "--format", "json"), ("rules", "--format", "json")]


def whenthen(db: Path, *args: str, without_privileges: bool = False) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "whenthen", "--db", str(db), *args]
    if without_privileges:  # root ignores file modes: drop its capabilities so they apply, as to a real reader
        # (staying uid 0 keeps the interpreter reachable where it lies under /root, as in CI)
        command = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=db.parent)


@pytest.mark.parametrize("args", READERS, ids=" ".join)
def test_a_missing_database_is_an_error_and_is_not_created(tmp_path: Path, args: tuple[str, ...]) -> None:
    typo = tmp_path / "typo.db"
    done = whenthen(typo, *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "typo.db" in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # no typo.db, no -wal, no -shm


@pytest.fixture
def readonly_db():
    # pytest's tmp_path lies under a folder only root may enter: the unprivileged reader needs one
    # it can reach
    base = Path(tempfile.mkdtemp(prefix="whenthen-ro-"))
    os.chmod(base, 0o755)
    folder = base / "ro"
    folder.mkdir()
    db = folder / "v1.db"
    shutil.copyfile(FIXTURE, db)
    # an upgraded copy: what a user's database looks like once this whenthen has written to it
    assert whenthen(db, "--now", "2026-11-20T10:40:00Z", "worker", "--once").returncode == 0
    for extra in folder.iterdir():
        assert extra == db, f"{extra.name} left behind"
    os.chmod(db, 0o444)
    os.chmod(folder, 0o555)
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    yield db
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest  # not one byte written
    assert sorted(p.name for p in folder.iterdir()) == [db.name]
    os.chmod(folder, stat.S_IRWXU)
    shutil.rmtree(base)


@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("setpriv") is None, reason="root without setpriv")
@pytest.mark.parametrize("args", READERS, ids=" ".join)
def test_a_read_only_database_can_be_read(readonly_db: Path, args: tuple[str, ...]) -> None:
    done = whenthen(readonly_db, *args, without_privileges=os.geteuid() == 0)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    if args == ("runs",):
        assert "Day later" in done.stdout and "waiting" in done.stdout


def test_a_writing_command_on_a_read_only_database_says_so(readonly_db: Path) -> None:
    done = whenthen(readonly_db, "enable", "Hourly", without_privileges=os.geteuid() == 0)
    assert done.returncode == 2
    assert "read" in done.stderr.lower() and "Traceback" not in done.stderr


@pytest.mark.parametrize("args", [("db", "upgrade"), ("rules",)], ids=" ".join)
def test_the_message_names_the_missing_database(tmp_path: Path, args: tuple[str, ...]) -> None:
    done = whenthen(tmp_path / "typo.db", *args)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: no database at {tmp_path / 'typo.db'}"
    assert list(tmp_path.iterdir()) == []


def test_reading_a_live_database_leaves_its_file_unchanged(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    shutil.copyfile(FIXTURE, db)
    assert whenthen(db, "--now", "2026-11-20T10:40:00Z", "worker", "--once").returncode == 0
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    for args in READERS:
        assert whenthen(db, *args).returncode == 0, args
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest


def test_an_empty_file_reads_as_an_empty_database(tmp_path: Path) -> None:
    # what a first publish killed before its first commit leaves
    db = tmp_path / "empty.db"
    db.write_bytes(b"")
    done = whenthen(db, "rules", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert db.read_bytes() == b"" and sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]
