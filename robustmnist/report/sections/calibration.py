"""Calibration: the reliability diagram (clean and pooled over shifts), confidence against
accuracy by severity, and ECE per shift."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import plots
from ..blocks import Cell, Figure, HeatGroup, HeatRow, HeatTable
from ..format import sev_label
from ..stats import mean_known, pooled_reliability
from ..view import Layout, Model


@dataclass
class Calibration:
    figures: list[Figure]
    ece_heat: HeatTable | None  # None when the run has no shifts


def build(models: Sequence[Model], layout: Layout) -> Calibration:
    return Calibration(calibration_figures(models, layout),
                       ece_heat(models, layout) if layout.shifts else None)


def calibration_figures(models: Sequence[Model], layout: Layout) -> list[Figure]:
    series = []
    gap = []
    for m in models:
        color = plots.CLEAN if len(models) == 1 else m.color
        shifted_color = plots.SERIES[3] if len(models) == 1 else m.color
        rel = m.clean.reliability or {}
        prefix = f"{m.name}: " if len(models) > 1 else ""
        series.append((f"{prefix}clean (ECE {m.clean.ece:.3f})", rel.get("accuracy", []),
                       rel.get("confidence", []), rel.get("counts", []), color, "-"))
        if m.result.shifts:
            acc, conf, counts = pooled_reliability(m.result.shifts)
            ece = float(np.mean([r.ece for r in m.result.shifts]))
            series.append((f"{prefix}all shifts (mean ECE {ece:.3f})", acc, conf, counts,
                           shifted_color, "--"))
        accs = [m.clean.accuracy] + [mean_known([r.accuracy for r in m.result.shifts
                                                 if r.severity == s]) for s in layout.severities]
        confs = [m.clean.mean_confidence] + [mean_known([r.mean_confidence for r in m.result.shifts
                                                         if r.severity == s])
                                             for s in layout.severities]
        gap.append((m.name if len(models) > 1 else "", accs, confs,
                    plots.SERIES[0] if len(models) == 1 else m.color))
    figs = [Figure(plots.reliability(series),
                   "reliability diagram: accuracy against confidence, clean and pooled over shifts")]
    if layout.severities:
        if len(models) == 1:
            gap = [("", *g[1:]) for g in gap]
        figs.append(Figure(plots.confidence_gap([0] + layout.severities,
                                                [(n.strip(": ") or "mean", a, c, col)
                                                 for n, a, c, col in gap]),
                           "mean accuracy and mean confidence by severity"))
    return figs


def ece_heat(models: Sequence[Model], layout: Layout) -> HeatTable:
    all_ece = [r.ece for m in models for r in m.result.shifts] + [m.clean.ece for m in models]
    vmax = max(0.05, math.ceil(max(all_ece, default=0.05) * 20) / 20)

    def cell(v: float | None, title: str = "") -> Cell:
        bg, fg = plots.cell_colors(v, plots.DELTA_CMAP, -vmax, vmax, center=0.0)
        return Cell("—" if v is None else f"{v:.3f}", bg, fg, title)

    key = [(bg, fg, f"{v:.2f}") for bg, fg, v in
           plots.legend_gradient(plots.DELTA_CMAP, -vmax, vmax, 0.0, steps=7)][3:]
    if len(models) == 1:
        m = models[0]
        cols = ["clean"] + [sev_label(s) for s in layout.severities] + ["mean"]
        groups = []
        for fam, names in layout.families:
            rows = []
            for s in names:
                vals = [m.records[(s, sv)].ece if (s, sv) in m.records else None
                        for sv in layout.severities]
                cells = [cell(m.clean.ece)] + [cell(v) for v in vals] + [cell(mean_known(vals))]
                cells[-1].strong = True
                rows.append(HeatRow(s, cells))
            groups.append(HeatGroup(fam, rows))
        return HeatTable(cols, groups, key, "Expected calibration error (15 equal-width bins) per "
                         "shift and severity; 0 = confidence matches accuracy.")
    cols = [m.name for m in models]
    groups = [HeatGroup("clean", [HeatRow("MNIST test", [cell(m.clean.ece) for m in models])])]
    for fam, names in layout.families:
        groups.append(HeatGroup(fam, [HeatRow(s, [cell(mean_known([
            m.records[(s, sv)].ece for sv in layout.severities if (s, sv) in m.records]))
            for m in models]) for s in names]))
    return HeatTable(cols, groups, key, "Expected calibration error (15 bins) per shift, mean "
                     "over severities, one column per model.", col_px=72)
