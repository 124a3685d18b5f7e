"""Editor intelligence over a checked program: completions, hover text and definitions at an offset.

The language server (`tools/lsp.py`) speaks the protocol; this module answers the questions,
in character offsets of one document, so it can be tested without a server.

An `Analysis` is one document checked together with the other `*.rules` files of its folder.
Completion must work while the document is half typed, so it reads the *text* before the cursor
(which item it is in, the start trigger after `when`, the `let`s above) and takes types from
the last analysis that parsed; hover and definition use the current analysis's AST and side tables.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass

from whenthen.compiler.checked import CheckedProgram
from whenthen.compiler.checker import check_program
from whenthen.compiler.decls import ParamSig, Schema, TriggerSchema
from whenthen.compiler.types import ANY, PRIMITIVES, Type
from whenthen.diagnostics import Span
from whenthen.grammar import ast
from whenthen.grammar.postlex import CONTEXTUAL_KEYWORDS, KEYWORDS
from whenthen.source import Source
from whenthen.stdlib import formatting
from whenthen.stdlib.docs import action_signature, function_signature

_STRINGS_AND_COMMENTS = re.compile(r"""'(?:[^'\\\n]|\\[^\n])*'|"(?:[^"\\\n]|\\[^\n])*"|#[^\n]*""")
_ITEM_START = re.compile(r"^[ \t]*(rule|when|trigger|action|timezone)\b", re.MULTILINE)
_WHEN_TARGET = re.compile(r"\bwhen[ \t\r\n]+([A-Za-z_][\w.]*)")
_LET = re.compile(r"\blet[ \t]+([A-Za-z_]\w*)[ \t]*=")


@dataclass
class Analysis:
    """One document (`path`, `text`) checked with its folder's other files."""

    path: str
    text: str
    checked: CheckedProgram

    @property
    def file(self) -> ast.File | None:
        for file in self.checked.files:
            if file.name == self.path:
                return file
        return None

    @property
    def parses(self) -> bool:
        return not any(d.code == "E001" and d.file == self.path for d in self.checked.diagnostics)


def analyze(path: str, text: str, neighbours: dict[str, str]) -> Analysis:
    """Check `text` (the document at `path`) together with `neighbours` (other path → text)."""
    sources = [Source(p, t) for p, t in sorted(neighbours.items()) if p != path]
    sources.append(Source(path, text))
    return Analysis(path, text, check_program(sources))


# ----------------------------------------------------------------------------- completion


@dataclass(frozen=True)
class Completion:
    label: str
    kind: str  # 'keyword' | 'trigger' | 'field' | 'variable' | 'action' | 'function' | 'enum' | 'param' | 'type'
    detail: str = ""
    insert: str | None = None  # text to insert when not the label
    snippet: bool = False  # `insert` has $1-style placeholders


def complete(text: str, offset: int, context: Analysis) -> list[Completion]:
    """Completions at `offset` of `text` (the document as typed), with types from `context`."""
    schema = context.checked.schema
    before = text[:offset]
    raw = before[before.rfind("\n") + 1:]
    line = _code_before_cursor(raw)
    enum_only = False
    if line is None:
        locale = re.match(r'[ \t]*locale[ \t]+"([\w-]*)$', raw)
        if locale:
            return _locales(locale.group(1))
        quote = re.search(r"'\w*$", raw)  # just after the opening quote of an enum value?
        head = _code_before_cursor(raw[:quote.start()]) if quote else None
        if quote is None or head is None:
            return []
        line, enum_only = head + raw[quote.start():], True
    scope = _Scope.at(text, offset, context)

    target = re.search(r"(?:^|[\s;])(when|for|emit)[ \t]+([\w.]*)$", line)
    if target:
        items = [Completion(n, "trigger", str(t.type)) for n, t in _triggers(schema)]
        if target.group(1) == "emit":
            items = [Completion(n, "trigger", str(t.type), insert=_emit_snippet(n, t), snippet=True)
                     for n, t in _triggers(schema) if t.origin not in ("system", "schedule")]
        elif target.group(1) == "when" and not re.search(r"exit[ \t]+when[ \t]+[\w.]*$", line):
            items += [Completion(k, "keyword") for k in ("every", "cron", "at")]
        return items

    member = re.search(r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\.(\w*)$", line)
    if member:
        owner = scope.resolve(member.group(1).split("."))
        if owner is not None and owner.kind == "object":
            return [Completion(n, "field", str(t)) for n, t in owner.fields]
        return []

    compared = re.search(r"([A-Za-z_][\w.]*)[ \t]*(?:==|!=|=|\bin[ \t]*\[[^\]]*)[ \t]*'?\w*$", line)
    if compared:
        left = scope.resolve(compared.group(1).split("."))
        if left is not None and left.kind in ("enum", "list") and (left.kind == "enum" or left.item):
            values = left.values if left.kind == "enum" else (left.item.values if left.item else ())
            quoted = bool(re.search(r"'\w*$", line))  # the opening quote is typed already
            return [Completion(f"'{v}'", "enum", str(left), insert=(f"{v}'" if quoted else f"'{v}'"))
                    for v in values]
    if enum_only:
        return []

    items: list[Completion] = []
    call = _open_call(before)
    if call is not None:
        name, given = call
        params = _params_of(schema, name)
        items += [Completion(f"{p}:", "param", t, insert=f"{p}: ") for p, t in params if p not in given]

    if scope.item in ("trigger", "action"):
        return items + [Completion(t, "type") for t in (*PRIMITIVES, "list")]
    items += [Completion(n, "variable" if kind == "let" else "field", str(t)) for n, (kind, t) in scope.names().items()]
    if scope.item == "rule":
        items += [Completion(n, "action", action_signature(a), insert=_call_snippet(n, a.params), snippet=True)
                  for n, a in sorted(schema.actions.items())]
    items += [Completion(n, "function", function_signature(f), insert=f"{n}(") for n, f in sorted(schema.functions.items())]
    items += [Completion(k, "keyword") for k in sorted(KEYWORDS)]
    if scope.item == "rule":
        items += [Completion(k, "keyword", _KEYWORD_DOCS.get(k, ""), insert=_LOOP_SNIPPETS.get(k),
                             snippet=k in _LOOP_SNIPPETS) for k in CONTEXTUAL_KEYWORDS]
        items += [Completion("for … in", "keyword", _KEYWORD_DOCS["for"], insert=_LOOP_SNIPPETS["for"],
                             snippet=True)]
    return items


# The loop statements (SPEC 2.5): what completion inserts and what hover says.
_LOOP_SNIPPETS = {
    "repeat": "repeat ${1:3} times\n\t$0\nend",
    "for": "for ${1:item} in ${2:items}\n\t$0\nend",
}
_KEYWORD_DOCS = {
    "repeat": "`repeat N times … end`: run the block N times (N an int, evaluated once; null or ≤ 0: "
              "not at all; more than 10,000 fails the run). The block may wait.",
    "times": "ends the count of `repeat N times`",
    "for": "`for NAME in LIST … end`: run the block once per item, in order, NAME bound to the item "
           "(at most 10,000 items). The block may wait: a resumed run keeps its iteration and item.",
    "break": "`break`: leave the innermost `repeat` or `for`",
}


def _code_before_cursor(line: str) -> str | None:
    """The code that ends at the cursor: `line` itself, or inside a template's `{…}` the text
    after the `{`; None when the cursor is in a string or a comment."""
    state, expr_start, i = "code", 0, 0
    while i < len(line):
        ch = line[i]
        if state in ("code", "expr"):
            if ch == "#" and state == "code":
                return None
            if ch == "'":
                state = "single" if state == "code" else "expr-single"
            elif ch == '"' and state == "code":
                state = "template"
            elif ch == "}" and state == "expr":
                state = "template"
        elif state in ("single", "expr-single", "template"):
            if ch == "\\":
                i += 1  # an escaped character
            elif ch == "'" and state != "template":
                state = "code" if state == "single" else "expr"
            elif ch == '"' and state == "template":
                state = "code"
            elif ch == "{" and state == "template":
                if line[i + 1:i + 2] == "{":
                    i += 1  # `{{` is a literal brace
                else:
                    state, expr_start = "expr", i + 1
        i += 1
    if state == "code":
        return line
    return line[expr_start:] if state == "expr" else None


def _locales(prefix: str) -> list[Completion]:
    """The CLDR locales starting with `prefix` (as `fr_FR`; `fr-FR` is accepted too), with their
    names when few enough to name quickly."""
    from babel.localedata import locale_identifiers

    wanted = prefix.replace("-", "_").lower()
    found = sorted(n for n in locale_identifiers() if n.lower().startswith(wanted))
    sep = "-" if "-" in prefix else "_"
    named = len(found) <= 60
    return [Completion(n.replace("_", sep), "enum", _locale_name(n) if named else "") for n in found]


def _locale_name(name: str) -> str:
    try:
        return str(formatting.locale_named(name).get_display_name("en") or "")
    except ValueError:
        return ""


def _locale_markdown(name: str) -> str:
    """What `locale "…"` means: the locale's name and how the formatting functions render in it."""
    problem = formatting.locale_problem(name)
    if problem is not None:
        return _code(f'locale "{name}"') + f"\n\n{problem}"
    when = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    samples = [("format_date(d, 'full')", formatting.format_date(when.date(), "full", name, "UTC")),
               ("format_datetime(t, 'short')", formatting.format_datetime(when, "short", name, "UTC")),
               ("format_number(1234.56)", formatting.format_number(1234.56, name)),
               ("format_currency(1234.56, 'EUR')", formatting.format_currency(1234.56, "EUR", name))]
    lines = "\n".join(f"- `{call}` → {shown}" for call, shown in samples)
    return (_code(f'locale "{name}"') + f"\n\n{_locale_name(name)}: the default locale of this file's "
            f"formatting functions.\n\n{lines}")


def _triggers(schema: Schema) -> list[tuple[str, TriggerSchema]]:
    return sorted((n, t) for n, t in schema.triggers.items() if t.origin != "schedule")


def _emit_snippet(name: str, trigger: TriggerSchema) -> str:
    required = [f for f, t in trigger.type.fields if not t.optional]
    args = ", ".join(f"{f}: ${i}" for i, f in enumerate(required, 1))
    return f"{name}({args})"


def _call_snippet(name: str, params: tuple[ParamSig, ...]) -> str:
    required = [p.name for p in params if not p.has_default]
    return f"{name}(" + ", ".join(f"{p}: ${i}" for i, p in enumerate(required, 1)) + ")"


def _params_of(schema: Schema, name: str) -> list[tuple[str, str]]:
    """The parameters of an action or function, or the fields of the trigger of `emit NAME`."""
    if name.startswith("emit "):
        trigger = schema.triggers.get(name[5:])
        return [(f, str(t)) for f, t in trigger.type.fields] if trigger is not None else []
    sig = schema.actions.get(name) or schema.functions.get(name)
    if sig is None or getattr(sig, "variadic", False):
        return []
    return [(p.name, str(p.type)) for p in sig.params]


def _open_call(before: str) -> tuple[str, set[str]] | None:
    """The call whose `(` is open at the end of `before`: its name (`emit NAME` for an emit) and
    the argument names given."""
    masked = _STRINGS_AND_COMMENTS.sub(lambda m: " " * len(m.group()), before[-4000:])
    depth = 0
    for i in range(len(masked) - 1, -1, -1):
        ch = masked[i]
        if ch in ")]":
            depth += 1
        elif ch in "([":
            if depth == 0:
                if ch == "[":
                    return None
                name = re.search(r"(emit[ \t]+[A-Za-z_][\w.]*|[A-Za-z_]\w*)[ \t]*$", masked[:i])
                if name is None:
                    return None
                given = set(re.findall(r"([A-Za-z_]\w*)[ \t]*:", masked[i + 1:]))
                return re.sub(r"[ \t]+", " ", name.group(1)), given
            depth -= 1
        elif ch == "\n" and re.match(r"[ \t]*(rule|when|trigger|action)\b", masked[i + 1:]):
            return None
    return None


class _Scope:
    """The names visible at an offset: item kind, start trigger fields, lets, a clause's fields."""

    def __init__(self, item: str, schema: Schema, start: TriggerSchema | None, lets: dict[str, Type],
                 clause: TriggerSchema | None):
        self.item = item
        self.schema = schema
        self.start = start
        self.lets = lets
        self.clause = clause

    @classmethod
    def at(cls, text: str, offset: int, context: Analysis) -> _Scope:
        schema = context.checked.schema
        masked = _STRINGS_AND_COMMENTS.sub(lambda m: " " * len(m.group()), text[:offset])
        starts = list(_ITEM_START.finditer(masked))
        if not starts:
            return cls("top", schema, None, {}, None)
        head = starts[-1]
        kind = head.group(1)
        if kind in ("trigger", "action", "timezone"):
            return cls(kind, schema, None, {}, None)
        body = masked[head.start():]
        target = _WHEN_TARGET.search(body)
        start = None
        if target:
            name = target.group(1)
            start = schema.triggers.get(ast.SCHEDULE_TRIGGER if name in ("every", "cron", "at") else name)
        let_types = _let_types(context)
        lets = {m.group(1): let_types.get(m.group(1), ANY) for m in _LET.finditer(body)}
        line = body[body.rfind("\n") + 1:]
        clause_match = re.search(r"(?:wait[ \t]+for|exit[ \t]+when)[ \t]+([\w.]+)[ \t]+where\b", line)
        clause = schema.triggers.get(clause_match.group(1)) if clause_match else None
        return cls("rule", schema, start, lets, clause)

    def names(self) -> dict[str, tuple[str, Type]]:
        """Bare names, nearest scope winning (SPEC 2.3): clause fields, lets, start fields, aliases."""
        found: dict[str, tuple[str, Type]] = {}
        if self.start is not None:
            found["event"] = ("event", self.start.type)
            found[self.start.alias] = ("event", self.start.type)
            found.update({n: ("field", t) for n, t in self.start.type.fields})
        found.update({n: ("let", t) for n, t in self.lets.items()})
        if self.clause is not None:
            found.update({n: ("field", t) for n, t in self.clause.type.fields})
        return found

    def resolve(self, path: list[str]) -> Type | None:
        """The type of `a.b.c` (as ['a', 'b', 'c']), or None."""
        entry = self.names().get(path[0])
        current = entry[1] if entry else None
        for name in path[1:]:
            if current is None or current.kind != "object":
                return None
            current = current.field(name)
        return current


def _let_types(context: Analysis) -> dict[str, Type]:
    """The type of every `let` of the document (the last one wins when a name repeats)."""
    found: dict[str, Type] = {}
    file = context.file
    if file is None:
        return found
    for node in ast.walk(file):
        if isinstance(node, ast.Let):
            found[node.name] = context.checked.types.get(node.value.id, ANY)
    return found


# ----------------------------------------------------------------------------- hover and definition


def _spanned(file: ast.File) -> Iterator[tuple[Span, str, object]]:
    """Every span a question can be asked about: (span, what, node)."""
    for node in ast.walk(file):
        match node:
            case ast.Rule():
                if isinstance(node.when, ast.TriggerRef):
                    yield node.when.span, "trigger", node.when.name
            case ast.ExitClause():
                yield node.trigger.span, "trigger", node.trigger.name
            case ast.WaitFor():
                yield node.trigger_span, "trigger", node.trigger
            case ast.Emit():
                yield node.trigger_span, "trigger", node.trigger
            case ast.TriggerDecl():
                yield node.name_span, "trigger", node.name
            case ast.LocaleDecl():
                yield node.span, "locale", node.name
            case ast.ActionDecl():
                yield node.name_span, "action", node.name
            case ast.Let():
                yield node.name_span, "let", node
            case ast.Repeat() | ast.Break():
                word = "repeat" if isinstance(node, ast.Repeat) else "break"
                yield Span(node.span.file, node.span.start, node.span.start + len(word), node.span.line,
                           node.span.column, node.span.line, node.span.column + len(word)), "keyword", word
            case ast.For():
                yield Span(node.span.file, node.span.start, node.span.start + 3, node.span.line,
                           node.span.column, node.span.line, node.span.column + 3), "keyword", "for"
                yield node.name_span, "loopvar", node
            case ast.Call():
                name_span = Span(node.span.file, node.span.start, node.span.start + len(node.func), node.span.line,
                                 node.span.column, node.span.line, node.span.column + len(node.func))
                yield name_span, "call", node
            case ast.Name():
                yield node.span, "name", node
            case ast.Attr():
                # only the member name after the dot, so hovering `guest` in `guest.email` is the Name
                yield (Span(node.span.file, node.span.end - len(node.name), node.span.end, node.span.end_line,
                            node.span.end_column - len(node.name), node.span.end_line, node.span.end_column),
                       "attr", node)


def _at(analysis: Analysis, offset: int) -> tuple[Span, str, object] | None:
    file = analysis.file
    if file is None:
        return None
    best = None
    for span, what, node in _spanned(file):
        if span.start <= offset <= span.end and span.end > span.start:
            if best is None or span.end - span.start < best[0].end - best[0].start:
                best = (span, what, node)
    return best


def hover(analysis: Analysis, offset: int) -> tuple[str, Span] | None:
    """Markdown describing what is at `offset`, and the span it covers."""
    found = _at(analysis, offset)
    if found is None:
        return None
    span, what, node = found
    schema = analysis.checked.schema
    checked = analysis.checked
    if what == "trigger":
        decl = schema.triggers.get(str(node))
        return (_trigger_markdown(decl) if decl else f"unknown trigger `{node}`"), span
    if what == "action":
        sig = schema.actions.get(str(node))
        return (_code(f"action {action_signature(sig)}") if sig else f"action `{node}`"), span
    if what == "let":
        assert isinstance(node, ast.Let)
        type_ = checked.types.get(node.value.id, ANY)
        return _code(f"let {node.name}: {type_}"), span
    if what == "call":
        assert isinstance(node, ast.Call)
        if node.func in schema.actions:
            sig = schema.actions[node.func]
            return _code(f"action {action_signature(sig)}") + _doc(sig.doc, sig.origin), span
        if node.func in schema.functions:
            fn = schema.functions[node.func]
            return _code(f"function {function_signature(fn)}") + _doc(fn.doc, "stdlib"), span
        return f"unknown action or function `{node.func}`", span
    if what == "name":
        assert isinstance(node, ast.Name)
        ref = checked.refs.get(node.id)
        type_ = checked.types.get(node.id, ANY)
        kind = {"let": "let", "field": "field", "clause": "field", "event": "event"}.get(ref.kind, "name") if ref else "name"
        return _code(f"{kind} {node.name}: {type_}"), span
    if what == "keyword":
        return _KEYWORD_DOCS[str(node)], span
    if what == "locale":
        return _locale_markdown(str(node)), span
    if what == "loopvar":
        assert isinstance(node, ast.For)
        items = checked.types.get(node.items.id, ANY)
        item = items.item if items.kind == "list" and items.item is not None else ANY
        return _code(f"for {node.name}: {item}"), span
    if what == "attr":
        assert isinstance(node, ast.Attr)
        type_ = checked.types.get(node.id, ANY)
        return _code(f"field {node.name}: {type_}"), span
    return None


def _code(text: str) -> str:
    return f"```whenthen\n{text}\n```"


def _doc(doc: str, origin: str) -> str:
    return (f"\n\n{doc}" if doc else "") + f"\n\n*{origin}*"


def _trigger_markdown(decl: TriggerSchema) -> str:
    fields = "\n".join(f"  {n}: {t}" for n, t in decl.type.fields)
    origin = {"program": "declared in the program", "system": "fired by the engine",
              "host": "declared by the host", "schedule": "schedules"}.get(decl.origin, decl.origin)
    return _code(f"trigger {decl.name} {{\n{fields}\n}}") + f"\n\n*{origin}*"


def definition(analysis: Analysis, offset: int) -> Span | None:
    """Where the trigger, action, `let` or start-event field at `offset` is declared."""
    found = _at(analysis, offset)
    if found is None:
        return None
    _, what, node = found
    schema = analysis.checked.schema
    if what == "trigger":
        decl = schema.triggers.get(str(node))
        return decl.span if decl is not None and decl.origin == "program" else None
    if what == "action":
        sig = schema.actions.get(str(node))
        return sig.span if sig is not None and sig.origin == "program" else None
    if what == "call":
        assert isinstance(node, ast.Call)
        sig = schema.actions.get(node.func)
        return sig.span if sig is not None and sig.origin == "program" else None
    if what == "let":
        assert isinstance(node, ast.Let)
        return node.name_span
    if what == "name":
        assert isinstance(node, ast.Name)
        ref = analysis.checked.refs.get(node.id)
        if ref is not None and ref.kind == "let":
            return _let_definition(analysis, node)
        if ref is not None and ref.kind == "field":
            return _field_definition(analysis, offset, ref.name)
    return None


def _enclosing_rule(analysis: Analysis, offset: int) -> ast.Rule | None:
    file = analysis.file
    for item in file.items if file else ():
        if isinstance(item, ast.Rule) and item.span.start <= offset <= item.span.end:
            return item
    return None


def _let_definition(analysis: Analysis, use: ast.Name) -> Span | None:
    rule = _enclosing_rule(analysis, use.span.start)
    lets = [n for n in ast.walk(rule.body) if isinstance(n, ast.Let) and n.name == use.name] if rule else []
    before = [n for n in lets if n.span.start < use.span.start]
    return before[-1].name_span if before else None


def _field_definition(analysis: Analysis, offset: int, field_name: str) -> Span | None:
    rule = _enclosing_rule(analysis, offset)
    if rule is None or not isinstance(rule.when, ast.TriggerRef):
        return None
    for file in analysis.checked.files:
        for item in file.items:
            if isinstance(item, ast.TriggerDecl) and item.name == rule.when.name:
                for decl in item.fields:
                    if decl.name == field_name:
                        return decl.span
    return None


# ----------------------------------------------------------------------------- outline


@dataclass(frozen=True)
class Symbol:
    """One entry of the document outline: a rule, trigger or action declaration."""

    name: str
    kind: str  # 'rule' | 'trigger' | 'action'
    detail: str
    span: Span
    name_span: Span


def outline(analysis: Analysis) -> list[Symbol]:
    """The rules (by their final names), trigger and action declarations of the document."""
    file = analysis.file
    if file is None:
        return []
    names = {id(info.rule): info.name for info in analysis.checked.rules}
    symbols = []
    for item in file.items:
        match item:
            case ast.Rule():
                when = item.when.name if isinstance(item.when, ast.TriggerRef) else "schedule"
                name_span = item.name_span if item.name is not None else item.when_span
                symbols.append(Symbol(names.get(id(item), item.name or "rule"), "rule", f"when {when}",
                                      item.span, name_span))
            case ast.TriggerDecl():
                symbols.append(Symbol(item.name, "trigger", f"{len(item.fields)} field(s)", item.span, item.name_span))
            case ast.ActionDecl():
                sig = analysis.checked.schema.actions.get(item.name)
                symbols.append(Symbol(item.name, "action", action_signature(sig) if sig else "", item.span,
                                      item.name_span))
    return symbols


# ----------------------------------------------------------------------------- references, rename


@dataclass(frozen=True)
class Symbolic:
    """What references and rename act on: a rule's `let` (its declaration) or a trigger."""

    kind: str  # 'let' | 'trigger'
    name: str
    declared: Span | None  # the let's name, or the trigger's declaration (None: not the program's)
    spans: tuple[Span, ...]  # every occurrence, the declaration first when there is one


def symbol_at(analysis: Analysis, offset: int) -> Symbolic | None:
    """The `let` or trigger at `offset`, with every place it is written (a `let` within its rule,
    a trigger across all files of the program)."""
    found = _at(analysis, offset)
    if found is None:
        return None
    _, what, node = found
    if what == "trigger":
        name = str(node)
        decl = analysis.checked.schema.triggers.get(name)
        declared = decl.span if decl is not None and decl.origin == "program" else None
        spans = [span for file in analysis.checked.files for span, kind, n in _spanned(file)
                 if kind == "trigger" and n == name and span.end > span.start]
        spans.sort(key=lambda s: (s != declared, s.file, s.start))
        return Symbolic("trigger", name, declared, tuple(spans))
    let: ast.Let | None = None
    if what == "let":
        assert isinstance(node, ast.Let)
        let = node
    elif what == "name":
        assert isinstance(node, ast.Name)
        ref = analysis.checked.refs.get(node.id)
        if ref is None or ref.kind != "let":
            return None
        declared = _let_definition(analysis, node)
        rule = _enclosing_rule(analysis, node.span.start)
        let = next((n for n in ast.walk(rule.body) if isinstance(n, ast.Let) and n.name_span == declared),
                   None) if rule and declared else None
    if let is None:
        return None
    rule = _enclosing_rule(analysis, let.span.start)
    uses = [n.span for n in ast.walk(rule.body) if isinstance(n, ast.Name) and n.name == let.name
            and (ref := analysis.checked.refs.get(n.id)) is not None and ref.kind == "let"
            and _let_definition(analysis, n) == let.name_span] if rule else []
    return Symbolic("let", let.name, let.name_span, (let.name_span, *sorted(uses, key=lambda s: s.start)))


_LET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TRIGGER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


def rename(analysis: Analysis, offset: int, new_name: str) -> list[tuple[Span, str]]:
    """The edits that rename the `let` or program-declared trigger at `offset`; ValueError saying
    why not (nothing renamable there, a trigger the program does not declare, a bad new name)."""
    symbol = symbol_at(analysis, offset)
    if symbol is None:
        raise ValueError("only a rule's `let` names and the program's triggers can be renamed")
    pattern = _LET_NAME if symbol.kind == "let" else _TRIGGER_NAME
    if not pattern.fullmatch(new_name) or new_name in KEYWORDS:
        raise ValueError(f"{new_name!r} is not a valid {'let' if symbol.kind == 'let' else 'trigger'} name")
    if symbol.kind == "trigger":
        if symbol.declared is None:
            raise ValueError(f"trigger {symbol.name} is not declared in the program: it cannot be renamed here")
        if new_name in analysis.checked.schema.triggers and new_name != symbol.name:
            raise ValueError(f"trigger {new_name} exists already")
        old_alias, new_alias = symbol.name.split(".")[0], new_name.split(".")[0]
        if old_alias != new_alias and any(
                isinstance(n, ast.Name) and n.name == old_alias
                for file in analysis.checked.files for item in file.items
                if isinstance(item, ast.Rule) and isinstance(item.when, ast.TriggerRef) and item.when.name == symbol.name
                for n in ast.walk(item)):
            raise ValueError(f"rules of {symbol.name} use its alias `{old_alias}`, which the new name would change")
    return [(span, new_name) for span in symbol.spans]


# ----------------------------------------------------------------------------- signature help


@dataclass(frozen=True)
class Signature:
    """The call or `emit` whose parentheses are open at the cursor: its signature, where each
    parameter is in it (offsets into `label`), the parameter being typed, and its doc."""

    label: str
    params: tuple[tuple[int, int], ...]
    active: int | None
    doc: str = ""


def _param_spans(label: str) -> list[tuple[int, int]]:
    """Where each parameter of a rendered signature is: split at its top-level commas."""
    spans, level, quote, start = [], 0, "", label.index("(") + 1
    for i in range(start, len(label)):
        ch = label[i]
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"" and label[i - 1] in " (|[":  # a literal, not the apostrophe of "file's"
            quote = ch
        elif ch in "([{":
            level += 1
        elif ch in ")]}" and level:
            level -= 1
        elif ch in ",)" and level == 0:
            spans.append((start, i))
            start = i + 2 if label[i + 1:i + 2] == " " else i + 1
            if ch == ")":
                break
    return spans


def signature_help(text: str, offset: int, context: Analysis) -> Signature | None:
    """The signature of the action, function or `emit` being typed at `offset` of `text`."""
    masked = _STRINGS_AND_COMMENTS.sub(lambda m: " " * len(m.group()), text[max(0, offset - 4000):offset])
    depth, opened = 0, None
    for i in range(len(masked) - 1, -1, -1):
        ch = masked[i]
        if ch in ")]}":
            depth += 1
        elif ch in "([{":
            if depth == 0:
                opened = i if ch == "(" else None
                break
            depth -= 1
        elif ch == "\n" and re.match(r"[ \t]*(rule|when|trigger|action)\b", masked[i + 1:]):
            break
    if opened is None:
        return None
    named = re.search(r"(emit[ \t]+)?([A-Za-z_][\w.]*)[ \t]*$", masked[:opened])
    if named is None:
        return None
    name, schema = named.group(2), context.checked.schema
    doc = ""
    if named.group(1):
        trigger = schema.triggers.get(name)
        if trigger is None:
            return None
        names = [f for f, _ in trigger.type.fields]
        label = f"emit {name}(" + ", ".join(f"{f}: {t}" for f, t in trigger.type.fields) + ")"
    elif name in schema.actions:
        action = schema.actions[name]
        names, label, doc = [p.name for p in action.params], f"action {action_signature(action)}", action.doc
    elif name in schema.functions:
        fn = schema.functions[name]
        names = [] if fn.variadic else [p.name for p in fn.params]
        label, doc = f"function {function_signature(fn)}", fn.doc
    else:
        return None
    params = _param_spans(label) if names else []
    # the argument being typed: by its name when written (`to: …`), else by position
    args, level, current = masked[opened + 1:], 0, 0
    last = 0
    for j, ch in enumerate(args):
        if ch in "([{":
            level += 1
        elif ch in ")]}":
            level -= 1
        elif ch == "," and level == 0:
            current, last = current + 1, j + 1
    written = re.match(r"[ \t\n]*([A-Za-z_]\w*)[ \t]*:", args[last:])
    active = names.index(written.group(1)) if written and written.group(1) in names else current
    return Signature(label, tuple(params), active if active < len(params) else None, doc)


# ----------------------------------------------------------------------------- quick fixes

_MEANT = re.compile(r"'([^']+)'.*; did you mean '([^']+)'\?")


def quick_fixes(text: str, start: int, end: int, message: str) -> list[tuple[str, int, int, str]]:
    """Edits that fix a diagnostic at `text[start:end]` with `message`: (title, start, end, new
    text). The checker's did-you-mean hints (the unknown name written in the span becomes the
    suggestion) and the parser's `else if` → `elif`."""
    fixes = []
    meant = _MEANT.search(message)
    if meant:
        wrong, best = meant.groups()
        at = text.find(wrong, start, max(end, start + len(wrong)))
        if at >= 0:
            fixes.append((f"Change to '{best}'", at, at + len(wrong), best))
    if "write elif" in message:  # reported where the missing `end` is noticed: the last `else if` before
        masked = _STRINGS_AND_COMMENTS.sub(lambda m: " " * len(m.group()), text[:max(start, end)])
        found = list(re.finditer(r"\belse[ \t]+if\b", masked))
        if found:
            fixes.append(("Write elif", found[-1].start(), found[-1].end(), "elif"))
    return fixes
