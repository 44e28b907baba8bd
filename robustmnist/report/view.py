"""What the report shows, computed from Results: plain dataclasses the templates only lay out.

Everything here is a pure function of the Results (no clock, no files), so the same
results.json always gives the same report. One Result gives a single-model report;
several give side-by-side comparisons, shift order being the union in order of first
appearance (the engine writes shifts grouped by family, in suite order).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..results import Result, SetMetrics, ShiftRecord
from . import plots, run_info

N_CLASSES = 10


# ---- models and lookups ------------------------------------------------------------------------

@dataclass
class Model:
    name: str
    result: Result
    color: str
    records: dict[tuple[str, int], ShiftRecord] = field(default_factory=dict)

    @property
    def clean(self) -> SetMetrics:
        return self.result.clean

    def acc(self, shift: str, sev: int) -> float | None:
        r = self.records.get((shift, sev))
        return None if r is None else r.accuracy

    def shift_mean(self, shift: str, severities: Sequence[int]) -> float | None:
        vals = [a for s in severities if (a := self.acc(shift, s)) is not None]
        return float(np.mean(vals)) if vals else None


@dataclass
class Layout:
    """Shifts grouped by family (order of first appearance) and the severities present."""

    families: list[tuple[str, list[str]]]
    severities: list[int]
    generative: set[str]

    @property
    def shifts(self) -> list[str]:
        return [s for _, names in self.families for s in names]


def make_models(results: Sequence[Result], names: Sequence[str] | None = None) -> list[Model]:
    if not results:
        raise UserError("no results to report on; pass at least one results.json")
    if names is not None and len(names) != len(results):
        raise UserError(f"got {len(names)} names for {len(results)} results; give one name per "
                        "results file")
    base = list(names) if names is not None else [
        r.model.name or Path(r.model.path).stem or f"model {i + 1}" for i, r in enumerate(results)]
    seen: dict[str, int] = {}
    models = []
    for i, (n, r) in enumerate(zip(base, results, strict=True)):
        seen[n] = seen.get(n, 0) + 1
        shown = n if seen[n] == 1 else f"{n} ({seen[n]})"
        m = Model(shown, r, plots.SERIES[i % len(plots.SERIES)])
        m.records = {(s.name, s.severity): s for s in r.shifts}
        models.append(m)
    return models


def make_layout(models: Sequence[Model]) -> Layout:
    families: dict[str, list[str]] = {}
    sevs: set[int] = set()
    generative: set[str] = set()
    has_twin: set[str] = set()
    for m in models:
        for s in m.result.shifts:
            names = families.setdefault(s.family or "other", [])
            if s.name not in names:
                names.append(s.name)
            sevs.add(s.severity)
            (has_twin if s.flip_rate is not None else generative).add(s.name)
    return Layout(list(families.items()), sorted(sevs), generative - has_twin)


# ---- small display helpers ---------------------------------------------------------------------

def pct(v: float | None, digits: int = 1) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v * 100:.{digits}f}%"


def num(v: float | None, digits: int = 1) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v * 100:.{digits}f}"


def pp(v: float | None, digits: int = 1) -> str:
    """A change in percentage points with an explicit sign (typographic minus)."""
    if v is None or not math.isfinite(v):
        return "—"
    return f"{v * 100:+.{digits}f}".replace("-", "−")


@dataclass
class Cell:
    text: str
    bg: str = ""
    fg: str = ""
    title: str = ""
    strong: bool = False


@dataclass
class HeatRow:
    label: str
    cells: list[Cell]
    note: str = ""


@dataclass
class HeatGroup:
    title: str
    rows: list[HeatRow]
    note: str = ""


@dataclass
class HeatTable:
    columns: list[str]
    groups: list[HeatGroup]
    key: list[tuple[str, str, str]]  # colour key swatches: (bg, fg, text)
    caption: str
    row_header: str = "shift"
    col_px: int = 40  # width a value column needs (model names need more than numbers)

    @property
    def column_width(self) -> int:
        """CSS column width that fits one family's table: the groups flow into as many
        columns as the page has room for (three on a laptop, one on a phone)."""
        return 130 + self.col_px * len(self.columns)

    @property
    def min_width_em(self) -> float:
        """Below this a table scrolls sideways in its box instead of squeezing digits together."""
        return round(9.5 + self.col_px / 13 * len(self.columns), 1)


def acc_cell(v: float | None, title: str = "") -> Cell:
    bg, fg = plots.cell_colors(v, plots.ACC_CMAP, 0.0, 1.0)
    return Cell(num(v), bg, fg, title)


def acc_key() -> list[tuple[str, str, str]]:
    return [(bg, fg, f"{v * 100:.0f}") for bg, fg, v in plots.legend_gradient(plots.ACC_CMAP, 0, 1)]


def delta_cell(v: float | None, vmax: float, title: str = "", digits: int = 1) -> Cell:
    bg, fg = plots.cell_colors(v, plots.DELTA_CMAP, -vmax, vmax, center=0.0)
    text = "—" if v is None else f"{v * 100:.{digits}f}".replace("-", "−")
    return Cell(text, bg, fg, title)


def delta_key(vmax: float) -> list[tuple[str, str, str]]:
    return [(bg, fg, f"{v * 100:.0f}".replace("-", "−"))
            for bg, fg, v in plots.legend_gradient(plots.DELTA_CMAP, -vmax, vmax, 0.0, steps=7)]


def sev_label(s: int) -> str:
    return f"s{s}"


# ---- sections ----------------------------------------------------------------------------------

@dataclass
class Card:
    label: str
    value: str
    detail: str = ""
    tone: str = ""  # "", "bad", "warn", "good"


@dataclass
class Figure:
    uri: str
    alt: str
    caption: str = ""
    wide: bool = False


def shift_drops(m: Model, layout: Layout) -> list[tuple[str, str, float, float, int, float]]:
    """(shift, family, mean accuracy over severities, drop from clean, worst severity, worst acc),
    largest drop first."""
    out = []
    for fam, names in layout.families:
        for s in names:
            mean = m.shift_mean(s, layout.severities)
            if mean is None:
                continue
            worst_sev, worst = min(((sv, a) for sv in layout.severities
                                    if (a := m.acc(s, sv)) is not None), key=lambda t: t[1])
            out.append((s, fam, mean, m.clean.accuracy - mean, worst_sev, worst))
    return sorted(out, key=lambda t: (-t[3], t[0]))


def summary_cards(m: Model, layout: Layout) -> list[Card]:
    r = m.result
    s = r.summary
    ci = r.clean.accuracy_ci or [None, None]
    cards = [Card("Clean accuracy", pct(r.clean.accuracy, 2),
                  f"95% CI {pct(ci[0])}–{pct(ci[1])} · n={r.clean.n:,}", "good")]
    seen = s.get("seen_in_training") or {}
    unseen = [x for x in r.shifts if not x.seen]
    n_unseen = len({x.name for x in unseen}) if seen else len(layout.shifts)
    mean_shift = s.get("mean_shifted_accuracy")
    if mean_shift is None and unseen:
        mean_shift = float(np.mean([x.accuracy for x in unseen]))
    if mean_shift is not None:
        drop = mean_shift - r.clean.accuracy
        cards.append(Card("Mean shifted accuracy", pct(mean_shift),
                          f"{pp(drop)} pp vs clean · {n_unseen} {'unseen ' if seen else ''}shifts × "
                          f"{len(layout.severities)} severities", _tone(drop)))
    else:
        cards.append(Card("Mean shifted accuracy", "—", "this run has no shifts"))
    worst = s.get("worst_shift")
    if not worst and unseen:
        w = min(unseen, key=lambda x: x.accuracy)
        worst = {"name": w.name, "severity": w.severity, "accuracy": w.accuracy}
    if worst:
        cards.append(Card("Worst shift", pct(worst.get("accuracy")),
                          f"{worst.get('name')} at severity {worst.get('severity')}", "bad"))
    if s.get("mce") is not None:
        ref = (s.get("reference") or {}).get("name", "the reference model")
        rel = s.get("relative_mce")
        detail = (f"relative mCE {pct(rel, 0)} · " if rel is not None else "") + \
            f"vs {ref} (100% = as robust as it; lower is better)"
        listed = (s.get("reference_sets") or {}).get("listed", [])
        out = [d["set"] for d in listed if not d.get("kept")]
        if out:  # sets whose images differ from the reference's are named, never dropped silently
            detail += (f" · {len(out)} set(s) left out, not the reference's images: {', '.join(out[:6])}"
                       + (" …" if len(out) > 6 else ""))
        cards.append(Card("mCE", pct(s["mce"], 0), detail,
                          "good" if s["mce"] < 1 else "warn"))
    if seen.get("families"):
        mean = seen.get("mean_accuracy")
        cards.append(Card("Seen in training", ", ".join(seen["families"]),
                          (f"mean {pct(mean)} over {seen.get('n_sets', 0)} sets · " if mean is not None
                           else "") + f"from {seen.get('source') or 'the checkpoint'}; left out "
                          "of the numbers above", "warn"))
    auroc = s.get("ood_mean_auroc")
    if auroc is None and r.ood:
        auroc = float(np.mean([o.scores.get("msp", {}).get("auroc", np.nan) for o in r.ood]))
    if r.ood and auroc is not None:
        cards.append(Card("OOD mean AUROC", f"{auroc:.3f}",
                          f"max softmax over {len(r.ood)} OOD set{'s' * (len(r.ood) != 1)} "
                          "(1 = perfectly separated)", "good" if auroc >= 0.9 else "warn"))
    else:
        cards.append(Card("OOD mean AUROC", "—", "no OOD sets in this run"))
    return cards


def _tone(drop: float) -> str:
    return "bad" if drop < -0.15 else "warn" if drop < -0.03 else "good"


@dataclass
class CompareRow:
    model: str
    color: str
    cells: list[Cell]


COMPARE_COLUMNS = ["clean (95% CI)", "mean shifted", "worst shift", "mCE", "OOD AUROC"]


def compare_rows(models: Sequence[Model], layout: Layout) -> list[CompareRow]:
    vals = []
    for m in models:
        cards = {c.label: c for c in summary_cards(m, layout)}
        s = m.result.summary
        vals.append((m, cards, s))
    best_clean = max(m.clean.accuracy for m in models)
    means = [c["Mean shifted accuracy"].value for _, c, _ in vals]
    rows = []
    for m, cards, _s in vals:
        ci = m.clean.accuracy_ci or [None, None]
        worst = cards.get("Worst shift")
        mean_card = cards["Mean shifted accuracy"]
        rows.append(CompareRow(m.name, m.color, [
            Cell(f"{pct(m.clean.accuracy, 2)} ({num(ci[0])}–{num(ci[1])})",
                 strong=m.clean.accuracy == best_clean),
            Cell(mean_card.value, strong=len(models) > 1 and mean_card.value == max(means)),
            Cell(f"{worst.value} · {worst.detail.replace(' at severity ', ' s')}"
                 if worst else "—"),
            Cell(f"{cards['mCE'].value} vs {(_s.get('reference') or {}).get('name', 'the reference')}"
                 if "mCE" in cards else "—"),  # a ratio means nothing without its reference
            Cell(cards["OOD mean AUROC"].value),
        ]))
    return rows


@dataclass
class Break:
    shift: str
    family: str
    text: str
    mean: float


def where_it_breaks(m: Model, layout: Layout, k: int = 5) -> list[Break]:
    out = []
    for shift, fam, mean, drop, wsev, wacc in shift_drops(m, layout)[:k]:
        if drop <= 0.005:
            break
        out.append(Break(shift, fam, f"{pct(mean)} mean over severities ({pp(-drop)} pp); "
                                     f"{pct(wacc)} at s{wsev}", mean))
    return out


def model_gaps(models: Sequence[Model], layout: Layout, k: int = 5) -> list[Break]:
    """Shifts where the models differ most (mean over severities)."""
    out = []
    for fam, names in layout.families:
        for s in names:
            vals = [(m.name, v) for m in models if (v := m.shift_mean(s, layout.severities))
                    is not None]
            if len(vals) < 2:
                continue
            best, worst = max(vals, key=lambda t: t[1]), min(vals, key=lambda t: t[1])
            gap = best[1] - worst[1]
            out.append(Break(s, fam, f"{best[0]} {pct(best[1])} vs {worst[0]} {pct(worst[1])} "
                                     f"({num(gap)} pp apart)", gap))
    return sorted(out, key=lambda b: (-b.mean, b.shift))[:k]


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
            fam_mean = _mean([m.shift_mean(s, layout.severities) for s in names])
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


def _mean(vals) -> float | None:
    v = [x for x in vals if x is not None]
    return float(np.mean(v)) if v else None


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
            series = [(m.name, [_mean([m.acc(s, sv) for s in names]) for sv in sevs])
                      for m in models]
            title = f"{fam} (mean of {len(names)} shift{'s' * (len(names) != 1)})"
            uri = plots.family_curves(title, sevs, series,
                                      [(m.name, m.clean.accuracy) for m in models], low)
            alt = f"{fam}: mean accuracy by severity, one line per model"
        figs.append(Figure(uri, alt))
    return figs


# ---- per class -------------------------------------------------------------------------------

def _nanmean(a, axis=0) -> np.ndarray:
    """nanmean that gives NaN for an all-missing column without a RuntimeWarning (a model
    whose run lacks a family the other model has)."""
    a = np.asarray(a, dtype=float)
    n = np.isfinite(a).sum(axis=axis)
    total = np.where(np.isfinite(a), a, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def _pc(metrics: SetMetrics) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in metrics.per_class_accuracy[:N_CLASSES]],
                    dtype=float)


def class_drops(m: Model, layout: Layout, names: Sequence[str]) -> np.ndarray:
    """Mean over severities of (clean per-class accuracy − shifted), one row per shift name."""
    clean = _pc(m.clean)
    rows = []
    for s in names:
        recs = [m.records[(s, sv)] for sv in layout.severities if (s, sv) in m.records]
        rows.append(_nanmean([clean - _pc(r) for r in recs], axis=0) if recs
                    else np.full(N_CLASSES, np.nan))
    return np.array(rows).reshape(len(rows), N_CLASSES)


def class_heat(models: Sequence[Model], layout: Layout) -> HeatTable:
    cols = [str(k) for k in range(N_CLASSES)] + ["all"]
    if len(models) == 1:
        m = models[0]
        drops = class_drops(m, layout, layout.shifts)
        vmax = _vmax(drops)
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
            d = _nanmean(class_drops(m, layout, names), axis=0)
            overall = m.clean.accuracy - (_mean([m.shift_mean(s, layout.severities)
                                                 for s in names]) or np.nan)
            rows.append((fam, d, overall))
            all_d.append(d)
        groups.append((m.name, rows))
    vmax = _vmax(np.array(all_d))
    return HeatTable(cols, [HeatGroup(name, [HeatRow(fam, [delta_cell(_f(v), vmax) for v in d] +
                                                      [delta_cell(_f(o), vmax)])
                                             for fam, d, o in rows])
                            for name, rows in groups],
                     delta_key(vmax),
                     "Accuracy drop from clean per digit and family (pp, mean over the family's "
                     "shifts and severities), one block per model.", "family")


def _f(v) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def _vmax(a: np.ndarray) -> float:
    finite = np.abs(a[np.isfinite(a)]) if a.size else np.array([])
    return float(min(1.0, max(0.05, np.ceil((finite.max() if finite.size else 0.05) * 20) / 20)))


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


def class_ranking(m: Model) -> list[ClassRow]:
    """Every digit, the most damaged first: mean accuracy over all shift records, the shift
    where it is worst, and what it is most often mistaken for under shift."""
    recs = m.result.shifts
    if not recs:
        return []
    clean = _pc(m.clean)
    pcs = np.array([_pc(r) for r in recs])
    mean = _nanmean(pcs, axis=0)
    conf = np.sum([np.asarray(r.confusion, dtype=float) for r in recs], axis=0)
    rows = []
    for k in range(N_CLASSES):
        j = int(np.nanargmin(pcs[:, k])) if np.isfinite(pcs[:, k]).any() else 0
        off = conf[k].copy()
        off[k] = 0
        p = int(off.argmax())
        share = off[p] / max(conf[k].sum(), 1)
        rows.append(ClassRow(k, pct(_f(clean[k])), pct(_f(mean[k])), pp(_f(mean[k] - clean[k])),
                             float(clean[k] - mean[k]),
                             f"{recs[j].name} s{recs[j].severity}: {pct(_f(pcs[j, k]))}",
                             f"{p} ({pct(share)} of all shifted {k}s)" if off.sum() else "—"))
    rows.sort(key=lambda r: (-r.drop_value if np.isfinite(r.drop_value) else 0, r.digit))
    for r in rows[:3]:
        r.highlight = True
    return rows


# ---- confusion ---------------------------------------------------------------------------------

def _rates(cm) -> np.ndarray:
    a = np.asarray(cm, dtype=float)
    return a / np.maximum(a.sum(axis=1, keepdims=True), 1)


def worst_records(m: Model, k: int = 3) -> list[ShiftRecord]:
    """The k shifts with the lowest accuracy, each at its worst severity."""
    best: dict[str, ShiftRecord] = {}
    for r in m.result.shifts:
        if r.name not in best or r.accuracy < best[r.name].accuracy:
            best[r.name] = r
    return sorted(best.values(), key=lambda r: (r.accuracy, r.name))[:k]


@dataclass
class Matrix:
    title: str
    rows: list[list[Cell]]
    kind: str  # "rates" or "delta"


def rate_matrix(cm, title: str) -> Matrix:
    counts = np.asarray(cm, dtype=int)
    rates = _rates(counts)
    rows = []
    for t in range(rates.shape[0]):
        row = []
        for p in range(rates.shape[1]):
            v = rates[t, p]
            bg, fg = plots.cell_colors(v, plots.RATE_CMAP, 0.0, 1.0)
            text = "" if v < 0.005 else f"{v * 100:.0f}"
            row.append(Cell(text, bg, fg, f"true {t} → predicted {p}: {counts[t, p]:,} images "
                                          f"({v * 100:.1f}%)", strong=t == p))
        rows.append(row)
    return Matrix(title, rows, "rates")


def delta_matrix(delta: np.ndarray, title: str) -> Matrix:
    vmax = _vmax(delta)
    rows = []
    for t in range(delta.shape[0]):
        row = []
        for p in range(delta.shape[1]):
            v = float(delta[t, p])
            # red = worse everywhere: more confusion off the diagonal, less accuracy on it
            worse = -v if t == p else v
            bg, fg = plots.cell_colors(worse, plots.DELTA_CMAP, -vmax, vmax, center=0.0)
            text = "" if abs(v) < 0.005 else f"{v * 100:+.0f}".replace("-", "−")
            row.append(Cell(text, bg, fg, f"true {t} → predicted {p}: {pp(v)} pp vs clean",
                            strong=t == p))
        rows.append(row)
    return Matrix(title, rows, "delta")


def confusion_matrices(models: Sequence[Model]) -> list[Matrix]:
    """Clean, then the worst shifts (3 for one model, 1 per model when comparing), each
    followed by its change from clean."""
    out = []
    k = 3 if len(models) == 1 else 1
    for m in models:
        prefix = f"{m.name}: " if len(models) > 1 else ""
        out.append(rate_matrix(m.clean.confusion, f"{prefix}clean ({pct(m.clean.accuracy)})"))
        clean = _rates(m.clean.confusion)
        for r in worst_records(m, k):
            out.append(rate_matrix(r.confusion, f"{prefix}{r.name} s{r.severity} "
                                                f"({pct(r.accuracy)})"))
            out.append(delta_matrix(_rates(r.confusion) - clean,
                                    f"{prefix}{r.name} s{r.severity} − clean (pp)"))
    return out


@dataclass
class PairRow:
    model: str
    pair: str
    shift: str
    clean: str
    shifted: str
    growth: str
    count: int


def confused_pairs(models: Sequence[Model], k: int = 10) -> list[PairRow]:
    """Off-diagonal (true → predicted) rates that grew most from clean; each (shift, pair)
    counted once, at the severity where it grew most."""
    cands = []
    for m in models:
        clean = _rates(m.clean.confusion)
        best: dict[tuple[str, int, int], tuple[float, ShiftRecord]] = {}
        for r in m.result.shifts:
            delta = _rates(r.confusion) - clean
            np.fill_diagonal(delta, -np.inf)
            for flat in np.argsort(delta, axis=None)[::-1][:5]:
                t, p = divmod(int(flat), N_CLASSES)
                key = (r.name, t, p)
                if key not in best or delta[t, p] > best[key][0]:
                    best[key] = (float(delta[t, p]), r)
        for (shift, t, p), (g, r) in best.items():
            if g > 0:
                cands.append((g, m, shift, t, p, r, clean[t, p]))
    cands.sort(key=lambda c: (-c[0], c[1].name, c[2], c[3], c[4]))
    per_model = k if len(models) == 1 else max(3, k // len(models))
    used: dict[str, int] = {}
    out = []
    for g, m, shift, t, p, r, c in cands:
        if used.get(m.name, 0) >= per_model:
            continue
        used[m.name] = used.get(m.name, 0) + 1
        out.append(PairRow(m.name, f"{t} → {p}", f"{shift} s{r.severity}", pct(c),
                           pct(_rates(r.confusion)[t, p]), pp(g), int(r.confusion[t][p])))
    return out


# ---- calibration ----------------------------------------------------------------------------

def pooled_reliability(records: Sequence[SetMetrics]) -> tuple[list, list, list[int]]:
    """Bins summed over sets: count-weighted accuracy and confidence per bin."""
    bins = max((len(r.reliability.get("counts", [])) for r in records), default=0)
    n = np.zeros(bins)
    a = np.zeros(bins)
    c = np.zeros(bins)
    for r in records:
        rel = r.reliability or {}
        for i, (cnt, acc, conf) in enumerate(zip(rel.get("counts", []), rel.get("accuracy", []),
                                                 rel.get("confidence", []), strict=False)):
            if cnt and acc is not None and conf is not None:
                n[i] += cnt
                a[i] += cnt * acc
                c[i] += cnt * conf
    acc = [float(a[i] / n[i]) if n[i] else None for i in range(bins)]
    conf = [float(c[i] / n[i]) if n[i] else None for i in range(bins)]
    return acc, conf, [int(x) for x in n]


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
        accs = [m.clean.accuracy] + [_mean([r.accuracy for r in m.result.shifts
                                            if r.severity == s]) for s in layout.severities]
        confs = [m.clean.mean_confidence] + [_mean([r.mean_confidence for r in m.result.shifts
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
                cells = [cell(m.clean.ece)] + [cell(v) for v in vals] + [cell(_mean(vals))]
                cells[-1].strong = True
                rows.append(HeatRow(s, cells))
            groups.append(HeatGroup(fam, rows))
        return HeatTable(cols, groups, key, "Expected calibration error (15 equal-width bins) per "
                         "shift and severity; 0 = confidence matches accuracy.")
    cols = [m.name for m in models]
    groups = [HeatGroup("clean", [HeatRow("MNIST test", [cell(m.clean.ece) for m in models])])]
    for fam, names in layout.families:
        groups.append(HeatGroup(fam, [HeatRow(s, [cell(_mean([
            m.records[(s, sv)].ece for sv in layout.severities if (s, sv) in m.records]))
            for m in models]) for s in names]))
    return HeatTable(cols, groups, key, "Expected calibration error (15 bins) per shift, mean "
                     "over severities, one column per model.", col_px=72)


# ---- OOD ---------------------------------------------------------------------------------------

SCORE_NAMES = {"msp": "max softmax", "max_logit": "max logit", "energy": "energy"}


@dataclass
class OODRow:
    model: str
    set: str
    description: str
    n: int
    score: str
    auroc: str
    fpr95: str
    aupr_in: str
    aupr_out: str
    first: bool
    span: int
    mean_conf: str
    over_09: str
    over_099: str
    tone: str = ""


def ood_rows(models: Sequence[Model]) -> list[OODRow]:
    rows = []
    for m in models:
        for o in m.result.ood:
            scores = [(k, o.scores[k]) for k in SCORE_NAMES if k in o.scores] + \
                [(k, v) for k, v in o.scores.items() if k not in SCORE_NAMES]
            for i, (k, v) in enumerate(scores):
                auroc = v.get("auroc")
                na = v.get("available") is False  # e.g. energy of a log-softmax model: see ood.py
                rows.append(OODRow(
                    m.name, o.name, o.description, o.n,
                    SCORE_NAMES.get(k, k) + (f" ({v.get('reason', 'not available')})" if na else ""),
                    "not available" if na else _fmt3(auroc), pct(v.get("fpr95")), _fmt3(v.get("aupr_in")),
                    _fmt3(v.get("aupr_out")), i == 0, len(scores), pct(o.mean_confidence),
                    pct(o.frac_confidence_over_0_9), pct(o.frac_confidence_over_0_99),
                    "" if auroc is None else "good" if auroc >= 0.95 else
                    "warn" if auroc >= 0.85 else "bad"))
    return rows


def _fmt3(v) -> str:
    return "—" if v is None else f"{v:.3f}"


def ood_convention(models: Sequence[Model]) -> str:
    texts = []
    for m in models:
        for t in [o.convention for o in m.result.ood] + [m.result.conventions.get("fpr95", "")]:
            if t and t not in texts:
                texts.append(t)
    return "; ".join(texts)


@dataclass
class OODPanel:
    title: str
    figures: list[Figure]
    samples: str  # data URI or ""


def ood_panels(models: Sequence[Model]) -> list[OODPanel]:
    from .images import png_data_uri

    panels = []
    for i, m in enumerate(models):
        prefix = f"{m.name}: " if len(models) > 1 else ""
        for o in m.result.ood:
            figs = []
            h = o.msp_histogram or {}
            if h.get("edges") and h.get("in") and h.get("out"):
                figs.append(Figure(plots.msp_histogram(f"{prefix}max softmax, {o.name}",
                                                       h["edges"], h["in"], h["out"], o.name),
                                   f"histogram of max softmax, MNIST test vs {o.name}"))
            if o.predicted_histogram:
                figs.append(Figure(plots.predicted_histogram(f"{prefix}{o.name} predicted as",
                                                             o.predicted_histogram,
                                                             3 if len(models) == 1 else i),
                                   f"which digit {o.name} images are predicted as"))
            samples = png_data_uri((o.gallery or {}).get("samples_png"))
            panels.append(OODPanel(f"{prefix}{o.name}", figs, samples or ""))
    return panels


# ---- galleries -----------------------------------------------------------------------------

@dataclass
class Mistake:
    uri: str
    pair: str  # "true→predicted"
    caption: str  # severity and confidence
    title: str


@dataclass
class GalleryCard:
    shift: str
    headline: str
    strip: str | None
    row_labels: list[str]
    mistakes: list[tuple[str, list[Mistake]]]  # (model name or "", examples)


@dataclass
class GalleryFamily:
    family: str
    summary: str
    open: bool
    cards: list[GalleryCard]


def _mistakes(m: Model, shift: str, severities: Sequence[int], k: int) -> list[Mistake]:
    """Up to k misclassified digits, round-robin from the highest severity down, so a card
    shows how errors look across the ladder, not only at its end."""
    from .images import png_data_uri

    pools = []
    for sv in sorted(severities, reverse=True):
        r = m.records.get((shift, sv))
        if r is not None:
            items = sorted((r.gallery or {}).get("misclassified", []) or [],
                           key=lambda e: -float(e.get("confidence") or 0))
            pools.append((sv, items))
    out = []
    while len(out) < k and any(items for _, items in pools):
        for sv, items in pools:
            if items and len(out) < k:
                e = items.pop(0)
                uri = png_data_uri(e.get("png"))
                if uri is None:
                    continue
                conf = e.get("confidence")
                out.append(Mistake(uri, f"{e.get('true')}→{e.get('pred')}", f"s{sv} · {pct(conf, 0)}",
                                   f"test image {e.get('index')}: true {e.get('true')}, "
                                   f"predicted {e.get('pred')} with confidence {pct(conf)} "
                                   f"(severity {sv})"))
    return out


def galleries(models: Sequence[Model], layout: Layout, open_families: int = 2) -> list[GalleryFamily]:
    from .images import stack_strips

    lead = models[0]
    fam_means = []
    for fam, names in layout.families:
        fam_means.append((_mean([lead.shift_mean(s, layout.severities) for s in names]), fam))
    worst = {f for v, f in sorted((v if v is not None else 2.0, f) for v, f in fam_means)
             [:open_families]}
    out = []
    for (fam, names), (fmean, _) in zip(layout.families, fam_means, strict=True):
        cards = []
        for s in names:
            src = next((m for m in models
                        if any((s, sv) in m.records for sv in layout.severities)), lead)
            strips = [(src.clean.gallery or {}).get("samples_png")]
            strips += [((src.records[(s, sv)].gallery or {}).get("samples_png")
                        if (s, sv) in src.records else None) for sv in layout.severities]
            generative = s in layout.generative
            labels = [("MNIST" if generative else "clean") +
                      (f" {num(src.clean.accuracy, 0)}" if len(models) == 1 else "")]
            for sv in layout.severities:
                a = src.acc(s, sv)
                labels.append(f"s{sv}" + (f" {num(a, 0)}" if len(models) == 1 and a is not None
                                          else ""))
            k = 8 if len(models) == 1 else 4
            mistakes = [("" if len(models) == 1 else m.name, _mistakes(m, s, layout.severities, k))
                        for m in models]
            worst_sev = min(((sv, a) for sv in layout.severities
                             if (a := lead.acc(s, sv)) is not None),
                            key=lambda t: t[1], default=None)
            headline = "" if worst_sev is None else f"worst {pct(worst_sev[1])} at s{worst_sev[0]}"
            if generative:
                headline += " · generated digits, not the clean ones above"
            cards.append(GalleryCard(s, headline, stack_strips(strips), labels,
                                     [(n, ms) for n, ms in mistakes if ms]))
        if len(models) == 1:
            summary = f"mean accuracy {pct(fmean)}"
        else:
            summary = "mean accuracy " + ", ".join(
                f"{m.name} {pct(_mean([m.shift_mean(s, layout.severities) for s in names]))}"
                for m in models)
        out.append(GalleryFamily(fam, summary, fam in worst, cards))
    return out


# ---- model and reproducibility -----------------------------------------------------------------

@dataclass
class KV:
    key: str
    values: list[str]
    mono: bool = False


def model_rows(models: Sequence[Model]) -> list[KV]:
    def row(key, fn, mono=False):
        return KV(key, [str(fn(m.result)) for m in models], mono)

    def params(r: Result) -> str:
        return "—" if r.model.n_params is None else f"{r.model.n_params:,}"

    def suite(r: Result) -> str:
        s = r.suite or {}
        parts = [str(s.get("name", "—"))]
        if s.get("source"):
            parts.append(f"from {s['source']}")
        if s.get("n"):
            parts.append(f"{s['n']:,} images per set")
        return ", ".join(parts)

    env = lambda attr: (lambda r: getattr(r.environment, attr) or "—")  # noqa: E731
    return [
        row("file", lambda r: r.model.path, True),
        row("file sha256", lambda r: r.model.sha256, True),
        row("format", lambda r: r.model.format),
        row("architecture", lambda r: r.model.arch or "—"),
        row("parameters", params),
        row("preprocess", lambda r: r.model.preprocess, True),
        row("suite", suite),
        row("images per set", run_info.images_per_set),
        row("forward path", run_info.forward_path),
        row("seed", lambda r: r.seed),
        row("created", lambda r: r.created or "—"),
        row("device", lambda r: " ".join(x for x in (r.environment.device,
                                                     r.environment.device_name) if x)),
        row("threads", lambda r: r.environment.threads or "—"),
        row("python", env("python")),
        row("torch", env("torch")),
        row("torchvision", env("torchvision")),
        row("robustmnist", env("robustmnist")),
        row("platform", env("platform")),
        row("predictions", lambda r: (r.predictions or {}).get("file", "—")),
        row("schema", lambda r: r.schema_version),
    ]


def timing_rows(models: Sequence[Model]) -> list[KV]:
    stages: list[str] = []
    for m in models:
        for k in m.result.timings:
            if k not in stages:
                stages.append(k)
    rows = [KV(k, [_secs(m.result.timings.get(k)) for m in models]) for k in stages]
    if stages and "total" not in stages:
        rows.append(KV("total", [_secs(sum(v for v in m.result.timings.values()
                                           if isinstance(v, int | float))) for m in models]))
    return rows


def _secs(v) -> str:
    return "—" if not isinstance(v, int | float) else f"{v:.1f} s"


@dataclass
class SetHash:
    set: str
    family: str
    severity: str
    version: str
    sha256: str
    params: str
    same: str


def set_hashes(models: Sequence[Model], layout: Layout) -> list[SetHash]:
    import json

    lead = models[0]
    out = []
    for fam, names in layout.families:
        for s in names:
            for sv in layout.severities:
                recs = [m.records.get((s, sv)) for m in models]
                r = next((x for x in recs if x is not None), None)
                if r is None:
                    continue
                same = "" if len(models) == 1 else (
                    "yes" if len({x.sha256 for x in recs if x is not None}) == 1 and
                    all(x is not None for x in recs) else "differs")
                out.append(SetHash(s, fam, str(sv), str(r.version), r.sha256 or "—",
                                   json.dumps(r.params, sort_keys=True) if r.params else "",
                                   same))
    for o in lead.result.ood:
        out.append(SetHash(o.name, "OOD", "", "", o.sha256 or "—", o.description, ""))
    return out
