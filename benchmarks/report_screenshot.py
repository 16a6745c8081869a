"""Screenshot of the report's summary card for the README (issue 4).

Fits a quick tabsynth TVAE (10 epochs) on bundled Adult, evaluates its synthetic table against
the ``adult_test`` holdout with target ``income``, writes benchmarks/results/report_tvae.html and
saves the summary card, as headless Chromium renders it, to benchmarks/results/report_summary.png.
The browser checks (no console errors, no network requests, non-blank card) are the same as in
tests/report/test_render_browser.py, whose DevTools-pipe helper this script reuses.

    apt-get install chromium   # Debian package
    python benchmarks/report_screenshot.py
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

from _common import set_threads  # noqa: F401 - also pins the BLAS/OpenMP thread budget before numpy loads

import tabsynth as ts
from tabsynth.report import evaluate

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results"
HELPER = ROOT / "tests" / "report" / "test_render_browser.py"


def browser_helper():
    spec = importlib.util.spec_from_file_location("tabsynth_render_browser", HELPER)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


def main() -> int:
    browser = browser_helper()
    binary = browser.chromium_binary()
    if binary is None:
        print("chromium not installed: apt-get install chromium", file=sys.stderr)
        return 1
    set_threads()
    train = ts.datasets.load("adult")
    holdout = ts.datasets.load("adult_test")

    t0 = time.perf_counter()
    model = ts.TVAE(epochs=10, seed=0, verbose=False).fit(train)
    synthetic = model.sample(len(train), seed=0)
    fit_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    report = evaluate(train, synthetic, holdout=holdout, target="income", model=model,
                      title="Adult: tabsynth TVAE (10 epochs) synthetic table")
    eval_s = time.perf_counter() - t0
    html = OUT / "report_tvae.html"
    report.to_html(html)

    t0 = time.perf_counter()
    rendered = browser.render(binary, html, margin=8)
    png = OUT / "report_summary.png"
    png.write_bytes(rendered.card_png)
    render_s = time.perf_counter() - t0

    print(f"TVAE fit + sample: {fit_s:.1f} s; evaluate(): {eval_s:.1f} s; render + screenshot: {render_s:.1f} s")
    print("scores:", {k: None if v is None else round(v, 3) for k, v in report.scores.items()})
    print("verdicts:", report.verdicts)
    problems = {
        "console errors": browser.console_problems(rendered),
        "network requests": browser.remote_requests(rendered),
        "remote references in the HTML": browser.remote_references(html.read_text(encoding="utf-8")),
        "summary card": [] if rendered.card else [f"no element matches {browser.CARD_SELECTOR!r}"],
        "blank screenshot": [r for r in [browser.blank_reason(png)] if r],
    }
    for name, found in problems.items():
        print(f"{name}: {'none' if not found else found}")
    print(f"wrote {html} and {png} (card {rendered.card})")
    return 1 if any(problems.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
