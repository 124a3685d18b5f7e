"""Tab completion for the REPL: commands, keywords, triggers, fields (nested), actions and functions."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document

from whenthen.compiler.decls import Schema
from whenthen.compiler.types import Type
from whenthen.repl.lexer import KEYWORDS
from whenthen.stdlib.docs import action_signature, function_signature  # one renderer: docs, REPL, LSP

# Every REPL command with a one-line summary; `:help` prints the same table.
COMMANDS: dict[str, str] = {
    ":trigger": "NAME          set the trigger whose fields bare names refer to",
    ":event": "{json} | @FILE  set the current event (validated against the trigger)",
    ":load": "PATH…          load (more) .rules files or folders",
    ":rules": "               list the loaded rules",
    ":emit": "NAME {json}    run the loaded rules on this event (simulated clock)",
    ":advance": "DURATION    move the simulated clock forward, firing due waits",
    ":runs": "               list the simulated runs",
    ":schema": "[NAME]       list triggers and actions, or one trigger's fields",
    ":help": "               this help",
    ":quit": "               leave (also Ctrl-D)",
}
# Commands whose first argument is a trigger name.
TRIGGER_COMMANDS = (":trigger", ":emit", ":schema", ":event")

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class Candidate:
    """One completion: the text to insert and what to show beside it (a type or signature)."""

    text: str
    meta: str
    kind: str  # 'field' | 'name' | 'function' | 'action' | 'trigger' | 'keyword' | 'command'


def event_names(schema: Schema, trigger: str | None) -> dict[str, Type]:
    """What a bare name means in the REPL: the trigger's fields, its alias and `event`."""
    if trigger is None or trigger not in schema.triggers:
        return {}
    decl = schema.triggers[trigger]
    names: dict[str, Type] = {"event": decl.type, decl.alias: decl.type}
    names.update(dict(decl.type.fields))  # a field wins over the alias (SPEC 2.3)
    return names


def member_type(schema: Schema, trigger: str | None, path: list[str]) -> Type | None:
    """The type of `a.b.c` given as ['a', 'b', 'c'], or None when it is not an object path."""
    current = event_names(schema, trigger).get(path[0])
    for name in path[1:]:
        if current is None or current.kind != "object":
            return None
        current = current.field(name)
    return current


def candidates(schema: Schema, trigger: str | None, word: str) -> Iterator[Candidate]:
    """Completions for `word` (possibly dotted) in an expression, most specific first."""
    if "." in word:
        head, _, partial = word.rpartition(".")
        owner = member_type(schema, trigger, head.split("."))
        if owner is not None and owner.kind == "object":
            for name, ftype in owner.fields:
                if name.startswith(partial):
                    yield Candidate(f"{head}.{name}", str(ftype), "field")
        for name in sorted(schema.triggers):
            if name.startswith(word):
                yield Candidate(name, "trigger", "trigger")
        return
    fields = set(schema.triggers[trigger].type.field_names) if trigger in schema.triggers else set()
    for name, ftype in event_names(schema, trigger).items():
        if name.startswith(word):
            # the alias and `event` are the whole event: show the trigger, not its long type
            meta = str(ftype) if name in fields else f"event {trigger}"
            yield Candidate(name, meta, "field" if name in fields else "name")
    for name, sig in sorted(schema.functions.items()):
        if name.startswith(word):
            yield Candidate(name, function_signature(sig), "function")
    for name, action in sorted(schema.actions.items()):
        if name.startswith(word):
            yield Candidate(name, action_signature(action), "action")
    for name in sorted(schema.triggers):
        if name.startswith(word):
            yield Candidate(name, "trigger", "trigger")
    for keyword in KEYWORDS:
        if keyword.startswith(word) and word:
            yield Candidate(keyword, "keyword", "keyword")


def _dedupe(items: Iterable[Candidate]) -> Iterator[Candidate]:
    seen: set[str] = set()
    for item in items:
        if item.text not in seen:
            seen.add(item.text)
            yield item


class WhenthenCompleter(Completer):
    """Completes REPL input against the live session state (schema and current trigger)."""

    def __init__(self, get_schema: Callable[[], Schema], get_trigger: Callable[[], str | None]):
        self.get_schema = get_schema
        self.get_trigger = get_trigger
        self._paths = PathCompleter(expanduser=True)

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterator[Completion]:
        text = document.text_before_cursor
        stripped = text.lstrip()
        if stripped.startswith(":"):
            yield from self._command_completions(stripped)
            return
        match = _WORD.search(text)
        word = match.group(0) if match else ""
        if not word and not complete_event.completion_requested:
            return
        for item in _dedupe(candidates(self.get_schema(), self.get_trigger(), word)):
            yield Completion(item.text, start_position=-len(word), display_meta=item.meta)

    def _command_completions(self, text: str) -> Iterator[Completion]:
        command, space, rest = text.partition(" ")
        if not space:
            for name, summary in COMMANDS.items():
                if name.startswith(command):
                    yield Completion(name, start_position=-len(command), display_meta=summary.strip())
            return
        if command in TRIGGER_COMMANDS and " " not in rest.strip() and not rest.startswith(("{", "@")):
            partial = rest.strip()
            schema = self.get_schema()
            for name in sorted(schema.triggers):
                if name.startswith(partial):
                    yield Completion(name, start_position=-len(partial), display_meta="trigger")
            if command == ":schema":  # `:schema NAME` also shows an action's or function's signature
                for name, action in sorted(schema.actions.items()):
                    if name.startswith(partial):
                        yield Completion(name, start_position=-len(partial), display_meta=action_signature(action))
                for name, function in sorted(schema.functions.items()):
                    if name.startswith(partial):
                        yield Completion(name, start_position=-len(partial),
                                         display_meta=function_signature(function))
        elif command == ":load" or (command == ":event" and rest.startswith("@")):
            partial = rest.split(" ")[-1].lstrip("@")
            yield from self._paths.get_completions(Document(partial), CompleteEvent())
