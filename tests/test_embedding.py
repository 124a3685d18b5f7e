"""docs/embedding.md's example runs as shown and leaves a database the CLI reads."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "embed_app.py"
EMBEDDING = (ROOT / "docs" / "embedding.md").read_text(encoding="utf-8")


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```$", text, flags=re.S | re.M)


def test_the_page_shows_the_example_file_unchanged():
    assert _blocks(EMBEDDING, "python") == [EXAMPLE.read_text(encoding="utf-8")]


def test_the_example_runs_and_prints_what_the_page_says(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHENTHEN_")}
    proc = subprocess.run([sys.executable, str(EXAMPLE), str(tmp_path / "app.db")], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    shown = EMBEDDING.split("Its output:", 1)[1]
    assert proc.stdout == _blocks(shown, "")[0]
    # the database it leaves is a normal one: the CLI reads its history
    runs = subprocess.run([sys.executable, "-m", "whenthen", "--db", str(tmp_path / "app.db"), "runs"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert runs.returncode == 0 and "VIP welcome" in runs.stdout and "completed" in runs.stdout


def test_the_example_history_in_process():
    spec = importlib.util.spec_from_file_location("embed_app", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    [run] = module.main(":memory:")
    assert run["status"] == "completed" and run["event"]["data"]["first_name"] == "Ada"
    actions = [s for s in run["steps"] if s["kind"] == "action"]
    assert [a["action"] for a in actions] == ["print_badge", "send_email", "send_message"]
    assert actions[1]["args"] == {"to": "ada@example.com", "subject": "Welcome Ada!", "body": "Your badge: B-g1"}
