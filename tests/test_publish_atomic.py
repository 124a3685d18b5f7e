"""A whole program is published in one transaction: a publish SIGKILLed midway leaves all or nothing."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

RULES = 1500


def write_program(folder: Path) -> None:
    lines = ['timezone "UTC"', "trigger t.go { n: int }"]
    for i in range(RULES):
        lines += [f'rule "R{i:04d}"', "when t.go", f"where n = {i}", "then", f'  log(message: "r{i}")', "end"]
    (folder / "big.rules").write_text("\n".join(lines) + "\n")


def whenthen(db: str, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "whenthen", "--db", str(db), *args],
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr
    return done


@pytest.mark.slow
def test_sigkill_during_publish_leaves_all_or_nothing(tmp_path: Path, new_db, backend: str) -> None:
    write_program(tmp_path)
    # how long a whole publish takes here, so the kills land at every point of it
    started = time.monotonic()
    assert whenthen(new_db("timing"), "publish", str(tmp_path)).returncode == 0
    full = time.monotonic() - started
    rng = random.Random(12)
    outcomes = []
    # PostgreSQL's transactions are the server's; two kills show the program is one of them
    for trial in range(6 if backend == "sqlite" else 2):
        db = new_db(f"k{trial}")
        proc = subprocess.Popen([sys.executable, "-m", "whenthen", "--db", db, "publish", str(tmp_path)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.35, 0.95) * full)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if "://" not in db and not Path(db).exists():
            outcomes.append(0)
            continue
        listed = whenthen(db, "rules", "--format", "json")
        assert listed.returncode == 0, listed.stderr
        names = {r["name"] for r in json.loads(listed.stdout)}
        used = whenthen(db, "uses", "t.go", "--format", "json")
        if names:
            assert used.returncode == 0, used.stderr
            with_uses = {u["rule"] for u in json.loads(used.stdout)}
        else:  # nothing published: not even the trigger's declaration, so it is unknown (docs/cli.md)
            assert used.returncode == 1 and "unknown trigger 't.go'" in used.stderr, used.stderr
            with_uses = set()
        assert len(names) in (0, RULES), f"trial {trial}: {len(names)} of {RULES} rules published"
        assert with_uses == names  # no version without its `uses` rows
        outcomes.append(len(names))
        # and the interrupted database still takes the publish, completely
        assert whenthen(db, "publish", str(tmp_path)).returncode == 0
        assert len(json.loads(whenthen(db, "rules", "--format", "json").stdout)) == RULES
    assert 0 in outcomes or RULES in outcomes
