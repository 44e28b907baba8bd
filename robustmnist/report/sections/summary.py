"""Summary: headline cards and where it breaks (one model), or a row per model and the
shifts where they differ most (a comparison); the convention guard's warnings first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...metrics.corruption import mce_note
from ..blocks import Card, Cell
from ..format import num, pct, pp, tone
from ..stats import shift_drops
from ..view import Layout, Model
from .per_class import ClassRow, class_ranking

COMPARE_COLUMNS = ["clean (95% CI)", "mean shifted", "worst shift", "mCE", "OOD AUROC"]


@dataclass
class CompareRow:
    model: str
    color: str
    cells: list[Cell]


@dataclass
class Break:
    shift: str
    family: str
    text: str
    mean: float


@dataclass
class Summary:
    warnings: list[tuple[str, str]]  # (model name, warning)
    detected: list[tuple[str, str]]  # (model name, "convention detected: ...") under preprocess="auto"
    cards: list[Card] | None  # one model
    compare_columns: list[str]
    compare_rows: list[CompareRow]  # a comparison
    breaks: list[Break]
    gaps: list[Break]
    weak_classes: list[ClassRow]
    mce_notes: list[str]  # what mCE is measured against (metrics.corruption.mce_note), once per reference


def build(models: Sequence[Model], layout: Layout) -> Summary:
    compare = len(models) > 1
    lead = models[0]
    return Summary(
        # eval's convention guard: a doubtful input convention is said before any number
        warnings=[(m.name, w) for m in models for w in m.result.summary.get("warnings", [])],
        detected=[(m.name, m.result.summary["convention_detected"]) for m in models
                  if m.result.summary.get("convention_detected")],
        cards=None if compare else summary_cards(lead, layout),
        compare_columns=COMPARE_COLUMNS,
        compare_rows=compare_rows(models, layout) if compare else [],
        breaks=where_it_breaks(lead, layout) if not compare else [],
        gaps=model_gaps(models, layout) if compare else [],
        weak_classes=[] if compare else class_ranking(lead)[:3],
        mce_notes=mce_notes(models),
    )


def mce_notes(models: Sequence[Model]) -> list[str]:
    """One line per reference the models' mCE is against: about this model in a single-model
    report, about models in general in a comparison."""
    notes: list[str] = []
    for m in models:
        s = m.result.summary
        if s.get("mce") is None:
            continue
        note = mce_note(s.get("reference"), m.result.model, m.clean.accuracy) if len(models) == 1 else \
            mce_note(s.get("reference"))
        if note and note not in notes:
            notes.append(note)
    return notes


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
                          f"{len(layout.severities)} severities", tone(drop)))
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
            f"vs reference {ref} (100% = as robust as it; lower is better)"
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
