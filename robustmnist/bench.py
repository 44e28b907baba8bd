"""Benchmarking before deployment: CE/mCE against a reference, paired model comparison with
McNemar's exact test, and leaderboards.

mCE follows ImageNet-C (Hendrycks & Dietterich 2019) exactly, with our pinned reference
model in AlexNet's place (MNIST has no agreed reference):

    CE_c          = Σ_s E(f, s, c) / Σ_s E(ref, s, c)
    relative CE_c = Σ_s (E(f, s, c) − E(f, clean)) / Σ_s (E(ref, s, c) − E(ref, clean))
    mCE = mean_c CE_c,  relative mCE = mean_c relative CE_c

with E the top-1 error and s over the severities both results share. A ratio is only
comparable between results with the same reference (its name and sha256 go into the JSON).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserError
from .metrics import wilson_interval
from .results import Result

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
DEFAULT_REFERENCE = REFERENCE_DIR / "lenet5-default.json"


# -- reference and mCE --------------------------------------------------------------------------

@dataclass(frozen=True)
class Reference:
    name: str
    sha256: str
    clean_error: float
    errors: dict[tuple[str, int], float]  # (shift, severity) -> top-1 error
    source: str
    set_sha256: dict[tuple[str, int], str] | None = None  # the images each error was measured on


def load_reference(path: str | Path | None = None) -> Reference:
    """A results.json (any model) or the pinned compact reference shipped with the package."""
    p = Path(path) if path else DEFAULT_REFERENCE
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"reference results {p} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"reference {p} is not a results.json file") from None
    try:
        errors = {(r["name"], int(r["severity"])): float(r.get("error", 1 - r["accuracy"]))
                  for r in d["shifts"]}
        shas = {(r["name"], int(r["severity"])): r.get("sha256", "") for r in d["shifts"]}
        clean = d["clean"]
        return Reference(
            name=d["model"].get("name") or Path(d["model"]["path"]).stem,
            sha256=d["model"]["sha256"],
            clean_error=float(clean.get("error", 1 - clean["accuracy"])),
            errors=errors,
            source=str(p),
            set_sha256=shas,
        )
    except (KeyError, TypeError, ValueError):
        raise UserError(f"reference {p} lacks model/clean/shifts records of a results.json") from None


def reference_from_result(result: Result, source: str = "") -> Reference:
    return Reference(
        name=result.model.name, sha256=result.model.sha256, clean_error=result.clean.error,
        errors={(r.name, r.severity): 1.0 - r.accuracy for r in result.shifts}, source=source or result.model.path,
        set_sha256={(r.name, r.severity): r.sha256 for r in result.shifts},
    )


def corruption_errors(result: Result, ref: Reference) -> dict:
    """CE, relative CE per shift and their means, over the (shift, severity) pairs both have."""
    mine: dict[str, dict[int, float]] = {}
    for r in result.shifts:
        # Only sets scored on the very same images count: a ratio of errors on different
        # digits (another --n or seed) would not be the ImageNet-C quantity.
        if ref.set_sha256 and ref.set_sha256.get((r.name, r.severity)) not in ("", r.sha256):
            continue
        mine.setdefault(r.name, {})[r.severity] = 1.0 - r.accuracy
    ce, rel, skipped = {}, {}, []
    e_clean = result.clean.error
    for name, by_sev in mine.items():
        sevs = [s for s in by_sev if (name, s) in ref.errors]
        if not sevs:
            continue
        ref_sum = sum(ref.errors[(name, s)] for s in sevs)
        if ref_sum <= 0:
            skipped.append(name)  # the reference makes no errors here: the ratio is undefined
            continue
        ce[name] = sum(by_sev[s] for s in sevs) / ref_sum
        ref_rel = sum(ref.errors[(name, s)] - ref.clean_error for s in sevs)
        if ref_rel > 0:
            rel[name] = sum(by_sev[s] - e_clean for s in sevs) / ref_rel
    out = {
        "ce": ce,
        "relative_ce": rel,
        "mce": float(np.mean(list(ce.values()))) if ce else None,
        "relative_mce": float(np.mean(list(rel.values()))) if rel else None,
        "reference": {"name": ref.name, "sha256": ref.sha256, "source": Path(ref.source).name},
        "skipped": skipped,
    }
    return out


def apply_reference(result: Result, reference: str | Path | Reference | None = None) -> Result:
    """Put mCE / relative mCE (and per-shift CE) into ``result.summary``."""
    ref = reference if isinstance(reference, Reference) else load_reference(reference)
    ce = corruption_errors(result, ref)
    if ce["mce"] is None:
        return result
    result.summary.update(mce=ce["mce"], relative_mce=ce["relative_mce"], ce=ce["ce"],
                          relative_ce=ce["relative_ce"], reference=ce["reference"])
    return result


# -- paired comparison ---------------------------------------------------------------------------

def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts b (A right, B wrong) and c.

    Under H0 each discordant pair is a fair coin: p = min(1, 2·P[Binom(b+c, ½) ≤ min(b, c)]).
    """
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class Comparison:
    set_id: str
    name: str
    family: str
    severity: int
    n: int
    acc_a: float
    acc_b: float
    ci_a: tuple[float, float]
    ci_b: tuple[float, float]
    b: int  # A right, B wrong
    c: int  # A wrong, B right
    p_value: float

    @property
    def diff(self) -> float:
        return self.acc_b - self.acc_a


def load_predictions(result: Result, results_path: Path) -> dict[str, np.ndarray]:
    from .fileio import sha256_file

    ref = result.predictions
    if not ref.get("file"):
        raise UserError(f"{results_path} has no per-image predictions; re-run robustmnist eval")
    path = results_path.parent / ref["file"]
    if not path.is_file():
        raise UserError(f"predictions file {path} (named in {results_path}) is missing")
    if ref.get("sha256") and sha256_file(path) != ref["sha256"]:
        raise UserError(f"predictions file {path} does not match the sha256 in {results_path}")
    with np.load(path, allow_pickle=False) as z:
        return {k.replace("__at__", "@").replace("__labels", ":labels"): z[k] for k in z.files}


def compare(a: Result, pa: dict[str, np.ndarray], b: Result, pb: dict[str, np.ndarray]) -> list[Comparison]:
    """Per set both results scored on the same images (same sha256): accuracies and McNemar."""
    out = []
    sets = [("clean", "clean", "", 0, None, None)]
    b_by = {(r.name, r.severity): r for r in b.shifts}
    for r in a.shifts:
        other = b_by.get((r.name, r.severity))
        if other is not None and other.sha256 == r.sha256:
            sets.append((f"{r.name}@{r.severity}", r.name, r.family, r.severity, r, other))
    if a.suite.get("n") != b.suite.get("n"):
        raise UserError(f"the two results scored different numbers of images ({a.suite.get('n')} vs "
                        f"{b.suite.get('n')}); compare results made with the same --n")
    for sid, name, family, sev, _, _ in sets:
        if sid not in pa or sid not in pb:
            continue
        labels = pa.get(f"{sid}:labels", pa["labels"])
        right_a = pa[sid] == labels
        right_b = pb[sid] == labels
        n = len(labels)
        ka, kb = int(right_a.sum()), int(right_b.sum())
        bb = int((right_a & ~right_b).sum())
        cc = int((~right_a & right_b).sum())
        out.append(Comparison(sid, name, family, sev, n, ka / n, kb / n, wilson_interval(ka, n),
                              wilson_interval(kb, n), bb, cc, mcnemar_exact(bb, cc)))
    return out


def family_winners(rows: list[Comparison], alpha: float = 0.05) -> dict[str, str]:
    """Per family: which model wins more sets significantly (or 'tie')."""
    tally: dict[str, list[int]] = {}
    for r in rows:
        if not r.family:
            continue
        t = tally.setdefault(r.family, [0, 0])
        if r.p_value < alpha:
            t[0 if r.diff < 0 else 1] += 1
    return {f: ("A" if a > b else "B" if b > a else "tie") for f, (a, b) in tally.items()}


# -- leaderboard ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class LeaderRow:
    rank: int
    name: str
    clean_accuracy: float
    clean_ci: tuple[float, float]
    mean_shifted_accuracy: float
    mce: float | None
    relative_mce: float | None
    worst: str
    worst_accuracy: float
    ood_auroc: float | None
    sha256: str
    robust_accuracy: float | None = None  # worst case at the largest eps of bench --attack
    robust_label: str = ""  # e.g. "linf 0.3"
    mce_vs_first: float | None = None  # bench's extra column: against its first model, labelled so


def _robust_label(summary: dict) -> str:
    ra = summary.get("robust_accuracy")
    return f"{ra['norm']} {ra['eps']:g}" if ra else ""


def leaderboard(results: list[Result], reference: Reference,
                relative_to: Reference | None = None) -> list[LeaderRow]:
    """Rows ranked by mean shifted accuracy; mCE against ``reference`` (the pinned lenet5 by
    default everywhere) and, with ``relative_to``, a second mCE against another model."""
    rows = []
    for r in results:
        ce = corruption_errors(r, reference)
        first = corruption_errors(r, relative_to)["mce"] if relative_to is not None else None
        s = r.summary
        w = s.get("worst_shift", {})
        rows.append(dict(
            name=r.model.name, clean_accuracy=r.clean.accuracy, clean_ci=tuple(r.clean.accuracy_ci),
            mean_shifted_accuracy=s.get("mean_shifted_accuracy", float("nan")),
            mce=ce["mce"], relative_mce=ce["relative_mce"],
            worst=f"{w.get('name', '-')} s{w.get('severity', '-')}", worst_accuracy=w.get("accuracy", float("nan")),
            ood_auroc=s.get("ood_mean_auroc"), sha256=r.model.sha256,
            robust_accuracy=s.get("robust_accuracy", {}).get("accuracy"),
            robust_label=_robust_label(s), mce_vs_first=first,
        ))
    rows.sort(key=lambda d: -d["mean_shifted_accuracy"])
    return [LeaderRow(rank=i + 1, **d) for i, d in enumerate(rows)]
