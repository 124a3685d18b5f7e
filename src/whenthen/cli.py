"""The `whenthen` command line: a thin click group; every command calls the Python API.

Exit status (SPEC 3): 0 success, 1 the input has errors (diagnostics, rejected events), 2 usage
or I/O error. A user error never prints a Python traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from whenthen.diagnostics import CompileError, Diagnostic, UnknownName, WhenthenError

EXIT_INPUT_ERROR = 1
EXIT_USAGE_ERROR = 2
EXIT_BROKEN_PIPE = 128 + 13  # SIGPIPE
STDIN_NAME = "<stdin>"  # how rules read from stdin (`check -`, `fmt -`) are named in diagnostics


class Context:
    """What the group's global options give every command."""

    def __init__(self, db: str, now: str | None, config: str | None = None, actions: str | None = None):
        self.db = db
        self.now = now
        self.config = config
        self.actions = actions  # `--actions` given before the command (a command's own wins)


def fail(message: str, status: int = EXIT_USAGE_ERROR) -> None:
    """Print `error: message` on stderr and exit with `status` (no traceback)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(status)


_COLOURS = {"active": "green", "completed": "green", "paused": "yellow", "waiting": "cyan",
            "running": "blue", "failed": "red", "exited": "magenta", "archived": "bright_black",
            "unloadable": "red", "error": "red", "warning": "yellow"}


def _colour(err: bool = False) -> bool:
    """Colour only on a terminal, and never when $NO_COLOR is set to anything (no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    stream = sys.stderr if err else sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)())


def _paint(text: str, word: str, err: bool = False) -> str:
    """`text` in the colour of a status word (`failed`, `active`, `error`, …) on a terminal."""
    colour = _COLOURS.get(word)
    return click.style(text, fg=colour, bold=word in ("error", "failed")) if colour and _colour(err) else text


def _paint_diagnostic(rendered: str) -> str:
    import re

    if not _colour(err=True):
        return rendered
    lines = rendered.split("\n")
    lines[0] = re.sub(r"\b(error|warning)(\[[EW]\d+\])",
                      lambda m: _paint(m.group(0), m.group(1), err=True), lines[0], count=1)
    for i in range(1, len(lines)):
        if lines[i].strip() and set(lines[i].strip()) <= {"^", "~"}:
            lines[i] = click.style(lines[i], fg="red" if "error[" in rendered.split("\n")[0] else "yellow")
    return "\n".join(lines)


def _when(text: object) -> str:
    """A stored time for a table: to the second, one format (`2026-11-23T09:00:00Z`), never
    ragged microseconds."""
    import re

    if not isinstance(text, str):
        return "" if text is None else str(text)
    return re.sub(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.\d+", r"\1", text)


def print_diagnostics(diagnostics: list[Diagnostic], fmt: str = "text", texts: dict[str, str | None] | None = None
                      ) -> None:
    """Diagnostics as text with carets (stderr), or as a JSON array (stdout). `texts`: sources
    that are not files (stdin), by name."""
    if fmt == "json":
        click.echo(json.dumps([d.to_json() for d in diagnostics], indent=2, ensure_ascii=False))
        return
    texts = dict(texts or {})
    for d in diagnostics:
        if d.file not in texts:
            try:
                texts[d.file] = Path(d.file).read_bytes().decode("utf-8", "replace")
            except OSError:
                texts[d.file] = None
        click.echo(_paint_diagnostic(d.render(texts[d.file])), err=True)
    errors = sum(d.is_error for d in diagnostics)
    warnings = len(diagnostics) - errors
    if diagnostics:
        click.echo(f"{errors} error(s), {warnings} warning(s)", err=True)


class _Main(click.Group):
    """The command group; a reader that goes away (`whenthen runs | head -1`) ends the command
    quietly, as it ends Unix tools: no message, status 141 (128 + SIGPIPE, what a shell shows)."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()  # inside the try: the last buffered lines may meet the closed pipe
            return result
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            for stream in (sys.stdout, sys.stderr):  # the interpreter's final flush must not fail again
                try:
                    os.dup2(devnull, stream.fileno())
                except (OSError, ValueError):
                    pass
            sys.exit(EXIT_BROKEN_PIPE)


@click.group(cls=_Main)
@click.option("--db", envvar="WHENTHEN_DB", default="whenthen.db", show_default=True,
              help="SQLite database file or postgresql:// URL (or $WHENTHEN_DB).")
@click.option("--now", envvar="WHENTHEN_NOW", default=None,
              help="Fix the clock for this command (ISO 8601 datetime, or $WHENTHEN_NOW).")
@click.option("--config", envvar="WHENTHEN_CONFIG", default=None, metavar="FILE.toml",
              help="Transport settings (SMTP, webhook secret, templates); default: whenthen.toml beside --db.")
@click.option("--actions", "actions", default=None, metavar="MODULE_OR_FILE.py",
              help="Host actions for the commands that run rules (also accepted after the command).")
@click.version_option(package_name="whenthen")
@click.pass_context
def main(ctx: click.Context, db: str, now: str | None, config: str | None, actions: str | None) -> None:
    """whenthen: rules for event automation."""
    ctx.obj = Context(db=db, now=now, config=config, actions=actions)


# ----------------------------------------------------------------------------- check / disasm


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def check(paths: tuple[str, ...], fmt: str) -> None:
    """Check files or folders of *.rules (`-`: the rules on stdin); print diagnostics."""
    from whenthen.api import check as check_api
    from whenthen.compiler.sources import source_from_bytes

    texts: dict[str, str | None] = {}
    items: list = list(paths)
    if "-" in paths:
        stdin = source_from_bytes(STDIN_NAME, sys.stdin.buffer.read())
        texts[STDIN_NAME] = stdin.text
        items = [stdin if p == "-" else p for p in paths]
    try:
        diagnostics = check_api(items)
    except WhenthenError as exc:
        fail(str(exc))
    print_diagnostics(diagnostics, fmt, texts)
    if any(d.is_error for d in diagnostics):
        sys.exit(EXIT_INPUT_ERROR)
    if fmt == "text":
        click.echo(f"ok: {len(paths)} path(s) checked, no errors", err=True)


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--rule", "rule", default=None, help="Only this rule.")
def disasm(paths: tuple[str, ...], rule: str | None) -> None:
    """Print the compiled bytecode of the rules, readable."""
    from whenthen.compiler.dis import disasm_paths

    try:
        click.echo(disasm_paths(list(paths), rule=rule), nl=False)
    except CompileError as exc:
        print_diagnostics(exc.diagnostics)
        sys.exit(EXIT_INPUT_ERROR)
    except UnknownName as exc:
        fail(str(exc), EXIT_INPUT_ERROR)
    except WhenthenError as exc:
        fail(str(exc))


@main.command()
@click.argument("paths", nargs=-1)
@click.option("--actions", "actions", default=None, metavar="MODULE_OR_FILE.py",
              help="Host actions: a Python file or importable module.")
@click.pass_obj
def repl(obj: Context, paths: tuple[str, ...], actions: str | None) -> None:
    """The interactive console: evaluate conditions against events, emit, advance a simulated clock."""
    from whenthen.calendar import parse_datetime
    from whenthen.repl.app import run_repl
    from whenthen.runtime.engine import load_actions_module, load_host_triggers

    actions = actions or obj.actions
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        fail(f"no such file or folder: {', '.join(missing)}")
    try:
        now = parse_datetime(obj.now) if obj.now else None
    except ValueError as exc:
        fail(f"--now: {exc}")
    try:
        host_actions = load_actions_module(actions) if actions else []
        host_triggers = load_host_triggers(actions) if actions else {}
    except Exception as exc:  # the user's module may raise anything while importing
        fail(f"--actions {actions}: {type(exc).__name__}: {exc}")
    sys.exit(run_repl(list(paths), now=now, actions=host_actions, triggers=host_triggers))


# ----------------------------------------------------------------------------- the engine


def _engine(obj: Context, actions: str | None = None, *, runs_rules: bool = False,
            read_only: bool = False, wait_for_db: bool = False):  # -> Engine
    """The engine on `--db`, with the `--now` clock, `--config` and the `--actions` host module, or
    exit 2. With `runs_rules` (emit, ingest, worker), an action that active rules call with no
    implementation is an error now, before anything runs (Engine.check_bindings). With
    `read_only` (commands that only read, SPEC 3) the database is never created or written: a
    missing one is an error. With `wait_for_db` (a long-running worker), a database server that
    is down or starting is waited for, with backoff, rather than an error."""
    import time

    from whenthen.calendar import parse_datetime
    from whenthen.runtime.clock import FixedClock, RealClock
    from whenthen.runtime.engine import Engine, load_actions_module, load_host_triggers
    from whenthen.runtime.store import StoreUnavailable
    from whenthen.stdlib.config import StdlibConfig

    actions = actions or obj.actions
    try:
        clock = FixedClock(parse_datetime(obj.now)) if obj.now else RealClock()
    except ValueError as exc:
        fail(f"--now: {exc}")
    try:
        delay = 0.1
        while True:
            try:
                engine = Engine(obj.db, clock, config=StdlibConfig.load(obj.config, db=obj.db),
                                read_only=read_only)
                break
            except StoreUnavailable as exc:
                if not wait_for_db:
                    raise
                click.echo(f"worker: {exc}; retrying in {delay:.1f}s", err=True)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        if actions:
            for fn in load_actions_module(actions):
                engine.action(fn)
            for name, model in load_host_triggers(actions).items():
                engine.trigger(name, model)
        _note_upgrade(obj.db, engine.store)
        if runs_rules:
            engine.check_bindings()
    except WhenthenError as exc:
        fail(str(exc))
    except Exception as exc:
        if actions is None and isinstance(exc, OSError):  # whenthen.toml beside --db unreadable
            fail(f"cannot read {exc.filename or obj.db}: {exc.strerror or exc}")
        fail(f"--actions {actions}: {type(exc).__name__}: {exc}")  # the host module failed to import
    return engine


def _shown_db(db: str) -> str:
    """A database for a message: a URL without its password."""
    import re

    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", db)


def _note_upgrade(db: str, store: object) -> None:
    """Tell the user when opening the database upgraded its schema (a writing command did)."""
    from whenthen.runtime.store.schema import SCHEMA_VERSION

    before = getattr(store, "upgraded_from", None)
    if before:  # 0 is a database just created: nothing to say
        click.echo(f"note: upgraded {db} from schema version {before} to {SCHEMA_VERSION}", err=True)


def _text(value: object) -> str:
    """A value shown inline in JSON syntax, non-ASCII text as itself (never `\\u041f` escapes)."""
    from whenthen.views import dumps

    return dumps(value, indent=None)


def _print_json(value: object) -> None:
    from whenthen.views import dumps

    click.echo(dumps(value))


def _table(rows: list[list[str]], header: list[str]) -> None:
    """Columns padded to their widest cell; STATUS and STATE cells coloured on a terminal."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    painted = {i for i, h in enumerate(header) if h in ("STATUS", "STATE")}
    click.echo("  ".join(str(x).ljust(w) for x, w in zip(header, widths, strict=False)).rstrip())
    for row in rows:
        cells = [str(x).ljust(w) for x, w in zip(row, widths, strict=False)]
        cells = [_paint(c, str(row[i])) if i in painted else c for i, c in enumerate(cells)]
        click.echo("  ".join(cells).rstrip())


_actions_option = click.option("--actions", "actions", default=None, metavar="MODULE_OR_FILE.py",
                               help="Host actions: a Python file or importable module.")
_format_option = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--author", default=None, help="Recorded with each new version.")
@click.option("--enable", is_flag=True, help="Make the published rules active.")
@click.option("--prune", is_flag=True, help="Archive the stored rules these files no longer have (left out or renamed).")
@_actions_option
@click.pass_obj
def publish(obj: Context, paths: tuple[str, ...], author: str | None, enable: bool, prune: bool,
            actions: str | None) -> None:
    """Store a new version of each rule whose compiled form changed."""
    from whenthen.api import compile as compile_api

    engine = _engine(obj, actions)
    try:
        program = compile_api(list(paths), engine.schema)
        report = engine.publish(program, author=author, enable=enable, prune=prune)
    except CompileError as exc:
        print_diagnostics(exc.diagnostics)
        sys.exit(EXIT_INPUT_ERROR)
    except WhenthenError as exc:
        fail(str(exc))
    for item in report:
        if item.state == "archived" and not item.new_version and item.rule not in program.rules:
            click.echo(f"{item.rule}: {_paint('archived', 'archived')} (not in the published files)")
            continue
        what = f"new version {item.version}" if item.new_version else f"unchanged (version {item.version})"
        click.echo(f"{item.rule}: {what}, {item.state}")


@main.command()
@click.option("--all", "show_all", is_flag=True, help="Archived rules too.")
@_format_option
@click.pass_obj
def rules(obj: Context, show_all: bool, fmt: str) -> None:
    """List rules: version, state, trigger and run counts (archived ones with --all)."""
    found = _engine(obj, read_only=True).rules()
    hidden = 0 if show_all else sum(r["state"] == "archived" for r in found)
    found = [r for r in found if show_all or r["state"] != "archived"]
    if fmt == "json":
        _print_json(found)
        return
    _table([[r["name"], r["version"], "unloadable" if r.get("unloadable") else r["state"],
             r.get("schedule") or r["trigger"], r["runs"], r["waiting"], r["completed"],
             r["failed"], r["exited"], r["filtered"]] for r in found],
           ["RULE", "VERSION", "STATE", "TRIGGER", "RUNS", "WAITING", "COMPLETED", "FAILED", "EXITED", "FILTERED"])
    if hidden:
        click.echo(f"({hidden} archived rule{'' if hidden == 1 else 's'} not shown; --all shows them)", err=True)
    from whenthen.runtime.policies import describe_splits

    for r in found:  # SPEC 2.11: events an entry limit kept out
        if "limited" in r:
            click.echo(f"{r['name']}: {r['limited']} limited (once per …)")
    for r in found:  # SPEC 2.13: per split, the runs each branch took
        if r.get("splits"):
            click.echo(f"{r['name']}: {describe_splits(r['splits'])}")
    for r in found:  # SPEC 3.2: an unloadable version is never hidden
        if r.get("unloadable") or r.get("unstarted"):
            missed = f"; {r.get('unstarted', 0)} event(s) it could not start" if r.get("unstarted") else ""
            click.echo(f"warning: {r.get('unloadable') or r['name'] + ': an earlier version was unloadable'}{missed}",
                       err=True)


def _set_states(obj: Context, rules: tuple[str, ...], state: str) -> None:
    """`enable`/`pause`/`archive` RULE…: every name is looked up first, so a misspelt one changes nothing."""
    engine = _engine(obj)
    change = {"active": engine.enable, "paused": engine.pause, "archived": engine.archive}[state]
    try:
        for rule in rules:
            engine.catalog.rule_or_fail(rule)
        for rule in rules:
            change(rule)
    except WhenthenError as exc:
        fail(str(exc), EXIT_INPUT_ERROR)
    for rule in rules:
        click.echo(f"{rule}: {_paint(state, state)}")


@main.command()
@click.argument("rules", nargs=-1, required=True, metavar="RULE...")
@click.pass_obj
def enable(obj: Context, rules: tuple[str, ...]) -> None:
    """Make rules active: events of their triggers start runs."""
    _set_states(obj, rules, "active")


@main.command()
@click.argument("rules", nargs=-1, required=True, metavar="RULE...")
@click.pass_obj
def pause(obj: Context, rules: tuple[str, ...]) -> None:
    """Pause rules: no new runs (runs in flight continue)."""
    _set_states(obj, rules, "paused")


@main.command()
@click.argument("rules", nargs=-1, required=True, metavar="RULE...")
@click.pass_obj
def archive(obj: Context, rules: tuple[str, ...]) -> None:
    """Retire rules: no new runs (runs in flight finish); hidden from `rules` unless --all; `enable` brings one back."""
    _set_states(obj, rules, "archived")


@main.command()
@click.argument("rule")
@_format_option
@click.pass_obj
def versions(obj: Context, rule: str, fmt: str) -> None:
    """A rule's version history."""
    try:
        found = _engine(obj, read_only=True).versions(rule)
    except WhenthenError as exc:
        fail(str(exc), EXIT_INPUT_ERROR)
    if fmt == "json":
        _print_json(found)
        return
    _table([[v["version"], _when(v["created_at"]), v["author"] or "", "*" if v["current"] else "", v["hash"][:12]]
            for v in found], ["VERSION", "CREATED", "AUTHOR", "CURRENT", "HASH"])


@main.command()
@click.argument("rule")
@click.argument("version", type=int)
@click.option("--author", default=None)
@click.pass_obj
def revert(obj: Context, rule: str, version: int, author: str | None) -> None:
    """Append a new version equal to VERSION and make it current."""
    try:
        number = _engine(obj).revert(rule, version, author=author)
    except WhenthenError as exc:
        fail(str(exc), EXIT_INPUT_ERROR)
    click.echo(f"{rule}: version {number} (= version {version})")


@main.command()
@click.argument("trigger")
@_format_option
@click.option("--path", "paths", multiple=True, help="Look in these files or folders, not the published rules.")
@click.pass_obj
def uses(obj: Context, trigger: str, fmt: str, paths: tuple[str, ...]) -> None:
    """Where a trigger is started on, awaited, exited on or emitted (current versions)."""
    if paths:
        _uses_in_files(trigger, list(paths), fmt)
        return
    try:
        found = _engine(obj, read_only=True).uses(trigger)
    except WhenthenError as exc:
        fail(str(exc), EXIT_INPUT_ERROR)
    if fmt == "json":
        _print_json(found)
        return
    if not found:
        click.echo(f"no rule uses {trigger}")
    _table([[u["how"], u["rule"], u["version"], u["state"]] for u in found], ["HOW", "RULE", "VERSION", "STATE"])


@main.command()
@click.argument("trigger")
@click.argument("payload", required=False, default=None, metavar="[JSON | @file | -]")
@_actions_option
@_format_option
@click.pass_obj
def emit(obj: Context, trigger: str, payload: str | None, actions: str | None, fmt: str) -> None:
    """Validate and record one event, dispatch it, run until runs wait."""
    from whenthen.diagnostics import EventError
    from whenthen.runtime.events import parse_payload
    from whenthen.runtime.jsonl import shown_line

    raw: str | bytes
    if payload is None or payload == "-":
        raw = sys.stdin.buffer.read() if payload == "-" or not sys.stdin.isatty() else "{}"
    elif payload.startswith("@"):
        try:
            raw = Path(payload[1:]).read_bytes()
        except OSError as exc:
            fail(f"cannot read {payload[1:]}: {exc.strerror}")
    else:
        raw = payload
    engine = _engine(obj, actions, runs_rules=True)
    try:
        try:
            text = _utf8(raw, trigger)
            data = parse_payload(text, trigger)
        except EventError as exc:
            engine.reject(trigger, shown_line(raw), str(exc))
            raise
        newest = engine.runs_page(limit=1)
        before = newest[0]["id"] if newest else 0
        event_id = engine.emit(trigger, data)
        started = [r for r in engine.runs_page(limit=1000) if r["id"] > before]
    except EventError as exc:
        fail(str(exc), EXIT_INPUT_ERROR)
    except WhenthenError as exc:
        fail(str(exc))
    started.reverse()
    if fmt == "json":
        _print_json({"event": event_id, "runs": [r["id"] for r in started]})
    else:
        click.echo(f"event {event_id}")
        for r in started:
            click.echo(f"  run {r['id']} · {r['rule']} v{r['version']} · {_paint(r['status'], r['status'])}")
        if not started:
            click.echo("  no run started")
    rules_on = [r for r in engine.rules() if r["trigger"] == trigger]
    if rules_on and all(r["state"] == "paused" for r in rules_on):
        names = ", ".join(r["name"] for r in rules_on)
        click.echo(f"warning: every rule on {trigger} is paused ({names}); `whenthen enable RULE` makes one active",
                   err=True)


def _utf8(raw: str | bytes, trigger: str) -> str:
    """A payload's text: bytes (a file, stdin) must be UTF-8; an argument came through the
    locale's decoding, which leaves undecodable bytes as lone surrogates."""
    from whenthen.diagnostics import EventError

    try:
        if isinstance(raw, bytes):
            return raw.decode("utf-8")
        raw.encode("utf-8")
        return raw
    except UnicodeError as exc:
        data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogateescape")
        start = exc.start if isinstance(raw, bytes) else len(raw[:exc.start].encode("utf-8", "surrogateescape"))
        raise EventError(f"{trigger}: the payload is not UTF-8 text (byte 0x{data[start]:02x} at offset {start})",
                         trigger=trigger) from None


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@_actions_option
@click.pass_obj
def ingest(obj: Context, file: str, actions: str | None) -> None:
    """Emit every event of a JSONL file (`{"trigger": …, "data": {…}}` per line).

    The file is read line by line (memory stays bounded whatever its size); a bad line (not
    UTF-8, not JSON, a bad field) is reported as FILE:LINE and the others go in."""
    from whenthen.runtime.jsonl import raw_lines

    try:
        stream = open(file, "rb")  # noqa: SIM115 (closed below, after the engine has read it)
        size = os.fstat(stream.fileno()).st_size
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    engine = _engine(obj, actions, runs_rules=True)
    rejected = 0
    tty = sys.stderr.isatty()  # on a terminal the bar holds the line: an error starts a new one
    with stream, click.progressbar(length=max(size, 1), label="ingest", file=sys.stderr) as bar:
        def on_line(number: int, error: str | None) -> None:
            nonlocal rejected
            if error is not None:
                rejected += 1
                click.echo(f"{chr(10) if tty else ''}{file}:{number}: error: {error}", err=True)
            bar.update(stream.tell() - bar.pos)

        try:
            accepted, _ = engine.ingest(raw_lines(stream), on_line=on_line, keep_rejected=False)
        except BrokenPipeError:
            raise
        except OSError as exc:
            fail(f"cannot read {file}: {exc.strerror or exc}")
    click.echo(f"{accepted} accepted, {rejected} rejected", err=True)
    if rejected:
        sys.exit(EXIT_INPUT_ERROR)


@main.command()
@click.option("--once", is_flag=True, help="Process what is due now, then exit.")
@click.option("--idle", default=0.5, show_default=True, help="Seconds to sleep when there is nothing to do.")
@click.option("--lease", default=30.0, show_default=True,
              help="Seconds a claimed run stays this worker's; after that another worker may take it over.")
@_actions_option
@click.pass_obj
def worker(obj: Context, once: bool, idle: float, lease: float, actions: str | None) -> None:
    """Resume due runs and process pending events until stopped."""
    import signal

    engine = _engine(obj, actions, runs_rules=True, wait_for_db=not once)
    engine.lease_seconds = lease
    if not once:
        active = sum(r["state"] == "active" for r in engine.rules())
        click.echo(f"worker: started on {_shown_db(obj.db)} with {active} active rule(s), pid {os.getpid()}; "
                   "Ctrl-C stops it", err=True)
    stopping: list[int] = []

    def request_stop(signum: int, _frame: object) -> None:
        if stopping:  # a second signal: stop now (the runs in hand are taken over after --lease)
            raise KeyboardInterrupt
        stopping.append(signum)
        click.echo("worker: stopping after the current run (signal again to stop now)", err=True)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        done = engine.work(once=once, idle=idle, stop=lambda: bool(stopping))
    except KeyboardInterrupt:
        return
    if once:
        click.echo(f"{done} event(s) and run(s) processed", err=True)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(0, 64),
              help="Worker threads dispatching events and resuming runs (0: HTTP only).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
@_actions_option
@click.pass_obj
def serve(obj: Context, host: str, port: int, workers: int, log_level: str, actions: str | None) -> None:
    """The HTTP API and web console, with workers and schedules, in one process (SIGTERM stops it cleanly)."""
    from whenthen.runtime.engine import load_actions_module, load_host_triggers
    from whenthen.service.config import ServeConfig
    from whenthen.service.engines import Engines
    from whenthen.service.server import is_loopback_host, run
    from whenthen.stdlib.config import StdlibConfig

    actions = actions or obj.actions
    engine = _engine(obj, actions, runs_rules=workers > 0)  # the same checks as `worker`, before listening
    engine.close()
    try:
        config = ServeConfig.load(obj.config, db=obj.db)
        stdlib = StdlibConfig.load(obj.config, db=obj.db)
        host_actions = load_actions_module(actions) if actions else []
        host_triggers = load_host_triggers(actions) if actions else {}
    except WhenthenError as exc:
        fail(str(exc))
    if config.open and not is_loopback_host(host):
        fail(f"--host {host}: no token is configured, so the service listens on loopback only "
             "(set $WHENTHEN_TOKENS or [serve] tokens in whenthen.toml; docs/serve.md)")
    from whenthen.runtime.clock import RealClock

    engines = Engines(obj.db, config=stdlib, clock=RealClock(), actions=host_actions, triggers=host_triggers)
    run(engines, config, host, port, workers, log_level)


@main.command()
@click.option("--rule", default=None)
@click.option("--status", default=None,
              type=click.Choice(["running", "waiting", "completed", "failed", "exited"]))
@click.option("--limit", type=click.IntRange(0), default=50, show_default=True,
              help="At most this many runs, the newest (0: all of them).")
@_format_option
@click.pass_obj
def runs(obj: Context, rule: str | None, status: str | None, limit: int, fmt: str) -> None:
    """Run history, oldest first: the newest --limit runs."""
    engine = _engine(obj, read_only=True)
    try:
        if limit:
            if rule is not None:
                engine.catalog.rule_or_fail(rule)  # a misspelt name is an error, not an empty page
            found = list(reversed(engine.runs_page(rule=rule, status=status, limit=limit + 1)))
        else:
            found = engine.runs(rule=rule, status=status)
    except WhenthenError as exc:
        fail(str(exc), EXIT_INPUT_ERROR)
    more = bool(limit) and len(found) > limit
    if more:
        found = found[1:]
    if fmt == "json":
        _print_json(found)
        return
    _table([[r["id"], r["rule"], r["version"], r["status"], _when(r["started_at"]), _when(r["updated_at"]),
             _when(r.get("waiting_until")) or r.get("error") or ""] for r in found],
           ["ID", "RULE", "VERSION", "STATUS", "STARTED", "UPDATED", "NEXT / ERROR"])
    if more:
        click.echo(f"(the newest {limit} runs; older ones with --limit 0, or narrow with --rule/--status)", err=True)


@main.command()
@_format_option
@click.pass_obj
def outbox(obj: Context, fmt: str) -> None:
    """Messages recorded instead of sent: send_email without SMTP, send_message, unbound actions."""
    found = _engine(obj, read_only=True).outbox()
    if fmt == "json":
        _print_json(found)
        return
    if not found:
        click.echo("the outbox is empty")
        return

    def summary(args: dict) -> str:
        shown = {k: v for k, v in args.items() if k in ("to", "subject", "text", "channel")} or args
        text = ", ".join(f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in shown.items())
        return text if len(text) <= 80 else text[:77] + "..."

    _table([[o["id"], o["run_id"] or "", o["action"], _when(o["created_at"]), summary(o["args"])] for o in found],
           ["ID", "RUN", "ACTION", "CREATED", "ARGS"])


@main.command("run")
@click.argument("run_id", type=int)
@_format_option
@click.pass_obj
def run_cmd(obj: Context, run_id: int, fmt: str) -> None:
    """One run: its steps, data, results and errors."""
    try:
        found = _engine(obj, read_only=True).run(run_id)
    except WhenthenError as exc:
        fail(str(exc), EXIT_INPUT_ERROR)
    if fmt == "json":
        _print_json(found)
        return
    from whenthen.views import describe_step

    click.echo(f"run {found['id']} · {found['rule']} v{found['version']} · {_paint(found['status'], found['status'])}")
    if found.get("event"):
        click.echo(f"  started by {found['event']['trigger']} {_text(found['event']['data'])}")
    for step in found["steps"]:
        if step["kind"] == "action":
            args = ", ".join(f"{k}: {_text(v)}" for k, v in step["args"].items())
            outcome = f"error: {step['error']}" if step.get("error") else f"→ {_text(step['result'])}"
            attempt = f" (attempt {step['attempt']})" if step.get("error") and step.get("attempt") else ""
            due = f"  (due {_when(step['due_at'])}, delayed by the sending window)" if step.get("due_at") else ""
            click.echo(f"  {_when(step['at'])}  {step['action']}({args})  {outcome}{attempt}{due}")
        else:
            shown = {**step, "until": _when(step["until"])} if step.get("until") else step
            click.echo(f"  {_when(step['at'])}  {describe_step(shown)}")
    retry = _retry_note(found, obj)
    if retry:
        click.echo(f"  {retry}")
    if found.get("error"):
        click.echo(f"  error: {found['error']}")


@main.command()
@click.argument("target", nargs=-1, required=True, metavar="RULE EVENT_ID | RUN_ID")
@_format_option
@click.pass_obj
def explain(obj: Context, target: tuple[str, ...], fmt: str) -> None:
    """Why a rule did what it did with an event, or what a run is waiting for (SPEC 2.14)."""
    if len(target) == 1:
        subject: str | int = _id_argument(target[0], "RUN_ID")
        event_id = None
    elif len(target) == 2:
        subject, event_id = target[0], _id_argument(target[1], "EVENT_ID")
    else:
        fail("explain takes RULE EVENT_ID or RUN_ID")
    engine = _engine(obj, read_only=True)
    try:
        found = engine.explain(subject, event_id)
    except WhenthenError as exc:
        fail(str(exc), EXIT_INPUT_ERROR)
    if fmt == "json":
        _print_json(found)
        return
    from whenthen.runtime.explain import describe

    click.echo(describe(found))


def _id_argument(text: str, what: str) -> int:
    """A run or event id given on the command line: a positive integer, else a usage error (exit 2)."""
    if not text.isdigit():
        hint = " (a rule name needs an EVENT_ID after it)" if what == "RUN_ID" else ""
        fail(f"{what} must be a positive integer, not {text!r}{hint}")
    return int(text)


def _retry_note(run: dict, obj: Context) -> str | None:
    """A waiting run whose last step is a failed action waits for a retry: `retry 2/3 at …`."""
    if run["status"] != "waiting" or not run["steps"]:
        return None
    last = run["steps"][-1]
    if last["kind"] != "action" or not last.get("error") or not last.get("attempt"):
        return None
    from whenthen.runtime.engine import RetryPolicy

    at = f" at {_when(run['waiting_until'])}" if run.get("waiting_until") else ""
    return f"waiting for retry {last['attempt'] + 1}/{RetryPolicy().attempts}{at}"


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--events", "events_file", required=True, type=click.Path(dir_okay=False))
@click.option("--until", default=None, help="Play the clock up to this datetime.")
@click.option("--format", "fmt", type=click.Choice(["text", "jsonl"]), default="text")
@_actions_option
@click.pass_obj
def simulate(obj: Context, paths: tuple[str, ...], events_file: str, until: str | None, fmt: str,
             actions: str | None) -> None:
    """Dry run on a simulated clock: actions are recorded, not executed."""
    from whenthen.calendar import parse_datetime
    from whenthen.runtime.engine import load_actions_module, load_host_triggers
    from whenthen.runtime.simulate import jsonl_line, render_text, simulate, summary_record

    actions = actions or obj.actions

    if not Path(events_file).exists():
        fail(f"no such events file: {events_file}")
    try:
        until_at = parse_datetime(until) if until else None
    except ValueError as exc:
        fail(f"--until: {exc}")
    try:
        host = load_actions_module(actions) if actions else []
        host_triggers = load_host_triggers(actions) if actions else {}
    except WhenthenError as exc:
        fail(str(exc))
    except Exception as exc:
        fail(f"--actions {actions}: {type(exc).__name__}: {exc}")

    def on_trace(record: dict) -> None:
        if fmt == "jsonl":
            click.echo(jsonl_line(record))

    try:
        result = simulate(list(paths), events_file, until=until_at, actions=host, triggers=host_triggers,
                          on_trace=on_trace,
                          on_event_error=lambda message: click.echo(message, err=True))
    except WhenthenError as exc:
        fail(str(exc))
    except BrokenPipeError:
        raise  # the reader of the trace went away: _Main ends quietly
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read input: {exc}")
    if any(d.is_error for d in result.diagnostics):
        print_diagnostics(result.diagnostics)
        sys.exit(EXIT_INPUT_ERROR)
    if fmt == "jsonl":
        click.echo(jsonl_line(summary_record(result.summary)))
    else:
        click.echo(render_text(result), nl=False)
    if result.truncated:
        click.echo("warning: stopped after too many resumptions; give --until", err=True)
    if result.event_errors:
        sys.exit(EXIT_INPUT_ERROR)


@main.command()
@click.argument("folder", required=False, type=click.Path(file_okay=False))
@click.option("--events", "events_file", default=None, help="Events to replay [default: FOLDER/events.jsonl].")
@click.pass_obj
def demo(obj: Context, folder: str | None, events_file: str | None) -> None:
    """Publish FOLDER's rules into --db and replay its events on a simulated clock, for real.

    Without FOLDER: ./examples when there is one, else the examples installed with whenthen.
    Host actions come from FOLDER/actions.py when it exists. Unlike `simulate`, the runs, their history and the outbox stay in the database, so `rules`,
    `runs`, `run ID` and `versions` show them afterwards.
    """
    from importlib import resources

    from whenthen.runtime.engine import load_actions_module, load_host_triggers
    from whenthen.runtime.simulate import render_text, simulate

    if folder is None:
        folder = "examples" if Path("examples", "events.jsonl").exists() else str(resources.files("whenthen") / "examples")
    events_file = events_file or str(Path(folder) / "events.jsonl")
    if not Path(folder).is_dir() or not Path(events_file).exists():
        fail(f"need a folder of *.rules with an events file: {folder}, {events_file}")
    os.environ["WHENTHEN_DB"] = obj.db  # the example host actions keep their CRM table there
    actions_file = Path(folder) / "actions.py"
    try:
        host = load_actions_module(str(actions_file)) if actions_file.exists() else []
        host_triggers = load_host_triggers(str(actions_file)) if actions_file.exists() else {}
        result = simulate([folder], events_file, db=obj.db, dry_run=False, actions=host, triggers=host_triggers,
                          on_event_error=lambda message: click.echo(message, err=True))
    except WhenthenError as exc:
        fail(str(exc))
    if any(d.is_error for d in result.diagnostics):
        print_diagnostics(result.diagnostics)
        sys.exit(EXIT_INPUT_ERROR)
    click.echo(render_text(result), nl=False)
    runs = sum(counts["runs"] for counts in result.summary.values())
    click.echo(f"\n{len(result.summary)} rules published and enabled in {obj.db}; {runs} runs stored.")
    first_rule = next(iter(result.summary), "RULE")
    click.echo(f"Look around: whenthen rules · whenthen runs · whenthen run 1 · whenthen versions '{first_rule}'")
    if result.event_errors:
        sys.exit(EXIT_INPUT_ERROR)


# ----------------------------------------------------------------------------- authoring tools


@main.command("fmt")
@click.argument("paths", nargs=-1, required=True)
@click.option("--check", "check_only", is_flag=True, help="Change nothing; list files that would change (exit 1).")
@click.option("--diff", "show_diff", is_flag=True, help="Change nothing; print what would change as a unified diff "
              "(exit 1 when something would).")
def fmt_cmd(paths: tuple[str, ...], check_only: bool, show_diff: bool) -> None:
    """Format files or folders of *.rules in the canonical layout (`-`: stdin to stdout)."""
    import difflib

    from whenthen.tools.fmt import FormatError, format_file, format_source, rules_files

    if paths == ("-",):
        text = sys.stdin.read()
        try:
            click.echo(format_source(text, STDIN_NAME), nl=False)
        except FormatError as exc:
            click.echo("\n".join(d.render(text) for d in exc.diagnostics), err=True)
            sys.exit(EXIT_INPUT_ERROR)
        return
    try:
        files = rules_files(list(paths))
        results = [format_file(path) for path in files]
    except FileNotFoundError as exc:
        fail(f"no such file or folder: {exc}")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read input: {exc}")
    failed = False
    for result in results:
        if result.diagnostics:
            failed = True
            click.echo("\n".join(d.render(result.original) for d in result.diagnostics), err=True)
            click.echo(f"{result.path}: not formatted (syntax errors)", err=True)
        elif result.changed:
            if show_diff:
                failed = True
                click.echo("".join(difflib.unified_diff(
                    result.original.splitlines(keepends=True), (result.formatted or "").splitlines(keepends=True),
                    f"{result.path}", f"{result.path} (formatted)")), nl=False)
            elif check_only:
                failed = True
                click.echo(f"would reformat {result.path}")
            else:
                try:
                    result.path.write_text(result.formatted or "", encoding="utf-8")
                except OSError as exc:
                    fail(f"cannot write {result.path}: {exc.strerror}")
                click.echo(f"formatted {result.path}", err=True)
    if failed:
        sys.exit(EXIT_INPUT_ERROR)


def _uses_in_files(trigger: str, paths: list[str], fmt: str) -> None:
    """`uses --path`: the same listing, read from source files (with file:line instead of version)."""
    from whenthen.tools.graph import program_rules, program_triggers, uses_of_trigger

    try:
        found = [vars(u) for u in uses_of_trigger(program_rules(paths), trigger)]
        if not found and trigger not in (known := program_triggers(paths)):
            raise UnknownName("trigger", trigger, known, where=f" in {', '.join(paths)}")
    except UnknownName as exc:
        fail(str(exc), EXIT_INPUT_ERROR)
    except CompileError as exc:
        print_diagnostics(exc.diagnostics)
        sys.exit(EXIT_INPUT_ERROR)
    except WhenthenError as exc:
        fail(str(exc))
    if fmt == "json":
        _print_json(found)
        return
    if not found:
        click.echo(f"no rule uses {trigger}")
        return
    _table([[u["how"], u["rule"], f"{u['file']}:{u['line']}"] for u in found], ["HOW", "RULE", "WHERE"])


@main.command()
@click.argument("target", metavar="RULE-OR-PATH")
@click.option("--rule", "rule", default=None, help="With a path: draw this rule's flow.")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True)
@click.pass_obj
def graph(obj: Context, target: str, rule: str | None, fmt: str) -> None:
    """Draw a rule's flow, or how the rules of a folder chain through triggers.

    RULE-OR-PATH: a file or folder (one rule: its flow; several: the chain), or a rule name
    looked up in ./*.rules, then among the published rules of --db.
    """
    from whenthen.tools.graph import GraphInputError, graph_for, to_dot, to_mermaid

    try:
        drawn = graph_for(target, obj.db, rule)
    except CompileError as exc:
        print_diagnostics(exc.diagnostics)
        sys.exit(EXIT_INPUT_ERROR)
    except GraphInputError as exc:
        fail(str(exc), EXIT_INPUT_ERROR)
    except WhenthenError as exc:
        fail(str(exc))
    click.echo(to_dot(drawn) if fmt == "dot" else to_mermaid(drawn), nl=False)


# ----------------------------------------------------------------------------- the database


@main.group("db")
def db_group() -> None:
    """The database itself: upgrade its schema, copy it to another database."""


@db_group.command("upgrade")
@click.pass_obj
def db_upgrade(obj: Context) -> None:
    """Bring --db to this whenthen's schema version, in one transaction."""
    from whenthen.runtime.store import is_url, open_store
    from whenthen.runtime.store.schema import SCHEMA_VERSION

    if not is_url(obj.db) and not Path(obj.db).is_file():
        fail(f"no database at {obj.db}")
    try:
        store = open_store(obj.db)  # opening for writing upgrades, all or nothing
    except WhenthenError as exc:
        fail(str(exc))
    before = store.upgraded_from
    store.close()
    if before is None:
        click.echo(f"{obj.db}: schema version {SCHEMA_VERSION}, nothing to upgrade")
    elif before == 0:  # an empty file: it had no schema yet
        click.echo(f"{obj.db}: created at schema version {SCHEMA_VERSION}")
    else:
        click.echo(f"{obj.db}: upgraded from schema version {before} to {SCHEMA_VERSION}")


@db_group.command("copy")
@click.argument("source", metavar="FROM")
@click.argument("target", metavar="TO")
def db_copy(source: str, target: str) -> None:
    """Copy a whole database (paths or postgresql:// URLs) into an empty one."""
    from whenthen.runtime.store.transfer import copy_database

    try:
        counts = copy_database(source, target)
    except WhenthenError as exc:
        fail(str(exc))
    click.echo(f"copied {source} to {target}: {counts['rules']} rule(s), {counts['versions']} version(s), "
               f"{counts['runs']} run(s) ({counts['waiting']} waiting), {counts['events']} event(s), "
               f"{counts['steps']} step(s), {counts['outbox']} outbox message(s), "
               f"{counts['schedules']} schedule(s)")


@main.command()
@click.argument("folder", default=".", type=click.Path(file_okay=False))
def init(folder: str) -> None:
    """Write a starter project into FOLDER (default: here): a schema, a rule, events, settings."""
    from whenthen.tools.starter import create_project

    try:
        written = create_project(Path(folder))
    except WhenthenError as exc:
        fail(str(exc))
    for path in written:
        click.echo(f"  created {path}")
    into = "" if folder == "." else f"cd {folder} && "
    click.echo(f"Next: {into}whenthen check . && whenthen simulate . --events events.jsonl "
               "(README.md in the folder has the rest)")


@main.command()
def lsp() -> None:
    """Run the language server on stdin/stdout (for editors)."""
    from whenthen.tools.lsp import serve

    serve()
