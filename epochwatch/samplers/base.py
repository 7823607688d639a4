"""The one protocol every sampler follows."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Sampler(Protocol):
    """A source of one block of an epoch or sample record.

    `name` is the key the block goes under (`host`, `gpu`, `dirs`, ...). `sample()`
    returns the block, or None when there is nothing to say this time (e.g. no GPU);
    a sampler whose source is missing says so once itself and returns None from then on.
    It may raise on real failures: the caller's Guard reports once and disables it.
    """

    name: str

    def sample(self) -> dict[str, Any] | list[dict[str, Any]] | None: ...

    def close(self) -> None: ...
