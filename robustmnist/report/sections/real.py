"""Real digits: for each real set, how the model does on it next to clean and the suite,
whether the framing did what the user expected (before/after gallery), which synthetic shifts
it resembles, and its per-class and confusion views (the shared blocks, reused)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...results import RealRecord
from ..blocks import Card, Matrix, Mistake, delta_matrix, rate_matrix
from ..format import pct, pp, tone
from ..images import png_data_uri
from ..stats import N_CLASSES, most_confused
from ..view import Layout, Model

SHOWN_SHIFTS = 3


@dataclass
class ShiftMatch:
    shift: str
    family: str
    accuracy: str
    real_accuracy: str
    distance: str


@dataclass
class ClassLine:
    digit: int
    clean: str
    real: str
    change: str
    predicted_as: str
    n: int
    highlight: bool = False


@dataclass
class RealBlock:
    model: str  # "" in a single-model report
    name: str
    source: str
    n: int
    sha256: str
    cards: list[Card]
    before: str | None  # data URIs of the framing gallery strips
    after: str | None
    gallery_labels: list[int]
    doubtful: str  # "12 of 1,000 framings look doubtful: ..." ("" when none or not counted)
    doubtful_before: str | None
    doubtful_after: str | None
    matches: list[ShiftMatch]
    classes: list[ClassLine]
    matrices: list[Matrix]
    mistakes: list[Mistake]
    calibration: str


@dataclass
class Real:
    blocks: list[RealBlock]


def build(models: Sequence[Model], layout: Layout) -> Real:
    return Real(real_blocks(models))


def _f(v) -> float | None:
    return None if v is None else float(v)


def _doubtful_line(d: dict) -> str:
    if not d.get("count"):
        return ""
    why = ", ".join(f"{k}: {v:,}" for k, v in d.get("reasons", {}).items())
    return f"{d['count']:,} of {d.get('n', 0):,} framings look doubtful ({why})"


def _cards(m: Model, r: RealRecord) -> list[Card]:
    clean = m.clean.accuracy
    lo, hi = (r.accuracy_ci or [None, None])[:2]
    vs_clean = r.accuracy - clean
    cards = [Card("Real accuracy", pct(r.accuracy, 1), f"95% CI {pct(lo)}–{pct(hi)} · "
                  f"n={r.n:,}", tone(vs_clean)),
             Card("vs clean MNIST", f"{pp(vs_clean)} pp", f"clean {pct(clean, 1)}", tone(vs_clean))]
    suite = m.result.summary.get("mean_shifted_accuracy")
    if suite is None and m.result.shifts:
        suite = float(np.mean([x.accuracy for x in m.result.shifts]))
    if suite is not None:
        cards.append(Card("vs the suite mean", f"{pp(r.accuracy - suite)} pp",
                          f"mean over the shifted sets {pct(suite, 1)}",
                          "good" if r.accuracy >= suite else "warn"))
    if r.closest_shifts:
        top = r.closest_shifts[0]
        cards.append(Card("Looks most like", f"{top.get('name')} s{top.get('severity')}",
                          f"its accuracy {pct(top.get('accuracy'))} · error-pattern distance "
                          f"{float(top.get('distance', 0)):.3f}"))
    return cards


def _classes(m: Model, r: RealRecord) -> list[ClassLine]:
    cm = np.asarray(r.confusion, dtype=float)
    lines = []
    for k in range(min(N_CLASSES, len(cm))):
        clean = _f(m.clean.per_class_accuracy[k]) if k < len(m.clean.per_class_accuracy) else None
        real = _f(r.per_class_accuracy[k]) if k < len(r.per_class_accuracy) else None
        confused = most_confused(cm, k)
        lines.append(ClassLine(k, pct(clean), pct(real),
                               pp(None if clean is None or real is None else real - clean),
                               f"{confused[0]} ({pct(confused[1])} of real {k}s)" if confused else "—",
                               int(cm[k].sum())))
    drops = sorted((ln for ln in lines if ln.real != "—"),
                   key=lambda ln: _f(r.per_class_accuracy[ln.digit]) or 0.0)
    for ln in drops[:3]:
        ln.highlight = True
    return lines


def _mistakes(r: RealRecord) -> list[Mistake]:
    out = []
    for e in (r.gallery or {}).get("misclassified", []) or []:
        uri = png_data_uri(e.get("png"))
        if uri is None:
            continue
        conf = e.get("confidence")
        out.append(Mistake(uri, f"{e.get('true')}→{e.get('pred')}", pct(conf, 0),
                           f"{r.name} image {e.get('index')}: true {e.get('true')}, predicted "
                           f"{e.get('pred')} with confidence {pct(conf)}"))
    return out


def real_blocks(models: Sequence[Model]) -> list[RealBlock]:
    blocks = []
    for m in models:
        who = m.name if len(models) > 1 else ""
        prefix = f"{who}: " if who else ""
        for r in m.result.real:
            matches = [ShiftMatch(f"{c.get('name')} s{c.get('severity')}", str(c.get("family", "")),
                                  pct(c.get("accuracy")), pct(r.accuracy),
                                  f"{float(c.get('distance', 0)):.3f}")
                       for c in (r.closest_shifts or [])[:SHOWN_SHIFTS]]
            matrices = [rate_matrix(m.clean.confusion, f"{prefix}clean ({pct(m.clean.accuracy)})"),
                        rate_matrix(r.confusion, f"{prefix}{r.name} ({pct(r.accuracy)})")]
            if r.confusion_change:
                matrices.append(delta_matrix(np.asarray(r.confusion_change, dtype=float),
                                             f"{prefix}{r.name} − clean (pp)"))
            framing = r.framing or {}
            blocks.append(RealBlock(
                model=who, name=r.name, source=r.source, n=r.n, sha256=r.sha256, cards=_cards(m, r),
                before=png_data_uri(framing.get("before_png")), after=png_data_uri(framing.get("after_png")),
                gallery_labels=[int(v) for v in framing.get("labels", [])],
                doubtful=_doubtful_line(framing.get("doubtful") or {}),
                doubtful_before=png_data_uri((framing.get("doubtful") or {}).get("before_png")),
                doubtful_after=png_data_uri((framing.get("doubtful") or {}).get("after_png")),
                matches=matches, classes=_classes(m, r), matrices=matrices, mistakes=_mistakes(r),
                calibration=f"ECE {r.ece:.3f} (clean {m.clean.ece:.3f}) · NLL {r.nll:.3f} (clean "
                            f"{m.clean.nll:.3f}) · Brier {r.brier:.3f} (clean {m.clean.brier:.3f})",
            ))
    return blocks
