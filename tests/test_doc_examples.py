"""Every rules example in docs/ and the README checks as its text says it does."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import whenthen

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
# A plain block that starts like a rules file but is not marked `whenthen` would escape the check.
LOOKS_LIKE_RULES = re.compile(r"^(rule\s+\"|when\s|trigger\s+\w+\.|action\s+\w+\(|timezone\s+\")")


@dataclass
class Example:
    """One fenced `whenthen` block: its text, where it is, and what checking it must report."""

    document: Path
    line: int
    text: str
    expected: frozenset[str]  # diagnostic codes; empty means it must check clean
    schema: str  # declarations it is checked with

    @property
    def id(self) -> str:
        return f"{self.document.name}:{self.line}"


def _blocks(document: Path) -> list[tuple[int, str, str]]:
    source = document.read_text(encoding="utf-8")
    return [
        (source.count("\n", 0, match.start()) + 2, match.group(1).strip(), match.group(2))
        for match in FENCE.finditer(source)
    ]


def _examples() -> list[Example]:
    examples = []
    for document in DOCUMENTS:
        blocks = _blocks(document)
        # `whenthen schema` blocks declare what the page's other examples use.
        page_schema = "\n".join(text for _, info, text in blocks if info == "whenthen schema")
        for line, info, text in blocks:
            words = info.split()
            if not words or words[0] != "whenthen" or words[1:] == ["schema"]:
                continue
            options = dict(word.split("=", 1) for word in words[1:])
            schema = page_schema
            if "with" in options:
                schema = (ROOT / options["with"]).read_text(encoding="utf-8")
            codes = options.get("error", "") + "," + options.get("warning", "")
            expected = frozenset(code for code in codes.split(",") if code)
            examples.append(Example(document, line, text, expected, schema))
    return examples


EXAMPLES = _examples()


def test_the_pages_have_examples() -> None:
    pages = {example.document.name for example in EXAMPLES}
    assert {"reference.md", "README.md"} <= pages  # tutorial.md is played by test_tutorial.py
    assert sum(example.document.name == "reference.md" for example in EXAMPLES) >= 30


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: example.id)
def test_example_checks_as_the_text_says(example: Example, tmp_path: Path) -> None:
    (tmp_path / "schema.rules").write_text(example.schema, encoding="utf-8")
    (tmp_path / "example.rules").write_text(example.text, encoding="utf-8")
    diagnostics = whenthen.check([str(tmp_path / "schema.rules"), str(tmp_path / "example.rules")])
    in_schema = [d for d in diagnostics if Path(d.file).name == "schema.rules"]
    assert not in_schema, f"the declarations of {example.document.name} do not check: {in_schema}"
    reported = {d.code for d in diagnostics}
    assert reported == example.expected, "\n".join(
        [f"{example.id}: expected {sorted(example.expected) or 'no diagnostics'}, got:"]
        + [f"  {d.line}:{d.column}: {d.code} {d.message}" for d in diagnostics]
    )


def _first_statement(text: str) -> str:
    rows = [row.strip() for row in text.splitlines()]
    return next((row for row in rows if row and not row.startswith("#")), "")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda document: document.name)
def test_every_rules_example_is_marked(document: Path) -> None:
    unmarked = [
        line
        for line, info, text in _blocks(document)
        if not info and LOOKS_LIKE_RULES.match(_first_statement(text))
    ]
    assert not unmarked, f"{document.name}: rules examples at lines {unmarked} are not marked ```whenthen"
