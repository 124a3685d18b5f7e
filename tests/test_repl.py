"""The REPL: scripted sessions over a real pipe, the prompt-toolkit app driven through a pipe input,
the pygments lexer and the completer."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from pygments.token import Error, Keyword, Name, Number, Operator, Punctuation, String

from _models import GUEST_ADDED
from whenthen.repl.app import HISTORY_ENV, build_prompt_session, make_history, run_interactive, status_line
from whenthen.repl.completion import WhenthenCompleter
from whenthen.repl.lexer import ReplLexer, WhenthenLexer
from whenthen.repl.session import ReplSession, is_complete

NOW = dt.datetime(2026, 11, 23, 9, tzinfo=dt.UTC)
ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

SCHEMA = "\n" + GUEST_ADDED + """\
trigger email.opened { guest_id: str, campaign: str }
action set_status(guest_id: str, status: str)
"""

RULES = """
rule "VIP welcome"
when guest.added
where category = 'VIP'
then
  log(message: "Welcome {first_name}!")
  wait 24h
  set_status(guest_id: id, status: 'welcomed')
end
"""

JANE = (
    '{"id": "g1", "first_name": "Jane", "email": "jane@x.io", "category": "VIP", "tags": ["a"], '
    '"registered_at": "2026-11-23T08:00:00Z", "address": {"city": "Paris"}}'
)


@pytest.fixture(autouse=True)
def no_history(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never write to the user's history file."""
    monkeypatch.setenv(HISTORY_ENV, "")


@pytest.fixture()
def program(tmp_path: Path) -> list[str]:
    (tmp_path / "schema.rules").write_text(SCHEMA)
    (tmp_path / "vip.rules").write_text(RULES)
    return [str(tmp_path / "schema.rules"), str(tmp_path / "vip.rules")]


def tokens(lexer, text: str) -> list[tuple[object, str]]:
    return [(tok, val) for tok, val in lexer.get_tokens(text) if val.strip()]


# ----------------------------------------------------------------------------- lexer


def test_lexer_highlights_every_kind_of_token_in_the_examples() -> None:
    for path in EXAMPLES.glob("*.rules"):
        toks = list(WhenthenLexer().get_tokens(path.read_text()))
        assert [v for t, v in toks if t is Error] == [], path
        assert "".join(v for _, v in toks) == path.read_text()


def test_lexer_token_kinds() -> None:
    toks = tokens(WhenthenLexer(), "when guest.added where age >= 18 and company is not null "
                                   "then wait 1h30m; send_email(to: email, subject: \"Hi {first_name}\")")
    assert (Keyword, "when") in toks
    assert (Name.Class, "guest.added") in toks
    assert (Operator.Word, "and") in toks
    assert (Keyword.Constant, "null") in toks
    assert (Number.Other, "1h30m") in toks
    assert (Number.Integer, "18") in toks
    assert (Name.Function, "send_email") in toks
    assert (Name.Variable, "to") in toks  # an argument name
    assert (String.Interpol, "{") in toks
    assert (Name, "first_name") in toks


def test_lexer_keywords_are_names_after_a_dot_and_literals_keep_their_shape() -> None:
    toks = tokens(WhenthenLexer(), "x.at = 2026-12-01T09:00:00+01:00 and d = 2026-12-01 and s = 'it\\'s'")
    assert (Name.Attribute, "at") in toks
    assert (Number.Other, "2026-12-01T09:00:00+01:00") in toks
    assert (Number.Other, "2026-12-01") in toks
    assert (String.Escape, "\\'") in toks
    assert (Operator.Word, "andy") not in toks


def test_repl_lexer_marks_commands() -> None:
    toks = tokens(ReplLexer(), ":event @payload.json")
    assert toks[0] == (Keyword.Pseudo, ":event")
    assert toks[1] == (String.Other, "@payload.json")
    assert tokens(ReplLexer(), ':emit guest.added {"id": 1}')[:3] == [
        (Keyword.Pseudo, ":emit"), (Name.Class, "guest.added"), (Punctuation, "{")]


def test_lexer_is_registered_with_pygments() -> None:
    from pygments.lexers import get_lexer_by_name, get_lexer_for_filename

    assert isinstance(get_lexer_for_filename("vip.rules"), WhenthenLexer)
    assert isinstance(get_lexer_by_name("whenthen"), WhenthenLexer)


# ----------------------------------------------------------------------------- input completeness


@pytest.mark.parametrize(
    ("text", "complete"),
    [
        ("1 + 2", True),
        ("len(tags", False),
        ("len(tags\n\n", True),  # a blank line gives up, so the error shows
        ("when guest.added then log(message: 'x')", True),
        ("when guest.added where x = 1\n", False),
        ("rule \"A\"\nwhen guest.added\nthen\n  if x then\n    f()\n  end\n", False),
        ("rule \"A\"\nwhen guest.added\nthen\n  if x then\n    f()\n  end\nend\n", True),
        ("when guest.added\nthen f()\n\n", True),
        ("trigger a.b {\n  x: str\n", False),
        ("trigger a.b {\n  x: str\n}\n", True),
        (":emit guest.added {", True),
    ],
)
def test_is_complete(text: str, complete: bool) -> None:
    assert is_complete(text) is complete


# ----------------------------------------------------------------------------- completion


@pytest.fixture()
def session(program: list[str]) -> ReplSession:
    out: list[str] = []
    err: list[str] = []
    repl = ReplSession(now=NOW, out=out.append, err=err.append)
    assert repl.load(program), err
    repl.outputs, repl.errors = out, err  # type: ignore[attr-defined]
    return repl


def complete(session: ReplSession, text: str) -> dict[str, str]:
    completer = WhenthenCompleter(lambda: session.schema, lambda: session.trigger)
    found = completer.get_completions(Document(text), CompleteEvent(completion_requested=True))
    return {c.text: c.display_meta_text for c in found}


def test_completes_commands_triggers_fields_functions_and_actions(session: ReplSession) -> None:
    assert ":trigger" in complete(session, ":tr")
    assert complete(session, ":trigger guest.a") == {"guest.added": "trigger"}
    assert "email.opened" in complete(session, ":emit em")
    assert complete(session, ":schema set_")["set_status"] == "set_status(guest_id: str, status: str)"
    session.handle(":trigger guest.added")
    fields = complete(session, "ca")
    assert fields["category"] == "'VIP' | 'Visitor' | 'Press'"
    assert complete(session, "co")["company"] == "str?"
    assert complete(session, "address.c") == {"address.city": "str"}
    assert complete(session, "guest.address.z") == {"guest.address.zip": "str?"}
    assert complete(session, "up")["upper"] == "upper(s: str) -> str"
    assert complete(session, "set_")["set_status"] == "set_status(guest_id: str, status: str)"
    assert complete(session, "send_e")["send_email"].endswith("-> { message_id: str }")
    assert complete(session, "wi") == {"with": "keyword", "within": "keyword"}
    assert "guest.added" in complete(session, "guest.ad")


# ----------------------------------------------------------------------------- the prompt-toolkit app


def drive(session: ReplSession, keys: list[str | tuple[str, str]], history=None) -> PromptSession:
    """Run the interactive loop on a pipe input, typing `keys` one chunk at a time; a chunk given
    as (keys, text) waits until the input line reads `text` (completion runs in a thread)."""
    with create_pipe_input() as pipe:
        prompt = build_prompt_session(session, input=pipe, output=DummyOutput(),
                                      history=history or InMemoryHistory())

        def type_keys() -> None:
            for chunk in keys:
                chunk, expected = chunk if isinstance(chunk, tuple) else (chunk, None)
                time.sleep(0.05)
                pipe.send_text(chunk)
                deadline = time.monotonic() + 10
                while expected is not None and prompt.default_buffer.text != expected:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"the input never read {expected!r}")
                    time.sleep(0.02)

        typist = threading.Thread(target=type_keys, daemon=True)
        typist.start()
        run_interactive(session, prompt)
        typist.join()
    return prompt


def test_interactive_evaluates_and_completes_with_tab(session: ReplSession) -> None:
    drive(session, [(":trigger guest.a", ":trigger guest.a"), ("\t", ":trigger guest.added"), "\r",
                    f":event {JANE}\r", ("first_na", "first_na"), ("\t", "first_name"), "\r", "\x04"])
    assert session.trigger == "guest.added"
    assert "'Jane' : str" in session.outputs  # type: ignore[attr-defined]
    assert status_line(session) == " guest.added | event set | clock 2026-11-23T09:00:00Z | :help"


def test_interactive_multi_line_rule_and_quit(session: ReplSession) -> None:
    drive(session, [("(1 +", "(1 +"), "\x03",  # Ctrl-C drops the unfinished input
                    "when email.opened\r", "then log(message: campaign)\r", "\r", "len(['a'])\r", ":quit\r"])
    assert session.errors == []  # type: ignore[attr-defined]
    assert any(line.startswith("defined rule 'repl-1:1'") for line in session.outputs)  # type: ignore
    assert "1 : int" in session.outputs  # type: ignore[attr-defined]


def test_interactive_prompt_highlights_with_the_lexer(session: ReplSession) -> None:
    prompt = build_prompt_session(session, input=None, output=DummyOutput(), history=InMemoryHistory())
    line = prompt.lexer.lex_document(Document("when guest.added where age > 18"))(0)
    styles = dict((text, style) for style, text in line)
    assert "keyword" in styles["when"]
    assert "name.class" in styles["guest.added"]
    assert "number" in styles["18"]


def test_history_file_is_used_and_can_be_disabled(tmp_path: Path, monkeypatch, session) -> None:
    path = tmp_path / "sub" / "history"
    monkeypatch.setenv(HISTORY_ENV, str(path))
    history = make_history()
    assert isinstance(history, FileHistory)
    drive(session, ["1 + 1\r", "\x04"], history=history)
    assert "1 + 1" in path.read_text()
    monkeypatch.setenv(HISTORY_ENV, "")
    assert isinstance(make_history(), InMemoryHistory)


# ----------------------------------------------------------------------------- scripted, over a real pipe


def repl(paths: list[str], script: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WHENTHEN_HISTORY": ""}
    return subprocess.run(
        [sys.executable, "-m", "whenthen", "--now", "2026-11-23T09:00:00Z", "repl", *paths],
        input=script, capture_output=True, text=True, env=env, timeout=60, cwd=cwd,
    )


def test_script_evaluates_expressions_and_breaks_down_conditions(program: list[str]) -> None:
    done = repl(program, f"""
:trigger guest.added
:event {JANE}
first_name
category = 'VIP' and first_name = 'John'
age > 18
address.city
address
guest.id = "g1"
""")
    assert done.stderr == ""
    assert done.returncode == 0
    assert done.stdout == (
        "'Jane' : str\n"
        "false : bool\n"
        "category = 'VIP' and first_name = 'John'  false\n"
        "  category = 'VIP'                        true   (category is 'VIP')\n"
        "  first_name = 'John'                     false  (first_name is 'Jane')\n"
        "false : bool\n"
        "age > 18  false  (age is null)\n"
        "'Paris' : str\n"
        "{ city: 'Paris', zip: null } : { city: str, zip: str? }\n"
        "true : bool\n"
        "guest.id = \"g1\"  true  (guest.id is 'g1')\n"
    )


def test_script_errors_are_diagnostics_and_the_session_goes_on(program: list[str]) -> None:
    Path(program[0]).with_name("bad.rules").write_text("when guest.added where x = frist_name then stop\n")
    done = repl(program, """
:trigger guest.added
frist_name = 'x'
:event {"id": 1}
:nope
:trigger guest.addde
:load nowhere.rules
:advance 'soon'
len(

:load bad.rules
when guest.added where nope = 1 then log(message: 'x')
:rules
1 + 1
""", cwd=Path(program[0]).parent)
    assert done.returncode == 1  # a script learns that something failed
    assert "Traceback" not in done.stderr
    err = done.stderr
    assert "input:1:1: error[E102]: unknown field 'frist_name' on guest.added; did you mean 'first_name'?" in err
    assert "   1 | frist_name = 'x'\n       ^^^^^^^^^^" in err
    assert "field 'id'" in err
    assert "unknown command :nope" in err
    assert "did you mean 'guest.added'?" in err
    assert "no such file or folder: nowhere.rules" in err
    assert ":advance needs a positive duration" in err
    assert "E001" in err  # `len(` is finished by the blank line and reported
    assert "bad.rules:1:28: error[E102]" in err and "   1 | when guest.added where x = frist_name" in err
    assert "input:1:24: error[E102]" not in err  # typed definitions are named repl-N
    assert "repl-1:1:24: error[E102]: unknown field 'nope'" in err
    # neither the bad file nor the bad definition replaced the program
    assert done.stdout.splitlines()[0].startswith("VIP welcome  guest.added")
    assert done.stdout.splitlines()[1:] == ["2 : int"]


def test_script_emit_advance_and_runs(program: list[str]) -> None:
    done = repl(program, f"""
:emit guest.added {JANE}
:runs
:advance 1d
:runs
:emit email.opened {{"guest_id": "g1", "campaign": "c"}}
""")
    assert done.stderr == ""
    assert done.stdout.splitlines() == [
        "2026-11-23T09:00:00Z  VIP welcome #1  log(message: 'Welcome Jane!')",
        "2026-11-23T09:00:00Z  VIP welcome #1  waiting until 2026-11-24T09:00:00Z",
        "#1  VIP welcome  v1  waiting until 2026-11-24T09:00:00Z",
        "2026-11-24T09:00:00Z  VIP welcome #1  set_status(guest_id: 'g1', status: 'welcomed')",
        "2026-11-24T09:00:00Z  VIP welcome #1  completed",
        "now 2026-11-24T09:00:00Z",
        "#1  VIP welcome  v1  completed",
        "2026-11-24T09:00:00Z  email.opened: no rule started",
    ]


def test_script_host_actions_give_results(program: list[str], tmp_path: Path) -> None:
    (tmp_path / "host.py").write_text("def score_lead(email: str) -> int:\n    return len(email)\n")
    (tmp_path / "score.rules").write_text(
        "when email.opened then let s = score_lead(email: guest_id); log(message: 'score {s}')\n"
        .replace("'score {s}'", '"score {s}"'))
    env = {**os.environ, "WHENTHEN_HISTORY": ""}
    done = subprocess.run(
        [sys.executable, "-m", "whenthen", "--now", "2026-11-23T09:00:00Z", "repl", "--actions",
         str(tmp_path / "host.py"), *program, str(tmp_path / "score.rules")],
        input=':schema score_lead\n:emit email.opened {"guest_id": "abc", "campaign": "c"}\n',
        capture_output=True, text=True, env=env, timeout=60)
    assert done.stderr == ""
    assert done.stdout.splitlines() == [
        "action score_lead(email: str) -> int",
        "2026-11-23T09:00:00Z  score:1 #1  score_lead(email: 'abc')",
        "2026-11-23T09:00:00Z  score:1 #1  log(message: 'score 3')",
        "2026-11-23T09:00:00Z  score:1 #1  completed",
    ]


def test_script_rules_schema_help_load_definitions_and_quit(program: list[str], tmp_path: Path) -> None:
    (tmp_path / "more.rules").write_text(
        "trigger shop.order { total: float, lines: list[str] }\n"
        "rule \"Big order\" when shop.order where total > 100 then log(message: 'big')\n"
    )
    (tmp_path / "order.json").write_text('{"total": 120, "lines": ["a", "b"]}')
    done = repl(program, """
:rules
:schema guest.added
:help
:load more.rules
:event shop.order @order.json
total > 100 and len(lines) = 2
trigger shop.refund {
  order_id: str
}
when shop.refund
then
  log(message: order_id)

:rules
:schema shop.refund
:quit
1 + 1
""", cwd=tmp_path)
    assert done.stderr == ""
    out = done.stdout
    assert f"VIP welcome  guest.added  {program[1]}:2\n" in out
    assert "trigger guest.added {\n  id: str\n" in out
    assert "  address: {\n    city: str\n    zip: str?\n  }\n}" in out
    assert ":advance DURATION" in out
    assert "true : bool\ntotal > 100 and len(lines) = 2  true" in out
    assert "  len(lines) = 2                true  (len(lines) is 2)" in out
    assert "Big order" in out and "repl-2:1" in out
    assert "trigger shop.refund {\n  order_id: str\n}" in out
    assert "2 : int" not in out  # nothing runs after :quit


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    done = repl([str(tmp_path / "nope.rules")], "1\n")
    assert done.returncode == 2
    assert "no such file or folder" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_real_terminal_under_tmux(program: list[str]) -> None:
    """The terminal path end to end: banner, prompt with the trigger, Tab completion."""
    name = f"whenthen-test-{os.getpid()}"
    command = (f"env WHENTHEN_HISTORY= {sys.executable} -m whenthen --now 2026-11-23T09:00:00Z "
               f"repl {' '.join(program)}")

    def tmux(*args: str) -> str:
        return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=10).stdout

    def screen_after(*keys: str, wait_for: str) -> str:
        if keys:
            tmux("send-keys", "-t", name, *keys)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = tmux("capture-pane", "-p", "-t", name)
            if wait_for in text:
                return text
            time.sleep(0.1)
        raise AssertionError(f"{wait_for!r} never appeared on the screen:\n{text}")

    tmux("new-session", "-d", "-s", name, "-x", "120", "-y", "30", command)
    try:
        screen_after(wait_for="whenthen>")
        screen_after(":trigger guest.add", wait_for="guest.added  trigger")  # the completion menu
        screen_after("Tab", wait_for=":trigger guest.added")
        screen_after("Enter", wait_for="guest.added>")
        screen_after(f":event {JANE}", "Enter", wait_for="event guest.added set")
        screen_after("first_na", wait_for="first_name  str")
        screen_after("Tab", wait_for="> first_name")
        text = screen_after("Enter", wait_for="'Jane' : str")
        assert "guest.added> first_name" in text
    finally:
        tmux("kill-session", "-t", name)


def test_unreadable_files_and_internal_errors_do_not_end_the_session(tmp_path: Path, monkeypatch) -> None:
    out: list[str] = []
    err: list[str] = []
    repl = ReplSession(now=NOW, out=out.append, err=err.append)
    (tmp_path / "binary.rules").write_bytes(b"\xff\xfe")
    assert repl.load([str(tmp_path / "binary.rules")]) is False
    assert "not UTF-8" in err[-1]

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("whenthen.repl.session.prepare_expression", broken)
    assert repl.handle("1 + 1") is True
    assert err[-1] == "error: internal error: RuntimeError: boom (please report it)"
    assert repl.failed


def test_advance_diagnostics_show_their_own_line_and_schema_shows_defaults(program: list[str]) -> None:
    done = repl(program, """
1 +
:advance 2 * soon
:schema send_email
""")
    err = done.stderr
    assert "input:1:5: error[E102]: unknown name 'soon'\n   1 | 2 * soon\n           ^^^^" in err
    assert "1 | 1 +\n           ^^^^" not in err  # not under the previous input's line
    assert "action send_email(to: str, subject: str, body: str = '', template: str? = null)" in done.stdout
    assert "= …" not in done.stdout
