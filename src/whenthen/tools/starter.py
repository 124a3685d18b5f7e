"""`whenthen init`: write a starter project (schema, a rule, events, settings) into a folder."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from whenthen.diagnostics import WhenthenError

STARTER_FILES = ("schema.rules", "welcome.rules", "events.jsonl", "whenthen.toml", "README.md")


class StarterError(WhenthenError):
    """The starter project cannot be written (a file is in the way, or the folder is not writable)."""


def create_project(folder: Path) -> list[Path]:
    """Write the starter files into `folder` (created when missing); never overwrites a file."""
    targets = [folder / name for name in STARTER_FILES]
    in_the_way = [str(path) for path in targets if path.exists()]
    if in_the_way:
        raise StarterError(f"not overwriting {', '.join(in_the_way)}: choose an empty folder (whenthen init DIR)")
    bundled = resources.files("whenthen") / "starter"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for path in targets:
            path.write_text(bundled.joinpath(path.name).read_text(encoding="utf-8"), encoding="utf-8")
    except OSError as exc:
        raise StarterError(f"{folder}: {exc.strerror or exc}") from exc
    return targets
