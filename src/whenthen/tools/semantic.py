"""Semantic tokens of a document: the parser's own tokens, classified by the checked AST."""

from __future__ import annotations

import re
from dataclasses import dataclass

from lark import Token

from whenthen.compiler.checked import CheckedProgram
from whenthen.grammar import ast
from whenthen.grammar.parser import lex, template_scan

# The legend (LSP standard names; the two modifiers beyond the standard ones tell durations and
# dates/times from plain numbers).
TOKEN_TYPES = ("keyword", "event", "method", "function", "property", "variable", "parameter", "type",
               "string", "regexp", "number", "comment", "operator")
TOKEN_MODIFIERS = ("declaration", "readonly", "defaultLibrary", "duration", "date")

_WORD = re.compile(r"[a-z]+")
_NUMBERS = {"INT": (), "FLOAT": (), "DURATION": ("duration",), "DATE": ("date",), "DATETIME": ("date",),
            "TIME": ("date",)}


@dataclass(frozen=True, slots=True)
class SemanticToken:
    """`text[start:end]` is a `type` (one of TOKEN_TYPES) with `modifiers` (of TOKEN_MODIFIERS)."""

    start: int
    end: int
    type: str
    modifiers: tuple[str, ...] = ()


class _Names:
    """What each name written in the AST is, by the offset where it starts."""

    def __init__(self, file: ast.File | None, checked: CheckedProgram | None):
        self.at: dict[int, tuple[str, tuple[str, ...]]] = {}
        self.triggers: list[tuple[int, int, tuple[str, ...]]] = []  # dotted trigger names: (start, end, modifiers)
        self.templates: set[int] = set()  # where the `"…"` strings that are templates start
        if file is not None:
            self._collect(file, checked)

    def _collect(self, file: ast.File, checked: CheckedProgram | None) -> None:
        refs = checked.refs if checked is not None else {}
        calls = checked.calls if checked is not None else {}
        actions = checked.schema.actions if checked is not None else {}
        at = self.at
        for node in ast.walk(file):
            match node:
                case ast.Rule() if isinstance(node.when, ast.TriggerRef):
                    self.triggers.append((node.when.span.start, node.when.span.end, ()))
                case ast.ExitClause():
                    self.triggers.append((node.trigger.span.start, node.trigger.span.end, ()))
                case ast.WaitFor():
                    self.triggers.append((node.trigger_span.start, node.trigger_span.end, ()))
                case ast.Emit():
                    self.triggers.append((node.trigger_span.start, node.trigger_span.end, ()))
                    for arg in node.args:
                        if arg.name is not None:
                            at[arg.span.start] = ("property", ())
                case ast.TriggerDecl():
                    self.triggers.append((node.name_span.start, node.name_span.end, ("declaration",)))
                case ast.ActionDecl():
                    at[node.name_span.start] = ("method", ("declaration",))
                case ast.Param():
                    at[node.span.start] = ("parameter", ("declaration",))
                case ast.FieldDecl():
                    at[node.span.start] = ("property", ("declaration",))
                case ast.NamedType() | ast.ListType():
                    at[node.span.start] = ("type", ())
                case ast.Let():
                    at[node.name_span.start] = ("variable", ("declaration",))
                case ast.For():
                    at[node.name_span.start] = ("variable", ("declaration",))
                case ast.Call():
                    resolved = calls.get(node.id)
                    is_action = resolved.kind == "action" if resolved is not None else node.func in actions
                    if is_action:
                        stdlib = node.func in actions and actions[node.func].origin == "stdlib"
                    else:
                        stdlib = checked is not None and node.func in checked.schema.functions
                    at[node.span.start] = ("method" if is_action else "function",
                                           ("defaultLibrary",) if stdlib else ())
                    for arg in node.args:
                        if arg.name is not None:
                            at[arg.span.start] = ("parameter", ())
                case ast.ObjField():
                    at[node.span.start] = ("property", ())
                case ast.Attr():
                    at[node.span.end - len(node.name)] = ("property", ())
                case ast.Name():
                    ref = refs.get(node.id)
                    if ref is None or ref.kind == "let":
                        at.setdefault(node.span.start, ("variable", ()))
                    elif ref.kind in ("field", "clause"):
                        at[node.span.start] = ("property", ())
                    else:  # the start event: `event` or the trigger's alias
                        at[node.span.start] = ("variable", ("readonly",))
                case ast.Template():
                    self.templates.add(node.span.start)
        self.triggers.sort()

    def trigger_at(self, offset: int) -> tuple[str, ...] | None:
        for start, end, modifiers in self.triggers:  # few per file; sorted
            if start <= offset < end:
                return modifiers
            if start > offset:
                break
        return None


def semantic_tokens(text: str, file: ast.File | None, checked: CheckedProgram | None) -> list[SemanticToken]:
    """The tokens of `text` to highlight, in order, none overlapping. `file` is its AST (positions
    matching `text`) and `checked` the program it was checked in; without them, keywords,
    literals and comments are still told apart (names are then all variables)."""
    names = _Names(file, checked)
    found: list[SemanticToken] = []
    _classify(text, 0, text, names, found)
    found.sort(key=lambda t: t.start)
    return found


def _classify(text: str, base: int, whole: str, names: _Names, found: list[SemanticToken]) -> None:
    """Tokens of `text`, which starts at offset `base` of the document `whole`."""
    tokens, rejected = lex(text)
    for start, end in rejected:
        if text[start] in "'\"":
            found.append(SemanticToken(base + start, base + end, "string"))
    previous: Token | None = None
    last_end = 0
    for tok in tokens:
        start = tok.start_pos or 0
        end = tok.end_pos if tok.end_pos is not None else start + len(tok.value)
        if end == start:
            continue  # virtual tokens of the postlexer
        _comments(text, last_end, start, base, found)
        last_end = end
        kind = tok.type
        at = base + start
        if kind == "NAME":
            known = names.at.get(at)
            trigger = names.trigger_at(at) if known is None else None
            if known is not None:
                found.append(SemanticToken(at, base + end, *known))
            elif trigger is not None:
                found.append(SemanticToken(at, base + end, "event", trigger))
            elif previous is not None and previous.type == "EVERY":  # `every day at 09:00`
                found.append(SemanticToken(at, base + end, "keyword"))
            else:
                found.append(SemanticToken(at, base + end, "variable"))
        elif kind in _NUMBERS:
            found.append(SemanticToken(at, base + end, "number", _NUMBERS[kind]))
        elif kind == "SQSTRING":
            regex = previous is not None and previous.type == "MATCHES"
            found.append(SemanticToken(at, base + end, "regexp" if regex else "string"))
        elif kind == "DQSTRING":
            if at in names.templates:
                _template(tok.value, at, whole, names, found)
            else:
                found.append(SemanticToken(at, base + end, "string"))
        elif _WORD.fullmatch(tok.value):  # a keyword (contextual ones only where the postlexer made them so)
            found.append(SemanticToken(at, base + end, "keyword"))
        previous = tok
    _comments(text, last_end, len(text), base, found)


def _comments(text: str, start: int, end: int, base: int, found: list[SemanticToken]) -> None:
    """The comments in a gap between two tokens (which holds only white space and comments)."""
    at = text.find("#", start, end)
    while at >= 0:
        stop = text.find("\n", at, end)
        stop = end if stop < 0 else stop
        found.append(SemanticToken(base + at, base + stop, "comment"))
        at = text.find("#", stop, end)


def _template(value: str, at: int, whole: str, names: _Names, found: list[SemanticToken]) -> None:
    """A template `"…"` at offset `at`: its text as strings, each `{…}` as the tokens inside."""
    inner = at + 1
    text_from = at
    for kind, i, j in template_scan(value[1:-1]):
        if kind != "hole":
            continue
        if inner + i > text_from:
            found.append(SemanticToken(text_from, inner + i, "string"))
        found.append(SemanticToken(inner + i, inner + i + 1, "operator"))
        _classify(whole[inner + i + 1:inner + j - 1], inner + i + 1, whole, names, found)
        found.append(SemanticToken(inner + j - 1, inner + j, "operator"))
        text_from = inner + j
    if at + len(value) > text_from:
        found.append(SemanticToken(text_from, at + len(value), "string"))


def encode(text: str, tokens: list[SemanticToken], start: int = 0, end: int | None = None) -> list[int]:
    """The LSP encoding of the tokens within `text[start:end]`: five integers per token (line
    delta, start delta in UTF-16 units, length, type, modifier bits)."""
    end = len(text) if end is None else end
    data: list[int] = []
    line, line_start, last_line, last_char = 0, 0, 0, 0
    type_index = {t: i for i, t in enumerate(TOKEN_TYPES)}
    for tok in tokens:
        if tok.end <= start or tok.start >= end:
            continue
        while True:
            newline = text.find("\n", line_start, tok.start)
            if newline < 0:
                break
            line, line_start = line + 1, newline + 1
        char = _units(text[line_start:tok.start])
        bits = sum(1 << TOKEN_MODIFIERS.index(m) for m in tok.modifiers)
        data += [line - last_line, char - last_char if line == last_line else char,
                 _units(text[tok.start:tok.end]), type_index[tok.type], bits]
        last_line, last_char = line, char
    return data


def _units(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2
