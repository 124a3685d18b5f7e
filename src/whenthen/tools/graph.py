"""Flow graphs of rules (Mermaid or Graphviz DOT), how rules chain through triggers, and `uses` over files.

Two pictures:
- `rule_flow(rule, name)`: one rule from its trigger: the `where` filter, the statements in order,
  `if`/`switch` branches, loops (one `repeat`/`for` node: its body, an edge back for the next
  iteration, `done` and each `break` out), waits, `wait for` (with its `timeout` edge when it has `within`),
  emits, `stop`, and the `exit when` clauses that can end a run while it is in flight.
- `chain_graph(rules)`: several rules as boxes between triggers: trigger → rule it starts;
  rule → trigger it emits; dashed trigger → rule for a trigger a rule awaits or exits on.

Both are a `Graph` of nodes and edges, rendered by `to_mermaid` or `to_dot`. Node ids are
numbered in order of appearance, so output is stable (golden-tested).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from whenthen.diagnostics import CompileError, Diagnostic, Span, WhenthenError
from whenthen.grammar import ast
from whenthen.grammar.printer import print_expr as print_canonical
from whenthen.grammar.printer import print_when

# Labels longer than this are cut with an ellipsis: the picture is an overview.
MAX_LABEL = 60

# Node shapes: (Mermaid opening, closing), Graphviz shape.
_SHAPES = {
    "trigger": (("([", "])"), "oval"),
    "decision": (("{", "}"), "diamond"),
    "action": (("[", "]"), "box"),
    "wait": (("[/", "/]"), "parallelogram"),
    "emit": ((">", "]"), "cds"),
    "exit": (("{{", "}}"), "hexagon"),
    "end": (("((", "))"), "circle"),
    "rule": (("[", "]"), "box"),
}


@dataclass
class Node:
    id: str
    label: str
    shape: str  # a key of _SHAPES


@dataclass
class Edge:
    source: str
    target: str
    label: str = ""
    dashed: bool = False


@dataclass
class Graph:
    title: str
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)

    def node(self, label: str, shape: str) -> str:
        node_id = f"n{len(self.nodes) + 1}"
        self.nodes.append(Node(node_id, _shorten(label), shape))
        return node_id

    def edge(self, source: str, target: str, label: str = "", dashed: bool = False) -> None:
        self.edges.append(Edge(source, target, _shorten(label), dashed))


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


# ----------------------------------------------------------------------------- one rule's flow

# Edges waiting for the next node: (source node, edge label, dashed).
_Pending = list[tuple[str, str, bool]]




def rule_flow(rule: ast.Rule, name: str, text: str | None = None) -> Graph:
    """The flow of one rule, from its trigger to its ends. Given `text`, the source its spans point
    into, durations are drawn as written (`wait 24h`, not `wait 1d`)."""
    from whenthen.tools.fmt import respell_durations

    def print_expr(expr: ast.Expr) -> str:
        return respell_durations(print_canonical(expr), expr, text) if text is not None else print_canonical(expr)

    graph = Graph(name)
    start = graph.node(f"when {print_when(rule.when)}", "trigger")
    pending: _Pending = [(start, "", False)]
    if rule.where is not None:
        check = graph.node(f"where {print_expr(rule.where)}", "decision")
        _connect(graph, pending, check)
        graph.edge(check, graph.node("no run", "end"), "no")
        pending = [(check, "yes", False)]
    ends = _FlowBuilder(graph, print_expr).block(rule.body, pending)
    if ends:
        _connect(graph, ends, graph.node("end", "end"))
    if rule.exits:
        exited = graph.node("exited", "end")
        for clause in rule.exits:
            text = f"exit when {clause.trigger.name}"
            if clause.where is not None:
                text += f" where {print_expr(clause.where)}"
            exit_node = graph.node(text, "exit")
            graph.edge(start, exit_node, "while running", dashed=True)
            graph.edge(exit_node, exited)
    return graph


def _connect(graph: Graph, pending: _Pending, target: str) -> None:
    for source, label, dashed in pending:
        graph.edge(source, target, label, dashed)


class _FlowBuilder:
    """Adds the nodes of a block; each method takes the pending edges in and returns those out."""

    def __init__(self, graph: Graph, print_expr: Callable[[ast.Expr], str]):
        self.graph = graph
        self.print_expr = print_expr
        self.breaks: list[_Pending] = []  # per enclosing loop: the edges its `break`s leave by

    def block(self, body: tuple[ast.Stmt, ...], pending: _Pending) -> _Pending:
        for stmt in body:
            if not pending:  # after `stop` in every branch: unreachable (W201), not drawn
                break
            pending = self.stmt(stmt, pending)
        return pending

    def step(self, label: str, shape: str, pending: _Pending) -> _Pending:
        node = self.graph.node(label, shape)
        _connect(self.graph, pending, node)
        return [(node, "", False)]

    def stmt(self, stmt: ast.Stmt, pending: _Pending) -> _Pending:
        graph = self.graph
        match stmt:
            case ast.CallStmt(call=call):
                return self.step(self.print_expr(call), "action", pending)
            case ast.Let(name=name, value=ast.WaitFor() as wait_for):
                return self.wait_for(wait_for, pending, f"let {name} = ")
            case ast.Let(name=name, value=value):
                return self.step(f"let {name} = {self.print_expr(value)}", "action", pending)
            case ast.Wait(duration=duration):
                return self.step(f"wait {self.print_expr(duration)}", "wait", pending)
            case ast.WaitUntil(when=moment):
                return self.step(f"wait until {self.print_expr(moment)}", "wait", pending)
            case ast.WaitFor():
                return self.wait_for(stmt, pending)
            case ast.Emit(trigger=trigger):
                return self.step(f"emit {trigger}", "emit", pending)
            case ast.Stop():
                _connect(graph, pending, graph.node("stop", "end"))
                return []
            case ast.Break():
                if self.breaks:
                    self.breaks[-1].extend((source, f"{label}: break" if label else "break", dashed) for source, label, dashed in pending)
                return []
            case ast.Repeat(count=count, body=body):
                return self.loop(f"repeat {self.print_expr(count)} times", body, pending)
            case ast.For(name=name, items=items, body=body):
                return self.loop(f"for {name} in {self.print_expr(items)}", body, pending)
            case ast.If(branches=branches, else_body=else_body):
                out: _Pending = []
                for i, branch in enumerate(branches):
                    test = graph.node(f"{'if' if i == 0 else 'elif'} {self.print_expr(branch.cond)}", "decision")
                    _connect(graph, pending, test)
                    out += self.block(branch.body, [(test, "yes", False)])
                    pending = [(test, "no", False)]
                return out + (self.block(else_body, pending) if else_body is not None else pending)
            case ast.Split(by=by, cases=cases):
                head = graph.node("split" if by is None else f"split by {self.print_expr(by)}", "decision")
                _connect(graph, pending, head)
                out = []
                for case in cases:
                    out += self.block(case.body, [(head, f"{case.share}%", False)])
                return out
            case ast.Switch(subject=subject, cases=cases, else_body=else_body):
                head = graph.node("switch" if subject is None else f"switch {self.print_expr(subject)}", "decision")
                _connect(graph, pending, head)
                out = []
                for case in cases:
                    label = ", ".join(self.print_expr(v) for v in case.values)
                    out += self.block(case.body, [(head, label, False)])
                rest: _Pending = [(head, "else", False)]
                return out + (self.block(else_body, rest) if else_body is not None else rest)
        raise TypeError(f"not a statement: {stmt!r}")

    def loop(self, label: str, body: tuple[ast.Stmt, ...], pending: _Pending) -> _Pending:
        """One node for the loop; its body hangs off it and comes back to it for the next item."""
        head = self.graph.node(label, "decision")
        _connect(self.graph, pending, head)
        self.breaks.append([])
        again = self.block(body, [(head, "each", False)])
        broken = self.breaks.pop()
        for source, edge_label, _ in again:
            self.graph.edge(source, head, edge_label or "next", dashed=True)
        return [(head, "done", False), *broken]

    def wait_for(self, node: ast.WaitFor, pending: _Pending, prefix: str = "") -> _Pending:
        label = f"{prefix}wait for {node.trigger}"
        if node.where is not None:
            label += f" where {self.print_expr(node.where)}"
        wait = self.graph.node(label, "wait")
        _connect(self.graph, pending, wait)
        if node.within is None:
            return [(wait, node.trigger, False)]
        return [(wait, node.trigger, False), (wait, f"timeout {self.print_expr(node.within)}", True)]


# ----------------------------------------------------------------------------- rules chained by triggers


@dataclass(frozen=True)
class RuleUse:
    """How a rule uses a trigger: `start`, `await`, `exit` or `emit`, and where (file:line)."""

    how: str
    rule: str
    trigger: str
    file: str
    line: int


def rule_uses(rule: ast.Rule, name: str) -> list[RuleUse]:
    """Every trigger a rule starts on, awaits, exits on or emits, in that order (no repeats)."""
    found: list[RuleUse] = []

    def add(how: str, trigger: str, span: Span) -> None:
        if not any(u.how == how and u.trigger == trigger for u in found):
            found.append(RuleUse(how, name, trigger, span.file, span.line))

    add("start", print_when(rule.when), rule.when_span)
    body_nodes = list(ast.walk(rule.body))
    for node in body_nodes:
        if isinstance(node, ast.WaitFor):
            add("await", node.trigger, node.span)
    for clause in rule.exits:
        add("exit", clause.trigger.name, clause.span)
    for node in body_nodes:
        if isinstance(node, ast.Emit):
            add("emit", node.trigger, node.span)
    return found


def uses_of_trigger(rules: list[tuple[str, ast.Rule]], trigger: str) -> list[RuleUse]:
    """The rules (name, AST) that start on, await, exit on or emit `trigger`, by how then rule."""
    order = {"start": 0, "await": 1, "exit": 2, "emit": 3}
    found = [u for name, rule in rules for u in rule_uses(rule, name) if u.trigger == trigger]
    return sorted(found, key=lambda u: (order[u.how], u.rule))


def chain_graph(rules: list[tuple[str, ast.Rule]], title: str = "rules") -> Graph:
    """Rules between the triggers that start them and the triggers they emit, await or exit on."""
    graph = Graph(title)
    triggers: dict[str, str] = {}

    def trigger_node(name: str) -> str:
        if name not in triggers:
            triggers[name] = graph.node(name, "trigger")
        return triggers[name]

    for name, rule in rules:
        uses = rule_uses(rule, name)
        start = trigger_node(uses[0].trigger)
        box = graph.node(name, "rule")
        graph.edge(start, box)
        for use in uses[1:]:
            if use.how == "emit":
                graph.edge(box, trigger_node(use.trigger), "emits")
            else:
                graph.edge(trigger_node(use.trigger), box, "awaited" if use.how == "await" else "exits", dashed=True)
    return graph


# ----------------------------------------------------------------------------- rendering


def to_mermaid(graph: Graph) -> str:
    """A Mermaid `flowchart TD`, with the title as a comment."""
    lines = [f"%% {graph.title}", "flowchart TD"]
    for node in graph.nodes:
        opening, closing = _SHAPES[node.shape][0]
        lines.append(f"    {node.id}{opening}\"{_mermaid_text(node.label)}\"{closing}")
    for edge in graph.edges:
        arrow = "-.->" if edge.dashed else "-->"
        label = f"|\"{_mermaid_text(edge.label)}\"|" if edge.label else ""
        lines.append(f"    {edge.source} {arrow}{label} {edge.target}")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    # Mermaid reads entity codes inside quoted labels; quotes and angle brackets would end them.
    return text.replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def to_dot(graph: Graph) -> str:
    """A Graphviz digraph (render with `dot -Tpng`)."""
    lines = [
        f"digraph {_dot_quote(graph.title)} {{",
        "    rankdir=TB;",
        "    nodesep=0.5;",
        '    node [fontname="Helvetica", fontsize=11];',
        '    edge [fontname="Helvetica", fontsize=10];',
    ]
    for node in graph.nodes:
        shape = _SHAPES[node.shape][1]
        extra = ', width=0.6, fixedsize=false' if node.shape == "end" else ""
        if node.shape == "trigger":
            extra = ', style=filled, fillcolor="#dbeafe"'
        elif node.shape == "decision":
            extra = ', style=filled, fillcolor="#fef9c3"'
        elif node.shape in ("wait", "exit"):
            extra = ', style=filled, fillcolor="#ede9fe"'
        lines.append(f"    {node.id} [label={_dot_quote(node.label)}, shape={shape}{extra}];")
    for edge in graph.edges:
        attrs = []
        if edge.label:
            attrs.append(f"label={_dot_quote(edge.label)}")
        if edge.dashed:
            attrs.append("style=dashed")
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(f"    {edge.source} -> {edge.target}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_quote(text: str) -> str:
    return '"' + re.sub(r'(["\\])', r"\\\1", text) + '"'


# ----------------------------------------------------------------------------- what to draw


class GraphInputError(WhenthenError):
    """The rule or path to draw was not found (the CLI exits 1)."""


def program_rules(paths: list[str]) -> list[tuple[str, ast.Rule]]:
    """(final name, AST) of every rule in the files or folders `paths`, in order.

    Only syntax errors stop it (CompileError); a graph is about structure, not types.
    Raises SourceError for a missing path.
    """

    rules, syntax = _parsed_rules(paths)
    if syntax:
        raise CompileError(syntax)
    return rules


def _parsed_rules(paths: list[str]) -> tuple[list[tuple[str, ast.Rule]], list[Diagnostic]]:
    """The rules of the files that parse, and the syntax errors (E001) of those that do not."""
    rules, syntax, _ = _parsed_program(paths)
    return rules, syntax


def _parsed_program(paths: list[str]) -> tuple[list[tuple[str, ast.Rule]], list[Diagnostic], dict[str, str]]:
    """`_parsed_rules`, and the text of each file by name (what the rules' spans point into)."""
    from whenthen.compiler.checker import check_program
    from whenthen.compiler.sources import load_sources

    checked = check_program(load_sources(paths))
    return ([(info.name, info.rule) for info in checked.rules],
            [d for d in checked.diagnostics if d.code == "E001"],
            {name: source.text for name, source in checked.sources.items()})


def program_triggers(paths: list[str]) -> list[str]:
    """The triggers the program in `paths` knows: its declarations and the stdlib's."""
    from whenthen.compiler.checker import check_program
    from whenthen.compiler.sources import load_sources

    return sorted(check_program(load_sources(paths)).schema.triggers)


def published_rule(db: str, name: str) -> tuple[ast.Rule, str] | None:
    """The current version of rule `name` in the database `db`, parsed from its stored source (and that source)."""
    from whenthen.grammar.parser import parse
    from whenthen.runtime.store import is_url, open_store
    from whenthen.source import Source

    if not is_url(db) and not Path(db).is_file():
        return None
    store = open_store(db, read_only=True)  # drawing never creates or writes a database
    try:
        row = store.rule(name)
        version = store.version(name, row["version"]) if row else None
    finally:
        store.close()
    if version is None:
        return None
    file, _ = parse(Source(f"{name} (version {version['version']})", version["source"]))
    rules = [item for item in file.items if isinstance(item, ast.Rule)]
    return (rules[0], version["source"]) if rules else None


def graph_for(target: str, db: str, rule: str | None = None) -> Graph:
    """What `whenthen graph TARGET` draws.

    TARGET is a file or folder: with `rule`, or when it holds a single rule, that rule's flow;
    otherwise the chain of its rules. Else TARGET is a rule name, looked up first in the
    `*.rules` files of the current directory, then among the published rules of `db`.
    """
    if Path(target).exists():
        rules, syntax, texts = _parsed_program([target])
        if syntax:
            raise CompileError(syntax)
        if rule is not None:
            found = [r for n, r in rules if n == rule]
            if not found:
                raise GraphInputError(f"no rule named {rule!r} in {target}")
            return rule_flow(found[0], rule, texts.get(found[0].span.file))
        if len(rules) == 1:
            return rule_flow(rules[0][1], rules[0][0], texts.get(rules[0][1].span.file))
        return chain_graph(rules, Path(target).name or target)
    name = rule or target
    syntax: list[Diagnostic] = []
    if any(Path.cwd().glob("*.rules")):
        # a file of the folder that does not parse (or is not UTF-8) hides only its own rules
        local, syntax, texts = _parsed_program(["."])
        for found_name, found_rule in local:
            if found_name == name:
                return rule_flow(found_rule, name, texts.get(found_rule.span.file))
    from whenthen.runtime.store import StoreError, is_url

    if not is_url(db) and not Path(db).is_file():  # an I/O error (exit 2), not bad input
        raise StoreError(f"{target}: not a file or folder, nor a rule in ./*.rules; and no database at {db}")
    published = published_rule(db, name)
    if published is not None:
        return rule_flow(published[0], name, published[1])
    if syntax:  # the rule may be in a file that could not be read: say why
        raise CompileError(syntax)
    raise GraphInputError(f"unknown rule '{name}': {target} is not a file or folder, nor a rule in ./*.rules "
                          f"or in {db}")
