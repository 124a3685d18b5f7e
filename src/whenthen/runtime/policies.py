"""Journey policies (SPEC 2.10–2.13) that do not depend on the store: the split's stable choice.

A split's case is a function of the rule's name and a value only: the same customer takes the
same case in every run, every process and on every machine. So it is a cryptographic hash
(BLAKE2b) of a canonical encoding, never Python's `hash()` (salted per process for strings).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from whenthen import values

BUCKETS = 10_000  # a share of P% is P * 100 buckets: the uniform hash is split this finely


def canonical(value: Any) -> str:
    """The text a value is hashed as: JSON with sorted keys and no spaces; 80 and 80.0 agree."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(values.to_json(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def split_bucket(rule: str, key: str) -> int:
    """The bucket (0 … BUCKETS-1) of a rule's name and a canonical key."""
    digest = hashlib.blake2b(f"{rule}\x00{key}".encode(), digest_size=8, person=b"whenthen-split").digest()
    return int.from_bytes(digest, "big") % BUCKETS


def split_case(rule: str, value: Any, shares: list[int], *, run_id: int | None = None) -> int:
    """The 1-based case a split takes (SPEC 2.13): by `value` (a null value takes the first case),
    or, for `split` without `by`, by the run's id (`run_id`)."""
    if run_id is not None:
        key = f"run:{run_id}"
    elif value is None:
        return 1
    else:
        key = canonical(value)
    bucket = split_bucket(rule, key)
    edge = 0
    for index, share in enumerate(shares, 1):
        edge += share * BUCKETS // 100
        if bucket < edge:
            return index
    return len(shares)


def splits_of(code: Any) -> dict[int, tuple[list[int], int]]:
    """A rule's splits, from its compiled body: number → (shares, line)."""
    from whenthen.compiler.opcodes import Opcode

    found: dict[int, tuple[list[int], int]] = {}
    body = code.body
    for pc, (op, arg) in enumerate(body.instrs):
        if op == Opcode.SPLIT:
            _rule, number, shares, _has_by = body.consts[arg]
            found[number] = (list(shares), body.position(pc)[0])
    return found


def splits_view(counts: list[tuple[int, int, int, int, int]], current: dict[int, tuple[list[int], int]]
                ) -> list[dict[str, Any]]:
    """Per split of a rule, how many runs took each branch (SPEC 2.13), over all its versions.

    `counts` holds (version, split, branch, share, runs) rows; `current` the current version's
    splits (`splits_of`), so a branch no run took yet shows 0."""
    table: dict[int, dict[int, dict[str, int]]] = {}
    for number, (shares, _line) in current.items():
        table[number] = {i: {"case": i, "share": share, "runs": 0} for i, share in enumerate(shares, 1)}
    for _version, number, branch, share, runs in counts:
        row = table.setdefault(number, {}).setdefault(branch, {"case": branch, "share": share, "runs": 0})
        row["runs"] += runs
    out = []
    for number in sorted(table):
        view: dict[str, Any] = {"split": number}
        if number in current:
            view["line"] = current[number][1]
        view["branches"] = [table[number][b] for b in sorted(table[number])]
        out.append(view)
    return out


def describe_splits(splits: list[dict[str, Any]]) -> str:
    """`split 1: case 1 (50%) 12 runs, case 2 (50%) 9 runs` (the `rules` listing)."""
    parts = []
    for view in splits:
        branches = ", ".join(f"case {b['case']} ({b['share']}%) {b['runs']} run{'s' if b['runs'] != 1 else ''}"
                             for b in view["branches"])
        parts.append(f"split {view['split']}: {branches}")
    return "; ".join(parts)


# ----------------------------------------------------------------------------- entry limits (SPEC 2.11)


def entry_key(code: Any, data: dict[str, Any], now: Any) -> str | None:
    """The key of an event under a rule's `once per KEY…`: the canonical text of the key values,
    or None (never limits) when a value is null or cannot be computed."""
    from whenthen.diagnostics import WhenthenError
    from whenthen.runtime import vm

    try:
        found = vm.evaluate(code.limit_keys, data, code.timezone, now=now)
    except WhenthenError:
        return None
    if not isinstance(found, list) or any(v is None for v in found):
        return None
    return canonical(found)


def limited_by(store: Any, rule: str, key: str, within: int | None, now: float) -> int | None:
    """The run that keeps an event out (SPEC 2.11): the last run of the rule for the key, when it
    started within the last `within` seconds (or ever without `within`); else None."""
    last = store.entry(rule, key)
    if last is None:
        return None
    started, run_id = last
    if within is None or started > now - within:
        return run_id
    return None
