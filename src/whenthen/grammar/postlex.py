"""The postlexer: SPEC 2.1's newline rules, soft keywords and the virtual end of a rule body."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

from lark import Token

KEYWORDS = frozenset(
    "rule when where then end if elif else switch case wait until for within let emit stop exit and or "
    "not in contains starts ends with matches is null empty true false every at cron trigger action "
    "timezone".split()
)
KEYWORD_TYPES = frozenset(k.upper() for k in KEYWORDS)
# Keywords only where SPEC 2.2 places them (`_Machine._contextual`), names everywhere else.
CONTEXTUAL_KEYWORDS = ("repeat", "times", "break", "split", "by", "once", "per", "during", "on")  # `locale` (2.1) is `_Machine._locale`

# After these `during` is an operand (`x = during`), never the clause (SPEC 2.12).
_OPERATORS = frozenset(
    "AND OR NOT IN CONTAINS STARTS ENDS WITH MATCHES IS EQUAL EQEQ NE LT LE GT GE PLUS MINUS STAR SLASH "
    "PERCENT COMMA LPAR LSQB LBRACE DOT COLON WHERE PER WITHIN".split()
)

# After these a newline in a body continues the statement (SPEC 2.1); THEN/ELSE/SEP make the
# newline an empty statement, which is skipped anyway.
_CONTINUES = frozenset(
    "AND OR NOT IN CONTAINS STARTS ENDS WITH MATCHES IS EQUAL EQEQ NE LT LE GT GE PLUS MINUS STAR "
    "SLASH PERCENT COMMA SEP THEN ELSE".split()
)
# A line starting with one of these (as a keyword) ends a rule body that has no `end`.
_ITEM_STARTS = frozenset(("RULE", "WHEN", "TRIGGER", "ACTION", "TIMEZONE", "LOCALE"))
# Inside `{ }` a newline is a comma, except directly after these …
_NO_COMMA_AFTER = frozenset(("LBRACE", "COMMA", "COLON", "VBAR"))
# … or directly before these.
_NO_COMMA_BEFORE = frozenset(("RBRACE", "VBAR"))

_TOP, _HEADER, _BODY = "top", "header", "body"

# Where a statement starts in a body: `repeat` and `break` are keywords there (SPEC 2.2) unless
# called like an action (`repeat(...)`).
_STATEMENT_START = frozenset(("SEP", "THEN", "ELSE", "TIMES", "ENDBODY", ""))
# Tokens that end an operand: `times` directly after one ends a repeat count (`repeat n times`);
# elsewhere (`repeat times times`, `n * times`) it is a name.
_OPERAND_ENDS = frozenset(
    "NAME INT FLOAT SQSTRING DQSTRING TRUE FALSE NULL DURATION DATE DATETIME RPAR RSQB RBRACE EMPTY".split()
)


def _virtual(type_: str, at: Token, value: str = "") -> Token:
    """A token the source does not spell, placed at `at` (zero width)."""
    return Token(
        type_, value, start_pos=at.start_pos, line=at.line, column=at.column,
        end_line=at.line, end_column=at.column, end_pos=at.start_pos,
    )


def _retype_soft_keywords(stream: Iterable[Token]) -> Iterator[Token]:
    """A keyword directly after `.`, directly before `.` or before `:` is a name (SPEC 2.1)."""
    prev_type = None
    it = iter(stream)
    current = next(it, None)
    while current is not None:
        following = next(it, None)
        if current.type in KEYWORD_TYPES and (
            prev_type == "DOT" or (following is not None and following.type in ("DOT", "COLON"))
        ):
            current = Token.new_borrow_pos("NAME", current.value, current)
        yield current
        prev_type = current.type
        current = following


class _Machine:
    """The state of one pass over one token stream (the rules are in PostLexer's docstring)."""

    def __init__(self, stream: Iterable[Token]):
        self.tokens = _retype_soft_keywords(stream)
        self.pending: deque[Token] = deque()
        self.mode = _TOP
        self.brackets: list[str] = []  # '(' for ( and [, '{' for {
        self.blocks = 0  # open if/switch/repeat/for blocks in the current body
        self.repeat_counts: list[int] = []  # bracket depth of each `repeat` still before its `times`
        self.prev = ""  # type of the last token handed to the parser
        self.last: Token | None = None
        self.at_line_start = True
        self.during = False  # a `during` clause was seen in this header: `on` after its time is a keyword

    def _next(self) -> Token | None:
        if self.pending:
            return self.pending.popleft()
        return next(self.tokens, None)

    def _peek_significant(self) -> Token | None:
        """The next token that is not a newline, without consuming it."""
        for tok in self.pending:
            if tok.type != "NL":
                return tok
        while True:
            tok = next(self.tokens, None)
            if tok is None:
                return None
            self.pending.append(tok)
            if tok.type != "NL":
                return tok

    def _emit(self, tok: Token) -> Token:
        self.prev = tok.type
        self.last = tok
        return tok

    def run(self) -> Iterator[Token]:
        while True:
            tok = self._next()
            if tok is None:
                break
            if tok.type == "NL":
                sep = self._newline(tok)
                self.at_line_start = True
                if sep is not None:
                    yield self._emit(sep)
                continue
            line_start, self.at_line_start = self.at_line_start, False
            if tok.type == "NAME" and tok.value == "locale":
                tok = self._locale(tok, line_start)
            if self.mode == _BODY and line_start and tok.type in _ITEM_STARTS:
                yield self._emit(_virtual("ENDBODY", tok, tok.value))
                self._enter_top()
            yield from self._token(tok)
        if self.mode == _BODY:
            at = self.last if self.last is not None else Token("NL", "", 0, 1, 1)
            end = Token("ENDBODY", "", start_pos=at.end_pos or 0, line=at.end_line or 1,
                        column=at.end_column or 1, end_line=at.end_line or 1,
                        end_column=at.end_column or 1, end_pos=at.end_pos or 0)
            yield self._emit(end)
            self._enter_top()

    def _enter_top(self) -> None:
        self.mode = _TOP
        self.brackets.clear()
        self.blocks = 0
        self.repeat_counts.clear()

    def _newline(self, tok: Token) -> Token | None:
        """What a newline becomes: nothing, a comma (in types) or a statement separator."""
        if self.brackets and self.brackets[-1] == "(":
            return None
        if self.brackets:
            if self.prev in _NO_COMMA_AFTER:
                return None
            following = self._peek_significant()
            if following is not None and following.type in _NO_COMMA_BEFORE:
                return None
            return _virtual("COMMA", tok, ",")
        if self.mode != _BODY or self.prev in _CONTINUES:
            return None
        return _virtual("SEP", tok, "\n")

    def _contextual(self, tok: Token) -> Token:
        """`repeat`, `break`, `split` at a statement's start, `times` after a repeat count and `by`
        directly after `split` are keywords."""
        if self.mode != _BODY or tok.value not in ("repeat", "break", "times", "split", "by"):
            return tok
        if tok.value == "by":
            if self.prev == "SPLIT":
                following = self._peek_any()
                if following is None or following.type not in ("DOT", "COLON", "EQUAL"):
                    return Token.new_borrow_pos("BY", tok.value, tok)
            return tok
        if tok.value == "split":
            # `split` at a statement's start, followed by `by`, a new line, `;` or `case` (SPEC 2.13)
            if self.brackets or self.prev not in _STATEMENT_START:
                return tok
            following = self._peek_any()
            if following is not None and (following.type in ("NL", "SEMICOLON", "CASE")
                                          or (following.type == "NAME" and following.value == "by")):
                return Token.new_borrow_pos("SPLIT", tok.value, tok)
            return tok
        if tok.value == "times":
            if (self.repeat_counts and self.repeat_counts[-1] == len(self.brackets)
                    and self.prev in _OPERAND_ENDS):
                self.repeat_counts.pop()
                return Token.new_borrow_pos("TIMES", tok.value, tok)
            return tok
        if self.brackets or self.prev not in _STATEMENT_START:
            return tok
        following = self._peek_significant() if tok.value == "repeat" else self._peek_any()
        if following is not None and (
            following.type in ("DOT", "COLON", "EQUAL")
            # `repeat(…)` is a call of an action named so; `repeat (n) times` is a loop
            or (following.type == "LPAR" and following.start_pos == tok.end_pos)
        ):
            return tok
        if tok.value == "repeat":
            self.repeat_counts.append(len(self.brackets))
            return Token.new_borrow_pos("REPEAT", tok.value, tok)
        return Token.new_borrow_pos("BREAK", tok.value, tok)

    def _locale(self, tok: Token, line_start: bool) -> Token:
        """`locale "ll_CC"` is a declaration (SPEC 2.1) at the top level, or at the start of a line
        after a body without `end`; `locale` is a name everywhere else."""
        if not (self.mode == _TOP or (self.mode == _BODY and line_start and not self.brackets)):
            return tok
        following = self._peek_any()
        if following is None or following.type != "DQSTRING":
            return tok
        return Token.new_borrow_pos("LOCALE", tok.value, tok)

    def _peek_any(self) -> Token | None:
        """The next token, a newline included, without consuming it."""
        if self.pending:
            return self.pending[0]
        tok = next(self.tokens, None)
        if tok is not None:
            self.pending.append(tok)
        return tok

    def _header_word(self, tok: Token) -> Token:
        """`once per` in a rule's header (SPEC 2.11): `once` directly before `per`, `per` after it."""
        if self.brackets:
            return tok
        if tok.value == "once":
            following = self._peek_significant()
            if following is not None and following.type == "NAME" and following.value == "per":
                return Token.new_borrow_pos("ONCE", tok.value, tok)
        elif tok.value == "per" and self.prev == "ONCE":
            return Token.new_borrow_pos("PER", tok.value, tok)
        elif tok.value == "during" and self.prev not in _OPERATORS:
            # `during HH:MM-HH:MM` (SPEC 2.12): before a time (or a number, a time mistyped as `9:00`)
            following = self._peek_significant()
            if following is not None and following.type in ("TIME", "INT"):
                return Token.new_borrow_pos("DURING", tok.value, tok)
        elif tok.value == "on" and self.prev == "TIME" and self.during:
            return Token.new_borrow_pos("ON", tok.value, tok)
        return tok

    def _token(self, tok: Token) -> Iterator[Token]:
        if tok.type == "NAME" and self.mode == _HEADER:
            tok = self._header_word(tok)
            if tok.type == "DURING":
                self.during = True
        if tok.type == "NAME":
            tok = self._contextual(tok)
        kind = tok.type
        if kind in ("LPAR", "LSQB"):
            self.brackets.append("(")
        elif kind == "LBRACE":
            self.brackets.append("{")
        elif kind in ("RPAR", "RSQB", "RBRACE"):
            if self.brackets:
                self.brackets.pop()
        elif kind == "SEMICOLON" and self.mode == _BODY and not self.brackets:
            if self.prev not in ("SEP", "THEN", "ELSE"):
                yield self._emit(Token.new_borrow_pos("SEP", tok.value, tok))
            return
        elif self.mode == _TOP and kind in ("RULE", "WHEN"):
            self.mode = _HEADER
        elif self.mode == _HEADER and kind == "THEN" and not self.brackets:
            self.mode = _BODY
            self.during = False
            self.blocks = 0
        elif self.mode == _BODY and (kind in ("IF", "SWITCH", "SPLIT", "REPEAT") or (kind == "FOR" and self.prev != "WAIT")):
            self.blocks += 1
        elif self.mode == _BODY and kind == "END":
            if self.blocks == 0:
                yield self._emit(tok)
                self._enter_top()
                return
            self.blocks -= 1
        yield self._emit(tok)


class PostLexer:
    """Lark postlexer implementing SPEC 2.1.

    - Newlines are dropped at top level, in rule headers (`rule`/`when` … `then`) and in `( )`/`[ ]`.
    - Inside `{ }` a newline is a comma, except directly after `{ , : |` or before `} |`.
    - In a body a newline or `;` is one SEP token (repeats collapse), except after `and`, `or`, a
      binary operator or `,`.
    - ENDBODY is inserted where a rule without `end` meets a line starting with a top-level item
      keyword, or the end of the input; `if`/`switch` are counted against `end` to know which
      `end` closes the rule.
    - A keyword after `.`, before `.` or before `:` becomes a NAME.
    """

    always_accept = ("NL", "SEMICOLON")

    def process(self, stream: Iterable[Token]) -> Iterator[Token]:
        return _Machine(stream).run()
