"""The fenced blocks of a Markdown file, with the marker that says why a shell block is not run.

A shell block runs in tests/integration/test_readme_commands.py unless the line before its
fence is `<!-- readme-test: skip (REASON) -->`; config blocks (toml, yaml, json) are parsed and
python blocks compiled in tests/unit/test_readme.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SHELL = frozenset({"sh", "bash", "shell", "console"})
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```$", re.M | re.S)
_SKIP = re.compile(r"<!-- readme-test: skip \((?P<why>[^)]+)\) -->\s*\Z")


@dataclass(frozen=True)
class Block:
    language: str  # the fence's info string ("" for output)
    text: str
    line: int  # 1-based line of the opening fence
    skip: str | None  # why it is not run (shell blocks only), from the marker above it

    @property
    def id(self) -> str:
        return f"{self.language or 'text'}@{self.line}"


def blocks(path: Path) -> list[Block]:
    source = path.read_text()
    out = []
    for m in _FENCE.finditer(source):
        before = source[: m.start()]
        marker = _SKIP.search(before)
        out.append(
            Block(
                language=m.group(1),
                text=m.group(2),
                line=before.count("\n") + 1,
                skip=marker.group("why") if marker else None,
            )
        )
    return out


def shell_blocks(path: Path) -> list[Block]:
    return [b for b in blocks(path) if b.language in SHELL]
