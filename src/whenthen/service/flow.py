"""A rule version's flow graph for the console: Graphviz SVG when `dot` is installed, else Mermaid text."""

from __future__ import annotations

import functools
import shutil
import subprocess

from whenthen.diagnostics import WhenthenError


@functools.lru_cache(maxsize=256)  # a stored version never changes: (rule, version, source) is its key
def flow(rule: str, version: int, source: str) -> tuple[str | None, str | None]:
    """(svg, mermaid): the SVG drawn by `dot` when it is there, the Mermaid text otherwise."""
    from whenthen.grammar import ast
    from whenthen.grammar.parser import parse
    from whenthen.source import Source
    from whenthen.tools.graph import rule_flow, to_dot, to_mermaid

    try:
        file, _ = parse(Source(f"{rule} (version {version})", source))
    except WhenthenError:
        return None, None
    rules = [item for item in file.items if isinstance(item, ast.Rule)]
    if not rules:
        return None, None
    graph = rule_flow(rules[0], rule, source)
    dot = shutil.which("dot")
    if dot is not None:
        try:
            done = subprocess.run([dot, "-Tsvg"], input=to_dot(graph), capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            done = None
        if done is not None and done.returncode == 0 and "<svg" in done.stdout:
            # the <svg> element alone; dot escapes every label (quoted DOT strings, never HTML labels)
            return done.stdout[done.stdout.index("<svg"):], None
    return None, to_mermaid(graph)
