"""The whenthen language server (pygls, stdio): diagnostics, completion, hover, definition, formatting.

A document is checked together with the other `*.rules` files of its folder (open documents as
typed, the rest as saved), so triggers and actions declared in a sibling file resolve; every
open document of that folder gets its diagnostics from the same check. The answers themselves
come from `tools/assist.py`; this module converts positions and speaks the protocol.
"""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path
from pygls.workspace import TextDocument

from whenthen.diagnostics import Diagnostic, Span
from whenthen.tools.assist import Analysis, analyze, complete, definition, hover, outline
from whenthen.tools.fmt import FormatError, format_source

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


class WhenthenServer(LanguageServer):
    """The server, with the latest analysis of each open document (and the last one that parsed)."""

    def __init__(self) -> None:
        super().__init__("whenthen", _version())
        self.latest: dict[str, Analysis] = {}
        self.last_parsed: dict[str, Analysis] = {}

    def document_path(self, uri: str) -> str:
        return to_fs_path(uri) or uri

    def neighbours(self, path: str) -> dict[str, str]:
        """The folder's `*.rules` files: open documents as typed, the others as saved."""
        folder = os.path.dirname(path)
        texts: dict[str, str] = {}
        try:
            names = sorted(n for n in os.listdir(folder) if n.endswith(".rules"))
        except OSError:
            names = []
        for name in names:
            file_path = os.path.join(folder, name)
            try:
                with open(file_path, encoding="utf-8") as handle:
                    texts[file_path] = handle.read()
            except (OSError, UnicodeDecodeError):
                continue  # an unreadable sibling must not stop the open document's check
        for doc in self.workspace.text_documents.values():
            doc_path = self.document_path(doc.uri)
            if os.path.dirname(doc_path) == folder:
                texts[doc_path] = doc.source
        return texts

    def refresh(self, uri: str) -> None:
        """Check the document with its folder and publish diagnostics for every open file there."""
        doc = self.workspace.get_text_document(uri)
        path = self.document_path(uri)
        analysis = analyze(path, doc.source, self.neighbours(path))
        self.latest[uri] = analysis  # also for a document asked about without being opened
        for other in list(self.workspace.text_documents.values()):
            other_path = self.document_path(other.uri)
            if os.path.dirname(other_path) != os.path.dirname(path):
                continue
            view = Analysis(other_path, other.source, analysis.checked)
            self.latest[other.uri] = view
            if view.parses:
                self.last_parsed[other.uri] = view
            diagnostics = [d for d in analysis.checked.diagnostics if d.file == other_path]
            self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(
                uri=other.uri, version=other.version,
                diagnostics=[_diagnostic(other, d) for d in diagnostics]))


def _range(doc: TextDocument, span: Span) -> lsp.Range:
    return lsp.Range(start=doc.client_position_at_offset(span.start), end=doc.client_position_at_offset(span.end))


def _diagnostic(doc: TextDocument, diagnostic: Diagnostic) -> lsp.Diagnostic:
    severity = lsp.DiagnosticSeverity.Error if diagnostic.is_error else lsp.DiagnosticSeverity.Warning
    return lsp.Diagnostic(range=_range(doc, diagnostic.span), message=diagnostic.message, severity=severity,
                          code=diagnostic.code, source="whenthen")


server = WhenthenServer()


@server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: WhenthenServer, params: lsp.DidOpenTextDocumentParams) -> None:
    ls.refresh(params.text_document.uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: WhenthenServer, params: lsp.DidChangeTextDocumentParams) -> None:
    ls.refresh(params.text_document.uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: WhenthenServer, params: lsp.DidSaveTextDocumentParams) -> None:
    ls.refresh(params.text_document.uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: WhenthenServer, params: lsp.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.latest.pop(uri, None)
    ls.last_parsed.pop(uri, None)
    ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


@server.feature(lsp.TEXT_DOCUMENT_COMPLETION,
                lsp.CompletionOptions(trigger_characters=[".", "'", "(", " "]))
def completion(ls: WhenthenServer, params: lsp.CompletionParams) -> lsp.CompletionList:
    uri = params.text_document.uri
    doc = ls.workspace.get_text_document(uri)
    context = ls.last_parsed.get(uri) or ls.latest.get(uri)
    if context is None:
        ls.refresh(uri)
        context = ls.latest[uri]
    offset = doc.offset_at_position(params.position)
    items = []
    for item in complete(doc.source, offset, context):
        items.append(lsp.CompletionItem(
            label=item.label, kind=_COMPLETION_KINDS.get(item.kind), detail=item.detail or None,
            insert_text=item.insert,
            insert_text_format=lsp.InsertTextFormat.Snippet if item.snippet else lsp.InsertTextFormat.PlainText))
    return lsp.CompletionList(is_incomplete=False, items=items)


@server.feature(lsp.TEXT_DOCUMENT_HOVER)
def on_hover(ls: WhenthenServer, params: lsp.HoverParams) -> lsp.Hover | None:
    uri = params.text_document.uri
    analysis = ls.latest.get(uri)
    if analysis is None:
        return None
    doc = ls.workspace.get_text_document(uri)
    found = hover(analysis, doc.offset_at_position(params.position))
    if found is None:
        return None
    text, span = found
    return lsp.Hover(contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=text), range=_range(doc, span))


@server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
def on_definition(ls: WhenthenServer, params: lsp.DefinitionParams) -> lsp.Location | None:
    uri = params.text_document.uri
    analysis = ls.latest.get(uri)
    if analysis is None:
        return None
    doc = ls.workspace.get_text_document(uri)
    span = definition(analysis, doc.offset_at_position(params.position))
    if span is None or not span.file:
        return None
    target_uri = uri if span.file == analysis.path else (from_fs_path(span.file) or span.file)
    return lsp.Location(uri=target_uri, range=_range(ls.workspace.get_text_document(target_uri), span))


@server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
def on_document_symbol(ls: WhenthenServer, params: lsp.DocumentSymbolParams) -> list[lsp.DocumentSymbol]:
    uri = params.text_document.uri
    analysis = ls.latest.get(uri)
    if analysis is None:
        return []
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


def serve() -> None:
    """Speak the protocol on stdin/stdout until the client says exit."""
    server.start_io()
