"""Pygments lexers for `.rules` files and for REPL input lines (highlighting only, never checking)."""

from __future__ import annotations

from pygments.lexer import RegexLexer, bygroups, include, words
from pygments.token import (
    Comment,
    Error,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Whitespace,
)

# SPEC 2.1, split by role so that themes colour them differently.
DECLARATION_KEYWORDS = ("rule", "trigger", "action", "timezone")
STATEMENT_KEYWORDS = (
    "when", "where", "then", "end", "if", "elif", "else", "switch", "case", "wait", "until",
    "for", "within", "let", "emit", "stop", "exit", "every", "at", "cron", "repeat", "times", "break",
)
WORD_OPERATORS = ("and", "or", "not", "in", "contains", "starts", "ends", "with", "matches", "is")
CONSTANTS = ("true", "false", "null", "empty")
KEYWORDS = DECLARATION_KEYWORDS + STATEMENT_KEYWORDS + WORD_OPERATORS + CONSTANTS
TYPE_NAMES = ("str", "int", "float", "bool", "datetime", "date", "duration", "json", "list")

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = rf"{_IDENT}(?:\.{_IDENT})+"


class WhenthenLexer(RegexLexer):
    """Highlights whenthen rules: keywords, trigger names, templates, durations and date literals."""

    name = "whenthen"
    aliases = ["whenthen", "rules"]
    filenames = ["*.rules"]
    mimetypes = ["text/x-whenthen"]
    url = "https://github.com/whenthen/whenthen"

    tokens = {
        "root": [
            (r"\n", Whitespace),
            (r"[ \t\r]+", Whitespace),
            (r"#.*?$", Comment.Single),
            # A trigger name after the keywords that introduce one (`when guest.added`).
            (rf"\b(when|for|emit|trigger)(\s+)({_DOTTED})",
             bygroups(Keyword, Whitespace, Name.Class)),
            # `rule "Name"`, `timezone "…"`, `locale "…"`, `cron "…"`: plain strings, no interpolation.
            (r'\b(rule|timezone|locale|cron)(\s+)("(?:\\.|[^"\\\n])*")',
             bygroups(Keyword.Declaration, Whitespace, String.Double)),
            include("expression"),
        ],
        "expression": [
            (r"'", String.Single, "single"),
            (r'"', String.Double, "template"),
            # Dates and times before numbers, so `2026-12-01` is not `2026 - 12 - 01`.
            (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?",
             Number.Other),
            (r"\d{4}-\d{2}-\d{2}\b", Number.Other),
            (r"\d{2}:\d{2}\b", Number.Other),
            (r"(?:\d+[wdhms])+\b", Number.Other),  # durations: 90s 24h 1h30m
            (r"\d+\.\d+\b", Number.Float),
            (r"\d+\b", Number.Integer),
            # A keyword is a name after `.`, and before `:` in arguments, parameters and fields.
            (rf"(\.)(\s*)({_IDENT})", bygroups(Punctuation, Whitespace, Name.Attribute)),
            (rf"({_IDENT})(\s*)(?=:(?!\d))", bygroups(Name.Variable, Whitespace)),
            (rf"({_IDENT})(?=\.)", Name),
            (rf"({_IDENT})(\s*)(?=\()", bygroups(Name.Function, Whitespace)),
            (words(DECLARATION_KEYWORDS, suffix=r"\b"), Keyword.Declaration),
            (words(WORD_OPERATORS, suffix=r"\b"), Operator.Word),
            (words(CONSTANTS, suffix=r"\b"), Keyword.Constant),
            (words(STATEMENT_KEYWORDS, suffix=r"\b"), Keyword),
            (words(TYPE_NAMES, suffix=r"\b"), Keyword.Type),
            (_IDENT, Name),
            (r"->|==|!=|<=|>=|[=<>+\-*/%|?]", Operator),
            (r"[()\[\]{},;:.]", Punctuation),
            (r".", Error),
        ],
        "single": [
            (r"\\['\\]", String.Escape),
            (r"[^'\\\n]+", String.Single),
            (r"\\", String.Single),
            (r"'", String.Single, "#pop"),
            (r"\n", Error, "#pop"),  # strings hold no raw newlines
        ],
        "template": [
            (r'\\[nt\\"]', String.Escape),
            (r"\{\{|\}\}", String.Escape),
            (r"\{", String.Interpol, "interpolation"),
            (r'[^"\\{}\n]+', String.Double),
            (r"\\.", Error),
            (r"\}", Error),
            (r'"', String.Double, "#pop"),
            (r"\n", Error, "#pop"),
        ],
        "interpolation": [
            (r"\}", String.Interpol, "#pop"),
            (r"[ \t]+", Whitespace),
            (r'"|\n', Error, "#pop:2"),
            include("expression"),
        ],
    }


class ReplLexer(WhenthenLexer):
    """REPL input: a `:command` word at the start of a line, otherwise the rules language."""

    name = "whenthen-repl"
    aliases = ["whenthen-repl"]
    filenames: list[str] = []
    mimetypes: list[str] = []

    tokens = {
        "root": [
            (rf"^(\s*)(:(?:trigger|event|emit|schema))(\s+)({_DOTTED})",
             bygroups(Whitespace, Keyword.Pseudo, Whitespace, Name.Class)),
            (r"^(\s*)(:[A-Za-z]+)", bygroups(Whitespace, Keyword.Pseudo)),
            (r"@\S+", String.Other),  # `:event @file.json`
            include("rules"),
        ],
        "rules": WhenthenLexer.tokens["root"],
    }


