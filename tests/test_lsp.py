"""The language server in a real subprocess, spoken to in JSON-RPC over stdio."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _lspclient import Client, change

SCHEMA = """trigger guest.added {
  id: str
  email: str
  category: 'VIP' | 'Visitor'
  company: { name: str, size: int? }
}
action set_status(guest_id: str, status: str)
"""

RULES = """rule "Welcome"
when guest.added where category = 'VIP'
then
  let form = create_form()
  send_email(to: email, subject: "Hi")
  set_status(guest_id: id, status: 'ok')
  log(message: form)
end
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "schema.rules").write_text(SCHEMA, encoding="utf-8")
    (tmp_path / "welcome.rules").write_text(RULES, encoding="utf-8")
    return tmp_path


@pytest.fixture
def client(project: Path) -> Iterator[Client]:
    client = Client(project)
    result = client.request("initialize", {"processId": None, "rootUri": project.as_uri(), "capabilities": {}})
    caps = result["capabilities"]
    client.legend = caps["semanticTokensProvider"]["legend"]
    assert caps["hoverProvider"] and caps["definitionProvider"] and caps["documentFormattingProvider"]
    assert "." in caps["completionProvider"]["triggerCharacters"]
    client.notify("initialized", {})
    yield client
    client.close()


def open_doc(client: Client, path: Path, text: str | None = None) -> str:
    uri = path.as_uri()
    client.notify("textDocument/didOpen", {"textDocument": {
        "uri": uri, "languageId": "whenthen", "version": 1,
        "text": path.read_text(encoding="utf-8") if text is None else text}})
    return uri


def pos(text: str, needle: str, delta: int = 0) -> dict[str, int]:
    """The LSP position of `needle` (plus `delta` characters) in `text`."""
    offset = text.index(needle) + delta
    line = text.count("\n", 0, offset)
    return {"line": line, "character": offset - (text.rfind("\n", 0, offset) + 1)}


def test_diagnostics_resolve_sibling_declarations_and_follow_edits(client: Client, project: Path) -> None:
    uri = open_doc(client, project / "welcome.rules")
    diagnostics = client.diagnostics(uri)
    # create_form is unknown here (E104); the trigger and set_status come from schema.rules.
    assert [(d["code"], d["range"]["start"]["line"]) for d in diagnostics] == [("E104", 3)]
    assert diagnostics[0]["severity"] == 1 and diagnostics[0]["source"] == "whenthen"

    broken = RULES.replace("category = 'VIP'", "category = 'Gold'")
    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2},
                                             "contentChanges": [{"text": broken}]})
    codes = [d["code"] for d in client.diagnostics(uri)]
    assert "E107" in codes


def test_completion_of_fields_enums_triggers_and_parameters(client: Client, project: Path) -> None:
    uri = open_doc(client, project / "welcome.rules")
    client.diagnostics(uri)

    def labels(text: str, needle: str, delta: int) -> list[str]:
        client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 3},
                                                 "contentChanges": [{"text": text}]})
        result = client.request("textDocument/completion", {"textDocument": {"uri": uri},
                                                            "position": pos(text, needle, delta)})
        return [item["label"] for item in result["items"]]

    members = RULES.replace("  log(message: form)\n", "  log(message: guest.company.)\n")
    assert labels(members, "company.)", 8) == ["name", "size"]
    enums = RULES.replace("category = 'VIP'", "category = ")
    assert labels(enums, "category = ", 11) == ["'VIP'", "'Visitor'"]
    trigger = RULES.replace("when guest.added", "when gu")
    assert "guest.added" in labels(trigger, "when gu", 7)
    params = RULES.replace("set_status(guest_id: id, status: 'ok')", "set_status(guest_id: id, ")
    found = labels(params, "guest_id: id, ", 14)
    assert found[0] == "status:" and "guest_id:" not in found and "email" in found
    emitted = RULES.replace("  log(message: form)\n", "  emit guest.added(id: 'x', \n")
    found = labels(emitted, "guest.added(id: 'x', ", 21)
    assert found[:3] == ["email:", "category:", "company:"] and "id:" not in found  # the trigger's fields
    template = RULES.replace('subject: "Hi"', 'subject: "Hi {guest.compa')
    assert "company" in labels(template, "{guest.compa", 12)  # inside a template's {…}
    assert labels(RULES, '"Hi', 2) == []  # inside a string: nothing to offer
    body = labels(RULES, "  send_email", 2)
    assert {"email", "category", "form", "send_email", "set_status", "lower", "wait"} <= set(body)


def test_hover_shows_types_declarations_and_stdlib_docs(client: Client, project: Path) -> None:
    uri = open_doc(client, project / "welcome.rules")
    client.diagnostics(uri)

    def hover(needle: str, delta: int = 1) -> str:
        result = client.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": pos(RULES, needle, delta)})
        return result["contents"]["value"]

    assert "field category: 'VIP' | 'Visitor'" in hover("category =")
    assert "trigger guest.added {" in hover("guest.added", 2)
    assert "action send_email(to: str" in hover("send_email") and "email" in hover("send_email")
    assert "action set_status(guest_id: str, status: str)" in hover("set_status")


def test_definition_of_trigger_action_and_let(client: Client, project: Path) -> None:
    uri = open_doc(client, project / "welcome.rules")
    client.diagnostics(uri)

    def define(needle: str, delta: int = 1) -> dict[str, Any]:
        return client.request("textDocument/definition", {"textDocument": {"uri": uri},
                                                          "position": pos(RULES, needle, delta)})

    trigger = define("guest.added", 2)
    assert trigger["uri"] == (project / "schema.rules").as_uri()
    assert trigger["range"]["start"] == {"line": 0, "character": 8}
    action = define("set_status")
    assert action["uri"] == (project / "schema.rules").as_uri() and action["range"]["start"]["line"] == 6
    let = define("log(message: form", 14)
    assert let["uri"] == uri and let["range"]["start"] == {"line": 3, "character": 6}


def test_document_symbols_outline_rules_and_declarations(client: Client, project: Path) -> None:
    uri = open_doc(client, project / "schema.rules")
    client.diagnostics(uri)
    symbols = client.request("textDocument/documentSymbol", {"textDocument": {"uri": uri}})
    assert [(s["name"], s["detail"]) for s in symbols] == [
        ("guest.added", "4 field(s)"), ("set_status", "set_status(guest_id: str, status: str)")]
    rules_uri = open_doc(client, project / "welcome.rules")
    client.diagnostics(rules_uri)
    (rule,) = client.request("textDocument/documentSymbol", {"textDocument": {"uri": rules_uri}})
    assert rule["name"] == "Welcome" and rule["detail"] == "when guest.added"
    assert rule["selectionRange"]["start"] == {"line": 0, "character": 5}


def test_formatting_returns_the_formatted_document(client: Client, project: Path) -> None:
    messy = project / "messy.rules"
    messy.write_text("when guest.added then log(message: 'x')   # note\n", encoding="utf-8")
    uri = open_doc(client, messy)
    client.diagnostics(uri)
    edits = client.request("textDocument/formatting", {"textDocument": {"uri": uri},
                                                       "options": {"tabSize": 2, "insertSpaces": True}})
    assert len(edits) == 1
    assert edits[0]["newText"] == "when guest.added\nthen\n  log(message: 'x')  # note\nend\n"
    assert edits[0]["range"]["start"] == {"line": 0, "character": 0}


def test_a_trigger_change_rediagnoses_its_users_and_a_burst_settles_on_the_last_version(
        client: Client, project: Path) -> None:
    schema_uri, uri = open_doc(client, project / "schema.rules"), open_doc(client, project / "welcome.rules")
    assert [d["code"] for d in client.diagnostics(uri, 1)] == ["E104"]
    client.diagnostics(schema_uri, 1)
    # the declaration changes in the open schema: the rule using the field is checked again
    at = SCHEMA.index("email: str") + len("email: ")
    schema, _ = change(client, schema_uri, 2, SCHEMA, at, 3, "int")
    codes = [d["code"] for d in client.diagnostics(uri, where=lambda ds: len(ds) > 1)]
    assert "E103" in codes and "E104" in codes
    change(client, schema_uri, 3, schema, at, 3, "str")
    assert [d["code"] for d in client.diagnostics(uri, where=lambda ds: len(ds) == 1)] == ["E104"]
    # a burst of keys: the diagnostics of the last version say what the last text says
    text, at = RULES, RULES.index("'VIP'") + 1
    for version, key in enumerate("Gold", start=2):
        text, _ = change(client, uri, version, text, at, 0, key)
        at += 1
    assert "GoldVIP" in text
    assert [d["code"] for d in client.diagnostics(uri, 5)] == ["E107", "E104"]


def test_a_closed_sibling_declaring_the_action_is_read_from_disk(client: Client, project: Path) -> None:
    uri = open_doc(client, project / "welcome.rules")
    assert [d["code"] for d in client.diagnostics(uri, 1)] == ["E104"]
    (project / "more.rules").write_text("action create_form() -> str\n", encoding="utf-8")
    client.notify("textDocument/didSave", {"textDocument": {"uri": uri}})
    assert client.diagnostics(uri, where=lambda ds: not ds) == []


def test_locale_hover_and_completion_enum_after_a_quote_and_stdlib_signatures(client: Client, project: Path) -> None:
    text = 'locale "fr_FR"\n' + RULES.replace('subject: "Hi"', 'subject: format_date(d: now())')
    (project / "welcome.rules").write_text(text, encoding="utf-8")
    uri = open_doc(client, project / "welcome.rules")
    client.diagnostics(uri, 1)
    shown = client.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": pos(text, "fr_FR")})
    value = shown["contents"]["value"]
    assert 'locale "fr_FR"' in value and "French (France)" in value and "mardi 1 décembre 2026" in value
    signature = client.request("textDocument/hover", {"textDocument": {"uri": uri},
                                                       "position": pos(text, "format_date", 2)})["contents"]["value"]
    assert "format_date(d: date | datetime, pattern: str = 'medium', locale: str = the file's locale) -> str" in signature
    assert "any" not in signature.split("```")[1]

    def labels(changed: str, needle: str, delta: int, version: int) -> list[dict[str, Any]]:
        client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                                 "contentChanges": [{"text": changed}]})
        result = client.request("textDocument/completion", {"textDocument": {"uri": uri},
                                                            "position": pos(changed, needle, delta)})
        return result["items"]

    quoted = text.replace("category = 'VIP'", "category = 'V")
    items = labels(quoted, "category = 'V", 12, 2)
    assert [(i["label"], i["insertText"]) for i in items] == [("'VIP'", "VIP'"), ("'Visitor'", "Visitor'")]
    assert labels(text.replace("category = 'VIP'", "category = 'VIP' and email = 'x"), "email = 'x", 10, 3) == []
    locales = labels(text.replace('locale "fr_FR"', 'locale "nl_'), 'locale "nl_', 11, 4)
    assert ("nl_NL", "Dutch (Netherlands)") in [(i["label"], i.get("detail")) for i in locales]
    assert all(i["label"].startswith("nl_") for i in locales)


def test_references_and_rename_of_a_let_and_of_a_trigger_across_files(client: Client, project: Path) -> None:
    uri, schema_uri = open_doc(client, project / "welcome.rules"), (project / "schema.rules").as_uri()
    client.diagnostics(uri, 1)
    at = {"textDocument": {"uri": uri}}

    def where(locations: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
        return [(loc["uri"].rsplit("/", 1)[1], loc["range"]["start"]["line"], loc["range"]["start"]["character"])
                for loc in locations]

    refs = client.request("textDocument/references", {**at, "position": pos(RULES, "message: form", 10),
                                                       "context": {"includeDeclaration": True}})
    assert where(refs) == [("welcome.rules", 3, 6), ("welcome.rules", 6, 15)]
    refs = client.request("textDocument/references", {**at, "position": pos(RULES, "guest.added", 2),
                                                       "context": {"includeDeclaration": False}})
    assert where(refs) == [("welcome.rules", 1, 5)]
    refs = client.request("textDocument/references", {**at, "position": pos(RULES, "guest.added", 2),
                                                       "context": {"includeDeclaration": True}})
    assert where(refs) == [("schema.rules", 0, 8), ("welcome.rules", 1, 5)]

    edit = client.request("textDocument/rename", {**at, "position": pos(RULES, "let form", 5), "newName": "page"})
    assert [(e["range"]["start"], e["newText"]) for e in edit["changes"][uri]] == [
        ({"line": 3, "character": 6}, "page"), ({"line": 6, "character": 15}, "page")]
    edit = client.request("textDocument/rename", {**at, "position": pos(RULES, "guest.added", 2), "newName": "guest.joined"})
    assert set(edit["changes"]) == {uri, schema_uri}
    assert [e["newText"] for e in edit["changes"][schema_uri]] == ["guest.joined"]
    with pytest.raises(AssertionError, match="not a valid let name"):
        client.request("textDocument/rename", {**at, "position": pos(RULES, "let form", 5), "newName": "a b"})
    aliased = RULES.replace("to: email", "to: guest.email")
    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": aliased}]})
    client.diagnostics(uri, 2)
    with pytest.raises(AssertionError, match="alias `guest`"):
        client.request("textDocument/rename", {**at, "position": pos(aliased, "guest.added", 2), "newName": "visitor.added"})


def test_signature_help_in_action_and_function_calls_and_emit(client: Client, project: Path) -> None:
    uri = open_doc(client, project / "welcome.rules")
    client.diagnostics(uri, 1)
    text = RULES.replace("  log(message: form)\n", "  log(message: format_date(d: now(), \n  emit guest.added(id: 'x', \n")
    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": text}]})

    def helped(needle: str, delta: int) -> tuple[str, list[str], int | None]:
        found = client.request("textDocument/signatureHelp", {"textDocument": {"uri": uri},
                                                              "position": pos(text, needle, delta)})
        (sig,) = found["signatures"]
        label = sig["label"]
        return label, [label[a:b] for a, b in (p["label"] for p in sig["parameters"])], found.get("activeParameter")

    label, params, active = helped("send_email(to: email, ", 22)
    assert label.startswith("action send_email(to: str, subject: str") and params[:2] == ["to: str", "subject: str"]
    assert active == 1
    label, params, active = helped("set_status(", 11)
    assert params == ["guest_id: str", "status: str"] and active == 0
    label, params, active = helped("format_date(d: now(), ", 22)
    assert params == ["d: date | datetime", "pattern: str = 'medium'", "locale: str = the file's locale"] and active == 1
    label, params, active = helped("emit guest.added(id: 'x', ", 26)
    assert label.startswith("emit guest.added(id: str, email: str") and active == 1
    assert client.request("textDocument/signatureHelp", {"textDocument": {"uri": uri},
                                                         "position": pos(text, "when guest", 2)}) is None


def test_quick_fixes_for_did_you_mean_hints_and_else_if(client: Client, project: Path) -> None:
    def fixes(name: str, text: str) -> dict[str, tuple[str, str]]:
        (project / name).write_text(text, encoding="utf-8")
        uri = open_doc(client, project / name)
        diagnostics = client.diagnostics(uri, 1)
        found = client.request("textDocument/codeAction", {
            "textDocument": {"uri": uri}, "range": {"start": {"line": 0, "character": 0}, "end": {"line": 20, "character": 0}},
            "context": {"diagnostics": diagnostics}})
        applied = {}
        for fix in found:
            assert fix["kind"] == "quickfix"
            (edit,) = fix["edit"]["changes"][uri]
            start, end = edit["range"]["start"], edit["range"]["end"]
            applied[fix["title"]] = (text.splitlines()[start["line"]][start["character"]:end["character"]], edit["newText"])
        return applied

    typos = fixes("typos.rules", RULES.replace("category = 'VIP'", "category = 'VIPs'").replace("to: email", "to: emial")
                  .replace('"Welcome"', '"Typos"'))
    assert typos["Change to 'VIP'"] == ("VIPs", "VIP")
    assert typos["Change to 'email'"] == ("emial", "email")
    nested = "when guest.added then\n  if 1 = 1 then\n    stop\n  else if 2 = 2 then\n    stop\n  end\n"
    assert fixes("nested.rules", nested) == {"Write elif": ("else if", "elif")}


HIGHLIGHTED = """trigger order.placed {
  count: int
  on: str
  times: int
  email: str
}
rule "Bulk" # big orders
when order.placed where count > 10 and on = 'web'
once per email within 1d
then
  let n = count + times
  repeat n times
    send_email(to: email, subject: "Order {order.email} x{len(on)}")
    break
  end
  wait 1h30m
  if email matches '^a' then stop end
end
"""


def _decode(client: Client, uri: str, text: str, data: list[int]) -> dict[tuple[int, str], tuple[str, list[str]]]:
    """The semantic tokens as {(offset, text): (type, modifiers)}, with the legend the server announced."""
    legend = client.legend
    lines = text.split("\n")
    found, line, char = {}, 0, 0
    for i in range(0, len(data), 5):
        delta_line, delta_char, length, type_, bits = data[i:i + 5]
        line, char = line + delta_line, (char + delta_char if delta_line == 0 else delta_char)
        offset = sum(len(x) + 1 for x in lines[:line]) + char
        mods = [m for j, m in enumerate(legend["tokenModifiers"]) if bits & (1 << j)]
        found[(offset, text[offset:offset + length])] = (legend["tokenTypes"][type_], mods)
    return found


def test_semantic_tokens_tell_contextual_keywords_from_fields_of_that_name(client: Client, project: Path) -> None:
    path = project / "orders.rules"
    path.write_text(HIGHLIGHTED, encoding="utf-8")
    uri = open_doc(client, path)
    assert client.diagnostics(uri, 1) == []
    data = client.request("textDocument/semanticTokens/full", {"textDocument": {"uri": uri}})["data"]
    tokens = _decode(client, uri, HIGHLIGHTED, data)

    def kind(needle: str, delta: int = 0, word: str | None = None) -> tuple[str, list[str]]:
        offset = HIGHLIGHTED.index(needle) + delta
        return tokens[(offset, word or re.match(r"\w+", needle[delta:]).group())]

    assert kind("count: int") == ("property", ["declaration"])
    assert kind("count > 10") == ("property", []) and kind("on = 'web'") == ("property", [])
    assert kind("count + times") == ("property", []) and kind("+ times", 2) == ("property", [])
    assert kind("once per") == ("keyword", []) and kind("once per", 5) == ("keyword", [])
    assert kind("repeat n") == ("keyword", []) and kind("n times", 2) == ("keyword", [])
    assert kind("break") == ("keyword", []) and kind("within 1d") == ("keyword", [])
    assert kind("when order") == ("keyword", []) and kind("order.placed where", 0, "order") == ("event", [])
    assert kind("trigger order", 8, "order") == ("event", ["declaration"])
    assert kind("let n", 4) == ("variable", ["declaration"]) and kind("repeat n", 7) == ("variable", [])
    assert kind("send_email") == ("method", ["defaultLibrary"]) and kind("to: email") == ("parameter", [])
    assert kind("to: email", 4) == ("property", [])
    assert kind("len(on)") == ("function", ["defaultLibrary"]) and kind("len(on)", 4, "on") == ("property", [])
    assert kind('"Order ', 0, '"Order ') == ("string", []) and kind("{order.email}", 0, "{") == ("operator", [])
    assert kind("{order.email}", 1, "order") == ("variable", ["readonly"])
    assert kind("{order.email}", 7, "email") == ("property", [])
    assert kind("1h30m") == ("number", ["duration"]) and kind("10 and") == ("number", [])
    assert kind("'web'", 0, "'web'") == ("string", []) and kind("'^a'", 0, "'^a'") == ("regexp", [])
    assert kind("# big orders", 0, "# big orders") == ("comment", [])
    assert kind("int\n  on", 0, "int") == ("type", [])
    assert not any(word in ("order.placed", ".") for _, word in tokens)  # one token per name segment

    window = {"start": {"line": 11, "character": 0}, "end": {"line": 12, "character": 0}}
    ranged = client.request("textDocument/semanticTokens/range", {"textDocument": {"uri": uri}, "range": window})
    inside = _decode(client, uri, HIGHLIGHTED, ranged["data"])
    assert [word for _, word in inside] == ["repeat", "n", "times"]

    typed = HIGHLIGHTED.replace("  break\n", '  log(message: "unfinished\n')  # an unterminated string
    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2},
                                             "contentChanges": [{"text": typed}]})
    data = client.request("textDocument/semanticTokens/full", {"textDocument": {"uri": uri}})["data"]
    tokens = _decode(client, uri, typed, data)
    assert tokens[(typed.index('"unfinished'), '"unfinished')] == ("string", [])
    assert tokens[(typed.index("wait 1h30m"), "wait")] == ("keyword", [])


# ----------------------------------------------------------------------------- the VS Code extension

EDITOR = Path(__file__).resolve().parent.parent / "editors" / "vscode"


def _patterns(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("match", "begin", "end"):
                yield value
            yield from _patterns(value)
    elif isinstance(node, list):
        for item in node:
            yield from _patterns(item)


def test_vscode_extension_files_fit_together() -> None:
    import re

    from whenthen.grammar.postlex import KEYWORDS

    manifest = json.loads((EDITOR / "package.json").read_text(encoding="utf-8"))
    grammar_path = EDITOR / manifest["contributes"]["grammars"][0]["path"]
    grammar = json.loads(grammar_path.read_text(encoding="utf-8"))
    json.loads((EDITOR / manifest["contributes"]["languages"][0]["configuration"]).read_text(encoding="utf-8"))
    assert manifest["contributes"]["languages"][0]["extensions"] == [".rules"]
    # the packaged extension runs the bundle (dist/, built by `vscode:prepublish` from extension.js
    # with esbuild), so it needs no node_modules: the client is a build-time dependency only
    source = (EDITOR / "extension.js").read_text(encoding="utf-8")
    assert '["lsp"]' in source and "vscode-languageclient/node" in source
    assert manifest["main"] == "./dist/extension.js"
    bundle = manifest["scripts"]["bundle"]
    assert "./extension.js" in bundle and "--bundle" in bundle and "--outfile=dist/extension.js" in bundle
    assert "--external:vscode" in bundle and "bundle" in manifest["scripts"]["vscode:prepublish"]
    assert not manifest.get("dependencies") and "vscode-languageclient" in manifest["devDependencies"]
    ignored = (EDITOR / ".vscodeignore").read_text(encoding="utf-8").split()
    assert "node_modules/**" in ignored and "extension.js" in ignored
    # what the marketplace and `vsce package` ask for
    assert manifest["license"] == "MIT" and "MIT License" in (EDITOR / "LICENSE").read_text(encoding="utf-8")
    assert manifest["repository"]["url"].startswith("https://") and manifest["repository"]["directory"] == "editors/vscode"
    # activation, languages, grammars and settings name the same things
    languages = {lang["id"] for lang in manifest["contributes"]["languages"]}
    assert {g["language"] for g in manifest["contributes"]["grammars"]} == languages
    assert set(manifest["activationEvents"]) == {f"onLanguage:{lang}" for lang in languages}
    assert f'language: "{next(iter(languages))}"' in source
    assert grammar["scopeName"] == manifest["contributes"]["grammars"][0]["scopeName"]
    settings = manifest["contributes"]["configuration"]["properties"]
    assert list(settings) == ["whenthen.command"] and 'getConfiguration("whenthen").get("command"' in source
    for pattern in _patterns(grammar):
        re.compile(pattern)  # the patterns use only syntax Oniguruma and Python share
    keywords = [p["match"] for p in grammar["repository"]["keyword"]["patterns"]]
    words = lambda text: {m.group(1) for k in keywords for m in re.finditer(k, text)}  # noqa: E731
    assert words(" ".join(sorted(KEYWORDS))) == set(KEYWORDS)
    assert words("andy event.end f(at: 1) action.failed") == set()


# ----------------------------------------------------------------------------- answers at every offset

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_assist_answers_at_every_offset_of_whole_and_half_typed_files() -> None:
    from whenthen.tools.assist import analyze, complete, definition, hover

    texts = {str(p): p.read_text(encoding="utf-8") for p in sorted(EXAMPLES.glob("*.rules"))}
    path = str(EXAMPLES / "guests.rules")
    analysis = analyze(path, texts[path], texts)
    assert analysis.parses and not analysis.checked.errors
    text = texts[path]
    for offset in range(len(text) + 1):
        complete(text, offset, analysis)  # the document as typed so far, types from the whole one
        complete(text[:offset], offset, analysis)
        hover(analysis, offset)
        definition(analysis, offset)
