"""Flow and chain graphs: golden Mermaid and DOT files, rule lookup by name, and `uses --path`.

Regenerate the goldens with `WHENTHEN_UPDATE_GOLDENS=1 pytest tests/test_graph.py` and review the diff.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from _paths import compare_golden
from whenthen.tools.graph import chain_graph, graph_for, program_rules, rule_flow, to_dot, to_mermaid

DATA = Path(__file__).resolve().parent.parent / "testdata" / "graph"


def golden(name: str, actual: str) -> None:
    compare_golden(DATA / name, actual)


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "whenthen", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=60)


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
def test_flow_of_one_rule_matches_golden(fmt: str) -> None:
    result = run_cli("graph", str(DATA / "flow.rules"), "--format", fmt)
    assert result.returncode == 0, result.stderr
    golden(f"flow.{'mmd' if fmt == 'mermaid' else 'dot'}", result.stdout)


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
def test_chain_of_a_folder_matches_golden(fmt: str) -> None:
    graph = chain_graph(program_rules([str(DATA / "chain")]), "chain")
    golden(f"chain.{'mmd' if fmt == 'mermaid' else 'dot'}", to_mermaid(graph) if fmt == "mermaid" else to_dot(graph))


def test_flow_shows_timeout_branch_exit_clause_and_stop() -> None:
    (name, rule), = program_rules([str(DATA / "flow.rules")])
    graph = rule_flow(rule, name)
    labels = {n.label for n in graph.nodes}
    assert {"stop", "exited", "no run", "end", "emit review.requested"} <= labels
    edge_labels = {e.label for e in graph.edges}
    assert {"timeout 2d", "order.paid", "while running", "'silver', 'basic'", "else"} <= edge_labels


def test_dot_output_is_accepted_by_graphviz(tmp_path: Path) -> None:
    dot = shutil.which("dot")
    if dot is None:
        pytest.skip("graphviz is not installed")
    (name, rule), = program_rules([str(DATA / "flow.rules")])
    result = subprocess.run([dot, "-Tsvg"], input=to_dot(rule_flow(rule, name)), capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "<svg" in result.stdout


def test_rule_name_is_found_in_current_directory_then_in_database(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(DATA / "chain", project)
    from_files = run_cli("graph", "Win back", cwd=project)
    assert from_files.returncode == 0, from_files.stderr
    assert "wait for plan.bought" in from_files.stdout

    db = tmp_path / "w.db"
    published = run_cli("--db", str(db), "publish", str(project))
    assert published.returncode == 0, published.stderr
    from_db = run_cli("--db", str(db), "graph", "Trial reminders", "--format", "dot", cwd=tmp_path)
    assert from_db.returncode == 0, from_db.stderr
    assert "exit when plan.bought" in from_db.stdout
    # `uses` over the published rules and `uses --path` over the files agree
    for trigger in ("plan.bought", "trial.started"):
        published_uses = json.loads(run_cli("--db", str(db), "uses", trigger, "--format", "json").stdout)
        file_uses = json.loads(run_cli("uses", trigger, "--path", str(project), "--format", "json").stdout)
        assert sorted((u["how"], u["rule"]) for u in published_uses) == sorted((u["how"], u["rule"]) for u in file_uses)
    missing = run_cli("--db", str(db), "graph", "No such rule", cwd=tmp_path)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr


def test_graph_for_picks_a_rule_in_a_folder() -> None:
    graph = graph_for(str(DATA / "chain"), "unused.db", rule="Start trial")
    assert graph.title == "Start trial"
    assert [n.label for n in graph.nodes] == ["when signup.done", "emit trial.started", "end"]


def test_uses_with_path_lists_every_kind_of_use() -> None:
    result = run_cli("uses", "plan.bought", "--path", str(DATA / "chain"), "--format", "json")
    assert result.returncode == 0, result.stderr
    found = [(u["how"], u["rule"]) for u in json.loads(result.stdout)]
    assert found == [("await", "Win back"), ("exit", "Trial reminders")]
    started = json.loads(run_cli("uses", "trial.started", "--path", str(DATA / "chain"), "--format", "json").stdout)
    assert [(u["how"], u["rule"]) for u in started] == [("start", "Trial reminders"), ("emit", "Start trial")]


def test_a_loop_is_one_node_with_its_body_coming_back_to_it() -> None:
    (name, rule), = program_rules([str(DATA / "loop.rules")])
    graph = rule_flow(rule, name)
    golden("loop.mmd", to_mermaid(graph))
    by_label = {n.label: n.id for n in graph.nodes}
    repeat, for_each = by_label["repeat 3 times"], by_label["for item in items"]
    edges = {(e.source, e.target, e.label) for e in graph.edges}
    assert (repeat, by_label["wait 1d"], "each") in edges and (repeat, for_each, "done") in edges
    assert (by_label["notify(to: email, text: item)"], for_each, "next") in edges  # back for the next item
    assert (by_label["if item = 'stop'"], by_label["end"], "yes: break") in edges  # break leaves the loop
    assert sum(1 for n in graph.nodes if n.label.startswith(("repeat", "for"))) == 2  # not unrolled


def test_durations_are_drawn_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rules = tmp_path / "w.rules"
    rules.write_text("trigger a.b { x: str }\nrule \"W\" when a.b then\n  wait 24h\n"
                     "  let r = wait for a.b where x = a.x within 90m\nend\n")
    text = to_mermaid(graph_for(str(rules), str(tmp_path / "none.db"), rule="W"))
    assert '"wait 24h"' in text and "timeout 90m" in text and "1d" not in text
    # the same for a rule found by name in ./*.rules
    monkeypatch.chdir(tmp_path)
    assert '"wait 24h"' in to_mermaid(graph_for("W", str(tmp_path / "none.db")))
