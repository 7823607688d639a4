"""The protocol a subcommand follows, and the error that means "exit 2, one line"."""

from __future__ import annotations

import argparse
from typing import Protocol


class UsageError(Exception):
    """Unusable input or arguments: main() prints the message in one line and exits 2."""


class Command(Protocol):
    name: str
    help: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...
