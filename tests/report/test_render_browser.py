"""The HTML report in a real browser: headless Chromium renders it with no console errors, no
network requests and a non-blank summary card.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``): no
selenium, no playwright, only the standard library. When Chromium is missing the test installs
the Debian package ``chromium`` (as root, with apt-get, unless ``TABSYNTH_NO_APT`` is set) or
skips with the reason. Each check is first run on a page built to break it, so none can pass
vacuously.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

WINDOW = (1280, 1000)
CARD_SELECTOR = "#summary .card"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-extensions", "--hide-scrollbars", "--mute-audio"]
# src/href/action/poster/srcset or CSS url()/@import pointing off the page ("//host" included).
REMOTE_REF = re.compile(r"""(?:\b(?:src|href|srcset|action|poster|data)\s*=\s*["']?\s*|url\(\s*["']?|@import\s+["']?)"""
                        r"""(?:https?:)?//""", re.IGNORECASE)


# --------------------------------------------------------------------------------------------
# Finding Chromium


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def find_or_install_chromium() -> str:
    path = chromium_binary()
    if path:
        return path
    can_apt = (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")
               and not os.environ.get("TABSYNTH_NO_APT"))
    if can_apt:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        try:
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600)
            subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"], env=env,
                           capture_output=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired):
            pass
        path = chromium_binary()
        if path:
            return path
    pytest.skip("chromium not installed: apt-get install chromium to run this check")


# --------------------------------------------------------------------------------------------
# A minimal DevTools-protocol client over --remote-debugging-pipe (fd 3: to Chromium, fd 4: back)


@dataclass
class Rendered:
    console_errors: list[str] = field(default_factory=list)   # console.error / console.assert
    exceptions: list[str] = field(default_factory=list)       # uncaught exceptions
    log_errors: list[str] = field(default_factory=list)       # browser log (e.g. "Failed to load resource")
    requests: list[str] = field(default_factory=list)         # every URL the page requested
    card: dict[str, float] | None = None                      # summary card box in page pixels
    card_png: bytes = b""                                     # screenshot of the card (the top of the page if no card)


class DevTools:
    def __init__(self, binary: str, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="tabsynth-chromium-")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # Copies at fds >= 10 (close-on-exec) so the dup2 onto 3 and 4 in the child cannot clobber
        # each other; dup2 makes 3 and 4 inheritable. Every other fd Python opens is close-on-exec
        # (PEP 446), hence close_fds=False (pass_fds=(3, 4) fails when the parent has no fd 3 or 4).
        child_r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD_CLOEXEC, 10)

        def wire() -> None:  # runs in the child before exec
            os.dup2(child_r, 3)
            os.dup2(child_w, 4)

        args = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-pipe",
                f"--window-size={WINDOW[0]},{WINDOW[1]}", "about:blank"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, preexec_fn=wire, close_fds=False)
        for fd in (to_chrome_r, from_chrome_w, child_r, child_w):
            os.close(fd)
        self._buf = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from Chromium")
            ready, _, _ = select.select([self._from_chrome], [], [], left)
            if ready:
                chunk = os.read(self._from_chrome, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium closed the DevTools pipe (exit code {self.proc.poll()})")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str, seconds: float | None = None) -> None:
        deadline = time.monotonic() + (seconds or self.timeout)
        while not any(e.get("method") == method and e.get("sessionId") == session for e in self.events):
            self.events.append(self._read_message(deadline))

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        try:
            while True:
                self.events.append(self._read_message(deadline))
        except TimeoutError:
            pass

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except Exception:  # noqa: BLE001 - the process is killed below anyway
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_chrome, self._from_chrome):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)


def render(binary: str, path: Path, selector: str = CARD_SELECTOR, window: tuple[int, int] = WINDOW,
           margin: int = 0) -> Rendered:
    """Open ``path`` in headless Chromium; collect console errors and requests; screenshot ``selector``
    (with ``margin`` pixels around it), or the top ``window`` of the page when nothing matches."""
    dt = DevTools(binary)
    try:
        target = dt.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = dt.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            dt.send(f"{domain}.enable", session=session)
        dt.send("Emulation.setDeviceMetricsOverride", {"width": window[0], "height": window[1],
                                                       "deviceScaleFactor": 1, "mobile": False}, session=session)
        dt.events.clear()
        dt.send("Page.navigate", {"url": path.resolve().as_uri()}, session=session)
        dt.wait_for("Page.loadEventFired", session)
        dt.drain(0.5)  # late console messages and failed loads
        expr = ("(() => { const e = document.querySelector(%s); if (!e) return null; const r = e.getBoundingClientRect();"
                " return {x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height}; })()"
                % json.dumps(selector))
        card = dt.send("Runtime.evaluate", {"expression": expr, "returnByValue": True}, session=session)
        card = card.get("result", {}).get("value")
        if card and card["width"] > 0 and card["height"] > 0:
            clip = {"x": max(card["x"] - margin, 0), "y": max(card["y"] - margin, 0),
                    "width": card["width"] + 2 * margin, "height": card["height"] + 2 * margin}
        else:
            clip = {"x": 0, "y": 0, "width": window[0], "height": window[1]}
        shot = dt.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                  "clip": {**clip, "scale": 1}}, session=session)
        out = Rendered(card=card, card_png=base64.b64decode(shot["data"]))
        for e in dt.events:
            p = e.get("params", {})
            m = e.get("method")
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.console_errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif m == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.exceptions.append(d.get("exception", {}).get("description") or d.get("text", "exception"))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.log_errors.append(f"{p['entry'].get('text')} {p['entry'].get('url', '')}".strip())
            elif m == "Network.requestWillBeSent":
                out.requests.append(p.get("request", {}).get("url", ""))
        return out
    finally:
        dt.close()


# --------------------------------------------------------------------------------------------
# The checks, shared by the real report and by the pages built to fail them


def console_problems(r: Rendered) -> list[str]:
    return r.console_errors + r.exceptions + r.log_errors


def remote_requests(r: Rendered) -> list[str]:
    return [u for u in r.requests if not u.startswith(("file:", "data:", "about:"))]


def remote_references(html: str) -> list[str]:
    return [html[max(m.start() - 20, 0):m.end() + 40] for m in REMOTE_REF.finditer(html)]


def blank_reason(png_path: Path) -> str | None:
    """None if the image shows something; else why it is blank."""
    import matplotlib.image as mpimg

    img = mpimg.imread(png_path)
    rgb = np.asarray(img, dtype=float)[..., :3]
    if rgb.max() > 1.0:  # integer PNGs come back as 0..255
        rgb = rgb / 255.0
    if rgb.shape[0] < 100 or rgb.shape[1] < 300:
        return f"image too small: {rgb.shape[1]}x{rgb.shape[0]}"
    std = float(rgb.std())
    if std < 0.03:
        return f"pixel std {std:.4f} < 0.03"
    inked = float((rgb.min(axis=2) < 0.85).mean())   # dark-ish pixels: text, borders
    if inked < 0.005:
        return f"only {inked:.2%} non-white pixels"
    colored = float(((rgb.max(axis=2) - rgb.min(axis=2)) > 0.25).mean())  # traffic-light borders / badges
    if colored < 0.0005:
        return f"only {colored:.3%} coloured pixels: no traffic lights drawn"
    return None


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def chromium() -> str:
    return find_or_install_chromium()


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> Path:
    import tabsynth as ts
    from tabsynth.report import evaluate

    real = ts.datasets.load("adult").sample(1500, random_state=0).reset_index(drop=True)
    rng = np.random.default_rng(0)
    synthetic = pd.DataFrame({c: rng.permutation(real[c].to_numpy()) for c in real.columns})
    holdout = ts.datasets.load("adult_test").sample(1000, random_state=0).reset_index(drop=True)
    report = evaluate(real, synthetic, holdout=holdout, target="income", n_attacks=500, max_plots=4,
                      title="Browser render check")
    path = tmp_path_factory.mktemp("report") / "report.html"
    report.to_html(path)
    return path


@pytest.fixture(scope="module")
def rendered(chromium, report_html) -> Rendered:
    return render(chromium, report_html)


# --------------------------------------------------------------------------------------------
# The checks can fail


def test_checks_catch_a_broken_page(chromium, tmp_path):
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><head><link rel="stylesheet" href="https://cdn.example.invalid/x.css"></head><body>'
        '<section id="summary"><div class="card">card</div></section>'
        '<img src="missing.png"><img src="http://127.0.0.1:9/pixel.png">'
        '<script>console.error("boom"); console.log("fine"); throw new Error("uncaught-thing");</script>'
        "</body></html>", encoding="utf-8")
    r = render(chromium, page)
    assert any("boom" in m for m in r.console_errors), r
    assert not any("fine" in m for m in r.console_errors), r
    assert any("uncaught-thing" in m for m in r.exceptions), r
    assert any("missing.png" in m or "Failed to load" in m for m in r.log_errors), r
    assert any(u.startswith("http://127.0.0.1:9/") for u in remote_requests(r)), r.requests
    refs = remote_references(page.read_text(encoding="utf-8"))
    assert len(refs) == 2, refs


def test_blank_check_catches_a_blank_page(chromium, tmp_path):
    page = tmp_path / "blank.html"
    page.write_text('<!DOCTYPE html><html><body style="margin:0;background:#fff">'
                    '<section id="summary"><div class="card" style="height:600px"></div></section></body></html>',
                    encoding="utf-8")
    r = render(chromium, page)
    assert r.card is not None and r.card["height"] == 600
    png = tmp_path / "blank.png"
    png.write_bytes(r.card_png)
    assert blank_reason(png) is not None
    # grey text alone on white, without any traffic-light colour, also fails
    page.write_text('<!DOCTYPE html><html><body><section id="summary"><div class="card">'
                    + "<p>plain grey text line</p>" * 30 + "</div></section></body></html>", encoding="utf-8")
    png.write_bytes(render(chromium, page).card_png)
    assert "coloured" in (blank_reason(png) or ""), blank_reason(png)


# --------------------------------------------------------------------------------------------
# The report


def test_report_html_references_nothing_remote(report_html):
    html = report_html.read_text(encoding="utf-8")
    assert remote_references(html) == []
    assert "<img" in html and 'src="data:image/png;base64,' in html  # the plots are embedded, not linked


def test_report_renders_without_console_errors(rendered):
    assert console_problems(rendered) == []


def test_report_makes_no_network_requests(rendered, report_html):
    assert remote_requests(rendered) == []
    assert report_html.resolve().as_uri() in rendered.requests  # the request log works: it saw the page itself


def test_summary_card_screenshot_is_not_blank(rendered, tmp_path):
    assert rendered.card is not None, f"no element matches {CARD_SELECTOR!r}"
    assert rendered.card["width"] >= 600 and rendered.card["height"] >= 150, rendered.card
    assert rendered.card["y"] < WINDOW[1], "the summary card is not at the top of the page"
    png = tmp_path / "summary_card.png"
    png.write_bytes(rendered.card_png)
    assert blank_reason(png) is None, blank_reason(png)
