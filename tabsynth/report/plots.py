"""Small static plots, returned as base64 PNG strings ready to embed in the HTML (no network)."""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

REAL_COLOUR = "#1f77b4"
SYN_COLOUR = "#ff7f0e"
DPI = 80


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def column_plot(name: str, numeric: bool, real: pd.Series, synthetic: pd.Series, score: float | None) -> str:
    """Real vs synthetic distribution of one column (histogram or top-12 category bars)."""
    fig = Figure(figsize=(4.2, 2.6))
    ax = fig.subplots()
    title = f"{name}" + (f" (shape score {score:.2f})" if score is not None else "")
    if numeric:
        r = real.to_numpy(dtype=float)
        s = synthetic.to_numpy(dtype=float)
        r, s = r[np.isfinite(r)], s[np.isfinite(s)]
        both = np.concatenate([r, s]) if r.size + s.size else np.array([0.0])
        lo, hi = np.quantile(both, [0.005, 0.995]) if both.size else (0.0, 1.0)
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        bins = np.linspace(lo, hi, 31)
        ax.hist(np.clip(r, lo, hi), bins=bins.tolist(), density=True, alpha=0.55, color=REAL_COLOUR, label="real")
        ax.hist(np.clip(s, lo, hi), bins=bins.tolist(), density=True, alpha=0.55, color=SYN_COLOUR, label="synthetic")
        ax.set_ylabel("density")
    else:
        rf = real.fillna("(missing)").value_counts(normalize=True)
        sf = synthetic.fillna("(missing)").value_counts(normalize=True)
        top = list(rf.index[:12])
        x = np.arange(len(top))
        ax.bar(x - 0.2, rf.reindex(top).fillna(0).to_numpy(), 0.4, color=REAL_COLOUR, label="real")
        ax.bar(x + 0.2, sf.reindex(top).fillna(0).to_numpy(), 0.4, color=SYN_COLOUR, label="synthetic")
        ax.set_xticks(x)
        ax.set_xticklabels([str(t)[:14] for t in top], rotation=45, ha="right", fontsize=7)
        ax.set_ylabel("share of rows")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.tick_params(labelsize=7)
    return _png(fig)


def heatmap(matrix: np.ndarray, labels: list[str], title: str) -> str:
    """Absolute association differences (0 = same as real, 1 = completely different)."""
    k = len(labels)
    size = min(9.0, 2.5 + 0.35 * k)
    fig = Figure(figsize=(size, size * 0.85))
    ax = fig.subplots()
    im = ax.imshow(np.nan_to_num(matrix, nan=0.0), vmin=0, vmax=max(0.3, float(np.nanmax(matrix)) if k else 0.3),
                   cmap="Reds")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels([str(c)[:16] for c in labels], rotation=60, ha="right", fontsize=7)
    ax.set_yticklabels([str(c)[:16] for c in labels], fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.75)
    return _png(fig)


def distance_plot(to_train: np.ndarray, to_holdout: np.ndarray) -> str:
    """Distance of each synthetic row to its closest training row and closest holdout row."""
    fig = Figure(figsize=(4.6, 2.6))
    ax = fig.subplots()
    both = np.concatenate([to_train, to_holdout])
    hi = float(np.quantile(both, 0.99)) if both.size else 1.0
    bins = np.linspace(0, hi if hi > 0 else 1.0, 40)
    ax.hist(np.clip(to_train, 0, bins[-1]), bins=bins.tolist(), alpha=0.55, color="#d62728", label="to closest training row")
    ax.hist(np.clip(to_holdout, 0, bins[-1]), bins=bins.tolist(), alpha=0.55, color="#2ca02c", label="to closest holdout row")
    ax.set_xlabel("distance (0 = identical)", fontsize=8)
    ax.set_ylabel("synthetic rows", fontsize=8)
    ax.set_title("Distance to closest record", fontsize=9)
    ax.legend(fontsize=7)
    ax.tick_params(labelsize=7)
    return _png(fig)
