"""Robustness overview: accuracy per shift and severity as a heat table, and accuracy
against severity per family as curves."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ...results import ShiftRecord
from .. import plots
from ..blocks import Figure, HeatGroup, HeatRow, HeatTable, acc_cell, acc_key
from ..format import pct, sev_label
from ..stats import mean_known
from ..view import Layout, Model


@dataclass
class Overview:
    accuracy_heat: HeatTable | None  # None when the run has no shifts
    curves: list[Figure]


def build(models: Sequence[Model], layout: Layout) -> Overview:
    if not layout.shifts:
        return Overview(None, [])
    return Overview(accuracy_heat(models, layout), family_curves(models, layout))


def accuracy_heat(models: Sequence[Model], layout: Layout) -> HeatTable:
    if len(models) == 1:
        m = models[0]
        cols = ["clean"] + [sev_label(s) for s in layout.severities] + ["mean"]
        groups = []
        for fam, names in layout.families:
            rows = []
            for s in names:
                clean = None if s in layout.generative else m.clean.accuracy
                cells = [acc_cell(clean, "clean MNIST test" if clean is not None else
                                  "generated set: no clean twin")]
                for sv in layout.severities:
                    r = m.records.get((s, sv))
                    cells.append(acc_cell(None if r is None else r.accuracy,
                                          _record_tip(r) if r else ""))
                mean = m.shift_mean(s, layout.severities)
                cells.append(acc_cell(mean, "mean over severities"))
                cells[-1].strong = True
                rows.append(HeatRow(s, cells))
            fam_mean = mean_known([m.shift_mean(s, layout.severities) for s in names])
            seen_here = any(r.seen for r in m.result.shifts if r.family == fam)
            groups.append(HeatGroup(fam, rows, f"mean {pct(fam_mean)}"
                                    + (" · seen in training" if seen_here else "")))
        caption = ("Accuracy (%) per shift and severity; rows grouped by family. "
                   "clean = the same MNIST test digits unshifted (— for generated sets, which "
                   "have no clean twin).")
        return HeatTable(cols, groups, acc_key(), caption)
    cols = [m.name for m in models]
    groups = [HeatGroup("clean", [HeatRow("MNIST test", [acc_cell(m.clean.accuracy)
                                                         for m in models])])]
    for fam, names in layout.families:
        rows = [HeatRow(s, [acc_cell(m.shift_mean(s, layout.severities)) for m in models])
                for s in names]
        seen_by = [m.name for m in models if any(r.seen for r in m.result.shifts if r.family == fam)]
        groups.append(HeatGroup(fam, rows, f"seen in training by {', '.join(seen_by)}"
                                if seen_by else ""))
    sev = f"s{layout.severities[0]}–s{layout.severities[-1]}" if layout.severities else ""
    return HeatTable(cols, groups, acc_key(),
                     f"Accuracy (%) per shift, mean over severities {sev}, one column per model.",
                     col_px=72)


def _record_tip(r: ShiftRecord) -> str:
    ci = r.accuracy_ci or [None, None]
    tip = f"{r.name} s{r.severity}: {pct(r.accuracy)} (95% CI {pct(ci[0])}–{pct(ci[1])})"
    if r.flip_rate is not None:
        tip += f", flip rate {pct(r.flip_rate)}"
    return tip


def family_curves(models: Sequence[Model], layout: Layout) -> list[Figure]:
    sevs = layout.severities
    all_acc = [r.accuracy for m in models for r in m.result.shifts] + \
        [m.clean.accuracy for m in models]
    low = max(0.0, math.floor((min(all_acc) - 0.02) * 10) / 10) if all_acc else 0.0
    figs = []
    for fam, names in layout.families:
        if len(models) == 1:
            m = models[0]
            series = [(s, [m.acc(s, sv) for sv in sevs]) for s in names]
            bands = [[(r.accuracy_ci or None) if (r := m.records.get((s, sv))) else None for sv in sevs]
                     for s in names]  # 95% Wilson intervals
            uri = plots.family_curves(fam, sevs, series, [("clean", m.clean.accuracy)], low, bands)
            alt = f"{fam}: accuracy by severity for " + ", ".join(names)
        else:
            series = [(m.name, [mean_known([m.acc(s, sv) for s in names]) for sv in sevs])
                      for m in models]
            title = f"{fam} (mean of {len(names)} shift{'s' * (len(names) != 1)})"
            uri = plots.family_curves(title, sevs, series,
                                      [(m.name, m.clean.accuracy) for m in models], low)
            alt = f"{fam}: mean accuracy by severity, one line per model"
        figs.append(Figure(uri, alt))
    return figs
