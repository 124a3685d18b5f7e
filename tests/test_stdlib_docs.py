"""docs/stdlib.md is what the stdlib declarations generate, so the two cannot drift apart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from whenthen.stdlib import default_schema
from whenthen.stdlib.docs import action_signature, render

STDLIB_MD = Path(__file__).resolve().parent.parent / "docs" / "stdlib.md"


def test_committed_file_equals_the_generated_text():
    committed = STDLIB_MD.read_text(encoding="utf-8")
    assert committed == render(), "docs/stdlib.md is stale: run python -m whenthen.stdlib.docs > docs/stdlib.md"


def test_every_function_and_action_is_documented_with_its_signature():
    schema = default_schema()
    text = render()
    for name in [*schema.functions, *schema.actions]:
        assert f"### `{name}(" in text
    assert f"### `{action_signature(schema.actions['webhook'])}`" in text
    assert "### `webhook(url: str, body: json? = null, method: str = 'POST') -> { status: int, body: json? }`" in text


def test_the_module_prints_the_page():
    proc = subprocess.run([sys.executable, "-m", "whenthen.stdlib.docs"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == render()
