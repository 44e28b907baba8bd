"""Paired comparison of two results on the same images: per-set accuracies and McNemar's
exact test, on the common prefix when the two ran at different n."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..results import Result
from .classification import wilson_interval


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
    from ..fileio import sha256_file

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
    from ..shifts.fingerprint import compare_prefix

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
