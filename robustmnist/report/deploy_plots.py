"""Figures of the deployment section: risk-coverage per family, coverage by severity, detection
power against the accuracy drop. Pure functions of plain numbers, drawn like plots.py's."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import matplotlib.ticker

from .plots import _RC, CLEAN, SERIES, _fig, label, to_data_uri

Series = tuple[str, Sequence[float], Sequence[float | None]]  # (name, xs, ys; None = missing)


def _pct(axis) -> None:
    axis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))


def _lines(ax, series: Sequence[Series], marker: str | None = "o") -> None:
    for i, (name, xs, ys) in enumerate(series):
        pts = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, ms=3.2, lw=1.5,
                    color=SERIES[i % len(SERIES)], label=label(name))


def risk_coverage(title: str, clean: Series | None, series: Sequence[Series], threshold_coverage: float) -> str:
    """Selective risk against coverage, one line per family (mean over its sets), clean dashed."""
    with matplotlib.rc_context(_RC):
        fig = _fig((4.4, 3.4))
        ax = fig.add_subplot()
        _lines(ax, series, marker=None)
        if clean is not None:
            ax.plot(clean[1], [y if y is not None else float("nan") for y in clean[2]], ls="--", lw=1.2,
                    color=CLEAN, label="clean")
        ax.axvline(threshold_coverage, ls=":", lw=0.9, color="#9aa3b2")
        ax.set_xlabel("coverage (share accepted, most confident first)")
        ax.set_ylabel("error among accepted")
        ax.set_xlim(0, 1.0)
        _pct(ax.xaxis)
        _pct(ax.yaxis)
        ax.set_title(label(title), loc="left", fontweight="bold")
        ax.legend(loc="upper left", ncols=2 if len(series) > 4 else 1, handlelength=1.2)
        return to_data_uri(fig)


def by_severity(title: str, ylabel: str, severities: Sequence[int], series: Sequence[Series],
                target: float | None, target_label: str) -> str:
    """A per-family mean against severity (0 = clean), with the promised level dashed."""
    with matplotlib.rc_context(_RC):
        fig = _fig((4.4, 3.4))
        ax = fig.add_subplot()
        _lines(ax, series)
        if target is not None:
            ax.axhline(target, ls="--", lw=1.0, color=CLEAN)
            ax.annotate(target_label, (max(severities), target), xytext=(0, 3), textcoords="offset points",
                        fontsize=7.5, color=CLEAN, ha="right")
        ax.set_xticks(list(severities))
        ax.set_xticklabels(["clean" if s == 0 else str(s) for s in severities])
        ax.set_xlabel("severity")
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 1.02)
        _pct(ax.yaxis)
        ax.set_title(label(title), loc="left", fontweight="bold")
        ax.legend(loc="lower left", ncols=2 if len(series) > 4 else 1, handlelength=1.2)
        return to_data_uri(fig)


def power_vs_drop(title: str, points: Sequence[tuple[str, float, float, bool]], false_alarm: float | None,
                  batch: int) -> str:
    """Each set a point: accuracy drop from clean (x) against detection power (y), by family;
    silent failures (bottom right) ringed."""
    families = list(dict.fromkeys(p[0] for p in points))
    with matplotlib.rc_context(_RC):
        fig = _fig((4.4, 3.4))
        ax = fig.add_subplot()
        for i, fam in enumerate(families):
            pts = [p for p in points if p[0] == fam]
            ax.scatter([p[1] for p in pts], [p[2] for p in pts], s=14, color=SERIES[i % len(SERIES)],
                       label=label(fam), linewidths=0)
        silent = [p for p in points if p[3]]
        if silent:
            ax.scatter([p[1] for p in silent], [p[2] for p in silent], s=70, facecolors="none",
                       edgecolors=SERIES[3], linewidths=1.2, label="silent failure")
        if false_alarm is not None:
            ax.axhline(false_alarm, ls="--", lw=1.0, color=CLEAN)
            ax.annotate("false alarm (clean)", (0, false_alarm), xytext=(2, 3), textcoords="offset points",
                        fontsize=7.5, color=CLEAN)
        ax.set_xlabel("accuracy drop from clean (points)")
        ax.set_ylabel(f"batches of {batch} flagged")
        ax.set_ylim(-0.02, 1.04)
        _pct(ax.xaxis)
        _pct(ax.yaxis)
        ax.set_title(label(title), loc="left", fontweight="bold")
        ax.legend(loc="center right", ncols=1, handlelength=1.0, fontsize=7)
        return to_data_uri(fig)
