"""`ingest` reads its file line by line: bad lines are rejected with FILE:LINE, the rest go in,
memory stays bounded, and every field of a line is used or refused (real processes, real files)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from whenthen.runtime.engine import Engine
from whenthen.runtime.jsonl import MAX_LINE_BYTES, decode_line, raw_lines

RULES = """
trigger guest.added { id: str, name: str? }

rule "Welcome"
when guest.added
then
  log(message: "hi {name}")
end
"""

GOOD = '{"trigger": "guest.added", "data": {"id": "%s"}}'


def wt(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("WHENTHEN_DB", "WHENTHEN_NOW")}
    return subprocess.run([sys.executable, "-m", "whenthen", "--db", str(tmp_path / "wt.db"), *args],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)


@pytest.fixture
def published(tmp_path):
    (tmp_path / "r.rules").write_text(RULES)
    assert wt(tmp_path, "publish", "r.rules", "--enable").returncode == 0
    return tmp_path


def _events(db: Path) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT status, data, error FROM events ORDER BY id").fetchall()


def test_a_bad_line_is_rejected_with_file_and_line_and_the_others_go_in(published):
    t = published
    lines = [
        (GOOD % "a").encode(),
        (GOOD % "b").encode()[:-5] + b'\xff"}}',            # a byte that is not UTF-8
        (GOOD % "\\ud800").encode(),                          # a lone surrogate
        b'{"trigger": "guest.added", "at": "2026-01-01T00:00:00Z", "data": {"id": "c"}}',
        b'{"trigger": "guest.added", "at": null, "data": {"id": "c"}}',
        b'{"trigger": "guest.added", "data": {"id": "d", "id": "e"}}',
        (GOOD % "x\u2028y").encode(),                         # U+2028 inside a string: still one line
        b'{"trigger": "guest.added", "data": {"id": "f"}, "when": 1}',
        b"",
        b"[1, 2]",
        (GOOD % "last").encode(),
    ]
    (t / "e.jsonl").write_bytes(b"\n".join(lines))  # no newline after the last line
    proc = wt(t, "ingest", "e.jsonl")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    err = proc.stderr
    assert "e.jsonl:2: error: not UTF-8 text: byte 0xff at column 43" in err
    assert "e.jsonl:3: error: guest.added: field 'id': not valid Unicode text" in err
    assert "e.jsonl:4: error: guest.added: 'at' is not used by ingest" in err
    assert "e.jsonl:5: error: guest.added: 'at' is not used by ingest" in err
    assert "e.jsonl:6: error: invalid JSON: the key 'id' is given twice" in err
    assert "e.jsonl:8: error: guest.added: unknown key 'when'" in err
    assert "e.jsonl:10: error: an event line must be a JSON object" in err
    assert ":7:" not in err and ":9:" not in err and ":11:" not in err
    assert "3 accepted, 7 rejected" in err
    events = _events(t / "wt.db")
    # one row per non-blank line, in order; the undecodable one kept with its bad byte escaped
    assert [s for s, _, _ in events] == ["processed", *["rejected"] * 5, "processed", "rejected", "rejected",
                                         "processed"]
    assert "\\xff" in events[1][1]
    assert json.loads(events[6][1]) == {"id": "x\u2028y", "name": None}


def test_memory_stays_bounded_whatever_the_file_size(published):
    """A 160 MB file (lines far over the limit, between valid ones) is read in about one line of
    memory: the old reader held the whole file, and its lines, at once."""
    t = published
    big = b'{"trigger": "guest.added", "data": {"id": "' + b"x" * (2 * MAX_LINE_BYTES) + b'"}}\n'
    with open(t / "big.jsonl", "wb") as f:
        for i in range(80):
            f.write((GOOD % f"g{i}").encode() + b"\n")
            f.write(big)
    assert (t / "big.jsonl").stat().st_size > 150_000_000
    probe = ("import resource, subprocess, sys;"
             "p = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
             "sys.stdout.write(p.stderr[-300:] + '\\nRSS ' + str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))")
    env = {k: v for k, v in os.environ.items() if k not in ("WHENTHEN_DB", "WHENTHEN_NOW")}
    out = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m", "whenthen", "--db",
                          str(t / "wt.db"), "ingest", str(t / "big.jsonl")],
                         capture_output=True, text=True, env=env, timeout=300).stdout
    assert "80 accepted, 80 rejected" in out
    assert "big.jsonl:2: error: line too long" in out or "big.jsonl:160: error: line too long" in out
    peak_kb = int(out.rsplit("RSS ", 1)[1])
    assert peak_kb < 150_000, f"peak RSS {peak_kb} kB for a 160 MB file"


def test_engine_ingest_takes_byte_lines_and_need_not_collect_rejections(tmp_path):
    engine = Engine(tmp_path / "wt.db")
    from whenthen.api import compile as compile_api

    engine.publish(compile_api(RULES), enable=True)
    seen: list[tuple[int, str | None]] = []
    lines = [(GOOD % "a").encode() + b"\r\n", b"\xc3(", (GOOD % "b").encode()]
    accepted, rejected = engine.ingest(lines, on_line=lambda n, e: seen.append((n, e)), keep_rejected=False)
    assert (accepted, rejected) == (2, [])
    assert seen[0] == (1, None) and seen[2] == (3, None)
    assert seen[1][0] == 2 and seen[1][1].startswith("not UTF-8 text: byte 0xc3 at column 1")
    assert [r["status"] for r in engine.events()] == ["processed", "rejected", "processed"]


def test_raw_lines_split_at_newline_only_and_cut_overlong_lines(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"\xef\xbb\xbfa" + "\u2028".encode() + b"b\n" + b"y" * (MAX_LINE_BYTES + 10) + b"\nlast")
    with open(path, "rb") as f:
        got = list(raw_lines(f))
    assert [decode_line(got[0]), decode_line(got[2])] == ["a\u2028b", "last"]
    assert len(got) == 3 and len(got[1]) == MAX_LINE_BYTES + 1
    with pytest.raises(Exception, match="line too long"):
        decode_line(got[1])
