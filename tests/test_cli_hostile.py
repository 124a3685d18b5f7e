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


def _pipe_first_line(tmp_path: Path, *args: str) -> tuple[str, int, str]:
    """Run whenthen with stdout into a pipe that is closed after one line, as `| head -1` does."""
    env = {k: v for k, v in os.environ.items() if k not in ("WHENTHEN_DB", "WHENTHEN_NOW")}
    proc = subprocess.Popen([sys.executable, "-m", "whenthen", "--db", str(tmp_path / "wt.db"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline().decode()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    return first, proc.wait(timeout=120), err


def test_a_reader_that_goes_away_ends_the_command_quietly(published):
    t = published
    name = "x" * 200
    many = "".join(f'{{"trigger": "guest.added", "data": {{"id": "g{i}", "name": "{name}"}}}}\n' for i in range(1500))
    (t / "many.jsonl").write_text(many)
    assert wt(t, "ingest", "many.jsonl").returncode == 0
    (t / "timed.jsonl").write_text(many.replace('{"trigger"', '{"at": "2026-01-01T00:00:00Z", "trigger"'))
    # line by line, far more than a pipe buffer (64 kB) holds, so the writer meets the closed pipe
    for args in (("runs",), ("simulate", "r.rules", "--events", "timed.jsonl", "--format", "jsonl")):
        first, status, err = _pipe_first_line(t, *args)
        assert first  # it did print
        assert err == "" and status == 141, (args, status, err)  # 128 + SIGPIPE, no message


def test_text_is_shown_as_text_not_escapes(published):
    t = published
    assert wt(t, "emit", "guest.added", '{"id": "g1", "name": "Пётр"}').returncode == 0
    out = wt(t, "run", "1").stdout
    assert 'started by guest.added {"id": "g1", "name": "Пётр"}' in out
    assert 'log(message: "hi Пётр")' in out and "\\u" not in out
    (t / "bad.rules").write_text('rule "Ж" when nope.nope then\nend\n')
    diags = wt(t, "check", "--format", "json", "bad.rules").stdout
    assert "nope.nope" in diags and "\\u" not in diags and '"file": "bad.rules"' in diags
    err = wt(t, "emit", "guest.added", '{"id": 5, "name": "Ж"}').stderr
    assert "field 'id': expected str, got number 5" in err
    err = wt(t, "emit", "guest.added", '{"id": "g", "name": 1, "x": "Жжж"}').stderr
    assert "\\u" not in err


def test_check_reads_rules_from_stdin(published):
    t = published
    ok = wt(t, "check", "-", stdin=RULES.encode())
    assert ok.returncode == 0, ok.stderr
    bad = wt(t, "check", "-", "r.rules", stdin=b'rule "x" when guest.addd then\nend\n')
    assert bad.returncode == 1
    assert "<stdin>:1:15: error[E101]: unknown trigger 'guest.addd'; did you mean 'guest.added'?" in bad.stderr
    assert "   1 | rule \"x\" when guest.addd then\n" in bad.stderr  # the source line, from stdin
    broken = wt(t, "check", "-", stdin=b'rule "\xff" when')
    assert broken.returncode == 1 and "<stdin>:1:7: error[E001]: not UTF-8 text" in broken.stderr


def test_graph_of_a_published_rule_ignores_a_broken_sibling_file(published):
    t = published
    (t / "r.rules").rename(t / "r.rules.kept")
    (t / "broken.rules").write_bytes(b'rule "x\xff" when')
    drawn = wt(t, "graph", "Welcome")
    assert drawn.returncode == 0, drawn.stderr
    assert 'n1(["when guest.added"])' in drawn.stdout
    missing = wt(t, "graph", "Nope")
    assert missing.returncode == 1 and "broken.rules:1:8: error[E001]" in missing.stderr


@pytest.mark.parametrize("args, message", [
    (("runs", "--rule", "welcome"), "error: unknown rule 'welcome'; did you mean 'Welcome'?"),
    (("versions", "Nope"), "error: unknown rule 'Nope'"),
    (("enable", "Nope"), "error: unknown rule 'Nope'"),
    (("uses", "guest.addd"), "error: unknown trigger 'guest.addd'; did you mean 'guest.added'?"),
    (("uses", "nope.nope", "--path", "r.rules"), "error: unknown trigger 'nope.nope' in r.rules"),
    (("disasm", "r.rules", "--rule", "welcome"), "error: unknown rule 'welcome' in the program; did you mean "
                                                 "'Welcome'?"),
    (("graph", "Nope"), "error: unknown rule 'Nope'"),
])
def test_unknown_names_are_one_behaviour(published, args, message):
    proc = wt(published, *args)
    assert proc.returncode == 1, (args, proc.returncode, proc.stderr)
    assert proc.stderr.startswith(message), proc.stderr


def test_known_names_without_uses_or_runs_are_not_errors(published):
    t = published
    assert wt(t, "runs", "--rule", "Welcome").returncode == 0
    quiet = wt(t, "uses", "run.failed")  # a system trigger nothing uses yet
    assert quiet.returncode == 0 and "no rule uses run.failed" in quiet.stdout
