"""Corruption error CE and mCE relative to a reference model (Hendrycks & Dietterich 2019,
the ImageNet-C convention), over the sets both scored on the same images."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..results import Result
from .reference import DEFAULT_REFERENCE, Reference, load_reference, match_reference_set, model_recipe, reference_info


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
        "reference": reference_info(ref, result.clean.n),
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


def mce_note(reference: dict | None, model=None, clean_accuracy: float | None = None) -> str:
    """One line on what mCE is measured against, for wherever mCE is shown (terminal, HTML,
    Markdown, leaderboard). A user whose model is a lenet5 reads "mCE 117% vs lenet5" as a
    contradiction: the reference is one fixed lenet5, and another training run of the same
    architecture makes other errors. ``model`` (results.ModelInfo) and ``clean_accuracy`` add
    how this model differs; without them the line speaks of models in general."""
    if not reference:
        return ""
    name = reference.get("name") or "the reference"
    about = [x for x in (reference.get("recipe"), _acc(reference.get("clean_accuracy"))) if x]
    made = f" ({'; '.join(about)})" if about else ""
    if reference.get("pinned", reference.get("source") == DEFAULT_REFERENCE.name):
        who = f"robustmnist's reference {name}, one fixed model{made}"
    else:
        who = f"the reference {name} from {reference.get('source') or 'the given results'}{made}"
    line = f"mCE = errors on the shifted sets ÷ those of {who}; lower is better."
    arch = reference.get("arch")
    if model is None:
        same = arch or "model of its architecture"
        return line + f" A {same} trained differently makes other errors, so it need not score 100%."
    if model.sha256 and model.sha256 == reference.get("sha256"):
        return line + " This model is the reference itself, so 100% by construction."
    if arch and getattr(model, "arch", None) == arch:
        own = [x for x in (model_recipe(model), _acc(clean_accuracy)) if x]
        return line + (f" This {arch} is another training run{' (' + '; '.join(own) + ')' if own else ''}: "
                       "other weights, other errors, so its mCE need not be 100%.")
    return line


def _acc(v: float | None) -> str:
    return "" if v is None else f"clean {v:.2%}"
