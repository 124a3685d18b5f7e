"""Every checker diagnostic's message text, in one place (cel-go style): one function per message."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from whenthen.compiler.types import Type


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """`; did you mean 'x'?` for the closest candidate, or '' when none is close."""
    best = closest(name, candidates)
    return f"; did you mean '{best}'?" if best else ""


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to `name`: one differing only in case first, then difflib's best."""
    pool = sorted(set(candidates) - {name})
    for candidate in pool:
        if candidate.lower() == name.lower():
            return candidate
    matches = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    return matches[0] if matches else None


# -- E001 syntax (the few the checker finds itself)
def timezone_not_first() -> str:
    return "`timezone` must come before anything else in the file, at most once"


def integer_out_of_range(value: int) -> str:
    return f"integer literal {value} is out of range (at most 64 bits)"


def duration_out_of_range() -> str:
    return "duration literal is out of range (at most 999999999 days)"


# -- E101 unknown trigger
def unknown_trigger(name: str, candidates: Iterable[str]) -> str:
    return f"unknown trigger '{name}'" + did_you_mean(name, candidates)


def schedule_trigger_by_name(name: str) -> str:
    return f"'{name}' is fired by schedules; write `when every …`, `when cron …` or `when at …`"


# -- E102 unknown field or name
def unknown_field(name: str, owner: str, candidates: Iterable[str]) -> str:
    return f"unknown field '{name}' on {owner}" + did_you_mean(name, candidates)


def unknown_name(name: str, candidates: Iterable[str]) -> str:
    return f"unknown name '{name}'" + did_you_mean(name, candidates)


def start_field_in_clause(name: str, clause_trigger: str, alias: str) -> str:
    return (f"unknown field '{name}' on {clause_trigger}; '{name}' is a field of the start event: "
            f"write it as {alias}.{name}")


def clause_alias(name: str, clause_trigger: str) -> str:
    return (f"unknown name '{name}': in this clause, write the fields of {clause_trigger} bare "
            f"(`field = …`), not through '{name}'")


def no_fields(name: str, type_: Type) -> str:
    return f"a value of type {type_} has no field '{name}'"


def unknown_type(name: str, candidates: Iterable[str]) -> str:
    return f"unknown type '{name}'" + did_you_mean(name, candidates)


# -- E103 type mismatch
def operand_types(op: str, left: Type, right: Type) -> str:
    return f"cannot apply '{op}' to {left} and {right}"


def operand_type(op: str, operand: Type) -> str:
    return f"cannot apply '{op}' to {operand}"


def condition_not_bool(what: str, got: Type) -> str:
    return f"{what} must be a bool, got {got}"


def wait_not_duration(got: Type) -> str:
    return f"`wait` needs a duration (like 24h), got {got}"


def wait_until_not_datetime(got: Type) -> str:
    return f"`wait until` needs a datetime, got {got}"


def within_not_duration(got: Type) -> str:
    return f"`within` needs a duration (like 3d), got {got}"


def argument_type(param: str, callee: str, want: Type, got: Type) -> str:
    return f"argument '{param}' of {callee} must be {want}, got {got}"


def emit_field_type(field: str, trigger: str, want: Type, got: Type) -> str:
    return f"field '{field}' of {trigger} must be {want}, got {got}"


def len_argument(got: Type) -> str:
    return f"len() needs a string or a list, got {got}"


def coalesce_mixed(first: Type, other: Type) -> str:
    return f"coalesce() arguments must have one type: {first} and {other}"


def function_argument(function: str, param: str, wanted: str, got: Type) -> str:
    return f"{function}() needs {wanted} for {param}, got {got}"


def extremum_mixed(function: str, first: Type, other: Type) -> str:
    if first == other:
        return f"{function}() compares numbers, texts, dates, datetimes or durations, got {first}"
    return f"{function}() arguments must be comparable with each other: {first} and {other}"


def locale_line(name: str, reason: str) -> str:
    return f"invalid locale {name!r}: {reason}"


def locale_not_first() -> str:
    return "`locale` must come before anything but `timezone` in the file, at most once"


def mixed_list(first: Type, other: Type) -> str:
    return f"list items must have one type: {first} and {other}"


def matches_needs_literal() -> str:
    return "`matches` needs a single-quoted literal pattern, like '^[0-9]{5}$'"


def in_needs_list(got: Type) -> str:
    return f"`in` needs a list on its right, got {got}"


def is_empty_operand(got: Type) -> str:
    return f"`is empty` applies to strings and lists, got {got}"


def default_not_literal(param: str) -> str:
    return f"the default of '{param}' must be a literal"


def default_type(param: str, want: Type, got: Type) -> str:
    return f"the default of '{param}' must be {want}, got {got}"


def case_holds_one_condition() -> str:
    return "a `case` of a `switch` without a subject holds one condition"


def case_value_type(subject: Type, got: Type) -> str:
    return f"case value of type {got} cannot match a subject of type {subject}"


# -- E104 unknown action or function
def unknown_callable(name: str, candidates: Iterable[str]) -> str:
    return f"unknown action or function '{name}'" + did_you_mean(name, candidates)


def function_as_statement(name: str) -> str:
    return f"'{name}' is a function, not an action: its value would be unused"


# -- E105 unknown or repeated argument
def unknown_argument(name: str, callee: str, candidates: Iterable[str]) -> str:
    return f"unknown argument '{name}' for {callee}" + did_you_mean(name, candidates)


def unknown_emit_field(name: str, trigger: str, candidates: Iterable[str]) -> str:
    return f"unknown field '{name}' on {trigger}" + did_you_mean(name, candidates)


def argument_twice(name: str, callee: str) -> str:
    return f"argument '{name}' given twice to {callee}"


def too_many_arguments(callee: str, most: int) -> str:
    return f"too many arguments for {callee}: it takes {most}"


def positional_after_named(callee: str) -> str:
    return f"a positional argument after a named one in the call to {callee}"


# -- E106 missing argument or emit field
def missing_arguments(names: list[str], callee: str) -> str:
    listed = ", ".join(f"'{n}'" for n in names)
    plural = "s" if len(names) > 1 else ""
    return f"missing required argument{plural} {listed} in the call to {callee}"


def missing_emit_fields(names: list[str], trigger: str) -> str:
    listed = ", ".join(f"'{n}'" for n in names)
    plural = "s" if len(names) > 1 else ""
    return f"missing field{plural} {listed} of {trigger}"


def needs_an_argument(callee: str) -> str:
    return f"{callee}() needs at least one argument"


# -- E107 literal outside an enumeration
def not_in_enum(value: str, enum: Type) -> str:
    hint = did_you_mean(value, enum.values)
    return f"'{value}' is not one of {enum.base}" + hint


# -- E108 invalid regular expression
def bad_regex(pattern: str, reason: str) -> str:
    return f"invalid regular expression '{pattern}': {reason}"


# -- E109 action inside an expression
def action_in_expression(name: str) -> str:
    return (f"action '{name}' called inside an expression; call it as a statement "
            f"or bind it with `let x = {name}(…)`")


# -- E110 duplicates
def duplicate_rule(name: str, line: int, file: str) -> str:
    return f"duplicate rule name '{name}' (first defined at {file}:{line})"


def duplicate_trigger(name: str, where: str) -> str:
    return f"duplicate trigger '{name}' ({where})"


def duplicate_action(name: str, where: str) -> str:
    return f"duplicate action '{name}' ({where})"


def duplicate_field(name: str, owner: str) -> str:
    return f"duplicate field '{name}' in {owner}"


def repeat_not_int(got: Type) -> str:
    return f"`repeat` needs an int count, got {got}"


def once_within_not_literal() -> str:
    return "`once per … within` takes a duration literal such as `30d`"


def once_within_not_positive(seconds: int) -> str:
    return f"`once per … within` needs a positive duration, got {seconds}s"


def split_share_out_of_range(share: int) -> str:
    return f"a split's share is a whole percentage from 1% to 100%, got {share}%"


def split_shares_total(total: int, shares: list[int]) -> str:
    if not shares:
        return "a split needs at least one `case P% then …`, with shares adding up to 100%"
    written = " + ".join(f"{s}%" for s in shares)
    return f"the shares of a split must add up to 100%, got {written} = {total}%"


def for_not_list(got: Type) -> str:
    return f"`for` needs a list to go through, got {got}"


def break_outside_loop() -> str:
    return "`break` outside a `repeat` or `for` loop"


def duplicate_key(name: str) -> str:
    return f"duplicate key '{name}' in object literal"


def unknown_object_key(name: str, owner: str, candidates: Iterable[str]) -> str:
    return f"unknown field '{name}' for {owner}" + did_you_mean(name, candidates)


def object_field_type(name: str, want: Type, got: Type) -> str:
    return f"field '{name}' expects {want}, got {got}"


def missing_object_fields(names: list[str], owner: str) -> str:
    listed = ", ".join(f"'{n}'" for n in names)
    return f"missing field{'s' if len(names) > 1 else ''} {listed} for {owner}"


def duplicate_param(name: str, action: str) -> str:
    return f"duplicate parameter '{name}' in action {action}"


def action_shadows_function(name: str) -> str:
    return f"action '{name}' has the name of a stdlib function"


# -- E111 let reusing a name
def let_reuses_field(name: str, trigger: str) -> str:
    return f"`let {name}` reuses the name of a field of {trigger}; choose another name"


def let_reuses_alias(name: str) -> str:
    return f"`let {name}` reuses the name of the start event ('{name}'); choose another name"


def let_reuses_let(name: str) -> str:
    return f"`let {name}` reuses the name of an earlier `let` in scope; choose another name"


# -- E112 schedules and time zones
def bad_timezone(name: str, candidates: Iterable[str]) -> str:
    return f"unknown time zone '{name}'" + did_you_mean(name, candidates)


def bad_cron(expr: str) -> str:
    return f"invalid cron expression '{expr}': expected five fields 'minute hour day month weekday'"


def cron_never_fires(expr: str) -> str:
    return f"cron expression '{expr}' never fires: no date matches its day and month fields"


def bad_weekday(day: str, candidates: Iterable[str]) -> str:
    return f"unknown day '{day}' in `every … at`" + did_you_mean(day, candidates)


def bad_window_time(text: str) -> str:
    return f"invalid time of day '{text}' in `during` (HH:MM, from 00:00 to 23:59)"


def window_empty(time: str) -> str:
    return (f"`during {time}-{time}` starts and ends at the same time: a sending window needs two "
            "different times (an end before the start runs past midnight)")


def bad_window_day(day: str, candidates: Iterable[str]) -> str:
    return f"unknown day '{day}' in `during … on` (day names: monday … sunday)" + did_you_mean(day, candidates)


def bad_every(seconds: int) -> str:
    return f"`every` needs a positive duration, got {seconds}s"


# -- W201 unreachable
def unreachable() -> str:
    return "unreachable statement: it follows `stop` in the same block"


# -- W202 comparison with itself
def self_comparison(op: str, text: str, alias_form: str | None) -> str:
    always = "always true" if op in ("=", "<=", ">=") else "always false"
    base = f"`{text} {op} {text}` compares an expression with itself: it is {always}"
    if alias_form is not None:
        return (base + "; in a `wait for` a bare name is the awaited event's field; did you mean"
                f" `{alias_form}` (the start event's field through its alias)?")
    return base


# -- W203 wall-clock time without a timezone
def wall_clock_without_timezone(what: str, zone: str, declared_in: str) -> str:
    return (f"{what} is a wall-clock time, read in UTC because this file has no `timezone`, while"
            f" {declared_in} declares `timezone \"{zone}\"`; add `timezone \"{zone}\"` at the top of this file")


def too_deep() -> str:
    return "expressions or blocks nested too deeply"


# -- internal (never expected; reported instead of raising)
def internal_error(stage: str, exc: BaseException) -> str:
    return f"internal error in the {stage}: {type(exc).__name__}: {exc}"
