"""Hypothesis strategies for valid whenthen ASTs and programs (printable, so they parse back equal).

Reusable by other test modules:
    exprs()        any expression (no nested templates inside template parts)
    conditions()   an `and`/`or`/comparison tree over names and literals
    statements()   one statement (blocks nest a little)
    rules, trigger_decls, action_decls, items, types, schedules   (strategies, not functions)
    names, soft_names (keywords too), trigger_names, texts, literals()
    files()        an ast.File (optionally starting with a timezone and a locale)
    programs()     a File and its canonical source text: `(text, file)`

Generated trees are syntactic only: names, fields and types are not meant to type-check.
"""

from __future__ import annotations

import datetime as dt

from hypothesis import strategies as st

from whenthen.grammar import ast
from whenthen.grammar.postlex import KEYWORDS
from whenthen.grammar.printer import print_file

_NAME_RE = r"\A[A-Za-z_][A-Za-z0-9_]{0,7}\Z"

# A bare name must not be a keyword; after `.`, before `.` or `:` any identifier (keywords too) is fine.
names = st.from_regex(_NAME_RE).filter(lambda s: s not in KEYWORDS)
soft_names = st.one_of(names, st.sampled_from(sorted(KEYWORDS)))
trigger_names = st.lists(soft_names, min_size=2, max_size=3).map(".".join)

# Text that every kind of string literal can hold: no raw line breaks (SPEC 2.1).
_TEXT_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r")
texts = st.text(_TEXT_CHARS, max_size=12)
# Inside a template's `{…}` a '…' string may not hold `"` (the template would end there).
_template_safe_texts = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters='\n\r"'), max_size=8
)

_datetimes = st.datetimes(min_value=dt.datetime(1000, 1, 1), max_value=dt.datetime(9999, 12, 30))
_offsets = st.one_of(
    st.none(),
    st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: dt.timezone(dt.timedelta(minutes=m))),
)


@st.composite
def datetimes(draw: st.DrawFn) -> dt.datetime:
    value = draw(_datetimes)
    return value.replace(tzinfo=draw(_offsets))


def literals(text: st.SearchStrategy[str] = texts) -> st.SearchStrategy[ast.Expr]:
    return st.one_of(
        text.map(ast.StrLit),
        st.integers(0, 10**12).map(ast.IntLit),
        st.floats(0, 1e12, allow_nan=False, allow_infinity=False).map(lambda f: ast.FloatLit(abs(f))),
        st.booleans().map(ast.BoolLit),
        st.just(ast.NullLit()),
        st.integers(0, 10**8).map(ast.DurationLit),
        st.dates(dt.date(1000, 1, 1), dt.date(9999, 12, 31)).map(ast.DateLit),
        datetimes().map(ast.DateTimeLit),
    )


_BINARY_OPS = ast.ARITHMETIC_OPS + ast.LOGIC_OPS + ast.COMPARISON_OPS + ast.TEST_OPS


def _extend(children: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
    args = st.lists(st.builds(ast.Arg, st.one_of(st.none(), soft_names), children), max_size=3)
    return st.one_of(
        st.builds(ast.Binary, st.sampled_from(_BINARY_OPS), children, children),
        st.builds(ast.Unary, st.sampled_from(("not", "-")), children),
        st.builds(ast.Is, children, st.sampled_from(("null", "empty")), st.booleans()),
        st.builds(ast.Attr, children, soft_names),
        st.builds(ast.Call, names, args.map(tuple)),
        st.lists(children, max_size=3).map(lambda items: ast.ListLit(tuple(items))),
    )


def _simple_exprs(text: st.SearchStrategy[str]) -> st.SearchStrategy[ast.Expr]:
    leaves = st.one_of(literals(text), names.map(ast.Name))
    return st.recursive(leaves, _extend, max_leaves=8)


def _normal_parts(parts: list[str | ast.Expr]) -> tuple[str | ast.Expr, ...]:
    """Template parts as the parser produces them: no empty text, no two texts in a row."""
    out: list[str | ast.Expr] = []
    for part in parts:
        if isinstance(part, str):
            if not part:
                continue
            if out and isinstance(out[-1], str):
                out[-1] += part
                continue
        out.append(part)
    return tuple(out)


templates = st.lists(
    st.one_of(texts, _simple_exprs(_template_safe_texts)), max_size=4
).map(lambda parts: ast.Template(_normal_parts(parts)))


def _extend_with_objects(children: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
    """As _extend, plus object literals (not inside templates: there `}` ends the expression)."""
    fields = st.lists(st.builds(ast.ObjField, soft_names, children), max_size=3,
                      unique_by=lambda f: f.name)
    return st.one_of(_extend(children), fields.map(lambda fs: ast.ObjectLit(tuple(fs))))


def exprs() -> st.SearchStrategy[ast.Expr]:
    leaves = st.one_of(literals(), names.map(ast.Name), templates)
    return st.recursive(leaves, _extend_with_objects, max_leaves=10)


def conditions() -> st.SearchStrategy[ast.Expr]:
    """Comparisons of names and literals joined by and/or/not (what `where` clauses hold)."""
    compare = st.builds(
        ast.Binary, st.sampled_from(ast.COMPARISON_OPS + ast.TEST_OPS), names.map(ast.Name), literals()
    )
    return st.recursive(
        compare,
        lambda c: st.one_of(
            st.builds(ast.Binary, st.sampled_from(ast.LOGIC_OPS), c, c), st.builds(ast.Unary, st.just("not"), c)
        ),
        max_leaves=5,
    )


def _args() -> st.SearchStrategy[tuple[ast.Arg, ...]]:
    return st.lists(st.builds(ast.Arg, st.one_of(st.none(), soft_names), exprs()), max_size=3).map(tuple)


_calls = st.builds(ast.Call, names, _args())
_wait_fors = st.builds(
    ast.WaitFor, trigger_names, st.one_of(st.none(), conditions()), st.one_of(st.none(), exprs())
)

_simple_statements = st.one_of(
    _calls.map(ast.CallStmt),
    st.builds(ast.Let, names, st.one_of(exprs(), _wait_fors)),
    st.builds(ast.Wait, exprs()),
    st.builds(ast.WaitUntil, exprs()),
    _wait_fors,
    st.builds(ast.Emit, trigger_names, _args()),
    st.just(ast.Stop()),
    st.just(ast.Break()),
)


def _compound(stmts: st.SearchStrategy[ast.Stmt]) -> st.SearchStrategy[ast.Stmt]:
    block = st.lists(stmts, max_size=3).map(tuple)
    else_block = st.one_of(st.none(), block)
    return st.one_of(
        st.builds(ast.If, st.lists(st.builds(ast.IfBranch, exprs(), block), min_size=1, max_size=3).map(tuple),
                  else_block),
        st.builds(
            ast.Switch,
            st.one_of(st.none(), exprs()),
            st.lists(st.builds(ast.Case, st.lists(exprs(), min_size=1, max_size=3).map(tuple), block),
                     max_size=3).map(tuple),
            else_block,
        ),
        st.builds(ast.Split, st.one_of(st.none(), exprs()),
                  st.lists(st.builds(ast.SplitCase, st.integers(0, 200), block), max_size=3).map(tuple)),
        st.builds(ast.Repeat, exprs(), block),
        st.builds(ast.For, names, exprs(), block),
    )


def statements() -> st.SearchStrategy[ast.Stmt]:
    return st.recursive(_simple_statements, _compound, max_leaves=6)


# ----------------------------------------------------------------------------- types and items

_named_types = st.sampled_from(("str", "int", "float", "bool", "datetime", "date", "duration", "json")).map(
    ast.NamedType
)


def _type_extend(inner: st.SearchStrategy[ast.TypeExpr]) -> st.SearchStrategy[ast.TypeExpr]:
    fields = st.lists(st.builds(ast.FieldDecl, soft_names, inner), max_size=3).map(tuple)
    return st.one_of(
        inner.map(ast.ListType),
        fields.map(ast.ObjectType),
        inner.filter(lambda t: not isinstance(t, ast.OptionalType)).map(ast.OptionalType),
    )


types = st.recursive(
    st.one_of(_named_types, st.lists(texts, min_size=1, max_size=3).map(lambda v: ast.EnumType(tuple(v)))),
    _type_extend,
    max_leaves=4,
)

_fields = st.lists(st.builds(ast.FieldDecl, soft_names, types), max_size=4).map(tuple)
trigger_decls = st.builds(ast.TriggerDecl, trigger_names, _fields)

_params = st.lists(
    st.builds(ast.Param, soft_names, types, st.one_of(st.none(), literals())), max_size=3
).map(tuple)
action_decls = st.builds(ast.ActionDecl, names, _params, st.one_of(st.none(), types))

_days = st.sampled_from(("day", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))
schedules = st.one_of(
    st.integers(1, 10**7).map(ast.Every),
    st.builds(ast.EveryAt, _days, st.times().map(lambda t: dt.time(t.hour, t.minute))),
    texts.map(ast.Cron),
    datetimes().map(ast.At),
)

_clocks = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))
_weekdays = st.sampled_from(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))

_exit_clauses = st.builds(ast.ExitClause, trigger_names.map(ast.TriggerRef), st.one_of(st.none(), conditions()))

rules = st.builds(
    ast.Rule,
    st.one_of(st.none(), texts),
    st.one_of(trigger_names.map(ast.TriggerRef), schedules),
    st.one_of(st.none(), conditions(), exprs()),
    st.lists(_exit_clauses, max_size=2).map(tuple),
    st.lists(statements(), max_size=4).map(tuple),
    st.one_of(st.none(), st.builds(ast.Once, st.lists(exprs(), min_size=1, max_size=2).map(tuple),
                                   st.one_of(st.none(), exprs()))),
    st.one_of(st.none(), st.builds(
        ast.During, _clocks, _clocks,
        st.lists(st.builds(ast.DayRange, _weekdays, st.one_of(st.none(), _weekdays)), max_size=3).map(tuple))),
)

items = st.one_of(trigger_decls, action_decls, rules)


@st.composite
def files(draw: st.DrawFn, name: str = "gen.rules") -> ast.File:
    body = draw(st.lists(items, max_size=4))
    timezone = draw(st.one_of(st.none(), st.sampled_from(("UTC", "Europe/Paris", "America/New_York"))))
    locale = draw(st.one_of(st.none(), st.sampled_from(("fr_FR", "nl", "ru_RU"))))
    head = [ast.TimezoneDecl(timezone)] if timezone else []
    head += [ast.LocaleDecl(locale)] if locale else []
    return ast.File(name, tuple(head + body))


@st.composite
def programs(draw: st.DrawFn) -> tuple[str, ast.File]:
    """A generated File and its canonical source text."""
    file = draw(files())
    return print_file(file), file
