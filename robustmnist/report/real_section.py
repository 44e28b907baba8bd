"""The report's "Real digits" section: for each real set, how the model does on it next to
clean and the suite, whether the framing did what the user expected (before/after gallery),
which synthetic shifts it resembles, and its per-class and confusion views (the shift
sections' own builders, reused)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..results import RealRecord
from . import view
from .images import png_data_uri

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
    cards: list[view.Card]
    before: str | None  # data URIs of the framing gallery strips
    after: str | None
    gallery_labels: list[int]
    matches: list[ShiftMatch]
    classes: list[ClassLine]
    matrices: list[view.Matrix]
    mistakes: list[view.Mistake]
    calibration: str


def _tone(change: float) -> str:
    return "bad" if change < -0.15 else "warn" if change < -0.03 else "good"


def _f(v) -> float | None:
    return None if v is None else float(v)


def _cards(m: view.Model, r: RealRecord) -> list[view.Card]:
    clean = m.clean.accuracy
    lo, hi = (r.accuracy_ci or [None, None])[:2]
    vs_clean = r.accuracy - clean
    cards = [view.Card("Real accuracy", view.pct(r.accuracy, 1), f"95% CI {view.pct(lo)}–{view.pct(hi)} · "
                       f"n={r.n:,}", _tone(vs_clean)),
             view.Card("vs clean MNIST", f"{view.pp(vs_clean)} pp", f"clean {view.pct(clean, 1)}",
                       _tone(vs_clean))]
    suite = m.result.summary.get("mean_shifted_accuracy")
    if suite is None and m.result.shifts:
        suite = float(np.mean([x.accuracy for x in m.result.shifts]))
    if suite is not None:
        cards.append(view.Card("vs the suite mean", f"{view.pp(r.accuracy - suite)} pp",
                               f"mean over the shifted sets {view.pct(suite, 1)}",
                               "good" if r.accuracy >= suite else "warn"))
    if r.closest_shifts:
        top = r.closest_shifts[0]
        cards.append(view.Card("Looks most like", f"{top.get('name')} s{top.get('severity')}",
                               f"its accuracy {view.pct(top.get('accuracy'))} · error-pattern distance "
                               f"{float(top.get('distance', 0)):.3f}"))
    return cards


def _classes(m: view.Model, r: RealRecord) -> list[ClassLine]:
    cm = np.asarray(r.confusion, dtype=float)
    lines = []
    for k in range(min(view.N_CLASSES, len(cm))):
        clean = _f(m.clean.per_class_accuracy[k]) if k < len(m.clean.per_class_accuracy) else None
        real = _f(r.per_class_accuracy[k]) if k < len(r.per_class_accuracy) else None
        off = cm[k].copy()
        off[k] = 0
        p = int(off.argmax())
        share = off[p] / max(cm[k].sum(), 1)
        lines.append(ClassLine(k, view.pct(clean), view.pct(real),
                               view.pp(None if clean is None or real is None else real - clean),
                               f"{p} ({view.pct(share)} of real {k}s)" if off.sum() else "—",
                               int(cm[k].sum())))
    drops = sorted((ln for ln in lines if ln.real != "—"),
                   key=lambda ln: _f(r.per_class_accuracy[ln.digit]) or 0.0)
    for ln in drops[:3]:
        ln.highlight = True
    return lines


def _mistakes(r: RealRecord) -> list[view.Mistake]:
    out = []
    for e in (r.gallery or {}).get("misclassified", []) or []:
        uri = png_data_uri(e.get("png"))
        if uri is None:
            continue
        conf = e.get("confidence")
        out.append(view.Mistake(uri, f"{e.get('true')}→{e.get('pred')}", view.pct(conf, 0),
                                f"{r.name} image {e.get('index')}: true {e.get('true')}, predicted "
                                f"{e.get('pred')} with confidence {view.pct(conf)}"))
    return out


def real_blocks(models: Sequence[view.Model]) -> list[RealBlock]:
    blocks = []
    for m in models:
        who = m.name if len(models) > 1 else ""
        prefix = f"{who}: " if who else ""
        for r in m.result.real:
            matches = [ShiftMatch(f"{c.get('name')} s{c.get('severity')}", str(c.get("family", "")),
                                  view.pct(c.get("accuracy")), view.pct(r.accuracy),
                                  f"{float(c.get('distance', 0)):.3f}")
                       for c in (r.closest_shifts or [])[:SHOWN_SHIFTS]]
            matrices = [view.rate_matrix(m.clean.confusion, f"{prefix}clean ({view.pct(m.clean.accuracy)})"),
                        view.rate_matrix(r.confusion, f"{prefix}{r.name} ({view.pct(r.accuracy)})")]
            if r.confusion_change:
                matrices.append(view.delta_matrix(np.asarray(r.confusion_change, dtype=float),
                                                  f"{prefix}{r.name} − clean (pp)"))
            framing = r.framing or {}
            blocks.append(RealBlock(
                model=who, name=r.name, source=r.source, n=r.n, sha256=r.sha256, cards=_cards(m, r),
                before=png_data_uri(framing.get("before_png")), after=png_data_uri(framing.get("after_png")),
                gallery_labels=[int(v) for v in framing.get("labels", [])],
                matches=matches, classes=_classes(m, r), matrices=matrices, mistakes=_mistakes(r),
                calibration=f"ECE {r.ece:.3f} (clean {m.clean.ece:.3f}) · NLL {r.nll:.3f} (clean "
                            f"{m.clean.nll:.3f}) · Brier {r.brier:.3f} (clean {m.clean.brier:.3f})",
            ))
    return blocks


def real_markdown(models: Sequence[view.Model]) -> list[str]:
    """Markdown lines of the section (empty when no model has real sets)."""
    rows = [(m, r) for m in models for r in m.result.real]
    if not rows:
        return []
    lines = ["## Real digits", "", "| model | real set | n | accuracy | vs clean (pp) | looks most like |",
             "|---|---|---:|---:|---:|---|"]
    for m, r in rows:
        tops = ", ".join(f"{c.get('name')} s{c.get('severity')} ({view.pct(c.get('accuracy'))})"
                         for c in (r.closest_shifts or [])[:SHOWN_SHIFTS]) or "—"
        cells = [m.name, r.name, f"{r.n:,}", view.pct(r.accuracy), view.pp(r.accuracy - m.clean.accuracy), tops]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return lines + [""]
