"""`whenthen repl`: the prompt-toolkit console, or a plain line reader when stdin is not a terminal."""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.lexers import PygmentsLexer
from prompt_toolkit.output import Output
from prompt_toolkit.styles import style_from_pygments_cls
from pygments.styles import get_style_by_name

from whenthen.repl.completion import WhenthenCompleter
from whenthen.repl.lexer import ReplLexer
from whenthen.repl.session import ReplSession, is_complete

HISTORY_ENV = "WHENTHEN_HISTORY"  # a path; set it empty to keep no history
DEFAULT_HISTORY = "~/.whenthen_history"
BANNER = "whenthen repl: type an expression or condition, :help for commands, Ctrl-D to quit."


def history_path() -> Path | None:
    """The history file: $WHENTHEN_HISTORY (empty: none), else ~/.whenthen_history."""
    configured = os.environ.get(HISTORY_ENV)
    if configured is not None:
        return Path(configured).expanduser() if configured.strip() else None
    return Path(DEFAULT_HISTORY).expanduser()


def make_history() -> History:
    path = history_path()
    if path is None:
        return InMemoryHistory()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
    except OSError:
        return InMemoryHistory()  # an unwritable home must not stop the REPL
    return FileHistory(str(path))


def run_repl(paths: list[str], *, now: dt.datetime | None = None, actions: Sequence[Callable[..., Any]] = (),
             triggers: Mapping[str, Any] | None = None,
             stdin: TextIO | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Load `paths`, then read inputs until EOF or `:quit`. Returns the exit status: with a
    non-terminal stdin, 1 when any input had an error (so scripts notice), else 0."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    interactive = stdin.isatty() and stdout.isatty()
    err = _colored_writer(stderr, "\x1b[31m") if interactive and stderr.isatty() else _writer(stderr)
    session = ReplSession(now=now, out=_writer(stdout), err=err, quiet=not interactive, actions=actions,
                          triggers=triggers)
    if interactive:
        session.out(BANNER)
    if paths:
        session.load(paths)
    try:
        if interactive:
            run_interactive(session)
            return 0
        run_lines(session, stdin)
    except KeyboardInterrupt:
        return 130  # Ctrl-C while reading a script: stop quietly, as shells expect
    return 1 if session.failed else 0


def run_lines(session: ReplSession, lines: Iterable[str]) -> None:
    """Scripted use: plain lines, no prompts; a multi-line rule runs once it is complete."""
    pending = ""
    for line in lines:
        pending += line if line.endswith("\n") else line + "\n"
        if is_complete(pending):
            keep_going = session.handle(pending)
            pending = ""
            if not keep_going:
                return
    if pending.strip():
        session.handle(pending)


def build_prompt_session(session: ReplSession, *, input: Input | None = None,
                         output: Output | None = None, history: History | None = None) -> PromptSession:
    """The prompt-toolkit session: highlighting, completion, history and multi-line rules."""
    bindings = KeyBindings()

    @bindings.add("enter")
    def _enter(event: KeyPressEvent) -> None:
        buffer = event.current_buffer
        # Enter on a complete input runs it; inside an unfinished rule or bracket it adds a line
        # (a blank line ends a rule that has no `end`).
        if not is_complete(buffer.text + "\n"):
            buffer.insert_text("\n")
        else:
            buffer.validate_and_handle()

    return PromptSession(
        lexer=PygmentsLexer(ReplLexer),
        completer=WhenthenCompleter(lambda: session.schema, lambda: session.trigger),
        complete_while_typing=True,
        history=history if history is not None else make_history(),
        key_bindings=bindings,
        multiline=True,
        prompt_continuation=lambda width, line_number, wrap_count: "." * (width - 1) + " ",
        bottom_toolbar=lambda: status_line(session),
        style=style_from_pygments_cls(get_style_by_name("default")),
        include_default_pygments_style=False,
        input=input,
        output=output,
    )


def status_line(session: ReplSession) -> str:
    """The toolbar: what bare names refer to, whether an event is set, and the simulated time."""
    from whenthen.runtime.evaluate import show_value

    trigger = session.trigger or "no trigger"
    event = "event set" if session.event is not None else "no event"
    return f" {trigger} | {event} | clock {show_value(session.now, session.timezone)} | :help"


def run_interactive(session: ReplSession, prompt: PromptSession | None = None) -> None:
    """The terminal loop: Ctrl-C drops the current input, Ctrl-D or `:quit` leaves."""
    prompt = prompt or build_prompt_session(session)
    while True:
        try:
            text = prompt.prompt(f"{session.trigger or 'whenthen'}> ")
        except KeyboardInterrupt:
            continue
        except EOFError:
            return
        try:
            if not session.handle(text):
                return
        except KeyboardInterrupt:  # Ctrl-C during a long :advance stops it, not the session
            session.err("interrupted")


def _writer(stream: TextIO):
    def write(text: str) -> None:
        stream.write(text + "\n")
        stream.flush()

    return write


def _colored_writer(stream: TextIO, color: str):
    """Errors in red on a terminal, so they stand out from results."""
    def write(text: str) -> None:
        stream.write(f"{color}{text}\x1b[0m\n")
        stream.flush()

    return write
