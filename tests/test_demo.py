"""The README's main job: `whenthen demo examples` replays the examples into a real database."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def whenthen(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "whenthen", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_demo_publishes_replays_and_keeps_history(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    done = whenthen("demo", "examples", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "10 rules published and enabled in whenthen.db" in done.stdout
    assert "Welcome John!" in done.stdout

    runs = json.loads(whenthen("runs", "--format", "json", cwd=tmp_path).stdout)
    statuses = {r["status"] for r in runs}
    assert statuses <= {"completed", "exited"}, runs
    assert [r["status"] for r in runs if r["rule"] == "Appointment reminder"] == ["completed", "exited"]

    vip = next(r for r in runs if r["rule"] == "VIP welcome")
    steps = json.loads(whenthen("run", str(vip["id"]), "--format", "json", cwd=tmp_path).stdout)["steps"]
    subjects = [s["args"].get("subject") for s in steps if s["kind"] == "action" and s["action"] == "send_email"]
    assert subjects == ["Welcome John!", "Your agenda"]

    # the host actions of examples/actions.py really ran, into the same database
    with sqlite3.connect(tmp_path / "whenthen.db") as db:
        crm = db.execute("SELECT action, subject, detail FROM crm_log ORDER BY rowid").fetchall()
    assert ("set_status", "g1", "confirmed") in crm
    assert ("notify_manager", "k2", "no reply on T-2 from Kim's message") in crm
    assert ("assign_tags", "g3", "speaker, ready") in crm


def test_demo_without_events_file_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    done = whenthen("demo", "rules", cwd=tmp_path)
    assert done.returncode == 2
    assert "events file" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_demo_without_a_folder_uses_the_examples_installed_with_whenthen(tmp_path: Path) -> None:
    """After a plain `pip install whenthen` there is no examples/ folder: the wheel carries them.
    A wheel is built from this checkout and unpacked (which is what installing it does)."""
    import zipfile

    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                            str(wheels), str(EXAMPLES.parent)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    installed = tmp_path / "site"
    with zipfile.ZipFile(next(wheels.glob("whenthen-*.whl"))) as wheel:
        names = wheel.namelist()
        wheel.extractall(installed)
    for name in ("examples/schema.rules", "examples/events.jsonl", "examples/actions.py", "starter/welcome.rules"):
        assert f"whenthen/{name}" in names
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    done = subprocess.run([sys.executable, "-m", "whenthen", "demo"], cwd=empty, capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(installed)})
    assert done.returncode == 0, done.stderr
    assert "10 rules published and enabled in whenthen.db" in done.stdout
    assert "Look around: whenthen rules · whenthen runs · whenthen run 1 · whenthen versions 'Appointment reminder'" in done.stdout
    assert (empty / "whenthen.db").exists()
