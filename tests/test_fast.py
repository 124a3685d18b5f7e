"""The filter fast path gives exactly what the VM's eval_filter gives; filter equalities."""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _vm_support import only_rule
from whenthen.compiler.code import RuleCode
from whenthen.runtime.fast import compile_filter, filter_equalities, filter_source
from whenthen.runtime.vm import eval_filter

UTC = dt.UTC

SCHEMA = """
trigger t.x { s: str?, e: 'a' | 'b' | 'c'?, i: int?, f: float?, b: bool?, l: list[str]?, j: json?, d: datetime? }
"""

ATOMS = [
    "s = 'a'", "s != 'b'", "'a' = s", "s starts with 'a'", "s ends with 'b'", "s contains 'a'",
    "s matches '^a'", "s in ['a', 'b']", "s not in ['a']", "s > 'a'", "'b' <= s", "s is null",
    "s is not empty", "lower(s) = 'a'", "coalesce(s, 'x') = 'x'", "len(s) > 1", "\"{s}!\" = 'a!'",
    "i = 1", "i != 2", "i > 1", "1 < i", "i >= 1.5", "i * 2 > 3", "i + f > 1", "f = 1", "i = f",
    "-i < 0", "i / 2 = 0.5", "i % 2 = 0", "i = null",
    "b", "b = true", "not b", "b = null", "b != false",
    "l contains 'a'", "'a' in l", "l is empty", "len(l) > 1",
    "j = 1", "j = 'a'", "j > 1", "j = true", "j contains 'a'", "j is null", "j = null", "j.k = 1",
    "j != 2.5", "j starts with 'a'",
    "d > 2026-01-01T00:00Z", "d + 1d > 2026-01-02T00:00:00Z", "d = 2026-01-01T00:00:00Z",
    "e = 'a'", "e in ['a', 'b']", "e != 'c'",
    "{a: s, n: 1}.a = s", "j = {k: 1}", "j != {k: i, l: [s]}", "{o: {p: i}}.o.p > 1",
    "replace(s, 'a', 'b') = 'b'", "len(split(s, 'a')) = 2", "join(l, '-') = 'a-b'", "slice(s, 0, 1) = 'a'",
    "round(f) = 1", "round(f, 1) = 2.5", "abs(i) > 1", "max(i, f) > 1", "min(s, 'b') = 'a'",
    "hour(d) = 0", "weekday(d) = 'thursday'", "days(d - 2025-12-31T00:00Z) = 1",
    "format_number(f, 'fr_FR') = '0,5'", "format_date(d, 'EEEE') = 'Thursday'",
]

conditions = st.recursive(
    st.sampled_from(ATOMS),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        inner.map(lambda c: f"not ({c})"),
    ),
    max_leaves=6,
)

# Field values: well-typed ones, nulls, and type surprises (a `json` field, or a bad payload).
FIELD_VALUES = {
    "s": [None, "a", "b", "ab", "", "A", 3],
    "e": [None, "a", "b", "c"],
    "i": [None, 0, 1, 2, -3, 1.0, True, "1"],
    "f": [None, 0.5, 1, 1.0, 2.5, False],
    "b": [None, True, False, 1, 0],
    "l": [None, [], ["a"], ["a", "b"], [1, True], "a"],
    "j": [None, 1, 1.0, 2.5, True, False, "a", "ab", [1, "a"], {"k": 1}, {"k": True}, {}],
    "d": [None, dt.datetime(2026, 1, 1, tzinfo=UTC), dt.datetime(2025, 6, 1, tzinfo=UTC), "2026-01-01"],
}
events = st.fixed_dictionaries({}, optional={k: st.sampled_from(v) for k, v in FIELD_VALUES.items()})

_compiled: dict[str, RuleCode] = {}


def filter_rule(condition: str) -> RuleCode:
    if condition not in _compiled:
        _compiled[condition] = only_rule(f"{SCHEMA}\nrule \"F\" when t.x where {condition} then\nend\n")
    return _compiled[condition]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(condition=conditions, batch=st.lists(events, min_size=1, max_size=20))
def test_fast_path_agrees_with_the_vm(condition: str, batch: list[dict]) -> None:
    code = filter_rule(condition)
    fast = compile_filter(code)
    for event in batch:
        assert fast(event) is eval_filter(code, event), (condition, event, filter_source(code)[0])


def test_every_atom_agrees_on_every_single_field_value() -> None:
    grid = [{}] + [{name: value} for name, values in FIELD_VALUES.items() for value in values]
    grid += [{"i": i, "f": f} for i in FIELD_VALUES["i"] for f in FIELD_VALUES["f"]]
    for atom in ATOMS:
        code = filter_rule(atom)
        fast = compile_filter(code)
        for event in grid:
            assert fast(event) is eval_filter(code, event), (atom, event)


def test_every_atom_is_compiled_to_python_not_the_fallback() -> None:
    for atom in ATOMS:
        source, _ = filter_source(filter_rule(atom))
        assert source.startswith("def _filter(event, now=None):")


def test_common_comparisons_are_inlined() -> None:
    source, _ = filter_source(filter_rule("s = 'a' and i >= 1 and s ends with 'b' and e in ['a', 'b']"))
    assert "_eq(" not in source and "_ge(" not in source and "_in(" not in source
    assert "event.get('s') == 'a'" in source


def test_no_filter_is_always_true() -> None:
    code = only_rule(f'{SCHEMA}\nrule "F" when t.x then\nend\n')
    assert compile_filter(code)({}) is True
    assert filter_equalities(code) == ()


def test_filter_equalities_are_the_top_level_constant_equalities() -> None:
    code = filter_rule("s = 'a' and (i = 1 or b) and 2.5 = f and t.e = 'b' and d = 2026-01-01T00:00:00Z "
                       "and j = null and s != 'c' and i = f")
    assert filter_equalities(code) == (
        ("s", "a"), ("f", 2.5), ("e", "b"), ("d", dt.datetime(2026, 1, 1, tzinfo=UTC)), ("j", None),
    )
    assert filter_equalities(filter_rule("s = 'a' or i = 1")) == ()
    assert filter_equalities(RuleCode.decode(code.encode())) == filter_equalities(code)


def test_now_is_passed_to_functions() -> None:
    code = filter_rule("d < now()")
    now = dt.datetime(2026, 6, 1, tzinfo=UTC)
    event = {"d": dt.datetime(2026, 1, 1, tzinfo=UTC)}
    assert compile_filter(code)(event, now) is True
    assert compile_filter(code)(event, dt.datetime(2025, 1, 1, tzinfo=UTC)) is False
    assert eval_filter(code, event, now) is True
