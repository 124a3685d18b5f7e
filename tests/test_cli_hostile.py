"""The command line tried as a hostile sender and a new user would: clean errors, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

RULES = """
trigger guest.added { id: str, name: str? }

rule "Welcome"
when guest.added
then
  log(message: "hi {name}")
end
"""


def wt(tmp_path: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("WHENTHEN_DB", "WHENTHEN_NOW")}
    proc = subprocess.run([sys.executable, "-m", "whenthen", "--db", str(tmp_path / "wt.db"), *args],
                          capture_output=True, cwd=tmp_path, env=env, input=stdin, timeout=120)
    proc.stdout, proc.stderr = proc.stdout.decode(), proc.stderr.decode()
    return proc


@pytest.fixture
def published(tmp_path):
    (tmp_path / "r.rules").write_text(RULES)
    assert wt(tmp_path, "publish", "r.rules", "--enable").returncode == 0
    return tmp_path


def test_emit_of_a_payload_that_is_not_utf8_is_rejected_from_a_file_stdin_or_argument(published):
    t = published
    (t / "bad.json").write_bytes(b'{"id": "a\xff"}')
    for args, stdin in ((("@bad.json",), None), (("-",), b'{"id": "a\xff"}')):
        proc = wt(t, "emit", "guest.added", *args, stdin=stdin)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr == "error: guest.added: the payload is not UTF-8 text (byte 0xff at offset 9)\n"
    proc = subprocess.run([sys.executable, "-m", "whenthen", "--db", str(t / "wt.db"), "emit", "guest.added",
                           os.fsdecode(b'{"id": "a\xff"}')], capture_output=True, text=True, cwd=t)
    assert proc.returncode == 1 and "not UTF-8 text (byte 0xff at offset 9)" in proc.stderr
