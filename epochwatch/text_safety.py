"""Print what users and traces control without letting it control the terminal or the log.

A script name, a run id, a watched path, a finding's title: all come from someone else's
process or file. Printed raw, `ESC[2J` clears root's terminal, `\\r` overwrites a line,
U+202E reverses it, and a newline followed by `<2>` forges a critical journald entry.

`escape(text)` makes one field safe on one line: every C0 control (newlines and tabs
included), DEL, every C1 control and the Unicode bidi and line-separator characters
become visible `\\uXXXX` escapes (the same spelling JSON uses, so escaped text inside a
JSON string keeps its meaning). `escape_tree` does that to every string in plain data
before a renderer sees it, so no renderer can forget a field. `SafeStream` is the last
line of defence on a whole output: the same, but newlines and tabs pass.
"""

from __future__ import annotations

import re
from typing import IO, Any

# C0 (0x00-0x1f), DEL, C1 (0x80-0x9f), ALM, LRM/RLM, LS/PS, LRE..RLO, LRI..PDI.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_UNSAFE_BUT_LINES = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def _code(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def escape(text: Any) -> str:
    """`text` as a string safe to print as (part of) one line."""
    s = text if isinstance(text, str) else str(text)
    return _UNSAFE.sub(_code, s) if _UNSAFE.search(s) else s


def escape_lines(text: str) -> str:
    """Like escape, but newlines and tabs stay (a multi-line block such as a traceback)."""
    return _UNSAFE_BUT_LINES.sub(_code, text) if _UNSAFE_BUT_LINES.search(text) else text


def escape_tree(obj: Any) -> Any:
    """A copy of plain data (dicts, lists, tuples) with every string, keys included, escaped."""
    if isinstance(obj, str):
        return escape(obj)
    if isinstance(obj, dict):
        return {escape(k) if isinstance(k, str) else k: escape_tree(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [escape_tree(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(escape_tree(v) for v in obj)
    return obj


class SafeStream:
    """A text stream wrapper that escapes whatever would act on a terminal (not newlines)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        # For what draws on the terminal on purpose (a progress bar) and escapes its fields.
        self.unsafe = stream

    def write(self, text: str) -> int:
        self._stream.write(escape_lines(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
