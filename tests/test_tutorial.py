"""docs/tutorial.md is played command by command in a fresh folder; each command's output must be
exactly what the page shows (WHENTHEN_UPDATE_GOLDENS=1 rewrites the page's outputs instead)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from _paths import REPO, UPDATE_GOLDENS

TUTORIAL = REPO / "docs" / "tutorial.md"
CONSOLE = re.compile(r"^```console\n(.*?)^```\n", re.MULTILINE | re.DOTALL)


def _commands(block: str) -> list[tuple[str, list[str]]]:
    """The block's `$ command` lines, each with the output lines shown under it."""
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
    return steps


def _shell(tmp_path: Path) -> dict[str, str]:
    """An environment where `whenthen` is this checkout's CLI and no WHENTHEN_ setting leaks in."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "whenthen"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m whenthen "$@"\n')
    shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHENTHEN_") and k not in ("NO_COLOR",)}
    env.update(PATH=f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}", NO_COLOR="1", COLUMNS="120")
    return env


def test_the_tutorial_runs_as_written(tmp_path: Path) -> None:
    page = TUTORIAL.read_text(encoding="utf-8")
    env = _shell(tmp_path)
    cwd = tmp_path / "work"
    cwd.mkdir()
    mismatches: list[str] = []
    played = 0

    def play(match: re.Match) -> str:
        nonlocal cwd, played
        rendered = []
        for command, shown in _commands(match.group(1)):
            played += 1
            if command.startswith("cd "):
                cwd = cwd / command[3:].strip()
                output: list[str] = []
            else:
                done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True,
                                      text=True, timeout=120)
                assert "Traceback" not in done.stderr, done.stderr
                output = done.stdout.splitlines() + done.stderr.splitlines()
                output = [line.rstrip() for line in output]
            if output != shown:
                mismatches.append(f"$ {command}\n  page:\n    " + "\n    ".join(shown)
                                  + "\n  got:\n    " + "\n    ".join(output))
            rendered.append("\n".join([f"$ {command}", *output]))
        return "```console\n" + "\n".join(rendered) + "\n```\n"

    updated = CONSOLE.sub(play, page)
    assert played >= 10, "the tutorial should walk through the whole path"
    if UPDATE_GOLDENS:
        TUTORIAL.write_text(updated, encoding="utf-8")
        return
    assert not mismatches, "docs/tutorial.md differs from what the commands print:\n" + "\n".join(mismatches)
