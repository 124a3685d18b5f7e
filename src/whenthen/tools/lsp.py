"""The whenthen language server (pygls, stdio): diagnostics, completion, hover, definition, formatting, highlighting.

A document is checked together with the other `*.rules` files of its folder (open documents as
typed, the rest as saved), so triggers and actions declared in a sibling file resolve; every
open document of that folder gets its diagnostics from the same check. The answers themselves
come from `tools/assist.py`; this module converts positions and speaks the protocol.
"""

from __future__ import annotations

import asyncio
import gc
import os
import queue
import sys
import threading
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path
from pygls.workspace import TextDocument

from whenthen.diagnostics import Diagnostic, Span
from whenthen.grammar.parser import parse
from whenthen.source import Source
from whenthen.tools.assist import (
    Analysis,
    complete,
    definition,
    hover,
    outline,
    quick_fixes,
    rename,
    signature_help,
    symbol_at,
)
from whenthen.tools.fmt import FormatError, format_source
from whenthen.tools.semantic import TOKEN_MODIFIERS, TOKEN_TYPES, encode, semantic_tokens
from whenthen.tools.workspace import Cancelled, Workspace

_COMPLETION_KINDS = {
    "keyword": lsp.CompletionItemKind.Keyword,
    "trigger": lsp.CompletionItemKind.Event,
    "field": lsp.CompletionItemKind.Field,
    "variable": lsp.CompletionItemKind.Variable,
    "action": lsp.CompletionItemKind.Method,
    "function": lsp.CompletionItemKind.Function,
    "enum": lsp.CompletionItemKind.EnumMember,
    "param": lsp.CompletionItemKind.Property,
    "type": lsp.CompletionItemKind.TypeParameter,
}


def _version() -> str:
    try:
        return package_version("whenthen")
    except PackageNotFoundError:
        return "0"


DEBOUNCE = 0.08  # seconds of quiet after an edit before a pass starts


class WhenthenServer(LanguageServer):
    """The server, with the latest analysis of each open document (and the last one that parsed).

    Edits only mark their folder stale: a pass (tools/workspace.py, incremental) runs on a worker
    thread once the typing pauses for `DEBOUNCE`, and stops as soon as a newer edit arrives, so a
    burst of keys costs one pass; completion and hover answer meanwhile from the last analysis.
    """

    def __init__(self) -> None:
        super().__init__("whenthen", _version())
        self.latest: dict[str, Analysis] = {}
        self.last_parsed: dict[str, Analysis] = {}
        self.workspaces: dict[str, Workspace] = {}
        self.generation: dict[str, int] = {}
        self.published: dict[str, list[Diagnostic]] = {}
        self.disk: dict[str, tuple[float, int, str | None]] = {}  # closed files: (mtime, size, text)
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.jobs: queue.Queue[tuple[str, int, dict[str, tuple[str, str, int]]]] = queue.Queue()
        self.lock = threading.Lock()  # one pass at a time
        self.frozen = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.worker: threading.Thread | None = None

    def document_path(self, uri: str) -> str:
        return to_fs_path(uri) or uri

    # -- texts

    def open_documents(self, folder: str) -> dict[str, tuple[str, str, int]]:
        """The folder's open documents: path -> (uri, text as typed, version)."""
        found = {}
        for doc in list(self.workspace.text_documents.values()):
            path = self.document_path(doc.uri)
            if os.path.dirname(path) == folder:
                found[path] = (doc.uri, doc.source, doc.version or 0)
        return found

    def neighbours(self, folder: str, open_docs: dict[str, tuple[str, str, int]]) -> dict[str, str]:
        """The folder's `*.rules` files: open documents as typed, the others as saved (re-read
        only when their size or modification time changed)."""
        texts: dict[str, str] = {}
        try:
            names = sorted(n for n in os.listdir(folder) if n.endswith(".rules"))
        except OSError:
            names = []
        for name in names:
            file_path = os.path.join(folder, name)
            if file_path in open_docs:
                continue
            try:
                stat = os.stat(file_path)
                cached = self.disk.get(file_path)
                if cached is not None and cached[:2] == (stat.st_mtime, stat.st_size):
                    text = cached[2]
                else:
                    try:
                        with open(file_path, encoding="utf-8") as handle:
                            text = handle.read()
                    except (OSError, UnicodeDecodeError):
                        text = None  # an unreadable sibling must not stop the open document's check
                    self.disk[file_path] = (stat.st_mtime, stat.st_size, text)
            except OSError:
                continue
            if text is not None:
                texts[file_path] = text
        for path, (_, text, _) in open_docs.items():
            texts[path] = text
        return texts

    # -- passes

    def schedule(self, uri: str, delay: float = DEBOUNCE) -> None:
        """Mark the document's folder stale and (re)start its quiet-time timer."""
        folder = os.path.dirname(self.document_path(uri))
        self.generation[folder] = self.generation.get(folder, 0) + 1
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        if self.worker is None:
            self.worker = threading.Thread(target=self._work, name="whenthen-check", daemon=True)
            self.worker.start()
        timer = self.timers.pop(folder, None)
        if timer is not None:
            timer.cancel()
        self.timers[folder] = self.loop.call_later(delay, self._submit, folder)

    def _submit(self, folder: str) -> None:
        self.timers.pop(folder, None)
        self.jobs.put((folder, self.generation.get(folder, 0), self.open_documents(folder)))

    def _work(self) -> None:
        while True:
            folder, generation, open_docs = self.jobs.get()
            if self.generation.get(folder) != generation:
                continue  # a newer edit: its own job follows
            try:
                self.run_pass(folder, open_docs, lambda f=folder, g=generation: self.generation.get(f) != g)
            except Cancelled:
                continue
            except Exception as exc:  # a bug in a pass must not stop the server
                self.show_message_log(f"whenthen: check failed: {type(exc).__name__}: {exc}")

    def run_pass(self, folder: str, open_docs: dict[str, tuple[str, str, int]],
                 cancelled=lambda: False, publish: bool = True) -> None:
        """Check the folder (incrementally) and publish the diagnostics that changed."""
        with self.lock:
            texts = self.neighbours(folder, open_docs)
            workspace = self.workspaces.setdefault(folder, Workspace())
            result = workspace.update(texts, cancelled)
            if not self.frozen:
                gc.collect()
                gc.freeze()  # the first load's ASTs: later collections need not walk them
                self.frozen = True
        notes = []
        for path, (uri, text, version) in open_docs.items():
            view = Analysis(path, text, result.program(path))
            self.latest[uri] = view
            if view.parses:
                self.last_parsed[uri] = view
            notes.append((uri, version, result.files[path].source, result.diagnostics.get(path, [])))
        for path, state in result.files.items():
            if path in open_docs:
                continue
            diagnostics = result.diagnostics.get(path, [])
            uri = from_fs_path(path) or path
            if diagnostics != self.published.get(uri, []):
                notes.append((uri, None, state.source, diagnostics))
        if publish and notes and self.loop is not None:
            self.loop.call_soon_threadsafe(self._publish, notes)

    def _publish(self, notes) -> None:
        for uri, version, source, diagnostics in notes:
            self.published[uri] = diagnostics
            self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(
                uri=uri, version=version, diagnostics=[_diagnostic(source, d) for d in diagnostics]))

    def analysis(self, uri: str) -> Analysis:
        """The latest analysis of a document, checking its folder now if there is none yet."""
        found = self.latest.get(uri)
        if found is None:
            path = self.document_path(uri)
            folder = os.path.dirname(path)
            docs = self.open_documents(folder)
            if path not in docs:
                doc = self.workspace.get_text_document(uri)
                docs[path] = (uri, doc.source, doc.version or 0)
            self.run_pass(folder, docs, publish=False)
            found = self.latest[uri]
        return found


def _position(source: Source, line: int, column: int) -> lsp.Position:
    """An LSP position (0-based line, UTF-16 units) of a 1-based line and character column."""
    text = source.line_text(line)[:max(0, column - 1)]
    units = len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2
    return lsp.Position(line=max(0, line - 1), character=units)


def _source_range(source: Source, span: Span) -> lsp.Range:
    return lsp.Range(start=_position(source, span.line, span.column),
                     end=_position(source, span.end_line, span.end_column))


def _range(doc: TextDocument, span: Span) -> lsp.Range:
    return lsp.Range(start=doc.client_position_at_offset(span.start), end=doc.client_position_at_offset(span.end))


def _diagnostic(source: Source, diagnostic: Diagnostic) -> lsp.Diagnostic:
    severity = lsp.DiagnosticSeverity.Error if diagnostic.is_error else lsp.DiagnosticSeverity.Warning
    return lsp.Diagnostic(range=_source_range(source, diagnostic.span), message=diagnostic.message, severity=severity,
                          code=diagnostic.code, source="whenthen")


server = WhenthenServer()


@server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: WhenthenServer, params: lsp.DidOpenTextDocumentParams) -> None:
    ls.schedule(params.text_document.uri, delay=0)


@server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: WhenthenServer, params: lsp.DidChangeTextDocumentParams) -> None:
    ls.schedule(params.text_document.uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: WhenthenServer, params: lsp.DidSaveTextDocumentParams) -> None:
    ls.schedule(params.text_document.uri, delay=0)


@server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: WhenthenServer, params: lsp.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.latest.pop(uri, None)
    ls.last_parsed.pop(uri, None)
    ls.published.pop(uri, None)
    ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))
    ls.schedule(uri)  # as saved, it may differ from what was typed


@server.feature(lsp.TEXT_DOCUMENT_COMPLETION,
                lsp.CompletionOptions(trigger_characters=[".", "'", "(", " "]))
def completion(ls: WhenthenServer, params: lsp.CompletionParams) -> lsp.CompletionList:
    uri = params.text_document.uri
    doc = ls.workspace.get_text_document(uri)
    context = ls.last_parsed.get(uri) or ls.analysis(uri)
    offset = doc.offset_at_position(params.position)
    items = []
    for item in complete(doc.source, offset, context):
        items.append(lsp.CompletionItem(
            label=item.label, kind=_COMPLETION_KINDS.get(item.kind), detail=item.detail or None,
            insert_text=item.insert,
            insert_text_format=lsp.InsertTextFormat.Snippet if item.snippet else lsp.InsertTextFormat.PlainText))
    return lsp.CompletionList(is_incomplete=False, items=items)


@server.feature(lsp.TEXT_DOCUMENT_SIGNATURE_HELP, lsp.SignatureHelpOptions(trigger_characters=["(", ","]))
def on_signature_help(ls: WhenthenServer, params: lsp.SignatureHelpParams) -> lsp.SignatureHelp | None:
    """The signature of the action, function or `emit` whose parentheses are open at the cursor."""
    uri = params.text_document.uri
    doc = ls.workspace.get_text_document(uri)
    context = ls.last_parsed.get(uri) or ls.analysis(uri)
    found = signature_help(doc.source, doc.offset_at_position(params.position), context)
    if found is None:
        return None
    units = lambda i: len(found.label[:i].encode("utf-16-le")) // 2  # noqa: E731
    info = lsp.SignatureInformation(
        label=found.label,
        documentation=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=found.doc) if found.doc else None,
        parameters=[lsp.ParameterInformation(label=(units(a), units(b))) for a, b in found.params])
    return lsp.SignatureHelp(signatures=[info], active_signature=0, active_parameter=found.active)


@server.feature(lsp.TEXT_DOCUMENT_CODE_ACTION,
                lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix]))
def on_code_action(ls: WhenthenServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
    """Quick fixes for the diagnostics the client sends: the did-you-mean hints, `else if` → `elif`."""
    uri = params.text_document.uri
    doc = ls.workspace.get_text_document(uri)
    actions = []
    for diagnostic in params.context.diagnostics:
        if diagnostic.source != "whenthen":
            continue
        start, end = doc.offset_at_position(diagnostic.range.start), doc.offset_at_position(diagnostic.range.end)
        for title, a, b, new_text in quick_fixes(doc.source, start, end, diagnostic.message):
            edit = lsp.TextEdit(range=lsp.Range(start=doc.client_position_at_offset(a),
                                                end=doc.client_position_at_offset(b)), new_text=new_text)
            actions.append(lsp.CodeAction(title=title, kind=lsp.CodeActionKind.QuickFix, diagnostics=[diagnostic],
                                          is_preferred=True, edit=lsp.WorkspaceEdit(changes={uri: [edit]})))
    return actions


@server.feature(lsp.TEXT_DOCUMENT_HOVER)
def on_hover(ls: WhenthenServer, params: lsp.HoverParams) -> lsp.Hover | None:
    uri = params.text_document.uri
    analysis = ls.analysis(uri)
    doc = ls.workspace.get_text_document(uri)
    found = hover(analysis, doc.offset_at_position(params.position))
    if found is None:
        return None
    text, span = found
    return lsp.Hover(contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=text), range=_range(doc, span))


@server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
def on_definition(ls: WhenthenServer, params: lsp.DefinitionParams) -> lsp.Location | None:
    uri = params.text_document.uri
    analysis = ls.analysis(uri)
    doc = ls.workspace.get_text_document(uri)
    span = definition(analysis, doc.offset_at_position(params.position))
    if span is None or not span.file:
        return None
    target_uri = uri if span.file == analysis.path else (from_fs_path(span.file) or span.file)
    return lsp.Location(uri=target_uri, range=_range(ls.workspace.get_text_document(target_uri), span))


def _location(ls: WhenthenServer, analysis: Analysis, uri: str, span: Span) -> lsp.Location:
    target = uri if span.file == analysis.path else (from_fs_path(span.file) or span.file)
    return lsp.Location(uri=target, range=_range(ls.workspace.get_text_document(target), span))


@server.feature(lsp.TEXT_DOCUMENT_REFERENCES)
def on_references(ls: WhenthenServer, params: lsp.ReferenceParams) -> list[lsp.Location] | None:
    """Every use of a rule's `let` (in its rule) or of a trigger (in every file of the folder)."""
    uri = params.text_document.uri
    analysis = ls.analysis(uri)
    doc = ls.workspace.get_text_document(uri)
    symbol = symbol_at(analysis, doc.offset_at_position(params.position))
    if symbol is None:
        return None
    spans = [s for s in symbol.spans if params.context.include_declaration or s != symbol.declared]
    return [_location(ls, analysis, uri, s) for s in spans]


@server.feature(lsp.TEXT_DOCUMENT_RENAME)
def on_rename(ls: WhenthenServer, params: lsp.RenameParams) -> lsp.WorkspaceEdit:
    """Rename a rule's `let` or a trigger the program declares (everywhere it is written)."""
    uri = params.text_document.uri
    analysis = ls.analysis(uri)
    doc = ls.workspace.get_text_document(uri)
    try:
        edits = rename(analysis, doc.offset_at_position(params.position), params.new_name)
    except ValueError as exc:
        raise JsonRpcInvalidParams(str(exc)) from None
    changes: dict[str, list[lsp.TextEdit]] = {}
    for span, text in edits:
        where = _location(ls, analysis, uri, span)
        changes.setdefault(where.uri, []).append(lsp.TextEdit(range=where.range, new_text=text))
    return lsp.WorkspaceEdit(changes=changes)


@server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
def on_document_symbol(ls: WhenthenServer, params: lsp.DocumentSymbolParams) -> list[lsp.DocumentSymbol]:
    uri = params.text_document.uri
    analysis = ls.analysis(uri)
    doc = ls.workspace.get_text_document(uri)
    kinds = {"rule": lsp.SymbolKind.Function, "trigger": lsp.SymbolKind.Event, "action": lsp.SymbolKind.Method}
    return [lsp.DocumentSymbol(name=s.name, kind=kinds[s.kind], detail=s.detail, range=_range(doc, s.span),
                               selection_range=_range(doc, s.name_span)) for s in outline(analysis)]


@server.feature(lsp.TEXT_DOCUMENT_FORMATTING)
def on_formatting(ls: WhenthenServer, params: lsp.DocumentFormattingParams) -> list[lsp.TextEdit] | None:
    doc = ls.workspace.get_text_document(params.text_document.uri)
    try:
        formatted = format_source(doc.source, ls.document_path(doc.uri))
    except FormatError:
        return None  # syntax errors: the diagnostics already say where
    if formatted == doc.source:
        return []
    end = lsp.Position(line=len(doc.lines), character=0)
    return [lsp.TextEdit(range=lsp.Range(start=lsp.Position(line=0, character=0), end=end), new_text=formatted)]


_LEGEND = lsp.SemanticTokensLegend(token_types=list(TOKEN_TYPES), token_modifiers=list(TOKEN_MODIFIERS))
FRESH_WAIT = 2.0  # seconds a highlighting request waits for the pass of the text as typed


async def _current(ls: WhenthenServer, uri: str) -> tuple[TextDocument, Analysis | None]:
    """The document and its analysis of the text as typed now: a pass is due after each edit,
    so wait for it (a while); None if it does not come in time."""
    doc = ls.workspace.get_text_document(uri)
    if uri not in ls.latest:
        ls.analysis(uri)
    deadline = asyncio.get_running_loop().time() + FRESH_WAIT
    while True:
        doc = ls.workspace.get_text_document(uri)
        found = ls.latest.get(uri)
        if found is not None and found.text == doc.source:
            return doc, found
        if asyncio.get_running_loop().time() > deadline:
            return doc, None
        await asyncio.sleep(0.01)


async def _semantic_data(ls: WhenthenServer, uri: str, window: lsp.Range | None = None) -> lsp.SemanticTokens:
    doc, found = await _current(ls, uri)
    text = doc.source
    if found is not None:
        tokens = semantic_tokens(text, found.file, found.checked)
    else:  # no check of this text yet: its own parse places the names (unresolved: all variables)
        tokens = semantic_tokens(text, parse(Source(ls.document_path(uri), text))[0], None)
    if window is None:
        return lsp.SemanticTokens(data=encode(text, tokens))
    start, end = doc.offset_at_position(window.start), doc.offset_at_position(window.end)
    return lsp.SemanticTokens(data=encode(text, tokens, start, end))


@server.feature(lsp.TEXT_DOCUMENT_SEMANTIC_TOKENS_FULL, _LEGEND)
async def on_semantic_tokens(ls: WhenthenServer, params: lsp.SemanticTokensParams) -> lsp.SemanticTokens:
    """Keywords (contextual ones only where they are keywords), triggers, actions, functions,
    fields, variables, literals, template holes and comments, from the parser's tokens and the check."""
    return await _semantic_data(ls, params.text_document.uri)


@server.feature(lsp.TEXT_DOCUMENT_SEMANTIC_TOKENS_RANGE, _LEGEND)
async def on_semantic_tokens_range(ls: WhenthenServer, params: lsp.SemanticTokensRangeParams) -> lsp.SemanticTokens:
    """The semantic tokens that overlap a range."""
    return await _semantic_data(ls, params.text_document.uri, params.range)


def serve() -> None:
    """Speak the protocol on stdin/stdout until the client says exit."""
    sys.setswitchinterval(0.001)  # answer requests promptly while a pass runs on the worker
    server.start_io()
