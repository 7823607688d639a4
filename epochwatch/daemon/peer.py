"""What the run registry knows of a client: who it is (from the kernel) and how to answer it.

The registry never sees a socket or the server; a connection is a Peer to it. Keeping the
surface this small is what lets the registry be read, and changed, on its own.
"""

from __future__ import annotations

from typing import Any, Protocol


class Peer(Protocol):
    @property
    def pid(self) -> int: ...

    @property
    def uid(self) -> int: ...

    @property
    def gid(self) -> int: ...

    def send(self, msg: dict[str, Any]) -> None:
        """One message to the client (dropped once the peer is closed)."""

    def fail(self, code: str, message: str) -> None:
        """Tell the client why in one message and hang up; the registry then hears `detach`."""

    def close(self) -> None:
        """Hang up at the registry's request: the registry has let go, no `detach` follows."""
