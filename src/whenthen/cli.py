"""The `whenthen` command line: a thin click group; every command calls the Python API.

Exit status (SPEC 3): 0 success, 1 the input has errors (diagnostics, rejected events), 2 usage
or I/O error. A user error never prints a Python traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from whenthen.diagnostics import CompileError, Diagnostic, WhenthenError

EXIT_INPUT_ERROR = 1
EXIT_USAGE_ERROR = 2


class Context:
    """What the group's global options give every command."""

    def __init__(self, db: str, now: str | None):
        self.db = db
        self.now = now


def fail(message: str, status: int = EXIT_USAGE_ERROR) -> None:
    """Print `error: message` on stderr and exit with `status` (no traceback)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(status)


def print_diagnostics(diagnostics: list[Diagnostic], fmt: str = "text") -> None:
    """Diagnostics as text with carets (stderr), or as a JSON array (stdout)."""
    if fmt == "json":
        click.echo(json.dumps([d.to_json() for d in diagnostics], indent=2))
        return
    texts: dict[str, str | None] = {}
    for d in diagnostics:
        if d.file not in texts:
            try:
                texts[d.file] = Path(d.file).read_text(encoding="utf-8")
            except OSError:
                texts[d.file] = None
        click.echo(d.render(texts[d.file]), err=True)
    errors = sum(d.is_error for d in diagnostics)
    warnings = len(diagnostics) - errors
    if diagnostics:
        click.echo(f"{errors} error(s), {warnings} warning(s)", err=True)


@click.group()
@click.option("--db", envvar="WHENTHEN_DB", default="whenthen.db", show_default=True,
              help="SQLite database (or $WHENTHEN_DB).")
@click.option("--now", envvar="WHENTHEN_NOW", default=None,
              help="Fix the clock for this command (ISO 8601 datetime, or $WHENTHEN_NOW).")
@click.version_option(package_name="whenthen")
@click.pass_context
def main(ctx: click.Context, db: str, now: str | None) -> None:
    """whenthen: rules for event automation."""
    ctx.obj = Context(db=db, now=now)


# ----------------------------------------------------------------------------- check / disasm


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def check(paths: tuple[str, ...], fmt: str) -> None:
    """Check files or folders of *.rules; print diagnostics."""
    from whenthen.api import check as check_api

    try:
        diagnostics = check_api(list(paths))
    except WhenthenError as exc:
        fail(str(exc))
    print_diagnostics(diagnostics, fmt)
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
    except WhenthenError as exc:
        fail(str(exc))


@main.command()
@click.argument("paths", nargs=-1)
@click.pass_obj
def repl(obj: Context, paths: tuple[str, ...]) -> None:
    """The interactive console: evaluate conditions against events, emit, advance a simulated clock."""
    from whenthen.repl.app import run_repl
    from whenthen.runtime.clock import parse_datetime

    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        fail(f"no such file or folder: {', '.join(missing)}")
    try:
        now = parse_datetime(obj.now) if obj.now else None
    except ValueError as exc:
        fail(f"--now: {exc}")
    sys.exit(run_repl(list(paths), now=now))
