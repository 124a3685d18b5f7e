"""The formatter: one canonical layout for a `.rules` file, keeping its comments and blank lines.

How it works: the file is parsed to its AST and laid out again, one output line per "unit" (a
declaration, a field, a rule header part, a statement, `else`/`elif`/`case`/`end`), with
expressions printed by `grammar/printer.py`. Each unit remembers the source offset it came from,
so the comments the parser skipped can be put back by position:

- a comment alone on its line goes just before the next unit (indented like it; before an `end`
  or `}` it is indented like the block it closes); comments after the last unit end the file;
- a comment after code on its line goes at the end of the output line of the last unit that
  started before it (a unit printed on one line that was written over several collects the
  comments of all its lines, joined with a space).

Blank lines are kept, collapsed to one, before statements, fields and top-level items (never at
the start of a block); a rule or a multi-line declaration always has one blank line around it.
Lines are not wrapped. Layout: two-space indentation; a rule's `rule`, `when`, `where`, each
`exit when`, `then` and `end` each on their own line. Formatting renumbers the lines of rules,
so an *unnamed* rule (named `<file>:<line>`, SPEC 2.2) may get a new name: name rules you publish.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from whenthen.diagnostics import Diagnostic, Span, error
from whenthen.grammar import ast
from whenthen.grammar.parser import duration_seconds, parse
from whenthen.grammar.printer import (
    print_during,
    print_expr,
    print_item,
    print_once,
    print_type,
    print_when,
    quote_plain,
)
from whenthen.source import Source

INDENT = "  "
# A trigger declaration that fits in this many columns (and holds no comment) stays on one line.
ONE_LINE_WIDTH = 80

# Strings and comments, as the lexer reads them (strings never span lines).
_STRING_OR_COMMENT = re.compile(r"""'(?:[^'\\\n]|\\[^\n])*'|"(?:[^"\\\n]|\\[^\n])*"|#[^\n]*""")


class FormatError(Exception):
    """The text has syntax errors, so it is left as it is; `.diagnostics` says why."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        super().__init__(diagnostics[0].message if diagnostics else "syntax error")


@dataclass
class _Comment:
    offset: int
    text: str
    alone: bool  # nothing but whitespace before it on its line


@dataclass
class _Line:
    """One output line: a unit of the layout, and the comments placed with it."""

    depth: int
    text: str
    start: int | None  # source offset of the unit; None when the source does not spell it
    kind: str  # 'item' | 'stmt' | 'field' | 'part' | 'closer' | 'opener-mid'
    first_in_block: bool = False
    leading: list[_Comment] = field(default_factory=list)
    trailing: list[str] = field(default_factory=list)


def format_source(text: str, name: str = "input") -> str:
    """`text` in canonical layout; raises FormatError (with the E001 diagnostics) on syntax errors."""
    source = Source(name, text)
    file, diagnostics = parse(source)
    errors = [d for d in diagnostics if d.is_error]
    if errors:
        raise FormatError(errors)
    comments, masked = _scan(text)
    layout = _Layout(text, masked, [c.offset for c in comments])
    for item in file.items:
        layout.item(item)
    footer = _attach(layout.lines, comments)
    formatted = _render(layout.lines, footer, source)
    _verify(file, comments, formatted, source)
    return formatted


def _verify(file: ast.File, comments: list[_Comment], formatted: str, source: Source) -> None:
    """A safety net: never hand back text that means another program or lost a comment."""
    again, diagnostics = parse(Source(source.name, formatted))
    kept = "\n".join(c.text for c in _scan(formatted)[0])  # trailing comments may have been joined
    if diagnostics or again != file or any(c.text not in kept for c in comments):
        span = Span(source.name, 0, 0, 1, 1, 1, 1)
        raise FormatError([error(span, "E000", "internal error in the formatter: the file is left as it is "
                                 "(please report it with this file)")])


# ----------------------------------------------------------------------------- source scanning


def _scan(text: str) -> tuple[list[_Comment], str]:
    """The comments of `text`, and `text` with strings and comments blanked (for keyword search)."""
    comments: list[_Comment] = []
    pieces: list[str] = []
    last = 0
    for match in _STRING_OR_COMMENT.finditer(text):
        pieces.append(text[last:match.start()])
        pieces.append(" " * (match.end() - match.start()))
        last = match.end()
        if match.group().startswith("#"):
            line_start = text.rfind("\n", 0, match.start()) + 1
            alone = not text[line_start:match.start()].strip()
            comments.append(_Comment(match.start(), match.group().rstrip(), alone))
    pieces.append(text[last:])
    return comments, "".join(pieces)


# ----------------------------------------------------------------------------- layout


class _Layout:
    """Walks the AST and produces one `_Line` per unit, in source order."""

    def __init__(self, text: str, masked: str, comment_offsets: list[int]):
        self.text = text
        self.masked = masked
        self.comment_offsets = comment_offsets
        self.lines: list[_Line] = []

    def add(self, depth: int, text: str, start: int | None, kind: str, first_in_block: bool = False) -> None:
        self.lines.append(_Line(depth, text, start, kind, first_in_block))

    def expr(self, node: ast.Expr) -> str:
        """`node` printed canonically, except that durations keep their spelling (`24h` stays `24h`)."""
        return respell_durations(print_expr(node), node, self.text)

    def has_comment_inside(self, node: ast.Node) -> bool:
        i = bisect_left(self.comment_offsets, node.span.start)
        return i < len(self.comment_offsets) and self.comment_offsets[i] < node.span.end

    def keyword_after(self, word: str, offset: int) -> int | None:
        """Offset of the keyword `word` first found at or after `offset` (not a field name)."""
        pattern = re.compile(rf"(?<![.\w]){word}(?!\w)(?!\s*[.:])")
        match = pattern.search(self.masked, offset)
        return match.start() if match else None

    def closing_end(self, node: ast.Node) -> int | None:
        """Offset of the `end` keyword that closes `node`, when the source spells it."""
        end = node.span.end
        if end >= 3 and self.masked[end - 3:end] == "end" and (end == 3 or not re.match(r"[.\w]", self.masked[end - 4])):
            return end - 3
        return None

    # -- items

    def item(self, node: ast.Item) -> None:
        match node:
            case ast.TimezoneDecl(name=name):
                self.add(0, f"timezone {quote_plain(name)}", node.span.start, "item")
            case ast.LocaleDecl(name=name):
                self.add(0, f"locale {quote_plain(name)}", node.span.start, "item")
            case ast.TriggerDecl():
                self.trigger_decl(node)
            case ast.ActionDecl():
                self.add(0, print_item(node), node.span.start, "item")
            case ast.Rule():
                self.rule(node)

    def trigger_decl(self, node: ast.TriggerDecl) -> None:
        one_line = "{ " + ", ".join(f"{d.name}: {print_type(d.type)}" for d in node.fields) + " }"
        one_line = f"trigger {node.name} {one_line if node.fields else '{}'}"
        if not node.fields or (len(one_line) <= ONE_LINE_WIDTH and not self.has_comment_inside(node)):
            self.add(0, one_line, node.span.start, "item")
            return
        self.add(0, f"trigger {node.name} {{", node.span.start, "item")
        for i, decl in enumerate(node.fields):
            self.add(1, f"{decl.name}: {print_type(decl.type)}", decl.span.start, "field", i == 0)
        self.add(0, "}", node.span.end - 1, "closer")

    def rule(self, node: ast.Rule) -> None:
        header_end = node.when_span.end
        if node.name is not None:
            rule_keyword = self.masked.rfind("rule", 0, node.name_span.start)  # the span starts at the name
            self.add(0, f"rule {quote_plain(node.name)}", rule_keyword, "item")
            self.add(0, f"when {print_when(node.when)}", node.when_span.start, "part")
        else:
            self.add(0, f"when {print_when(node.when)}", node.when_span.start, "item")
        if node.where is not None:
            self.add(0, f"where {self.expr(node.where)}", node.where.span.start, "part")
            header_end = max(header_end, node.where.span.end)
        if node.once is not None:
            self.add(0, print_once(node.once, self.expr), node.once.span.start, "part")
            header_end = max(header_end, node.once.span.end)
        if node.during is not None:
            self.add(0, print_during(node.during), node.during.span.start, "part")
            header_end = max(header_end, node.during.span.end)
        for clause in node.exits:
            text = f"exit when {clause.trigger.name}"
            if clause.where is not None:
                text += f" where {self.expr(clause.where)}"
            self.add(0, text, clause.span.start, "part")
            header_end = max(header_end, clause.span.end)
        self.add(0, "then", self.keyword_after("then", header_end), "part")
        self.block(node.body, 1)
        self.add(0, "end", self.closing_end(node), "closer")

    # -- statements

    def block(self, body: tuple[ast.Stmt, ...], depth: int) -> None:
        for i, stmt in enumerate(body):
            self.stmt(stmt, depth, i == 0)

    def stmt(self, node: ast.Stmt, depth: int, first: bool) -> None:
        start = node.span.start
        match node:
            case ast.If(branches=branches, else_body=else_body):
                for i, branch in enumerate(branches):
                    keyword = "if" if i == 0 else "elif"
                    kind = "stmt" if i == 0 else "opener-mid"
                    self.add(depth, f"{keyword} {self.expr(branch.cond)} then", branch.span.start, kind, first)
                    self.block(branch.body, depth + 1)
                self.else_part(else_body, branches[-1].span.end, depth)
                self.add(depth, "end", self.closing_end(node), "closer")
            case ast.Switch(subject=subject, cases=cases, else_body=else_body):
                head = "switch" if subject is None else f"switch {self.expr(subject)}"
                self.add(depth, head, start, "stmt", first)
                after = subject.span.end if subject is not None else start
                for case in cases:
                    values = ", ".join(self.expr(v) for v in case.values)
                    self.add(depth, f"case {values} then", case.span.start, "opener-mid")
                    self.block(case.body, depth + 1)
                    after = case.span.end
                self.else_part(else_body, after, depth)
                self.add(depth, "end", self.closing_end(node), "closer")
            case ast.Split(by=by, cases=cases):
                self.add(depth, "split" if by is None else f"split by {self.expr(by)}", start, "stmt", first)
                for case in cases:
                    self.add(depth, f"case {case.share}% then", case.span.start, "opener-mid")
                    self.block(case.body, depth + 1)
                self.add(depth, "end", self.closing_end(node), "closer")
            case ast.Repeat(count=count, body=body):
                self.add(depth, f"repeat {self.expr(count)} times", start, "stmt", first)
                self.block(body, depth + 1)
                self.add(depth, "end", self.closing_end(node), "closer")
            case ast.For(name=name, items=items, body=body):
                self.add(depth, f"for {name} in {self.expr(items)}", start, "stmt", first)
                self.block(body, depth + 1)
                self.add(depth, "end", self.closing_end(node), "closer")
            case _:
                self.add(depth, _simple_stmt(node, self.expr), start, "stmt", first)

    def else_part(self, body: tuple[ast.Stmt, ...] | None, after: int, depth: int) -> None:
        if body is None:
            return
        self.add(depth, "else", self.keyword_after("else", after), "opener-mid")
        self.block(body, depth + 1)




def _wait_for(node: ast.WaitFor, expr: Callable[[ast.Expr], str]) -> str:
    text = f"wait for {node.trigger}"
    if node.where is not None:
        text += f" where {expr(node.where)}"
    if node.within is not None:
        text += f" within {expr(node.within)}"
    return text


def _simple_stmt(node: ast.Stmt, expr: Callable[[ast.Expr], str]) -> str:
    match node:
        case ast.CallStmt(call=call):
            return expr(call)
        case ast.Let(name=name, value=value):
            shown = _wait_for(value, expr) if isinstance(value, ast.WaitFor) else expr(value)
            return f"let {name} = {shown}"
        case ast.Wait(duration=duration):
            return f"wait {expr(duration)}"
        case ast.WaitUntil(when=when):
            return f"wait until {expr(when)}"
        case ast.WaitFor():
            return _wait_for(node, expr)
        case ast.Emit(trigger=trigger, args=args):
            args_text = ", ".join(expr(a.value) if a.name is None else f"{a.name}: {expr(a.value)}" for a in args)
            return f"emit {trigger}({args_text})"
        case ast.Stop():
            return "stop"
        case ast.Break():
            return "break"
    raise TypeError(f"not a simple statement: {node!r}")


_DURATION_TOKEN = re.compile(r"(?<![\w.])\d+[wdhms](?:\d+[wdhms])*(?!\w)")


def respell_durations(printed: str, node: ast.Expr, text: str) -> str:
    """Put back the source spelling of the duration literals of `node` in its printed form.

    The AST keeps a duration as seconds, so `24h` would print as `1d`. Outside templates the
    printed durations appear in the same order as the DurationLit nodes; when the counts differ
    (never expected) the canonical spelling is kept.
    """
    nodes = [n for n in _walk_outside_templates(node) if isinstance(n, ast.DurationLit)]
    if not nodes:
        return printed
    masked = _STRING_OR_COMMENT.sub(lambda m: " " * len(m.group()), printed)
    tokens = list(_DURATION_TOKEN.finditer(masked))
    if len(tokens) != len(nodes):
        return printed
    out, last = [], 0
    for token, lit in zip(tokens, nodes, strict=True):
        spelled = text[lit.span.start:lit.span.end]
        if not (_DURATION_TOKEN.fullmatch(spelled) and duration_seconds(spelled) == lit.seconds):
            spelled = token.group()
        out.append(printed[last:token.start()] + spelled)
        last = token.end()
    return "".join(out) + printed[last:]


def _walk_outside_templates(node: object):
    if isinstance(node, ast.Template):
        return
    if isinstance(node, ast.Node):
        yield node
        for name in node.__dataclass_fields__:
            if name not in ("span", "id"):
                yield from _walk_outside_templates(getattr(node, name))
    elif isinstance(node, tuple):
        for child in node:
            yield from _walk_outside_templates(child)




# ----------------------------------------------------------------------------- comments and output


def _attach(lines: list[_Line], comments: list[_Comment]) -> list[_Comment]:
    """Give each comment to a line: leading (alone on its line) or trailing (after code).
    Returns the comments after the last unit, which end the file."""
    anchored = [line for line in lines if line.start is not None]
    starts = [line.start for line in anchored]
    footer: list[_Comment] = []
    for comment in comments:
        index = bisect_left(starts, comment.offset)  # first unit starting after the comment
        if not comment.alone and index > 0:
            anchored[index - 1].trailing.append(comment.text)
        elif index < len(anchored):
            anchored[index].leading.append(comment)
        else:
            footer.append(comment)
    return footer


def _blank_before(source: Source, offset: int) -> bool:
    """Does `offset` start its source line, below a blank line? (A statement that follows another
    on the same line, as in a one-line rule, never had a blank line before it.)"""
    line, column = source.line_col(offset)
    if source.line_text(line)[: column - 1].strip():
        return False
    return line > 1 and not source.line_text(line - 1).strip()


_MULTILINE_ITEM_KINDS = ("part", "field", "stmt", "closer", "opener-mid")


def _render(lines: list[_Line], footer: list[_Comment], source: Source) -> str:
    out: list[str] = []
    previous_item_multiline = False
    for i, line in enumerate(lines):
        first_offset = line.leading[0].offset if line.leading else line.start
        had_blank = first_offset is not None and _blank_before(source, first_offset)
        if line.kind == "item":
            multiline = i + 1 < len(lines) and lines[i + 1].kind in _MULTILINE_ITEM_KINDS
            blank = bool(out) and (had_blank or multiline or previous_item_multiline)
            previous_item_multiline = multiline
        else:
            blank = line.kind in ("stmt", "field") and not line.first_in_block and had_blank
        if blank:
            out.append("")
        comment_depth = line.depth + 1 if line.kind == "closer" and line.text in ("end", "}") else line.depth
        keeps_blanks = line.kind in ("item", "stmt", "field")
        for j, comment in enumerate(line.leading):
            if j > 0 and keeps_blanks and _blank_before(source, comment.offset):
                out.append("")
            out.append(INDENT * comment_depth + comment.text)
        if line.leading and keeps_blanks and line.start is not None and _blank_before(source, line.start):
            out.append("")
        text = INDENT * line.depth + line.text
        if line.trailing:
            text += "  " + " ".join(line.trailing)
        out.append(text)
    for comment in footer:
        if out and _blank_before(source, comment.offset):
            out.append("")
        out.append(comment.text)
    return "\n".join(out) + "\n" if out else ""



# ----------------------------------------------------------------------------- files


@dataclass
class FileResult:
    """The outcome of formatting one file: its new text, or the syntax errors that stopped it."""

    path: Path
    original: str
    formatted: str | None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.formatted is not None and self.formatted != self.original


def rules_files(paths: list[str]) -> list[Path]:
    """The files named by `paths`: files as given, a folder's `*.rules` sorted by name.
    Raises FileNotFoundError naming a missing path."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found.extend(sorted(p for p in path.glob("*.rules") if p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(name)
    return found


def format_file(path: Path) -> FileResult:
    """Format one file in memory (the caller writes it); OSError/UnicodeDecodeError propagate."""
    original = path.read_text(encoding="utf-8")
    try:
        return FileResult(path, original, format_source(original, str(path)))
    except FormatError as exc:
        return FileResult(path, original, None, exc.diagnostics)
