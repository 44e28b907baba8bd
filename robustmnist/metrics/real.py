"""Scoring real digit sets beside the synthetic suite: their records, the synthetic shifts whose
error pattern they resemble, and (across benchmarked models) which families predict them.

Pure functions on arrays and records; run.collect calls ``real_records``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..results import RealRecord, Result, ShiftRecord
from .classification import classification_metrics, softmax

TOP_SHIFTS = 5  # closest shifts kept per real set (the report shows 3)
WORST_MISTAKES = 8


# -- which shifts look like this real set ---------------------------------------------------------

def row_rates(confusion) -> np.ndarray:
    """P(predicted | true digit) per row; rows of digits with no images stay all-zero."""
    a = np.asarray(confusion, dtype=np.float64)
    return a / np.maximum(a.sum(axis=1, keepdims=True), 1)


def error_pattern_distance(confusion_a, confusion_b) -> float:
    """Mean over digits of the total-variation distance between the two sets' prediction
    distributions for that digit: ½ Σ_p |P_a(p | t) − P_b(p | t)|, averaged over the digits t
    present in both sets. 0 = the model does the same thing with each digit, 1 = disjoint.

    Why this one: rows are normalised per true digit, so a real set's class balance (SVHN is a
    third 1s and 2s) does not weigh in; each row holds both the digit's accuracy (diagonal) and
    where its errors go (off-diagonal), so a shift that costs as much accuracy but by other
    confusions (3→8 under thick strokes vs 3→5 under rotation) is farther away; and TV is
    bounded and defined on empty cells, unlike KL, which a 200-image set with a zero count
    would send to infinity.
    """
    a, b = np.asarray(confusion_a), np.asarray(confusion_b)
    both = (a.sum(axis=1) > 0) & (b.sum(axis=1) > 0)
    if not both.any():
        return 1.0
    tv = 0.5 * np.abs(row_rates(a) - row_rates(b)).sum(axis=1)
    return float(tv[both].mean())


def closest_shifts(confusion, records: Sequence[ShiftRecord], k: int = TOP_SHIFTS) -> list[dict]:
    """The k synthetic records of the same run nearest to ``confusion`` (ties by name, severity)."""
    scored = sorted(((error_pattern_distance(confusion, r.confusion), r.name, r.severity, r)
                     for r in records), key=lambda t: t[:3])
    return [{"name": r.name, "severity": r.severity, "family": r.family, "accuracy": r.accuracy,
             "distance": round(d, 6)} for d, _, _, r in scored[:k]]


# -- the record -----------------------------------------------------------------------------------

def framing_gallery(real_set) -> dict:
    from ..data.real import thumbnail
    from ..report.images import png_b64

    idx = real_set.before_indices
    if not idx:
        return {}
    before = np.concatenate([thumbnail(b) for b in real_set.before], axis=1)
    after = np.concatenate([real_set.images[i] for i in idx], axis=1)
    out = {"before_png": png_b64(before), "after_png": png_b64(after), "indices": list(idx),
           "labels": [int(real_set.labels[i]) for i in idx]}
    if real_set.doubtful is not None:
        out["doubtful"] = doubtful_gallery(real_set)
    return out


def doubtful_gallery(real_set) -> dict:
    """How many framings look doubtful (data.photo's reasons), by reason, and the first few."""
    from collections import Counter

    from ..data.real import doubtful_indices, thumbnail
    from ..report.images import png_b64

    reasons = Counter(r for why in real_set.doubtful for r in why)
    out = {"count": sum(1 for why in real_set.doubtful if why), "n": len(real_set.doubtful),
           "reasons": dict(sorted(reasons.items())), "indices": doubtful_indices(real_set.doubtful)}
    if out["indices"] and real_set.doubtful_before:
        out["before_png"] = png_b64(np.concatenate([thumbnail(b) for b in real_set.doubtful_before], axis=1))
        out["after_png"] = png_b64(np.concatenate([real_set.images[i] for i in out["indices"]], axis=1))
    return out


def worst_mistakes(images: np.ndarray, labels: np.ndarray, logits: np.ndarray,
                   k: int = WORST_MISTAKES) -> list[dict]:
    """The k most confident wrong predictions: the mistakes a user would most want to see."""
    from ..report.images import png_b64

    probs = softmax(logits)
    preds = probs.argmax(axis=1)
    conf = probs.max(axis=1)
    wrong = np.flatnonzero(preds != labels)
    wrong = wrong[np.argsort(-conf[wrong], kind="stable")][:k]
    return [{"index": int(i), "true": int(labels[i]), "pred": int(preds[i]), "confidence": float(conf[i]),
             "png": png_b64(images[i])} for i in wrong]


def real_record(real_set, logits: np.ndarray, clean: dict, records: Sequence[ShiftRecord],
                framing: dict | None = None) -> RealRecord:
    """Metrics of one model on one real set, its change from clean and its closest shifts."""
    from ..shifts.sets import set_sha256

    m = classification_metrics(real_set.labels, logits)
    pc = [None if a is None or c is None else a - c
          for a, c in zip(m["per_class_accuracy"], clean["per_class_accuracy"], strict=True)]
    change = row_rates(m["confusion"]) - row_rates(clean["confusion"])
    m["gallery"] = {"misclassified": worst_mistakes(real_set.images, real_set.labels, logits)}
    return RealRecord(
        **m, name=real_set.name, source=real_set.description,
        sha256=set_sha256(real_set.images, real_set.labels),
        per_class_change=pc, confusion_change=np.round(change, 6).tolist(),
        closest_shifts=closest_shifts(m["confusion"], records),
        framing=framing if framing is not None else framing_gallery(real_set),
    )


def real_records(sets: Sequence, logits: Sequence[Sequence[np.ndarray]], clean: Sequence[dict],
                 records: Sequence[Sequence[ShiftRecord]]) -> list[list[RealRecord]]:
    """Per model (clean metrics and shift records each): one record per real set, from
    ``logits[set][model]`` (each set read and framed once, scored by every model)."""
    out: list[list[RealRecord]] = [[] for _ in clean]
    for rs, per_model in zip(sets, logits, strict=True):
        framing = framing_gallery(rs)
        for i, set_logits in enumerate(per_model):
            out[i].append(real_record(rs, set_logits, clean[i], records[i], framing))
    return out


# -- bench: which families predict the real set ---------------------------------------------------

def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None when either side is constant."""
    from scipy.stats import rankdata

    ra, rb = rankdata(a), rankdata(b)
    if len(ra) < 2 or ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


MIN_MODELS = 3  # with two models any correlation is ±1: report it only from three up


def family_rank_correlation(results: Sequence[Result]) -> list[dict]:
    """Per real set: for each shift family (and clean, and the suite mean), Spearman's ρ across
    the models between the family's mean accuracy and the real set's accuracy.

    A family with high ρ ranks the models the way the real digits do: it predicts the data.
    """
    out = []
    names = [r.name for r in results[0].real] if results else []
    for name in names:
        real_acc = []
        for res in results:
            rec = next((r for r in res.real if r.name == name), None)
            real_acc.append(None if rec is None else rec.accuracy)
        keep = [i for i, a in enumerate(real_acc) if a is not None]
        if not keep:
            continue
        ys = [real_acc[i] for i in keep]
        rows = []
        columns = [("clean", lambda res: res.clean.accuracy),
                   ("all shifts", lambda res: res.summary.get("mean_shifted_accuracy"))]
        families = list(dict.fromkeys(f for i in keep for f in results[i].summary.get("per_family", {})))
        columns += [(f, lambda res, f=f: res.summary.get("per_family", {}).get(f)) for f in families]
        for label, get in columns:
            xs = [get(results[i]) for i in keep]
            pairs = [(x, y) for x, y in zip(xs, ys, strict=True) if x is not None]
            rho = spearman(*zip(*pairs, strict=True)) if len(pairs) >= MIN_MODELS else None
            rows.append({"family": label, "rho": rho, "n_models": len(pairs)})
        rows.sort(key=lambda r: (r["rho"] is None, -(r["rho"] or 0)))
        out.append({"real": name, "n_models": len(keep), "families": rows})
    return out

