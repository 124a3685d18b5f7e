"""`whenthen init`: a starter project that checks, simulates and runs; never overwrites a file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import whenthen


def whenthen_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "whenthen", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_init_writes_a_project_that_checks_and_runs(tmp_path: Path) -> None:
    done = whenthen_cli("init", "shop", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    project = tmp_path / "shop"
    assert sorted(p.name for p in project.iterdir()) == [
        "README.md", "events.jsonl", "schema.rules", "welcome.rules", "whenthen.toml"]
    assert whenthen.check(str(project)) == []
    simulated = whenthen_cli("simulate", ".", "--events", "events.jsonl", cwd=project)
    assert simulated.returncode == 0 and "Welcome  2 runs" in simulated.stdout, simulated
    # the README's steps: demo stores the runs; whenthen.toml sends mail to the outbox
    assert whenthen_cli("demo", ".", cwd=project).returncode == 0
    outbox = whenthen_cli("outbox", cwd=project).stdout
    assert "Need a hand getting started?" in outbox and "Welcome, Ada!" in outbox


def test_init_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "welcome.rules").write_text("# mine\n")
    done = whenthen_cli("init", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"not overwriting {Path('.') / 'welcome.rules'}" in done.stderr
    assert (tmp_path / "welcome.rules").read_text() == "# mine\n"
    assert not (tmp_path / "schema.rules").exists()
