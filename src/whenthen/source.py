"""Source text of one rules file: offsets to line/column and source-line snippets for carets."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Source:
    """A named piece of rules text (a file path, or `input` for a string)."""

    name: str
    text: str
    # (character offset, reason) of the first byte that is not UTF-8: the file is reported as E001
    # there instead of parsed (its text holds U+FFFD replacements so lines still show)
    decode_error: tuple[int, str] | None = field(default=None, compare=False)
    _line_starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        starts = [0]
        text, find, append = self.text, self.text.find, starts.append
        at = find("\n")
        while at >= 0:  # str.find runs in C: a 5,000-rule file in a few milliseconds
            append(at + 1)
            at = find("\n", at + 1)
        del text
        object.__setattr__(self, "_line_starts", tuple(starts))

    @property
    def stem(self) -> str:
        """The file name without its directory and `.rules` suffix (`input` for strings)."""
        name = Path(self.name).name
        return name[: -len(".rules")] if name.endswith(".rules") else name

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self._line_starts, offset) - 1
        return line + 1, offset - self._line_starts[line] + 1

    def offset(self, line: int, column: int) -> int:
        """Character offset of a 1-based (line, column)."""
        line = max(1, min(line, len(self._line_starts)))
        return self._line_starts[line - 1] + column - 1

    def line_text(self, line: int) -> str:
        """The text of a 1-based line, without its newline."""
        if line < 1 or line > len(self._line_starts):
            return ""
        start = self._line_starts[line - 1]
        end = self.text.find("\n", start)
        return self.text[start:] if end < 0 else self.text[start:end]

    @classmethod
    def from_path(cls, path: str | Path) -> Source:
        return cls(str(path), Path(path).read_text(encoding="utf-8"))
