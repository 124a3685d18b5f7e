"""Read a JSONL events file one line at a time: bounded memory, each line checked as UTF-8 on its own.

`ingest` and `simulate` read events files through this module, so a file of any size costs one
line of memory, and a bad byte, an overlong line or a Unicode line separator inside a JSON
string affects that line only (DESIGN "Input that fights back").
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from whenthen.diagnostics import EventError
from whenthen.runtime.events import MAX_PAYLOAD_BYTES

# An event line is its payload plus `{"trigger": …, "at": …, "data": …}` around it.
MAX_LINE_BYTES = MAX_PAYLOAD_BYTES + 4096
_READ = 1 << 20  # how much of an overlong line is read at a time while skipping it
_BOM = b"\xef\xbb\xbf"


def raw_lines(stream: BinaryIO) -> Iterator[bytes]:
    """The file's lines as bytes, split at `\\n` only (not at the separators `str.splitlines`
    also splits at, which JSON allows inside strings). A line longer than MAX_LINE_BYTES is
    yielded as its first MAX_LINE_BYTES + 1 bytes (so `decode_line` refuses it) and the rest of
    it is skipped without being held."""
    first = True
    while True:
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        if first and raw.startswith(_BOM):
            raw = raw[len(_BOM):]
        first = False
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while (more := stream.readline(_READ)) and not more.endswith(b"\n"):
                pass
        yield raw


def decode_line(raw: bytes | str) -> str:
    """One line as text without its line ending; EventError if it is not UTF-8 or too long."""
    if isinstance(raw, str):
        return raw.rstrip("\r\n")
    if len(raw) > MAX_LINE_BYTES:
        raise EventError(f"line too long (more than {MAX_LINE_BYTES} bytes; an event's payload is at most "
                         f"{MAX_PAYLOAD_BYTES})")
    try:
        return raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        column = len(raw[:exc.start].decode("utf-8", "replace")) + 1
        raise EventError(f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at column {column}") from None


def shown_line(raw: bytes | str) -> str:
    """What is recorded of a line that was refused: its text, bad bytes as `\\xNN`, cut short."""
    if isinstance(raw, bytes):
        raw = raw[:10_000].decode("utf-8", "backslashreplace")
    return raw[:10_000].strip()


def read_file_lines(path: str | Path) -> Iterator[bytes]:
    """`raw_lines` of a file, which is closed when the iteration ends."""
    with open(path, "rb") as stream:
        yield from raw_lines(stream)
