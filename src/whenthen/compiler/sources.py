"""Loading program sources: files, folders of `*.rules`, or rules text given as a string.

How a `str` is read (a `Path` is always a path):
- the path of an existing file or folder is that path;
- otherwise it is rules text when it contains a newline, is empty or blank, or starts with a
  keyword that opens a top-level item (`rule`, `when`, `trigger`, `action`, `timezone`) followed
  by whitespace or a quote: `when guest.added then log(message: 'x')` is source text;
- anything else is taken as a path that does not exist, which raises `SourceError`.
Source given as text is named `input` (the next ones `input-2`, `input-3`, …), so its unnamed
rules are `input:LINE`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from whenthen.diagnostics import Diagnostic, WhenthenError
from whenthen.source import Source

_LOOKS_LIKE_RULES = re.compile(r"\s*(rule|when|trigger|action|timezone)[\s\"]")

PathOrText = str | Path | Source


class SourceError(WhenthenError):
    """A source path is missing, unreadable or not UTF-8 (the CLI exits 2)."""


def is_source_text(value: str) -> bool:
    """True when a string is rules text rather than a path (see the module docstring)."""
    if _existing_path(value):
        return False
    return "\n" in value or not value.strip() or bool(_LOOKS_LIKE_RULES.match(value))


def _existing_path(value: str) -> bool:
    # Strings with NUL or over-long names cannot be paths; asking the OS about them would raise.
    if not value or "\0" in value or len(value) >= 4096:
        return False
    try:
        return Path(value).exists()
    except (OSError, ValueError):
        return False


def load_sources(paths_or_source: PathOrText | Sequence[PathOrText]) -> list[Source]:
    """The sources of a program, in order: files as given, a folder's `*.rules` sorted by name."""
    if isinstance(paths_or_source, (str, Path, Source)):
        items: Sequence[PathOrText] = [paths_or_source]
    else:
        items = list(paths_or_source)
    sources: list[Source] = []
    texts = 0
    for item in items:
        if isinstance(item, Source):
            sources.append(item)
        elif isinstance(item, str) and is_source_text(item):
            texts += 1
            sources.append(Source("input" if texts == 1 else f"input-{texts}", item))
        elif isinstance(item, (str, Path)):
            sources.extend(_load_path(Path(item)))
        else:
            raise SourceError(f"expected a path or rules text, got {type(item).__name__}")
    return sources


def _load_path(path: Path) -> list[Source]:
    if path.is_dir():
        files = sorted(p for p in path.glob("*.rules") if p.is_file())
        if not files:
            raise SourceError(f"{path}: no .rules files in this folder")
        return [_read(p) for p in files]
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    return [_read(path)]


def _read(path: Path) -> Source:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{path}: {exc.strerror or exc}") from exc
    return source_from_bytes(str(path), raw)


def source_from_bytes(name: str, raw: bytes) -> Source:
    """Rules read as bytes (a file, stdin); text that is not UTF-8 carries its E001."""
    try:
        return Source(name, raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        # SPEC 2.7: a diagnostic (E001), so the other files are still checked and reported
        offset = len(raw[:exc.start].decode("utf-8", "replace"))
        reason = f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at byte offset {exc.start}: {exc.reason})"
        return Source(name, raw.decode("utf-8", "replace"), decode_error=(offset, reason))


# (code, message start naming the missing declaration, how that declaration starts a line)
_DECLARED_ELSEWHERE = (
    ("E101", re.compile(r"^unknown trigger '([\w.]+)'"), r"^[ \t]*trigger[ \t]+{}(?![\w.])"),
    ("E104", re.compile(r"^unknown action or function '(\w+)'"), r"^[ \t]*action[ \t]+{}[ \t]*\("),
)


def with_sibling_hints(diagnostics: list[Diagnostic], sources: Sequence[Source]) -> list[Diagnostic]:
    """Unknown triggers and actions declared in a `*.rules` file beside a given file, but not given
    themselves, name that file: a newcomer checking `vip.rules` without `schema.rules` learns why."""
    given = {Path(s.name).resolve() for s in sources if Path(s.name).is_file()}
    folders = sorted({Path(s.name).parent for s in sources if Path(s.name).is_file()})
    hinted = []
    for diagnostic in diagnostics:
        for code, message, declaration in _DECLARED_ELSEWHERE:
            match = message.match(diagnostic.message) if diagnostic.code == code else None
            sibling = match and _declaring_sibling(declaration.format(re.escape(match.group(1))), folders, given)
            if sibling:
                diagnostic = replace(diagnostic, message=f"{diagnostic.message}; it is declared in {sibling}, "
                                     f"which was not given (check the folder: whenthen check {sibling.parent})")
        hinted.append(diagnostic)
    return hinted


def _declaring_sibling(declaration: str, folders: list[Path], given: set[Path]) -> Path | None:
    pattern = re.compile(declaration, re.MULTILINE)
    for folder in folders:
        for path in sorted(folder.glob("*.rules")):
            if path.resolve() in given:
                continue
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            if pattern.search(text):
                return path
    return None
