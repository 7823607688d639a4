"""The HTML report in a real headless Chromium: it loads from file:// with no request
leaving the file, no console error, no CSP violation and no script error; the plots are
laid out and drawn; the screenshot is saved to test-artifacts/html-report.png.

Chromium is driven over the DevTools protocol on a pipe (--remote-debugging-pipe: fds 3
and 4, NUL-terminated JSON), so the test needs no port, no websocket library and no
Selenium. Skipped where Debian's `chromium` is not installed (CI installs nothing).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import select
import shutil
import struct
import subprocess
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from bench import synthetic as syn
from epochwatch.cli import main

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"
)
WIDTH, HEIGHT = 1280, 2400
SERIES_BLUE = (0x1F, 0x6F, 0xD1)  # --s0 in report/html_style.py
SHA = "d" * 64


class Browser:
    """A headless Chromium and its DevTools pipe; events are kept for the test to inspect."""

    def __init__(self, profile: Path) -> None:
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def fds() -> None:  # in the child: the pipe ends where --remote-debugging-pipe wants them
            os.dup2(to_child_r, 3)
            os.dup2(from_child_w, 4)

        assert CHROMIUM is not None
        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=fds,  # runs before close_fds would close 3 and 4: keep them all open
            close_fds=False,  # os.pipe() fds are close-on-exec anyway; dup2 clears that for 3 and 4
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buf = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float = 30,
    ) -> Any:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for ev in self.events:
                if ev.get("method") == method:
                    return ev
            self.events.append(self._read(deadline))

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_child], [], [], left)[0]:
                raise AssertionError("chromium did not answer in time")
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise AssertionError(f"chromium closed the pipe (exit {self.proc.poll()})")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return dict(json.loads(msg))

    def close(self) -> None:
        with contextlib.suppress(AssertionError, OSError):
            self.send("Browser.close", timeout=5)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_child)
        os.close(self._from_child)


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB bytes) of an 8-bit RGB/RGBA PNG: a tiny reader, no Pillow."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    width = height = color = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    bpp = 4 if color == 6 else 3
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        cur = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = cur[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                cur[i] = (cur[i] + a) & 0xFF
            elif f == 2:
                cur[i] = (cur[i] + b) & 0xFF
            elif f == 3:
                cur[i] = (cur[i] + ((a + b) >> 1)) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[i] = (cur[i] + pred) & 0xFF
        rows.append(bytes(cur[k] for k in range(stride) if k % bpp < 3))
        prev = cur
    return width, height, rows


def _traces(tmp_path: Path) -> Path:
    """A leaking run, and a parent/child pair where the child resumed from the parent's save."""
    d = tmp_path / "traces"
    rng = random.Random(7)

    def leaky(i: int) -> dict[str, Any]:
        return {
            "seconds": syn.noisy(rng, 1.0 + 0.01 * i, 0.05) + (3.0 if i == 0 else 0.0),
            "metrics": {"loss": 1.0 / (i + 1), "val_loss": 1.2 / (i + 1) + 0.05},
            "host": syn.host_block(2 * syn.GIB + 60 * syn.MIB * i, total=8 * syn.GIB),
            "retraces": {"new": 4 if i == 0 else (1 if i % 7 == 3 else 0), "functions": {}},
            "dirs": {"/data/ckpt": {"bytes": 5 * syn.MIB * (i + 1), "files": i + 1, "role": "checkpoint"}},
        }

    syn.write(d / "leaky.jsonl", syn.trace(60, leaky, planned=100, run_id="leaky"))
    parent = syn.trace(8, lambda i: {"seconds": 1.0, "metrics": {"loss": 1.0 / (i + 1)}}, run_id="parent")
    parent.insert(-1, {"type": "save", "run_id": "parent", "t": syn.T0 + 9, "saved_at": syn.T0 + 9,
                       "path": "/ckpt/e7.keras", "format": "keras", "sha256": SHA, "iterations": 400})  # fmt: skip
    child = syn.trace(8, lambda i: {"seconds": 1.0, "metrics": {"loss": 0.12 + 0.03 * i}}, run_id="child")
    for rec in child[1:]:
        rec["t"] += 100
        if rec["type"] == "epoch":
            rec["epoch"] += 8
    child.insert(1, {"type": "restore", "run_id": "child", "t": syn.T0 + 100, "restored_at": syn.T0 + 100,
                     "path": "/ckpt/e7.keras", "format": "keras", "sha256": SHA})  # fmt: skip
    syn.write(d / "parent.jsonl", parent)
    syn.write(d / "child.jsonl", child)
    return d


def test_the_report_loads_offline_without_errors_and_shows_the_plots(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    assert main(["report", str(_traces(tmp_path)), "--format", "html", "-o", str(page)]) == 0
    browser = Browser(tmp_path / "profile")
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session=session)
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        browser.send("Page.navigate", {"url": page.as_uri()}, session=session)
        browser.wait_event("Page.loadEventFired")
        layout = browser.send(
            "Runtime.evaluate",
            {
                "expression": """JSON.stringify({
                    plots: document.querySelectorAll('svg.plot').length,
                    drawn: [...document.querySelectorAll('svg.plot')].filter(s => {
                        const r = s.getBoundingClientRect(); return r.width > 400 && r.height > 150; }).length,
                    lines: document.querySelectorAll('svg.plot path.line').length,
                    restores: document.querySelectorAll('svg.plot line.restore').length,
                    findings: document.querySelectorAll('.finding').length,
                    firstPlot: (() => { const r = document.querySelector('svg.plot').getBoundingClientRect();
                                        return [r.x, r.y, r.width, r.height]; })(),
                    title: document.title})""",
                "returnByValue": True,
            },
            session=session,
        )["result"]["value"]
        shot = browser.send("Page.captureScreenshot", {"format": "png"}, session=session)
        x, y, w, h = json.loads(layout)["firstPlot"]
        clip = browser.send(
            "Page.captureScreenshot",
            {"format": "png", "clip": {"x": x, "y": y, "width": w, "height": h, "scale": 1}},
            session=session,
        )
    finally:
        browser.close()

    png = base64.b64decode(shot["data"])
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "html-report.png").write_bytes(png)

    info = json.loads(layout)
    assert info["title"] == "epochwatch report: 3 runs"
    assert info["plots"] == 9 and info["drawn"] == 9, info  # leaky 5, parent 2, child 2
    assert info["lines"] == 9 and info["restores"] >= 2 and info["findings"] >= 1, info

    problems = []
    for ev in browser.events:
        method, params = ev.get("method"), ev.get("params", {})
        if method == "Runtime.exceptionThrown":
            problems.append(params["exceptionDetails"].get("text"))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning", "assert"):
            problems.append(str(params.get("args")))
        elif method == "Log.entryAdded" and params["entry"].get("level") in ("error", "warning"):
            problems.append(params["entry"].get("text"))
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if not url.startswith(("file://", "data:", "about:")):
                problems.append(f"request to {url}")
    assert problems == []

    width, height, rows = png_pixels(base64.b64decode(clip["data"]))
    assert width > 400 and height > 150
    pixels = [row[i : i + 3] for row in rows for i in range(0, len(row), 3)]
    blue = sum(1 for p in pixels if all(abs(p[k] - SERIES_BLUE[k]) < 40 for k in range(3)))
    ink = sum(1 for p in pixels if sum(p) < 3 * 235)
    assert blue > 150, f"the epoch-time line is not drawn ({blue} blue pixels)"
    assert 0.02 < ink / len(pixels) < 0.6, f"{ink} of {len(pixels)} pixels not white"
