"""Warnings captured during a restore: this thread's only, and always passed on to the user."""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator

import pytest

from epochwatch.checkpoints import capture


@pytest.fixture(autouse=True)
def installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Our wrapper over a showwarning that collects, so what is passed on can be checked."""
    shown: list[str] = []
    monkeypatch.setattr(warnings, "showwarning", lambda message, *args: shown.append(str(message)))
    # Installed afresh, and undone by monkeypatch (production never uninstalls).
    monkeypatch.setattr(capture, "_installed", {})
    for name in capture.LOGGERS:
        monkeypatch.setattr(logging.getLogger(name), "handlers", [])
    capture.install()
    yield shown


def test_warnings_and_log_lines_are_captured_and_still_shown(installed: list[str]) -> None:
    with capture.capturing() as messages:
        warnings.warn(
            "Skipping variable loading for optimizer 'adam' (capture test 1)", UserWarning, stacklevel=1
        )
        logging.getLogger("tensorflow").warning("Value in checkpoint could not be found: (root).x")
        logging.getLogger("absl").info("not a warning")
    assert messages == [
        "UserWarning: Skipping variable loading for optimizer 'adam' (capture test 1)",
        "WARNING tensorflow: Value in checkpoint could not be found: (root).x",
    ]
    assert installed == ["Skipping variable loading for optimizer 'adam' (capture test 1)"]  # passed on


def test_nothing_is_captured_outside_a_restore() -> None:
    warnings.warn("outside (capture test 2)", UserWarning, stacklevel=1)
    with capture.capturing() as messages:
        pass
    assert messages == []


def test_other_threads_warnings_are_not_ours() -> None:
    started, release = threading.Event(), threading.Event()
    other: list[str] = []

    def elsewhere() -> None:
        started.wait(5)
        warnings.warn("from another thread (capture test 3)", UserWarning, stacklevel=1)
        with capture.capturing() as theirs:
            warnings.warn("their own restore (capture test 3b)", UserWarning, stacklevel=1)
        other.extend(theirs)
        release.set()

    t = threading.Thread(target=elsewhere)
    t.start()
    with capture.capturing() as mine:
        started.set()
        release.wait(5)
        warnings.warn("ours (capture test 3c)", UserWarning, stacklevel=1)
    t.join(5)
    assert mine == ["UserWarning: ours (capture test 3c)"]
    assert other == ["UserWarning: their own restore (capture test 3b)"]


def test_nested_restores_share_one_list() -> None:
    with capture.capturing() as outer:
        with capture.capturing() as inner:
            warnings.warn("nested (capture test 4)", UserWarning, stacklevel=1)
        assert inner is outer
    assert outer == ["UserWarning: nested (capture test 4)"]


def test_messages_are_bounded() -> None:
    with capture.capturing() as messages:
        for i in range(capture.MAX_MESSAGES + 5):
            logging.getLogger("tensorflow").warning(str(i) + "x" * 2000)
    assert len(messages) == capture.MAX_MESSAGES
    assert all(len(m) <= capture.MAX_CHARS for m in messages)
