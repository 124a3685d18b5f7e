"""Split (SPEC 2.13): `split [by EXPR]` / `case P% then …` / `end`, on every stage."""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import whenthen
from whenthen.api import compile as compile_rules
from whenthen.grammar.parser import parse
from whenthen.grammar.printer import print_file
from whenthen.runtime.clock import SimulatedClock
from whenthen.runtime.engine import Engine
from whenthen.runtime.policies import split_case
from whenthen.runtime.simulate import simulate
from whenthen.source import Source
from whenthen.tools.fmt import format_source

T0 = dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.UTC)

SCHEMA = "trigger cart.abandoned { customer_id: str?, email: str, count: int, on: str, once: bool, split: int }\n"
OFFER = SCHEMA + """
rule "Offer"
when cart.abandoned
then
  split by customer_id
  case 50% then send_email(to: email, subject: "Offer A")
  case 30% then send_email(to: email, subject: "Offer B")
  case 20% then send_email(to: email, subject: "Offer C")
  end
end
"""


def codes(source: str) -> list[str]:
    return [d.code for d in whenthen.check(source)]


def subjects(engine: Engine) -> dict[str, str]:
    """customer → the subject its runs sent."""
    out = {}
    for run in engine.runs():
        view = engine.run(run["id"])
        action = next(s for s in view["steps"] if s["kind"] == "action")
        out[view["event"]["data"]["customer_id"]] = action["args"]["subject"]
    return out


# ----------------------------------------------------------------------------- syntax


def test_split_parses_and_its_words_stay_field_names() -> None:
    source = SCHEMA + """
rule "x" when cart.abandoned where split > 0 and count > 0 and on = 'a' and once then
  split by customer_id
  case 50% then log(message: 'A')
  case 50% then
    log(message: "B {split} {count} {on} {once}")
  end
  let by = split + count
  split
  case 100% then stop
  end
end
rule "one line" when cart.abandoned then split case 30% then log(message: 'a'); case 70% then log(message: 'b') end
"""
    assert codes(source) == []
    file, diags = parse(Source("t.rules", source))
    assert diags == []
    first = file.items[1].body[0]
    assert first.by.name == "customer_id" and [c.share for c in first.cases] == [50, 50]


def test_split_round_trips_through_the_printer_and_fmt() -> None:
    file, _ = parse(Source("t.rules", OFFER))
    printed = print_file(file)
    again, diags = parse(Source("t.rules", printed))
    assert diags == [] and again == file
    formatted = format_source(OFFER)
    assert "  split by customer_id\n  case 50% then\n    send_email" in formatted
    assert format_source(formatted) == formatted


@pytest.mark.parametrize(("cases", "message"), [
    ("case 50% then stop\n case 40% then stop", "add up to 100%, got 50% + 40% = 90%"),
    ("case 0% then stop\n case 100% then stop", "from 1% to 100%, got 0%"),
    ("case 150% then stop", "from 1% to 100%, got 150%"),
    ("", "at least one `case P% then"),
])
def test_e113_when_the_shares_are_wrong(cases: str, message: str) -> None:
    diags = whenthen.check(SCHEMA + f'rule "x" when cart.abandoned then\n split by email\n {cases}\n end\nend\n')
    assert [d.code for d in diags] == ["E113"]
    assert message in diags[0].message


def test_cli_graph_disasm_fmt(tmp_path: Path) -> None:
    path = tmp_path / "offer.rules"
    path.write_text(OFFER)

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "whenthen", *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "split 1: 50% / 30% / 20% by value" in cli("disasm", str(path))
    graph = cli("graph", str(path))
    assert '{"split by customer_id"}' in graph and '|"30%"|' in graph


# ----------------------------------------------------------------------------- the choice


def test_the_choice_is_stable_and_null_takes_the_first_case() -> None:
    shares = [50, 30, 20]
    assert split_case("Offer", None, shares) == 1
    picks = [split_case("Offer", f"c{i}", shares) for i in range(20)]
    assert picks == [split_case("Offer", f"c{i}", shares) for i in range(20)]
    # 80 and 80.0 are one value; another rule's name mixes differently
    assert split_case("Offer", 80, shares) == split_case("Offer", 80.0, shares)
    assert [split_case("Other", f"c{i}", shares) for i in range(20)] != picks


def test_the_choice_does_not_depend_on_the_process() -> None:
    """Not Python's hash(): another interpreter with another hash seed picks the same cases."""
    script = ("from whenthen.runtime.policies import split_case; "
              "print([split_case('Offer', f'c{i}', [50, 30, 20]) for i in range(50)])")
    outs = set()
    for seed in ("1", "2"):
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                              env={"PYTHONHASHSEED": seed, "PYTHONPATH": ":".join(sys.path)})
        assert done.returncode == 0, done.stderr
        outs.add(done.stdout)
    assert outs == {str([split_case("Offer", f"c{i}", [50, 30, 20]) for i in range(50)]) + "\n"}


def test_golden_choices() -> None:
    """Pinned: a change of the hash would move every customer to another branch."""
    assert [split_case("Offer", f"c{i}", [50, 30, 20]) for i in range(12)] == GOLDEN


GOLDEN = [1, 3, 2, 1, 2, 3, 1, 2, 2, 1, 1, 3]


@pytest.mark.parametrize("shares", [[50, 50], [50, 30, 20], [1, 99], [10, 10, 10, 10, 60]])
def test_shares_over_10000_keys_fall_within_the_binomial_error(shares: list[int]) -> None:
    n = 10_000
    counts = [0] * len(shares)
    for i in range(n):
        counts[split_case("Offer", f"customer-{i}", shares) - 1] += 1
    for share, got in zip(shares, counts, strict=True):
        p = share / 100
        sigma = math.sqrt(n * p * (1 - p))
        assert abs(got - n * p) <= 4 * sigma, (shares, counts)


def test_without_by_the_run_id_decides() -> None:
    picks = {split_case("Offer", None, [50, 50], run_id=i) for i in range(1, 40)}
    assert picks == {1, 2}


# ----------------------------------------------------------------------------- engine and simulate


def test_engine_records_branch_steps_and_counts(db: str) -> None:
    clock = SimulatedClock(T0)
    engine = Engine(db, clock)
    engine.publish(compile_rules(OFFER, engine.schema), author="t", enable=True)
    customers = ["c0", "c1", "c2", "c0", "c1", None]
    for i, customer in enumerate(customers):
        engine.emit("cart.abandoned", {"customer_id": customer, "email": f"e{i}@x", "count": i, "on": "x",
                                       "once": True, "split": 1})
    expected = {c: split_case("Offer", c, [50, 30, 20]) for c in customers}
    subject = {1: "Offer A", 2: "Offer B", 3: "Offer C"}
    assert subjects(engine) == {c: subject[k] for c, k in expected.items()}
    run = engine.run(engine.runs()[0]["id"])
    branch = next(s for s in run["steps"] if s["kind"] == "branch")
    assert {k: branch[k] for k in ("split", "case", "share")} == \
        {"split": 1, "case": expected["c0"], "share": [50, 30, 20][expected["c0"] - 1]}
    rules = engine.rules()
    view = rules[0]["splits"]
    taken = [expected[c] for c in customers]
    assert view == [{"split": 1, "line": 6, "branches": [
        {"case": i, "share": share, "runs": taken.count(i)} for i, share in enumerate([50, 30, 20], 1)]}]
    runs = engine.runs()
    assert [r["splits"][0]["case"] for r in runs] == taken
    engine.close()


def test_simulate_and_the_durable_engine_give_the_same_trace(tmp_path: Path, db: str) -> None:
    rules = tmp_path / "offer.rules"
    rules.write_text(OFFER.replace("  end\nend", "  end\n  split\n  case 10% then log(message: 'x')\n"
                                   "  case 90% then log(message: 'y')\n  end\nend"))
    events = tmp_path / "events.jsonl"
    lines = []
    for i in range(8):
        lines.append(json.dumps({"trigger": "cart.abandoned", "at": f"2026-11-22T10:00:0{i}Z",
                                 "data": {"customer_id": f"c{i % 3}", "email": "e@x", "count": i, "on": "x",
                                          "once": False, "split": 0}}))
    events.write_text("\n".join(lines) + "\n")
    simulated = simulate([rules], events)
    assert simulated.ok
    sim = [r for r in simulated.trace if r["kind"] in ("branch", "action")]
    assert [r["kind"] for r in sim[:4]] == ["branch", "action", "branch", "action"]

    durable: list[dict] = []
    clock = SimulatedClock(T0)
    engine = Engine(db, clock, on_trace=durable.append)
    engine.publish(compile_rules([str(rules)], engine.schema), author="t", enable=True)
    for line in lines:
        record = json.loads(line)
        clock.set(dt.datetime.fromisoformat(record["at"].replace("Z", "+00:00")))
        engine.emit(record["trigger"], record["data"])
    engine.close()
    assert [r for r in durable if r["kind"] in ("branch", "action")] == sim


def test_cli_rules_and_runs_show_the_branch_counts(tmp_path: Path) -> None:
    rules = tmp_path / "offer.rules"
    rules.write_text(OFFER)
    db = str(tmp_path / "w.db")

    def cli(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run([sys.executable, "-m", "whenthen", "--db", db, *args], input=stdin,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    cli("publish", str(rules), "--enable")
    for customer in ("a", "b", "c"):
        cli("emit", "cart.abandoned", json.dumps({"customer_id": customer, "email": "e@x", "count": 1, "on": "x",
                                                  "once": True, "split": 1}))
    taken = [split_case("Offer", c, [50, 30, 20]) for c in ("a", "b", "c")]
    text = cli("rules")
    counts = ", ".join(f"case {i} ({s}%) {taken.count(i)} run{'s' if taken.count(i) != 1 else ''}"
                       for i, s in enumerate([50, 30, 20], 1))
    assert f"Offer: split 1: {counts}" in text
    as_json = json.loads(cli("rules", "--format", "json"))
    assert [b["runs"] for b in as_json[0]["splits"][0]["branches"]] == [taken.count(i) for i in (1, 2, 3)]
    runs = json.loads(cli("runs", "--format", "json"))
    assert [r["splits"] for r in runs] == [[{"split": 1, "case": k, "share": [50, 30, 20][k - 1]}] for k in taken]
    assert "split 1: case" in cli("run", str(runs[0]["id"]))
