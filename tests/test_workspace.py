"""The language server's incremental analysis (tools/workspace.py) gives, after every edit, the
diagnostics a whole-program `check_program` gives for the same texts."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from whenthen.compiler.checker import check_program
from whenthen.source import Source
from whenthen.tools.workspace import Workspace

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# pieces an edit inserts: item lines, broken syntax, names of declarations, headers
PIECES = [
    "x", " ", "\n", "'", '"', "#", "(", ")", "{", "}", ":", ".", "end\n", "then\n", "rule \"R\"\n",
    "\nwhen guest.added then log(message: 'x')\n", "\nrule \"VIP welcome\"\nwhen guest.added\nthen\n  wait 1h\nend\n",
    "\ntrigger guest.added { id: int }\n", "\ntrigger extra.one { id: str }\n", "\naction set_status(x: int)\n",
    "\ntimezone \"UTC\"\n", "\nlocale \"fr-FR\"\n", "timezone \"Europe/Paris\"\n", "guest.added", "set_status",
    "create_form", "when ", "where ", " and ", "wait until 2026-12-01T09:00\n", "\nwhen every day at 09:00 then log(message: 'd')\n",
    "email", "category", "'VIP'", "let a = 1\n", "elif", "else", "else if ", "wait 1 day\n", "\n  x = 6\n", "emit form.submitted(track_id: 'x')\n",
]


def _diagnostics(texts: dict[str, str]) -> dict[str, list[tuple]]:
    program = check_program([Source(p, t) for p, t in sorted(texts.items())])
    found: dict[str, list[tuple]] = {p: [] for p in texts}
    for d in program.diagnostics:
        found.setdefault(d.file, []).append((d.code, d.span, d.message))
    return found


def _incremental(workspace: Workspace, texts: dict[str, str]) -> dict[str, list[tuple]]:
    result = workspace.update(texts)
    found: dict[str, list[tuple]] = {p: [] for p in texts}
    for path, diagnostics in result.diagnostics.items():
        found.setdefault(path, []).extend((d.code, d.span, d.message) for d in diagnostics)
    return {p: v for p, v in found.items() if v or p in texts}


def _edit(rng: random.Random, text: str) -> str:
    at = rng.randrange(len(text) + 1)
    roll = rng.random()
    if roll < 0.35 and text:
        return text[:at] + text[at + rng.randint(1, 12):]  # a deletion
    if roll < 0.45 and text:  # move a line (its rule's segment changes, maybe a header moves)
        lines = text.splitlines(keepends=True)
        line = lines.pop(rng.randrange(len(lines)))
        lines.insert(rng.randrange(len(lines) + 1), line)
        return "".join(lines)
    if roll < 0.55:  # undo-like: the line start of an item loses or gains its indentation
        return text[:at] + "  " + text[at:]
    return text[:at] + rng.choice(PIECES) + text[at:]


@pytest.mark.parametrize("seed", range(6))
def test_incremental_diagnostics_equal_a_full_check_after_random_edits(seed: int) -> None:
    rng = random.Random(seed)
    texts = {str(p): p.read_text(encoding="utf-8") for p in sorted(EXAMPLES.glob("*.rules"))}
    workspace = Workspace()
    assert _incremental(workspace, texts) == _diagnostics(texts)
    paths = sorted(texts)
    for step in range(50):
        path = rng.choice(paths)
        texts[path] = _edit(rng, texts[path])
        if rng.random() < 0.1:  # sometimes a whole-file revert to the original
            texts[path] = Path(path).read_text(encoding="utf-8")
        assert _incremental(workspace, texts) == _diagnostics(texts), (seed, step, path)


def test_an_edit_reparses_and_rechecks_only_what_it_touched() -> None:
    texts = {str(p): p.read_text(encoding="utf-8") for p in sorted(EXAMPLES.glob("*.rules"))}
    workspace = Workspace()
    first = workspace.update(texts)
    assert first.checked == len(first.rules)
    path = str(EXAMPLES / "guests.rules")
    texts[path] = texts[path].replace("subject: \"Your agenda\"", "subject: \"Your agendas\"")
    again = workspace.update(texts)
    assert (again.parsed, again.checked) == (1, 1)
    # a declaration the rules read: every rule started by guest.added is checked again
    schema = str(EXAMPLES / "schema.rules")
    texts[schema] = texts[schema].replace("first_name: str", "first_name: int", 1)
    changed = workspace.update(texts)
    users = [r for r in changed.rules if r.trigger == "guest.added"]
    assert users and users[0] and changed.checked >= len(users)
    assert changed.diagnostics == {p: d for p, d in changed.diagnostics.items()}
    assert _incremental(workspace, texts) == _diagnostics(texts)


@pytest.mark.parametrize("stop_after", [0, 1, 2, 3])
def test_a_cancelled_pass_leaves_nothing_stale(stop_after: int) -> None:
    from whenthen.tools.workspace import Cancelled

    texts = {str(p): p.read_text(encoding="utf-8") for p in sorted(EXAMPLES.glob("*.rules"))}
    workspace = Workspace()
    workspace.update(texts)
    schema, guests = str(EXAMPLES / "schema.rules"), str(EXAMPLES / "guests.rules")
    edited = dict(texts)
    edited[schema] = texts[schema].replace("first_name: str", "first_name: int", 1)
    edited[guests] = texts[guests].replace("wait 24h", "wait 24h\n  let z = 1 +")
    calls = iter(range(1000))
    with pytest.raises(Cancelled):
        workspace.update(edited, lambda: next(calls) >= stop_after)
    assert _incremental(workspace, texts) == _diagnostics(texts)  # back as it was
    assert _incremental(workspace, edited) == _diagnostics(edited)


def test_an_error_at_a_comment_before_the_next_item_matches_a_full_parse() -> None:
    # the virtual end of the input after a comment: the whole file sees the next item's `rule` there
    texts = {str(p): p.read_text(encoding="utf-8") for p in sorted(EXAMPLES.glob("*.rules"))}
    workspace = Workspace()
    workspace.update(texts)
    path = str(EXAMPLES / "guests.rules")
    texts[path] = texts[path].replace('subject: "Press kit")', 'subject:# "Press kit")', 1)
    assert _incremental(workspace, texts) == _diagnostics(texts)
