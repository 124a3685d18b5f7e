"""`matches` patterns: compiled with RE2 so every search runs in time linear in the text."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import re2

# RE2 logs every rejected pattern to stderr by default; the checker reports them as E108 instead.
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False


class RegexError(ValueError):
    """A pattern RE2 cannot run (backreferences, lookaround, invalid syntax, too large)."""


@lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> Any:
    """The compiled pattern; RegexError with RE2's reason when it cannot run in linear time."""
    try:
        return re2.compile(pattern, options=_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid pattern"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise RegexError(str(reason)) from None
    except UnicodeEncodeError:
        raise RegexError("the pattern is not valid Unicode (a lone surrogate)") from None


def search(pattern: str, text: str) -> bool:
    """Whether `pattern` is found anywhere in `text`."""
    return searcher(pattern)(text)


@lru_cache(maxsize=512)
def searcher(pattern: str) -> Callable[[str], bool]:
    """A function telling whether `pattern` is found in a text (the VM and the fast path share it)."""
    find = compile_pattern(pattern).search

    def found(text: str) -> bool:
        try:
            return find(text) is not None
        except UnicodeEncodeError:
            # a lone surrogate cannot be encoded for RE2; it matches as the replacement character
            return find(text.encode("utf-8", "replace").decode("utf-8")) is not None
    return found
