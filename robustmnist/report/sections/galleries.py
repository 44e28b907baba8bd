"""Galleries: per family (the worst ones open), each shift's ten test digits clean and at every
severity, then misclassified examples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..blocks import Mistake
from ..format import num, pct
from ..images import png_data_uri, stack_strips
from ..stats import mean_known
from ..view import Layout, Model


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


@dataclass
class Galleries:
    families: list[GalleryFamily]


def build(models: Sequence[Model], layout: Layout) -> Galleries:
    return Galleries(galleries(models, layout) if layout.shifts else [])


def _mistakes(m: Model, shift: str, severities: Sequence[int], k: int) -> list[Mistake]:
    """Up to k misclassified digits, round-robin from the highest severity down, so a card
    shows how errors look across the ladder, not only at its end."""
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
    lead = models[0]
    fam_means = []
    for fam, names in layout.families:
        fam_means.append((mean_known([lead.shift_mean(s, layout.severities) for s in names]), fam))
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
                f"{m.name} {pct(mean_known([m.shift_mean(s, layout.severities) for s in names]))}"
                for m in models)
        out.append(GalleryFamily(fam, summary, fam in worst, cards))
    return out
