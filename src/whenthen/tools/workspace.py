"""An incremental analysis of a folder of `*.rules` files, for the language server.

A file is cut into segments at the lines that start an item (`rule`, `when`, `trigger`, `action`,
`timezone`, `locale`; a `rule "…"` line without its `when` keeps the next segment). An edit
re-parses only the segments whose text changed: the others are kept, their spans moved in place
when the edit changed the length or the line count above them. The declarations of the whole
folder are checked on every pass (they are few); a rule is re-checked only when its segment was
re-parsed, its file's `timezone`/`locale` changed, or a declaration it read during its last
check changed (`check_rule` records them: the triggers it is started by, waits for, exits on and
emits, the actions and functions it calls; all of them when a did-you-mean listed them). Rule
names are made unique across the folder afresh on every pass. The result for a file is a
`CheckedProgram` view that `tools/assist.py` answers questions from, with the diagnostics the
whole-program checker gives (tests compare the two).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from whenthen.compiler import messages as msg
from whenthen.compiler.checked import CheckedProgram, NameRef, ResolvedCall, RuleInfo
from whenthen.compiler.checker import (
    CheckedRule,
    Declarations,
    check_declarations,
    check_rule,
    first_wall_clock_use,
    wall_clock_warning,
)
from whenthen.compiler.types import Type
from whenthen.diagnostics import NO_SPAN, Diagnostic, Span, error
from whenthen.grammar import ast
from whenthen.grammar.parser import _ITEM_LINE, drop_late_headers, parse_step
from whenthen.source import Source

_MASK = re.compile(r"""'(?:[^'\\\n]|\\[^\n])*'|"(?:[^"\\\n]|\\[^\n])*"|#[^\n]*""")
_RULE_LINE = re.compile(r"[ \t]*rule\b")
_WHEN_WORD = re.compile(r"(?<![\w.])when(?![\w.])")


class Cancelled(Exception):
    """A newer edit arrived: the pass stops; what it finished is kept for the next one."""


@dataclass
class Segment:
    """Text from one item line to the next, its items (spans in the whole file) and the checks of
    its rules (by rule node id)."""

    start: int
    line: int
    text: str
    items: list[ast.Item]
    diagnostics: list[Diagnostic]
    checks: dict[int, tuple[CheckedRule, str, str, int]] = field(default_factory=dict)  # id -> (result, tz, locale, version)
    reusable: bool = True  # parsed alone, closed: the same text parses the same anywhere

    def move(self, start: int, line: int) -> None:
        """Shift every span of the segment (items, diagnostics, checks) to a new start."""
        delta, lines = start - self.start, line - self.line
        if not delta and not lines:
            return

        def moved(span: Span) -> Span:
            if span.file == "":
                return span
            return Span(span.file, span.start + delta, span.end + delta, span.line + lines, span.column,
                        span.end_line + lines, span.end_column)

        for item in self.items:
            for node in ast.walk(item):
                for name in node.__dataclass_fields__:
                    value = getattr(node, name)
                    if type(value) is Span:
                        object.__setattr__(node, name, moved(value))
        self.diagnostics = [dataclasses.replace(d, span=moved(d.span)) for d in self.diagnostics]
        for checked, _, _, _ in self.checks.values():
            checked.diagnostics = [dataclasses.replace(d, span=moved(d.span)) for d in checked.diagnostics]
        self.start, self.line = start, line


@dataclass
class FileState:
    path: str
    text: str
    source: Source
    segments: list[Segment]
    file: ast.File
    diagnostics: list[Diagnostic]  # the parser's
    _wall_clock: list[ast.Node | None] = field(default_factory=list)

    def wall_clock(self) -> ast.Node | None:
        """The file's first wall-clock use (W203), found once per text."""
        if not self._wall_clock:
            self._wall_clock.append(first_wall_clock_use(self.file))
        return self._wall_clock[0]


def segment_starts(text: str) -> tuple[list[int], list[int]]:
    """Where the segments of `text` start (0 first), and all its item lines."""
    item_lines = [m.start() for m in _ITEM_LINE.finditer(text)]
    starts = [0] + [p for p in item_lines if p > 0]
    # a `rule "Name"` line whose `when` is on a later line keeps the segments up to it
    merged = [starts[0]]
    for i in range(1, len(starts)):
        prev = merged[-1]
        chunk = text[prev:starts[i]]
        if _RULE_LINE.match(chunk) and not _WHEN_WORD.search(_MASK.sub(" ", chunk)):
            continue
        merged.append(starts[i])
    return merged, item_lines


def _parse_from(source: Source, cursor: int, ends: list[int], item_lines: list[int]) -> tuple[list[ast.Item], list[Diagnostic], int | None]:
    """`parse`'s recovery loop from `cursor` to the first resume point at or after `ends[0]`
    (a later one of `ends` when a step's error is at the cut): items, diagnostics, next cursor."""
    for end in ends:
        items: list[ast.Item] = []
        diagnostics: list[Diagnostic] = []
        chunk: int | None = cursor
        while chunk is not None and chunk < end:
            found, diags, chunk, open_ = parse_step(source, chunk, end, item_lines)
            if open_:
                break
            items.extend(found)
            diagnostics.extend(diags)
        else:
            return items, diagnostics, chunk
    raise AssertionError("the last end is the end of the text")  # pragma: no cover


def parse_file(path: str, text: str, old: FileState | None) -> tuple[FileState, int]:
    """Parse `text` as `parse` would, re-using the segments of `old` whose text is unchanged;
    also how many segments were parsed anew.

    A segment is parsed alone (and kept for the next pass) when its parse is closed: no error
    at its end, where the text after it could change what `parse` finds. Otherwise the parse
    runs on to the next segment boundaries until it is closed, and may resume past the start of
    the next segment (or inside one), as `parse`'s recovery does; such pieces are not kept.
    """
    source = Source(path, text)
    starts, item_lines = segment_starts(text)
    bounds = starts[1:] + [len(text)]
    reusable: dict[str, list[Segment]] = {}
    if old is not None:
        for seg in old.segments:
            if seg.reusable:
                reusable.setdefault(seg.text, []).append(seg)
    segments: list[Segment] = []
    parsed = 0
    cursor: int | None = 0
    i = 0
    while cursor is not None and cursor < len(text):
        while i + 1 < len(starts) and starts[i + 1] <= cursor:
            i += 1
        end = bounds[i]
        line = source.line_col(cursor)[0]
        chunk = text[cursor:end]
        candidates = reusable.get(chunk) if cursor == starts[i] else None
        if candidates:
            # the nearest one keeps most spans as they are
            seg = min(candidates, key=lambda s: abs(s.start - cursor))  # type: ignore[operator]
            candidates.remove(seg)
            seg.move(cursor, line)
            segments.append(seg)
            cursor = end
            continue
        items, diags, after = _parse_from(source, cursor, bounds[i:], item_lines)
        parsed += 1
        closed = cursor == starts[i] and after in (end, None if end == len(text) else -1)
        piece = text[cursor:len(text) if after is None else after]
        segments.append(Segment(cursor, line, piece, items, diags, reusable=closed))
        cursor = after
    items = [item for seg in segments for item in seg.items]
    diagnostics = [d for seg in segments for d in seg.diagnostics]
    items = drop_late_headers(items, diagnostics)
    span = Span(path, 0, len(text), 1, 1, *source.line_col(len(text)))
    return FileState(path, text, source, segments, ast.File(path, tuple(items), span=span), diagnostics), parsed


@dataclass
class Result:
    """A pass over the folder: per file its diagnostics and a `CheckedProgram` view."""

    files: dict[str, FileState]
    decls: Declarations
    rules: list[RuleInfo]
    diagnostics: dict[str, list[Diagnostic]]
    checks: dict[str, list[CheckedRule]]
    parsed: int = 0
    checked: int = 0
    _tables: dict[str, tuple[dict[int, NameRef], dict[int, Type], dict[int, ResolvedCall]]] = field(default_factory=dict)

    def program(self, path: str) -> CheckedProgram:
        """The file's view of the program: all files and rules, the side tables of its own rules."""
        if path not in self._tables:
            refs, types, calls = dict(self.decls.refs), dict(self.decls.types), dict(self.decls.calls)
            for checked in self.checks.get(path, ()):
                refs.update(checked.refs)
                types.update(checked.types)
                calls.update(checked.calls)
            self._tables[path] = refs, types, calls
        refs, types, calls = self._tables[path]
        return CheckedProgram(
            files=[f.file for f in self.files.values()], sources={p: f.source for p, f in self.files.items()},
            schema=self.decls.schema, rules=self.rules, refs=refs, types=types, calls=calls,
            diagnostics=self.diagnostics.get(path, []))


def _key(kind: str, value: object) -> object:
    if value is None:
        return None
    if kind == "trigger":
        return (value.name, value.type, value.origin)  # type: ignore[attr-defined]
    if kind == "action":
        return (value.name, value.params, value.result, value.origin, value.doc)  # type: ignore[attr-defined]
    return id(value)


class Workspace:
    """The files of one folder and what the last pass found; `update` runs a pass."""

    def __init__(self) -> None:
        self.files: dict[str, FileState] = {}
        self.keys: dict[tuple[str, str], object] = {}  # the declarations of the last pass
        self.result: Result | None = None
        self._every: dict[str, tuple[tuple[str, object], ...]] = {}  # the last pass's declarations by kind
        self.version = 0  # counts the passes that saw declarations change
        self.last_change = 0
        self.changed_at: dict[tuple[str, str], int] = {}  # (kind, name) -> version of its last change
        self.kind_changed_at: dict[str, int] = {}

    def update(self, texts: dict[str, str], cancelled: Callable[[], bool] = lambda: False) -> Result:
        """Bring the analysis to `texts` (path -> text, the whole folder); raises Cancelled when
        `cancelled()` turns true between two steps."""
        parsed = 0
        files: dict[str, FileState] = {}
        for path in sorted(texts):
            old = self.files.get(path)
            if old is not None and old.text == texts[path]:
                files[path] = old
                continue
            if cancelled():
                raise Cancelled
            state, count = parse_file(path, texts[path], old)
            self.files[path] = state  # kept even if this pass is cancelled later
            files[path] = state
            parsed += count
        self.files = files
        ordered = list(files.values())
        parse_diags = [d for f in ordered for d in f.diagnostics]
        decls = check_declarations([f.file for f in ordered], parse_diags)
        schema = decls.schema
        tables = {"trigger": schema.triggers, "action": schema.actions, "function": schema.functions}
        # which declarations changed since the last pass (finished or not): a check made at
        # version v is fresh while none of what it read changed after v
        every_now = {kind: tuple((n, _key(kind, v)) for n, v in table.items()) for kind, table in tables.items()}
        changed_kinds = {k for k in every_now if self._every.get(k) != every_now[k]}
        if changed_kinds:
            self.version += 1
            self.last_change = self.version
            keys_now = {(kind, n): k for kind, pairs in every_now.items() for n, k in pairs}
            keys_before = {(kind, n): k for kind, pairs in self._every.items() for n, k in pairs}
            for k in keys_now.keys() | keys_before.keys():
                if keys_now.get(k) != keys_before.get(k):
                    self.changed_at[k] = self.version
            for kind in changed_kinds:
                self.kind_changed_at[kind] = self.version
        self._every = every_now
        version, changed_at, kind_changed_at = self.version, self.changed_at, self.kind_changed_at

        rules: list[RuleInfo] = []
        diagnostics: dict[str, list[Diagnostic]] = {}
        checks: dict[str, list[CheckedRule]] = {}
        for d in parse_diags + decls.diagnostics:
            diagnostics.setdefault(d.file, []).append(d)
        declaring = next((f.file for f in ordered if f.file.timezone is not None), None)
        if declaring is not None:  # W203, as `check_files` gives it
            for state in ordered:
                use = state.wall_clock() if state.file.timezone is None else None
                if use is not None:
                    diagnostics.setdefault(state.path, []).append(wall_clock_warning(use, declaring))
        checked_count = 0
        names: dict[str, Span] = {}
        for state, tz, locale in zip(ordered, decls.timezones, decls.locales, strict=True):
            file_checks = checks.setdefault(state.path, [])
            file_diags = diagnostics.setdefault(state.path, [])
            kept = {id(item) for item in state.file.items}
            for seg in state.segments:
                for item in seg.items:
                    if not isinstance(item, ast.Rule) or id(item) not in kept:
                        continue
                    entry = seg.checks.get(item.id)
                    fresh = (entry is not None and entry[1] == tz and entry[2] == locale
                             and (entry[3] >= self.last_change
                                  or (all(kind_changed_at.get(k, 0) <= entry[3] for k in entry[0].every)
                                      and all(changed_at.get(r, 0) <= entry[3] for r in entry[0].reads))))
                    if not fresh:
                        if cancelled():
                            raise Cancelled
                        result = check_rule(decls, item, state.file, state.source, tz, locale)
                        seg.checks[item.id] = entry = (result, tz, locale, version)
                        checked_count += 1
                    checked = entry[0]
                    info = checked.info
                    when_span = item.when_span if item.when_span != NO_SPAN else item.span
                    info.name = item.name if item.name is not None else f"{state.source.stem}:{when_span.line}"
                    name_span = item.name_span if item.name_span != NO_SPAN else when_span
                    if info.name in names:
                        first = names[info.name]
                        file_diags.append(error(name_span, "E110", msg.duplicate_rule(info.name, first.line, first.file)))
                    else:
                        names[info.name] = name_span
                    rules.append(info)
                    file_diags.extend(checked.diagnostics)
                    file_checks.append(checked)
        for file_diags in diagnostics.values():
            file_diags.sort(key=lambda d: d.span.start)
        self.result = Result(files, decls, rules, diagnostics, checks, parsed, checked_count)
        return self.result
