"""Screenshots of the report's summary card and of its "What DP changed" section, as headless
Chromium renders them.

Fits a DP TVAE (epsilon 1) on bundled german_credit (1,000 rows: the table on which DP
preprocessing drops categories), evaluates its synthetic table against a holdout with target
``credit`` and the model's own privacy statement, writes benchmarks/results/report_dp.html and
saves report_summary.png (the summary card) and report_dp_changes.png (the DP-changes section).

The changes are those ``privacy_spent()`` lists (``details["changes"]`` of its preprocessing part,
told from the noisy statistics alone). The browser checks (no console errors, no network requests,
non-blank card) are those of tests/report/test_render_browser.py, whose DevTools-pipe helper
this script reuses.

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
TARGET = "credit"


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
    data = ts.datasets.load("german_credit").sample(frac=1.0, random_state=0).reset_index(drop=True)
    train, holdout = data.iloc[:700].reset_index(drop=True), data.iloc[700:].reset_index(drop=True)

    t0 = time.perf_counter()
    model = ts.TVAE(epochs=30, epsilon=1.0, seed=0, verbose=False).fit(train)
    synthetic = model.sample(len(train), seed=0)
    fit_s = time.perf_counter() - t0
    spent = model.privacy_spent()
    changes = spent.parts["preprocessing"].details["changes"]
    print("changes listed by privacy_spent():", sum(bool(c["material"]) for c in changes), "material of", len(changes))

    t0 = time.perf_counter()
    report = evaluate(train, synthetic, holdout=holdout, target=TARGET, model=spent,
                      title="german_credit: tabsynth DP TVAE (epsilon 1, 30 epochs) synthetic table")
    eval_s = time.perf_counter() - t0
    html = OUT / "report_dp.html"
    report.to_html(html)

    t0 = time.perf_counter()
    shots = {"report_summary.png": browser.render(binary, html, margin=8),
             "report_dp_changes.png": browser.render(binary, html, selector="#dp-changes", margin=8)}
    for name, rendered in shots.items():
        (OUT / name).write_bytes(rendered.card_png)
    render_s = time.perf_counter() - t0

    print(f"TVAE fit + sample: {fit_s:.1f} s; evaluate(): {eval_s:.1f} s; render + screenshots: {render_s:.1f} s")
    print("scores:", {k: None if v is None else round(v, 3) for k, v in report.scores.items()})
    print("verdicts:", report.verdicts)
    problems = {}
    for name, rendered in shots.items():
        problems[f"{name}: console errors"] = browser.console_problems(rendered)
        problems[f"{name}: network requests"] = browser.remote_requests(rendered)
        problems[f"{name}: element"] = [] if rendered.card else ["no element matched"]
    problems["remote references in the HTML"] = browser.remote_references(html.read_text(encoding="utf-8"))
    problems["blank summary card"] = [r for r in [browser.blank_reason(OUT / "report_summary.png")] if r]
    for name, found in problems.items():
        print(f"{name}: {'none' if not found else found}")
    print(f"wrote {html} and {', '.join(str(OUT / n) for n in shots)}")
    return 1 if any(problems.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
