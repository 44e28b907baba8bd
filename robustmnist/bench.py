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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import UserError
from .metrics import wilson_interval
from .results import Result

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
DEFAULT_REFERENCE = REFERENCE_DIR / "lenet5-default.json"


# -- reference and mCE --------------------------------------------------------------------------

@dataclass(frozen=True)
class RefSet:
    """What the reference measured on one set, and which images it measured it on."""

    error: float
    n: int
    sha256: str = ""
    chunks: tuple[str, ...] = ()
    version: int | None = None
    params: dict | None = None
    correct: np.ndarray | None = None  # bool per image: errors on any prefix of the set

    def error_at(self, n: int) -> float | None:
        if self.correct is not None and 0 < n <= len(self.correct):
            return float(1.0 - self.correct[:n].mean())
        return self.error if n == self.n else None


@dataclass(frozen=True)
class Reference:
    name: str
    sha256: str
    clean_error: float
    errors: dict[tuple[str, int], float]  # (shift, severity) -> top-1 error at the reference's n
    source: str
    set_sha256: dict[tuple[str, int], str] | None = None  # the images each error was measured on
    sets: dict[tuple[str, int], RefSet] = field(default_factory=dict)
    seed: int | None = None
    clean_correct: np.ndarray | None = None

    def clean_error_at(self, n: int) -> float:
        if self.clean_correct is not None and 0 < n <= len(self.clean_correct):
            return float(1.0 - self.clean_correct[:n].mean())
        return self.clean_error


def _unpack(bits: np.ndarray, n: int) -> np.ndarray:
    return np.unpackbits(bits, count=n).astype(bool)


def load_reference(path: str | Path | None = None) -> Reference:
    """A results.json (any model) or the pinned compact reference shipped with the package.

    The pinned reference (reference_version 2) carries each set's per-image correctness in a
    .npz beside it, so its error is known on the first n images for any n: nested sets make a
    run at --n 1000 the prefix of the reference's 10,000."""
    p = Path(path) if path else DEFAULT_REFERENCE
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"reference results {p} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"reference {p} is not a results.json file") from None
    try:
        bits = _load_correct_bits(p, d)
        sets = {}
        for r in d["shifts"]:
            key = (r["name"], int(r["severity"]))
            n = int(r.get("n", d.get("suite", {}).get("n", 0)) or 0)
            sid = f"{key[0]}@{key[1]}"
            sets[key] = RefSet(
                error=float(r.get("error", 1 - r["accuracy"])), n=n, sha256=r.get("sha256", ""),
                chunks=tuple(r.get("chunks", ())), version=r.get("version"), params=r.get("params"),
                correct=_unpack(bits[sid], n) if sid in bits else None)
        clean = d["clean"]
        return Reference(
            name=d["model"].get("name") or Path(d["model"]["path"]).stem,
            sha256=d["model"]["sha256"],
            clean_error=float(clean.get("error", 1 - clean["accuracy"])),
            errors={k: v.error for k, v in sets.items()},
            source=str(p),
            set_sha256={k: v.sha256 for k, v in sets.items()},
            sets=sets,
            seed=d.get("seed"),
            clean_correct=_unpack(bits["clean"], int(clean["n"])) if "clean" in bits else None,
        )
    except (KeyError, TypeError, ValueError):
        raise UserError(f"reference {p} lacks model/clean/shifts records of a results.json") from None


def _load_correct_bits(p: Path, d: dict) -> dict[str, np.ndarray]:
    """The packed per-image correctness named by a pinned reference (empty for a results.json)."""
    from .fileio import sha256_file

    spec = d.get("correct")
    if not spec:
        return {}
    path = p.parent / spec["file"]
    if not path.is_file() or sha256_file(path) != spec.get("sha256"):
        raise UserError(f"the per-image file {path.name} of reference {p.name} is missing or does not "
                        "match its sha256; reinstall robustmnist or re-pin the reference")
    with np.load(path, allow_pickle=False) as z:
        return {k.replace("__at__", "@"): z[k] for k in z.files}


def reference_from_result(result: Result, source: str = "",
                          predictions: dict[str, np.ndarray] | None = None) -> Reference:
    """A reference from a run; with its per-image predictions it is usable at any n."""
    def correct(sid: str) -> np.ndarray | None:
        if predictions is None or sid not in predictions:
            return None
        labels = predictions.get(f"{sid}:labels", predictions["labels"])
        return predictions[sid] == labels

    sets = {(r.name, r.severity): RefSet(
        error=1.0 - r.accuracy, n=r.n, sha256=r.sha256, chunks=tuple(r.chunks), version=r.version,
        params=r.params, correct=correct(f"{r.name}@{r.severity}")) for r in result.shifts}
    return Reference(
        name=result.model.name, sha256=result.model.sha256, clean_error=result.clean.error,
        errors={k: v.error for k, v in sets.items()}, source=source or result.model.path,
        set_sha256={k: v.sha256 for k, v in sets.items()}, sets=sets, seed=result.seed,
        clean_correct=correct("clean"),
    )


def match_reference_set(r, seed: int, ref: Reference) -> tuple[bool, str]:
    """(usable, why) for one shift record against the reference: the recipe first (shift,
    version, params, severity, seed), then the bytes on the common prefix."""
    from .shifts.fingerprint import compare_prefix

    rs = ref.sets.get((r.name, r.severity))
    if rs is None:
        return False, "not in the reference"
    if rs.version is not None and rs.version != r.version:
        return False, f"another version of the shift (v{r.version}; the reference has v{rs.version})"
    if rs.params is not None and r.params and rs.params != r.params:
        return False, "other severity parameters than the reference's"
    if ref.seed is not None and seed != ref.seed:
        return False, f"set seed {seed}; the reference used {ref.seed}"
    if r.chunks and rs.chunks:
        m = compare_prefix(list(r.chunks), r.n, list(rs.chunks), rs.n)
        if m.differs:
            return False, m.describe()
        note = "" if m.identical else m.describe()
    elif r.n == rs.n and rs.sha256:
        if r.sha256 != rs.sha256:
            return False, "bytes differ (sha256)"
        note = ""
    else:
        return False, "cannot check the images (no chunk fingerprints)"
    if rs.error_at(r.n) is None:
        return False, f"the reference has no per-image errors for n={r.n}"
    return True, note


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


def pair_sets(a: Result, b: Result) -> tuple[list[tuple[str, int]], list[dict]]:
    """Which sets of two results hold the same images, and on how many of them.

    Records are matched by recipe (shift, version, parameters, severity, set seed), then
    their bytes are compared on the common prefix (nested sets: the first min(n_a, n_b)
    images). Returns ([(set id, images compared)], [sets listed: left out or caveated])."""
    from .shifts.fingerprint import compare_prefix

    pairs = [("clean", min(a.clean.n, b.clean.n))]
    listed: list[dict] = []
    b_by = {(r.name, r.severity): r for r in b.shifts}
    for r in a.shifts:
        sid = f"{r.name}@{r.severity}"
        other = b_by.get((r.name, r.severity))
        if other is None:
            listed.append({"set": sid, "kept": False, "reason": "only in A"})
            continue
        if (r.version, r.params, a.seed) != (other.version, other.params, b.seed):
            listed.append({"set": sid, "kept": False, "reason": "another recipe (version, ladder or seed)"})
            continue
        if r.chunks and other.chunks:
            m = compare_prefix(r.chunks, r.n, other.chunks, other.n)
            if m.differs:
                listed.append({"set": sid, "kept": False, "reason": m.describe()})
                continue
            if not m.identical:
                listed.append({"set": sid, "kept": True, "reason": m.describe()})
            pairs.append((sid, m.n))
        elif r.n == other.n and r.sha256 == other.sha256:
            pairs.append((sid, r.n))
        else:
            listed.append({"set": sid, "kept": False, "reason": "bytes differ or cannot be checked (sha256)"})
    a_ids = {(r.name, r.severity) for r in a.shifts}
    listed += [{"set": f"{r.name}@{r.severity}", "kept": False, "reason": "only in B"}
               for r in b.shifts if (r.name, r.severity) not in a_ids]
    return pairs, listed


def compare(a: Result, pa: dict[str, np.ndarray], b: Result, pb: dict[str, np.ndarray]) -> list[Comparison]:
    """Per set both results scored on the same images: accuracies and McNemar, on the common
    prefix when the two ran at different n (``pair_sets`` says which sets were left out)."""
    out = []
    meta = {f"{r.name}@{r.severity}": r for r in a.shifts}
    for sid, n in pair_sets(a, b)[0]:
        if sid not in pa or sid not in pb:
            continue
        r = meta.get(sid)
        name, family, sev = (r.name, r.family, r.severity) if r else ("clean", "", 0)
        labels = pa.get(f"{sid}:labels", pa["labels"])[:n]
        right_a = pa[sid][:n] == labels
        right_b = pb[sid][:n] == labels
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
    seen: str = ""  # families seen in training (left out of this row's headline numbers)


def _robust_label(summary: dict) -> str:
    ra = summary.get("robust_accuracy")
    return f"{ra['norm']} {ra['eps']:g}" if ra else ""


def _unseen_by_all(results: list[Result]) -> set[str]:
    """Families no ranked model saw in training: the only fair ground to rank them on."""
    seen = {f for r in results for f in (r.summary.get("seen_in_training") or {}).get("families", [])}
    seen |= {x.family for r in results for x in r.shifts if getattr(x, "seen", False)}
    return {x.family for r in results for x in r.shifts} - seen


def leaderboard(results: list[Result], reference: Reference,
                relative_to: Reference | None = None) -> list[LeaderRow]:
    """Rows ranked by mean accuracy over the families that no ranked model saw in training (a
    model augmented with fonts would otherwise top the board on the fonts it was taught); mCE
    against ``reference`` (the pinned lenet5 by default everywhere) and, with ``relative_to``, a
    second mCE against another model."""
    fair = _unseen_by_all(results)
    rows = []
    for r in results:
        ce = corruption_errors(r, reference)
        first = corruption_errors(r, relative_to)["mce"] if relative_to is not None else None
        s = r.summary
        w = s.get("worst_shift", {})
        mean = s.get("mean_shifted_accuracy", float("nan"))
        common = [x for x in r.shifts if x.family in fair]
        if common and len(common) < len(r.shifts):
            mean = float(np.mean([x.accuracy for x in common]))
            wr = min(common, key=lambda x: x.accuracy)
            w = {"name": wr.name, "severity": wr.severity, "accuracy": wr.accuracy}
        rows.append(dict(
            name=r.model.name, clean_accuracy=r.clean.accuracy, clean_ci=tuple(r.clean.accuracy_ci),
            mean_shifted_accuracy=mean,
            mce=ce["mce"], relative_mce=ce["relative_mce"],
            worst=f"{w.get('name', '-')} s{w.get('severity', '-')}", worst_accuracy=w.get("accuracy", float("nan")),
            ood_auroc=s.get("ood_mean_auroc"), sha256=r.model.sha256,
            robust_accuracy=s.get("robust_accuracy", {}).get("accuracy"),
            robust_label=_robust_label(s), mce_vs_first=first,
            seen=", ".join((s.get("seen_in_training") or {}).get("families", [])),
        ))
    rows.sort(key=lambda d: -d["mean_shifted_accuracy"])
    return [LeaderRow(rank=i + 1, **d) for i, d in enumerate(rows)]
