"""Per-class degradation: digits ranked by damage and the accuracy drop per digit and shift
(one model) or per digit and family (a comparison)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..blocks import HeatGroup, HeatRow, HeatTable, delta_cell, delta_key, delta_vmax
from ..format import num, pct, pp
from ..stats import N_CLASSES, class_drops, mean_known, most_confused, nanmean, per_class_accuracy
from ..view import Layout, Model


@dataclass
class ClassRow:
    digit: int
    clean: str
    shifted: str
    drop: str
    drop_value: float
    hardest: str
    predicted_as: str
    highlight: bool = False


@dataclass
class PerClass:
    class_heat: HeatTable | None  # None when the run has no shifts
    class_rankings: list[tuple[str, list[ClassRow]]]  # (model name, its ranking)


def build(models: Sequence[Model], layout: Layout) -> PerClass:
    return PerClass(class_heat(models, layout) if layout.shifts else None,
                    [(m.name, class_ranking(m)) for m in models])


def _f(v) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def class_heat(models: Sequence[Model], layout: Layout) -> HeatTable:
    cols = [str(k) for k in range(N_CLASSES)] + ["all"]
    if len(models) == 1:
        m = models[0]
        drops = class_drops(m, layout.severities, layout.shifts)
        vmax = delta_vmax(drops)
        groups = []
        i = 0
        for fam, names in layout.families:
            rows = []
            for s in names:
                d = drops[i]
                i += 1
                overall = m.clean.accuracy - (m.shift_mean(s, layout.severities) or np.nan)
                cells = [delta_cell(_f(v), vmax, f"digit {k} under {s}: {num(_f(v))} pp lower "
                                    "than clean (mean over severities)")
                         for k, v in enumerate(d)]
                cells.append(delta_cell(_f(overall), vmax, "all digits"))
                cells[-1].strong = True
                rows.append(HeatRow(s, cells))
            groups.append(HeatGroup(fam, rows))
        return HeatTable(cols, groups, delta_key(vmax),
                         "Accuracy drop from clean per digit, in percentage points, averaged over "
                         "severities; red = the digit got worse, blue = better.", "shift")
    groups = []
    all_d = []
    for m in models:
        rows = []
        for fam, names in layout.families:
            d = nanmean(class_drops(m, layout.severities, names), axis=0)
            overall = m.clean.accuracy - (mean_known([m.shift_mean(s, layout.severities)
                                                      for s in names]) or np.nan)
            rows.append((fam, d, overall))
            all_d.append(d)
        groups.append((m.name, rows))
    vmax = delta_vmax(np.array(all_d))
    return HeatTable(cols, [HeatGroup(name, [HeatRow(fam, [delta_cell(_f(v), vmax) for v in d] +
                                                      [delta_cell(_f(o), vmax)])
                                             for fam, d, o in rows])
                            for name, rows in groups],
                     delta_key(vmax),
                     "Accuracy drop from clean per digit and family (pp, mean over the family's "
                     "shifts and severities), one block per model.", "family")


def class_ranking(m: Model) -> list[ClassRow]:
    """Every digit, the most damaged first: mean accuracy over all shift records, the shift
    where it is worst, and what it is most often mistaken for under shift."""
    recs = m.result.shifts
    if not recs:
        return []
    clean = per_class_accuracy(m.clean)
    pcs = np.array([per_class_accuracy(r) for r in recs])
    mean = nanmean(pcs, axis=0)
    conf = np.sum([np.asarray(r.confusion, dtype=float) for r in recs], axis=0)
    rows = []
    for k in range(N_CLASSES):
        j = int(np.nanargmin(pcs[:, k])) if np.isfinite(pcs[:, k]).any() else 0
        confused = most_confused(conf, k)
        rows.append(ClassRow(k, pct(_f(clean[k])), pct(_f(mean[k])), pp(_f(mean[k] - clean[k])),
                             float(clean[k] - mean[k]),
                             f"{recs[j].name} s{recs[j].severity}: {pct(_f(pcs[j, k]))}",
                             f"{confused[0]} ({pct(confused[1])} of all shifted {k}s)" if confused
                             else "—"))
    rows.sort(key=lambda r: (-r.drop_value if np.isfinite(r.drop_value) else 0, r.digit))
    for r in rows[:3]:
        r.highlight = True
    return rows
