"""Render a report's numbers and plots into one self-contained HTML file (jinja2, no network)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from tabsynth.report._common import num_text as _num
from tabsynth.report.section import WORDS

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _pct(x: Any, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{100 * x:.{digits}f}%"


def _ci(d: Any, pct: bool = False) -> str:
    if not isinstance(d, dict) or d.get("value") is None:
        return "n/a"
    f = _pct if pct else _num
    if d.get("low") is None:
        return f(d["value"])
    return f"{f(d['value'])} [{f(d['low'])}, {f(d['high'])}]"


def _word(light: str) -> str:
    return WORDS.get(light, light)


def _risk_word(light: str) -> str:
    return {"green": "low", "amber": "medium", "red": "high", "grey": "not measured"}.get(light, light)


def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=_num, pct=_pct, ci=_ci, word=_word, risk_word=_risk_word)
    return env


def render_html(data: dict[str, Any], figures: dict[str, Any], titles: Mapping[str, str] | None = None) -> str:
    """The HTML report; ``titles`` heads each section's summary card (its name when missing)."""
    return environment().get_template("report.html.j2").render(r=data, fig=figures, titles=dict(titles or {}))
