"""The REPL's state and commands, independent of the terminal: one `handle(text)` per input."""

from __future__ import annotations

import datetime as dt
import difflib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pygments.token import Keyword, Punctuation

from whenthen.compiler.checked import CheckedProgram
from whenthen.compiler.decls import Schema
from whenthen.compiler.types import Type
from whenthen.diagnostics import CompileError, Diagnostic, EventError, WhenthenError
from whenthen.repl.completion import COMMANDS, action_signature, function_signature
from whenthen.repl.lexer import WhenthenLexer
from whenthen.runtime.evaluate import (
    PreparedExpression,
    format_explanation,
    prepare_expression,
    show_value,
)
from whenthen.source import Source

UTC = dt.UTC
# Input that defines something (a rule, trigger, action) rather than asking for a value.
_DEFINITION = re.compile(r"\s*(?:(rule|when|trigger|action|timezone)[\s\"]|locale\s*\")")
_BLOCK_OPENERS = ("if", "switch", "repeat", "for")  # `for` only as a loop, not in `wait for`
_OPEN = "([{"
_CLOSE = ")]}"

Write = Callable[[str], None]


def is_definition(text: str) -> bool:
    return bool(_DEFINITION.match(text))


def is_complete(text: str) -> bool:
    """Whether an input is finished: brackets closed, and a multi-line rule ended by `end` or a
    blank line. A one-line rule (`when a.b then f()`) is complete as typed."""
    stripped = text.strip()
    if not stripped or stripped.startswith(":"):
        return True
    depth = 0  # open brackets
    blocks = 0  # if/switch against end
    then_seen = False
    previous = ""  # the last word, to tell `wait for` from a `for` loop
    for token, value in WhenthenLexer().get_tokens(text):
        if not value.strip():
            continue
        last, previous = previous, value
        if token in Punctuation:
            depth += (value in _OPEN) - (value in _CLOSE)
        elif token in Keyword and value in _BLOCK_OPENERS and not (value == "for" and last == "wait"):
            blocks += 1
        elif token in Keyword and value == "end":
            blocks -= 1
        elif token in Keyword and value == "then":
            then_seen = True
    if depth > 0:
        return text.endswith("\n\n")
    if not re.match(r"\s*(rule|when)[\s\"]", text):
        return True
    lines = stripped.splitlines()
    if text.endswith("\n\n") or blocks < 0:
        return True
    # One line that already holds its body: `when a.b then f(); wait 1h`.
    return len(lines) == 1 and then_seen and blocks <= 0 and not stripped.endswith("then")


class ReplSession:
    """What the REPL knows: loaded sources, schema, current trigger/event and the simulation."""

    def __init__(self, *, now: dt.datetime | None = None, out: Write = print, err: Write = print,
                 quiet: bool = False, actions: Sequence[Callable[..., Any]] = (),
                 triggers: Mapping[str, Any] | None = None):
        from whenthen.runtime.engine import action_signature
        from whenthen.runtime.host import trigger_schema
        from whenthen.stdlib import default_schema

        self.actions = list(actions)  # host actions (`--actions`): declared, and run by `:emit`
        self.triggers = dict(triggers or {})  # host triggers (`--actions` module's TRIGGERS)
        self.base_schema = default_schema()
        for fn in self.actions:
            sig = action_signature(fn)
            self.base_schema.actions[sig.name] = sig
        for name, model in self.triggers.items():
            self.base_schema.triggers[name] = trigger_schema(name, model)
        self.out = out
        self.err = err
        self.quiet = quiet  # scripted use: print results only, not acknowledgements
        self.paths: list[str] = []
        self.typed: list[Source] = []  # definitions typed at the prompt
        self.checked: CheckedProgram | None = None
        self.schema: Schema = self.base_schema
        self.trigger: str | None = None
        self.event: dict[str, Any] | None = None  # validated and coerced
        self.start = now or dt.datetime.now(UTC)
        self.failed = False  # any input had an error (the exit status of a script)
        self._simulation: Any = None
        self._texts: dict[str, str] = {}

    # ------------------------------------------------------------------ input

    @property
    def timezone(self) -> str:
        """The time zone of the loaded program (the first file that declares one), else UTC."""
        if self.checked is not None:
            for file in self.checked.files:
                if file.timezone:
                    return file.timezone
        return "UTC"

    @property
    def locale(self) -> str:
        """The locale of the loaded program (the first file that declares one), else 'en'."""
        if self.checked is not None:
            for file in self.checked.files:
                if file.locale:
                    return file.locale
        return "en"

    @property
    def now(self) -> dt.datetime:
        return self._simulation.now() if self._simulation is not None else self.start

    def handle(self, text: str) -> bool:
        """Run one input (a command, a definition or an expression); False means quit."""
        if not text.strip() or text.strip().startswith("#"):
            return True
        try:
            if text.lstrip().startswith(":"):
                return self._command(text.strip())
            if is_definition(text):
                self._define(text)
            else:
                self._evaluate(text.strip())
        except CompileError as exc:
            self._diagnostics(exc.diagnostics)
        except WhenthenError as exc:
            self._error(str(exc))
        except Exception as exc:  # a bug below must not end the session or print a traceback
            self._error(f"internal error: {type(exc).__name__}: {exc} (please report it)")
        return True

    def note(self, message: str) -> None:
        """An acknowledgement (`trigger guest.added`), shown interactively, not in scripts."""
        if not self.quiet:
            self.out(message)

    def _error(self, message: str) -> None:
        self.failed = True
        self.err(f"error: {message}")

    def _diagnostics(self, diagnostics: list[Diagnostic]) -> None:
        if any(d.is_error for d in diagnostics):
            self.failed = True
        for d in diagnostics:
            self.err(d.render(self._texts.get(d.file)))

    # ------------------------------------------------------------------ expressions

    def prepare(self, text: str) -> PreparedExpression:
        """Parse and check an input expression against the current trigger (CompileError)."""
        self._texts["input"] = text  # diagnostics on the input show it with carets
        return prepare_expression(text, self.trigger, self.schema, timezone=self.timezone, locale=self.locale)

    def _evaluate(self, text: str) -> None:
        try:
            prepared = self.prepare(text)
        except CompileError as exc:
            self._diagnostics(exc.diagnostics)
            if self.trigger is None and any(d.code == "E102" for d in exc.diagnostics):
                self.err("hint: no trigger is set; bare names are the fields of the trigger "
                         "chosen with :trigger NAME")
            return
        if prepared.uses_event and self.event is None:
            self._error(f"no event set for {self.trigger}: give one with :event {{json}}")
            return
        value = prepared.evaluate(self.event, self.now)
        # The whole event's type is long: name it by its trigger.
        is_event = prepared.trigger is not None and prepared.type == prepared.trigger.type
        type_text = f"event {prepared.trigger.name}" if is_event else str(prepared.type)
        self.out(f"{show_value(value, self.timezone)} : {type_text}")
        if prepared.is_condition and _has_parts(prepared.expr):
            parts = prepared.explain(self.event, self.now)
            self.out(format_explanation(parts, self.timezone, indent="  "))

    # ------------------------------------------------------------------ program

    def load(self, paths: list[str]) -> bool:
        """Load more files or folders (again: reload them); on errors keep the previous program and
        show diagnostics."""
        try:
            loaded = self._recheck(self.paths + [p for p in paths if p not in self.paths], self.typed)
        except WhenthenError as exc:  # unreadable file, not UTF-8, …
            self._error(str(exc))
            return False
        if loaded and self.checked is not None:
            triggers = sum(t.origin == "program" for t in self.schema.triggers.values())
            self.note(f"loaded {', '.join(paths)}: {len(self.checked.rules)} rule(s), {triggers} trigger(s)")
        return loaded

    def _define(self, text: str) -> None:
        name = f"repl-{len(self.typed) + 1}"
        if self._recheck(self.paths, self.typed + [Source(name, text.rstrip() + "\n")]):
            added = [r.name for r in self.checked.rules if r.file == name] if self.checked else []
            declared = _declared_names(text)
            self.note("defined " + ", ".join([f"rule '{n}'" for n in added] + declared))

    def _recheck(self, paths: list[str], typed: list[Source]) -> bool:
        from whenthen.compiler.checker import check_program
        from whenthen.compiler.sources import load_sources

        sources = load_sources(paths) + typed if paths else list(typed)
        checked = check_program(sources, self.base_schema)
        self._texts.update({s.name: s.text for s in sources})
        if not checked.ok:
            self._diagnostics(checked.diagnostics)
            return False
        if checked.diagnostics:
            self._diagnostics(checked.diagnostics)  # warnings only
        self.paths, self.typed, self.checked, self.schema = paths, typed, checked, checked.schema
        if self.trigger is not None and self.trigger not in self.schema.triggers:
            self.note(f"trigger {self.trigger} is no longer declared; no trigger set")
            self.trigger, self.event = None, None
        if self._simulation is not None:
            self._simulation.timezone = self.timezone
            self._simulation.publish(checked)
        return True

    # ------------------------------------------------------------------ commands

    def _command(self, text: str) -> bool:
        name, _, rest = text.partition(" ")
        rest = rest.strip()
        handlers: dict[str, Callable[[str], None]] = {
            ":trigger": self.cmd_trigger,
            ":event": self.cmd_event,
            ":load": self.cmd_load,
            ":rules": self.cmd_rules,
            ":emit": self.cmd_emit,
            ":advance": self.cmd_advance,
            ":runs": self.cmd_runs,
            ":schema": self.cmd_schema,
            ":help": self.cmd_help,
        }
        if name in (":quit", ":q", ":exit"):
            return False
        handler = handlers.get(name)
        if handler is None:
            close = difflib.get_close_matches(name, list(COMMANDS), n=1)
            hint = f"; did you mean {close[0]}?" if close else "; :help lists the commands"
            self._error(f"unknown command {name}{hint}")
            return True
        handler(rest)
        return True

    def cmd_help(self, rest: str) -> None:
        lines = [f"  {name} {summary}" for name, summary in COMMANDS.items()]
        self.out("\n".join([
            "Type an expression or condition to evaluate it against the current event,",
            "or a rule/trigger/action definition to add it to the program. Commands:",
            *lines,
        ]))

    def cmd_trigger(self, rest: str) -> None:
        if not rest:
            self.out(self.trigger or "no trigger set")
            return
        self._require_trigger(rest)
        if rest != self.trigger:
            self.trigger, self.event = rest, None
        self.note(f"trigger {rest}" + ("" if self.event else "; set an event with :event {json}"))

    def cmd_event(self, rest: str) -> None:
        if not rest:
            if self.event is None:
                self.out("no event set")
            else:
                self.out(json.dumps(_to_json(self.event), ensure_ascii=False))
            return
        trigger, payload = _split_trigger(rest)
        trigger = trigger or self.trigger
        if trigger is None:
            self._error("no trigger set: use :trigger NAME first, or :event NAME {json}")
            return
        schema = self._require_trigger(trigger)
        event = self._validate(schema.name, payload)
        self.trigger, self.event = trigger, event
        self.note(f"event {trigger} set")

    def cmd_load(self, rest: str) -> None:
        if not rest:
            self._error("usage: :load PATH…")
            return
        paths = rest.split()
        missing = [p for p in paths if not Path(p).exists()]
        if missing:
            self._error(f"no such file or folder: {', '.join(missing)}")
            return
        self.load(paths)

    def cmd_rules(self, rest: str) -> None:
        if self.checked is None or not self.checked.rules:
            self.out("no rules loaded")
            return
        rows = []
        for info in self.checked.rules:
            rule = info.rule
            line = rule.name_span.line if rule.name is not None else rule.span.line
            rows.append((info.name, _rule_trigger(info), f"{info.file}:{line}"))
        widths = [max(len(row[i]) for row in rows) for i in range(2)]
        for name, trigger, where in rows:
            self.out(f"{name.ljust(widths[0])}  {trigger.ljust(widths[1])}  {where}")

    def cmd_schema(self, rest: str) -> None:
        if rest:
            if rest in self.schema.actions:
                self.out("action " + action_signature(self.schema.actions[rest]))
            elif rest in self.schema.functions:
                self.out(function_signature(self.schema.functions[rest]))
            else:
                decl = self._require_trigger(rest)
                self.out(f"trigger {decl.name} " + _format_fields(decl.type, ""))
            return
        self.out("triggers:")
        for name in sorted(self.schema.triggers):
            decl = self.schema.triggers[name]
            self.out(f"  {name}  ({len(decl.type.fields)} fields, {decl.origin})")
        self.out("actions:")
        for action in sorted(self.schema.actions.values(), key=lambda a: a.name):
            self.out("  " + action_signature(action))
        self.out("functions:")
        for function in sorted(self.schema.functions.values(), key=lambda f: f.name):
            self.out("  " + function_signature(function))

    def cmd_emit(self, rest: str) -> None:
        trigger, payload = _split_trigger(rest)
        if trigger is None:
            self._error("usage: :emit NAME {json} (or @FILE)")
            return
        self._require_trigger(trigger)
        data = self._payload(trigger, payload or "{}")
        for line in self.simulation().emit(trigger, data):
            self.out(line)

    def cmd_advance(self, rest: str) -> None:
        if not rest:
            self._error("usage: :advance DURATION (e.g. 24h, 1h30m)")
            return
        self._texts["input"] = rest  # its diagnostics show this line, not the previous input's
        prepared = prepare_expression(rest, None, self.schema, timezone=self.timezone, locale=self.locale)
        delta = prepared.evaluate(None, self.now)
        if not isinstance(delta, dt.timedelta) or delta < dt.timedelta(0):
            self._error(f":advance needs a positive duration, not {show_value(delta)} : {prepared.type}")
            return
        for line in self.simulation().advance(delta):
            self.out(line)

    def cmd_runs(self, rest: str) -> None:
        lines = self.simulation().runs()
        self.out("\n".join(lines) if lines else "no runs")

    # ------------------------------------------------------------------ helpers

    def simulation(self) -> Any:
        """The simulated engine, created on first use with the loaded program."""
        if self._simulation is None:
            from whenthen.repl.simulation import ReplSimulation

            self._simulation = ReplSimulation(self.start, self.timezone, self.actions, self.triggers)
            if self.checked is not None:
                self._simulation.publish(self.checked)
        return self._simulation

    def _require_trigger(self, name: str) -> Any:
        decl = self.schema.triggers.get(name)
        if decl is None:
            close = difflib.get_close_matches(name, list(self.schema.triggers), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else "; :schema lists the triggers"
            raise EventError(f"unknown trigger '{name}'{hint}", trigger=name)
        return decl

    def _payload(self, trigger: str, payload: str) -> Any:
        """The JSON data of `{json}` or `@FILE` (EventError when unreadable or not JSON)."""
        from whenthen.runtime.events import parse_payload

        payload = payload.strip()
        if payload.startswith("@"):
            path = Path(payload[1:]).expanduser()
            try:
                payload = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise EventError(f"cannot read {path}: {exc.__class__.__name__}: {exc}") from None
        if not payload:
            raise EventError(f"{trigger}: give the event as {{json}} or @FILE", trigger=trigger)
        return parse_payload(payload, trigger)

    def _validate(self, trigger: str, payload: str) -> dict[str, Any]:
        from whenthen.runtime.events import validate_event

        return validate_event(self.schema.triggers[trigger], self._payload(trigger, payload))


def _has_parts(expr: Any) -> bool:
    from whenthen.grammar import ast

    return isinstance(expr, (ast.Binary, ast.Unary, ast.Is, ast.Call))


def _split_trigger(rest: str) -> tuple[str | None, str]:
    """`guest.added {…}` → ('guest.added', '{…}'); `{…}` → (None, '{…}')."""
    if not rest or rest.startswith(("{", "@")):
        return None, rest
    name, _, payload = rest.partition(" ")
    return name, payload.strip()


def _declared_names(text: str) -> list[str]:
    found = [f"{kind} {name}" for kind, name in re.findall(r"^\s*(trigger|action)\s+([\w.]+)", text, re.M)]
    return found + [f"locale {name}" for name in re.findall(r'^\s*locale\s*"([^"]*)"', text, re.M)]


def _rule_trigger(info: Any) -> str:
    from whenthen.grammar.printer import print_when

    return print_when(info.rule.when)


def _format_fields(typ: Type, indent: str) -> str:
    lines = ["{"]
    for name, ftype in typ.fields:
        if ftype.kind == "object":
            suffix = "?" if ftype.optional else ""
            lines.append(f"{indent}  {name}: {_format_fields(ftype, indent + '  ')}{suffix}")
        else:
            lines.append(f"{indent}  {name}: {ftype}")
    lines.append(indent + "}")
    return "\n".join(lines)


def _to_json(value: Any) -> Any:
    from whenthen.values import to_json

    return to_json(value)
