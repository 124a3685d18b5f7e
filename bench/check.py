"""Benchmark: `whenthen check` on a generated 5,000-rule file, against Python parsing the same logic.

Run: python bench/check.py [--rules 5000]

Reports, measured in one run on one machine:
- parse only (grammar + AST) of the rules file,
- the full check (parse + declarations + type check) through the Python API,
- the `whenthen check FILE` command, wall clock including interpreter start,
- the baseline: CPython's own `ast.parse` + `compile` of an equivalent Python module (one function
  per rule with the same conditions and calls), so the ratio says how far the front end is from
  the host language's own compiler on the same amount of logic.
"""

from __future__ import annotations

import argparse
import ast as pyast
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _schemas import GUEST_ADDED  # noqa: E402  (the trigger the tests use)

SCHEMA = GUEST_ADDED + """\
trigger email.opened { guest_id: str, campaign: str }
action set_status(guest_id: str, status: str)
"""

RULE = """\
rule "Rule {n}"
when guest.added
where category = 'VIP' and first_name = 'Name{n}' and (age >= {age} or company is null)
then
  send_email(to: email, subject: "Welcome {{first_name}} #{n}!")
  wait {hours}h
  if company != 'Eventmaker' and tags contains 'tag{n}' then
    send_email(to: email, subject: "Your agenda")
  end
  let opened = wait for email.opened where guest_id = guest.id within 2d
  if opened is null then
    set_status(guest_id: id, status: 'cold')
  end
end
"""

PYTHON_RULE = """\
def rule_{n}(event, actions):
    if not (event['category'] == 'VIP' and event['first_name'] == 'Name{n}' and ((event['age'] is not None and event['age'] >= {age}) or event['company'] is None)):
        return
    actions.send_email(to=event['email'], subject=f"Welcome {{event['first_name']}} #{n}!")
    yield ('wait', {hours} * 3600)
    if event['company'] != 'Eventmaker' and 'tag{n}' in event['tags']:
        actions.send_email(to=event['email'], subject='Your agenda')
    opened = yield ('wait_for', 'email.opened', event['id'], 2 * 86400)
    if opened is None:
        actions.set_status(guest_id=event['id'], status='cold')
"""


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from whenthen.compiler.checker import check_program
    from whenthen.grammar.parser import parse
    from whenthen.source import Source

    rules_text = SCHEMA + "\n".join(
        RULE.format(n=n, age=18 + n % 50, hours=1 + n % 48) for n in range(args.rules)
    )
    python_text = "\n".join(PYTHON_RULE.format(n=n, age=18 + n % 50, hours=1 + n % 48) for n in range(args.rules))

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.rules"
        path.write_text(rules_text, encoding="utf-8")
        source = Source(str(path), rules_text)

        _, parse_diags = parse(source)
        assert not parse_diags, parse_diags[:3]
        program = check_program([source])
        assert program.ok, program.errors[:3]

        t_parse = best_of(args.repeats, lambda: parse(source))
        t_check = best_of(args.repeats, lambda: check_program([source]))
        t_cli = best_of(1, lambda: subprocess.run(
            [sys.executable, "-m", "whenthen", "check", str(path)], check=True, capture_output=True))
        t_python = best_of(args.repeats, lambda: compile(pyast.parse(python_text), "big.py", "exec"))

    lines = rules_text.count("\n")
    print(f"{args.rules} rules, {lines} lines, {len(rules_text) / 1e6:.2f} MB")
    print(f"{'what':<44}{'seconds':>10}{'ratio to baseline':>20}")
    for name, t in [
        ("baseline: CPython ast.parse + compile", t_python),
        ("whenthen parse (grammar + AST)", t_parse),
        ("whenthen check_program (parse + types)", t_check),
        ("`whenthen check FILE` (wall, with startup)", t_cli),
    ]:
        print(f"{name:<44}{t:>10.3f}{t / t_python:>19.1f}x")


if __name__ == "__main__":
    main()
