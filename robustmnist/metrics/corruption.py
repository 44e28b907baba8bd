"""Corruption error CE and mCE relative to a reference model (Hendrycks & Dietterich 2019,
the ImageNet-C convention), over the sets both scored on the same images."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..results import Result
from .reference import Reference, load_reference, match_reference_set


def corruption_errors(result: Result, ref: Reference) -> dict:
    """CE, relative CE per shift and their means, over the (shift, severity) pairs both have.

    Only sets scored on the very same images count (a ratio of errors on different digits
    would not be the ImageNet-C quantity); with nested sets that is the common prefix, so a
    run at any n compares with the reference's errors on its first n images. Every set that is
    left out, or kept with a caveat, is listed in ``sets`` (never dropped silently).

    Shifts the model saw in training are left out of mCE (their CE is reported apart as
    ``ce_seen``): a ratio over what the model was taught says nothing about robustness.
    """
    mine: dict[str, dict[int, float]] = {}
    ref_err: dict[tuple[str, int], float] = {}
    listed: list[dict] = []
    matched = 0
    seen_names: set[str] = set()
    for r in result.shifts:
        if getattr(r, "seen", False):
            seen_names.add(r.name)
        usable, why = match_reference_set(r, result.seed, ref)
        if why:
            listed.append({"set": f"{r.name}@{r.severity}", "kept": usable, "reason": why})
        if not usable:
            continue
        matched += 1
        mine.setdefault(r.name, {})[r.severity] = 1.0 - r.accuracy
        ref_err[(r.name, r.severity)] = ref.sets[(r.name, r.severity)].error_at(r.n)
    ce, rel, skipped = {}, {}, []
    e_clean = result.clean.error
    ref_clean = ref.clean_error_at(result.clean.n)
    for name, by_sev in mine.items():
        sevs = list(by_sev)
        ref_sum = sum(ref_err[(name, s)] for s in sevs)
        if ref_sum <= 0:
            skipped.append(name)  # the reference makes no errors here: the ratio is undefined
            continue
        ce[name] = sum(by_sev[s] for s in sevs) / ref_sum
        ref_rel = sum(ref_err[(name, s)] - ref_clean for s in sevs)
        if ref_rel > 0:
            rel[name] = sum(by_sev[s] - e_clean for s in sevs) / ref_rel
    ce_seen = {k: v for k, v in ce.items() if k in seen_names}
    ce = {k: v for k, v in ce.items() if k not in seen_names}
    rel = {k: v for k, v in rel.items() if k not in seen_names}
    out = {
        "ce": ce,
        "ce_seen": ce_seen,
        "relative_ce": rel,
        "mce": float(np.mean(list(ce.values()))) if ce else None,
        "relative_mce": float(np.mean(list(rel.values()))) if rel else None,
        "reference": {"name": ref.name, "sha256": ref.sha256, "source": Path(ref.source).name},
        "skipped": skipped,
        "sets_matched": matched,
        "sets": listed,
    }
    return out


def apply_reference(result: Result, reference: str | Path | Reference | None = None) -> Result:
    """Put mCE / relative mCE (and per-shift CE) into ``result.summary``."""
    ref = reference if isinstance(reference, Reference) else load_reference(reference)
    ce = corruption_errors(result, ref)
    # Recorded even without an mCE: the sets that differ from the reference's are news either way.
    result.summary["reference_sets"] = {"matched": ce["sets_matched"], "listed": ce["sets"]}
    if ce["mce"] is None:
        return result
    result.summary.update(mce=ce["mce"], relative_mce=ce["relative_mce"], ce=ce["ce"],
                          relative_ce=ce["relative_ce"], reference=ce["reference"])
    if ce["ce_seen"]:
        result.summary["ce_seen"] = ce["ce_seen"]
    return result
