"""Figures for the HTML report, as SVG data URIs. Pure functions of plain numbers.

Why SVG: crisp at any width (the report is read on phones too), text stays text (small
files, searchable), and with a fixed ``svg.hashsalt`` and no date the bytes depend only on
the numbers, so rebuilding a report from the same results.json gives the same HTML.

Figures are for trends (curves, histograms). Grids of numbers people read cell by cell
(shift × severity, confusion matrices) are HTML tables coloured by ``cell_colors`` with
the same colormaps, which keeps them searchable and cheap: annotated matplotlib heatmaps
cost most of the render time. Figures use ``matplotlib.figure.Figure`` (no pyplot global
state) with fixed margins (constrained layout triples the cost of a small figure).
"""

from __future__ import annotations

import base64
import functools
import io
from collections.abc import Sequence

import matplotlib
import matplotlib.colors as mcolors
import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global figure state

# One palette for the report. Series colours (models, shifts in a family) are seaborn's
# "colorblind" palette, written out so tables and histograms do not need seaborn; it draws
# the severity curves (with interval bands) and the reliability diagram. Clean is always the
# dark dashed line.
SERIES = ["#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#fbafe4",
          "#949494", "#ece133", "#56b4e9"]
CLEAN = "#222222"
GRID = "#e3e6eb"
ACC_CMAP = "magma"  # accuracy: dark = broken, light = fine
RATE_CMAP = "Blues"  # confusion rates: white = never
DELTA_CMAP = "RdBu_r"  # change from clean: red = worse, blue = better

_RC = {
    "svg.hashsalt": "robustmnist-report",
    "svg.fonttype": "none",  # text as <text>, drawn with the reader's fonts: no font files
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Liberation Sans", "Arial", "Helvetica"],
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.edgecolor": "#9aa3b2",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": GRID,
    "grid.linewidth": 0.6,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "path.simplify": True,
}

SMALL = (4.2, 3.0)  # inches: a small-multiple cell, ~400 px wide at 1:1
MARGINS = {"left": 0.17, "right": 0.97, "bottom": 0.15, "top": 0.9}


def _fig(size: tuple[float, float] = SMALL) -> Figure:
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=size)
        fig.subplots_adjust(**MARGINS)
        return fig


def to_data_uri(fig: Figure) -> str:
    buf = io.BytesIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def label(text: str) -> str:
    """Matplotlib parses $…$ as maths; user-supplied names must print as typed."""
    return text.replace("$", r"\$")


def _seaborn():
    import seaborn  # imports pandas and scipy: only when a curve or reliability figure is drawn

    return seaborn


def _tidy(rows: list[dict]):
    import pandas as pd

    return pd.DataFrame(rows, columns=["x", "y", "series"])


def family_curves(title: str, severities: Sequence[int], series: Sequence[tuple[str, Sequence]],
                  clean: Sequence[tuple[str, float]], ylim_low: float = 0.0,
                  bands: Sequence[Sequence[Sequence[float] | None]] | None = None) -> str:
    """Accuracy vs severity, one line per series; clean as a dashed line per entry of ``clean``.

    ``series``: (label, accuracies aligned with severities, None where missing). ``bands``:
    per series, the 95% interval (lo, hi) of each point, drawn as a shaded band.
    """
    sns = _seaborn()
    with matplotlib.rc_context(_RC):
        fig = _fig()
        ax = fig.add_subplot()
        rows = [{"x": s, "y": y, "series": label(name)}
                for name, ys in series for s, y in zip(severities, ys, strict=True) if y is not None]
        palette = {label(name): SERIES[i % len(SERIES)] for i, (name, _) in enumerate(series)}
        if rows:
            sns.lineplot(data=_tidy(rows), x="x", y="y", hue="series", palette=palette, marker="o",
                         markersize=3.5, markeredgewidth=0, linewidth=1.6, errorbar=None, sort=False,
                         ax=ax, legend="auto")
        for i, ci in enumerate(bands or []):
            pts = [(s, b) for s, b in zip(severities, ci, strict=True) if b is not None]
            if len(pts) > 1:
                ax.fill_between([s for s, _ in pts], [b[0] for _, b in pts], [b[1] for _, b in pts],
                                color=SERIES[i % len(SERIES)], alpha=0.15, linewidth=0)
        for i, (_name, acc) in enumerate(clean):
            color = CLEAN if len(clean) == 1 else SERIES[i % len(SERIES)]
            ax.axhline(acc, ls="--", lw=1.0, color=color, alpha=0.9)
            if len(clean) == 1:
                ax.annotate(f"clean {acc:.1%}", (severities[-1], acc), xytext=(0, -10),
                            textcoords="offset points", fontsize=7.5, color=CLEAN, ha="right")
        ax.set_title(label(title), loc="left", fontweight="bold")
        ax.set_xticks(list(severities))
        ax.set_xlabel("severity")
        ax.set_ylabel("")
        ax.set_ylim(ylim_low, 1.01)
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
        if rows:
            ax.legend(loc="best", ncols=1 if len(series) <= 4 else 2, handlelength=1.2)
        return to_data_uri(fig)


def reliability(series: Sequence[tuple[str, Sequence[float | None], Sequence[float | None],
                                     Sequence[int], str, str]]) -> str:
    """Reliability diagram: per-bin accuracy against per-bin confidence.

    ``series``: (label, accuracy per bin, confidence per bin, counts per bin, colour, style).
    Marker area follows the share of images in the bin, so empty tails do not mislead.
    """
    sns = _seaborn()
    with matplotlib.rc_context(_RC):
        fig = _fig((4.4, 3.6))
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1], color="#9aa3b2", lw=0.8, ls=":", label="perfect calibration")
        for name, acc, conf, counts, color, style in series:
            pts = [(c, a, n) for a, c, n in zip(acc, conf, counts, strict=True)
                   if a is not None and c is not None and n]
            if not pts:
                continue
            total = sum(n for *_, n in pts)
            xs, ys, ns = zip(*pts, strict=True)
            ax.plot(xs, ys, ls=style, lw=1.5, color=color, label=label(name))
            sns.scatterplot(x=list(xs), y=list(ys), size=[n / total for n in ns], sizes=(8, 168),
                            size_norm=(0, 1), color=color, alpha=0.7, linewidth=0, legend=False, ax=ax)
        ax.set_xlim(0, 1.01)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("confidence (max softmax)")
        ax.set_ylabel("accuracy")
        ax.set_title("Reliability", loc="left", fontweight="bold")
        ax.legend(loc="upper left")
        return to_data_uri(fig)


def confidence_gap(severities: Sequence[int],
                   series: Sequence[tuple[str, Sequence[float], Sequence[float], str]]) -> str:
    """Mean accuracy (solid) and mean confidence (dashed) over all shifts, per severity."""
    with matplotlib.rc_context(_RC):
        fig = _fig((4.4, 3.6))
        ax = fig.add_subplot()
        for name, acc, conf, color in series:
            ax.plot(severities, acc, marker="o", ms=3.5, lw=1.6, color=color,
                    label=label(f"{name}: accuracy"))
            ax.plot(severities, conf, marker="s", ms=3, lw=1.4, ls="--", color=color,
                    label=label(f"{name}: confidence"))
            if len(series) == 1:
                ax.fill_between(severities, acc, conf, color=color, alpha=0.12, lw=0)
        ax.set_xticks(list(severities))
        ax.set_xticklabels(["clean" if s == 0 else str(s) for s in severities])
        ax.set_xlabel("severity (mean over shifts)")
        ax.set_ylim(None, 1.01)
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
        ax.set_title("Confidence vs accuracy", loc="left", fontweight="bold")
        ax.legend(loc="lower left")
        return to_data_uri(fig)


def msp_histogram(title: str, edges: Sequence[float], inn: Sequence[int],
                  out: Sequence[int], ood_name: str) -> str:
    """Max-softmax histograms, each normalised to its own total: in-distribution vs OOD."""
    e = np.asarray(edges, dtype=float)
    a = np.asarray(inn, dtype=float)
    b = np.asarray(out, dtype=float)
    with matplotlib.rc_context(_RC):
        fig = _fig()
        ax = fig.add_subplot()
        w = np.diff(e)
        ax.bar(e[:-1], a / max(a.sum(), 1), width=w, align="edge", color=SERIES[0], alpha=0.55,
               label="MNIST test (in)")
        ax.bar(e[:-1], b / max(b.sum(), 1), width=w, align="edge", color=SERIES[3], alpha=0.55,
               label=label(f"{ood_name} (out)"))
        ax.set_xlabel("max softmax probability")
        ax.set_ylabel("share of images")
        ax.set_title(label(title), loc="left", fontweight="bold")
        ax.legend(loc="upper left")
        return to_data_uri(fig)


def predicted_histogram(title: str, counts: Sequence[int], color_index: int = 3) -> str:
    """Which digit an OOD set is predicted as (a model that dumps everything on one digit)."""
    c = np.asarray(counts, dtype=float)
    share = c / max(c.sum(), 1)
    with matplotlib.rc_context(_RC):
        fig = _fig()
        ax = fig.add_subplot()
        ax.bar(range(10), share, color=SERIES[color_index % len(SERIES)], width=0.75)
        ax.axhline(0.1, ls=":", color="#9aa3b2", lw=0.8)
        ax.set_xticks(range(10))
        ax.set_xlabel("predicted digit")
        ax.set_ylabel("share of OOD images")
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
        ax.set_title(label(title), loc="left", fontweight="bold")
        ax.grid(axis="x", visible=False)
        return to_data_uri(fig)



def accuracy_vs_eps(title: str, norm: str, series: Sequence[tuple[str, Sequence[float], Sequence[float]]],
                    clean: Sequence[tuple[str, float]]) -> str:
    """Robust accuracy against the radius, one line per (model or attack), eps 0 = clean."""
    with matplotlib.rc_context(_RC):
        fig = _fig()
        ax = fig.add_subplot()
        for i, (name, xs, ys) in enumerate(series):
            ax.plot(xs, ys, marker="o", ms=3.5, lw=1.6, color=SERIES[i % len(SERIES)],
                    label=label(name))
        for i, (_name, acc) in enumerate(clean):
            ax.axhline(acc, ls="--", lw=1.0, alpha=0.9,
                       color=CLEAN if len(clean) == 1 else SERIES[i % len(SERIES)])
        ax.set_title(label(title), loc="left", fontweight="bold")
        ax.set_xlabel(f"{norm} eps (0-1 pixels, before preprocessing)")
        ax.set_ylim(0, 1.01)
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
        ax.legend(loc="best", handlelength=1.2)
        return to_data_uri(fig)

# ---- colours for HTML heat tables ------------------------------------------------------------

@functools.cache
def _colormap(name: str):
    return matplotlib.colormaps[name]  # the registry hands out a fresh copy on every lookup


def cell_colors(value: float | None, cmap: str, vmin: float, vmax: float,
                center: float | None = None) -> tuple[str, str]:
    """(background, text colour) for a table cell, from the same colormaps the figures use."""
    if value is None or not np.isfinite(value):
        return ("#f4f5f7", "#8a93a3")
    cm = _colormap(cmap)
    if center is None:
        t = (value - vmin) / (vmax - vmin) if vmax > vmin else 0.5
    else:
        half = max(vmax - center, center - vmin)
        t = 0.5 + (value - center) / (2 * half) if half else 0.5
    r, g, b, _ = cm(float(min(1.0, max(0.0, t))))
    lum = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return (mcolors.to_hex((r, g, b)), "#ffffff" if lum < 0.5 else "#111111")


def legend_gradient(cmap: str, vmin: float, vmax: float, center: float | None = None,
                    steps: int = 6) -> list[tuple[str, str, float]]:
    """Swatches for a colour key: (background, text colour, value)."""
    vals = np.linspace(vmin, vmax, steps)
    return [(*cell_colors(float(v), cmap, vmin, vmax, center), float(v)) for v in vals]
