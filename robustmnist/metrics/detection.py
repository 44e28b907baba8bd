"""Black-box shift detection (BBSD, Rabanser, Günnemann & Lipton 2019, "Failing Loudly"): would a
monitor watching the model's softmax outputs notice the shift?

Per batch of b unlabeled images: one two-sample Kolmogorov-Smirnov test per softmax class against
a clean reference, Bonferroni over the 10 classes, flag when any p < alpha / 10. Power = the share
of random batches flagged; the false-alarm rate is the same measurement on clean batches.

Split (disjoint, no extra forward pass): the reference is the clean digits at even positions; the
batches are drawn without replacement from a set's images at odd positions (clean's own odd
positions for the false alarm), so no batch holds a transform of a reference digit; every set is
tested on the same positions (``batches``). A batch size larger than that pool gets no number
(None), never a resampled one: drawing with replacement from a finite pool makes the KS p-values lie.

The p-value is scipy's: ``scipy.stats.kstwo.sf(D, round(m*b/(m+b)))``, exactly what
``scipy.stats.ks_2samp(..., method="asymp")`` returns; the statistic is computed for all batches
at once from each image's rank in the sorted reference (tests/test_selective.py checks both
against ks_2samp). Exact p-values (ks_2samp's default below 10,000 samples) cost a Python call per
test, 3,000 per set here.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass

import numpy as np

BATCH_SIZES = (10, 100, 1000)
TRIALS = 50  # batches per size: power to +-7 points (binomial SE at 50%); 100 doubles the cost
ALPHA = 0.05
TEST = ("BBSD: two-sample KS per softmax class (p from scipy.stats.kstwo, as ks_2samp "
        "method='asymp'), Bonferroni over 10 classes, alpha 0.05; reference = clean digits at even "
        "positions, batches drawn without replacement from the set's images at odd positions, the "
        "same positions for every set")


@dataclass
class Reference:
    """The clean softmax outputs a monitor compares against, sorted per class."""

    sorted_probs: np.ndarray  # m×K, each column sorted
    false_alarm: list[float | None]
    batch_sizes: tuple[int, ...] = BATCH_SIZES
    trials: int = TRIALS
    alpha: float = ALPHA


def ks_ranks(sorted_ref: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per class and image (K×N): how many reference values are < it (left) and <= it (right)."""
    k_classes = probs.shape[1]
    # ranks fit 16 bits for any reference up to 65,535 digits, and 16-bit sorts run ~5x faster
    dtype = np.uint16 if len(sorted_ref) < 2**16 else np.int64
    left = np.empty((k_classes, len(probs)), dtype=dtype)
    right = np.empty((k_classes, len(probs)), dtype=dtype)
    # searchsorted walks sorted keys in cache order (3.5x faster at 2,500 x 2,500), same ranks
    order = np.argsort(probs, axis=0)
    for k in range(k_classes):
        keys = probs[order[:, k], k]
        left[k, order[:, k]] = np.searchsorted(sorted_ref[:, k], keys, side="left")
        right[k, order[:, k]] = np.searchsorted(sorted_ref[:, k], keys, side="right")
    return left, right


def ks_statistic_batches(left: np.ndarray, right: np.ndarray, m: int, overwrite: bool = False) -> np.ndarray:
    """Two-sided KS statistic per class and batch from the batch images' reference ranks (K×T×b).

    The reference CDF is monotone, so sorting the ranks sorts the batch: D+ = max_j j/b - F_ref(x_j)
    at the batch's jumps, D- = max_j F_ref(x_j-) - (j-1)/b just before them (ties resolve by max).
    ``overwrite``: sort ``left`` and ``right`` in place (the caller's fresh gathers) instead of copies."""
    b = left.shape[-1]
    # exact integer arithmetic over the common denominator m*b, one float division at the end
    dtype = np.int32 if m * b < 2**31 else np.int64
    jm = np.arange(1, b + 1, dtype=dtype) * m
    r = right if overwrite else right.copy()
    r.sort(axis=-1)
    # the widening cast inside the multiply: one pass and one temporary per side (the batch-1000 hot spot)
    r = np.multiply(r, -b, dtype=dtype)
    r += jm
    d_plus = r.max(axis=-1)
    lo = left if overwrite else left.copy()
    lo.sort(axis=-1)
    lo = np.multiply(lo, b, dtype=dtype)
    lo -= jm - m
    d_minus = lo.max(axis=-1)
    return np.maximum(np.maximum(d_plus, d_minus), 0) / (m * b)


def ks_pvalue(d: np.ndarray, m: int, b: int) -> np.ndarray:
    from scipy.stats import kstwo

    en = m * b / (m + b)
    return kstwo.sf(d, np.round(en))


# (effective n, level) -> the critical D, from scipy. The run layer keeps these on disk
# (run/ks_cache.py), so a run that knows its values need not import scipy.stats (0.45 s, a fifth
# of what the deployment records cost a default eval).
CRITICAL: dict[tuple[int, float], float] = {}


def ks_effective_n(m: int, b: int) -> int:
    """The n of the one-sample distribution the asymptotic two-sample p-value reads (as ks_2samp)."""
    return int(np.round(m * b / (m + b)))


def ks_critical_value(m: int, b: int, level: float) -> float:
    """The D above which ``ks_pvalue`` falls below ``level``: p is continuous and decreasing in D,
    so one inverse per (m, b) replaces a p-value per test (scipy evaluates those one at a time)."""
    key = (ks_effective_n(m, b), float(level))
    if key not in CRITICAL:
        from scipy.stats import kstwo

        CRITICAL[key] = float(kstwo.isf(level, key[0]))
    return CRITICAL[key]


@functools.lru_cache(maxsize=8)
def batches(pool_n: int, batch_sizes: tuple[int, ...] = BATCH_SIZES, trials: int = TRIALS) -> tuple:
    """The batches every set is tested on: per size, ``trials`` rows of pool positions drawn without
    replacement (None where the size exceeds the pool), from a seed fixed by the pool size.

    Position i of every set's pool is a transform of the same clean digit, so all sets (clean's
    false alarm too) are tested on the same digits: their powers differ by the shift, not by which
    batches happened to be drawn (common random numbers, as the paired flip rate), and drawing
    150 batches per set (a fifth of the detection time) is done once per run."""
    rng = np.random.default_rng(zlib.crc32(f"bbsd-batches:{pool_n}".encode()))
    out = []
    for b in batch_sizes:
        idx = np.stack([rng.choice(pool_n, b, replace=False) for _ in range(trials)]) if b <= pool_n else None
        if idx is not None:
            idx.flags.writeable = False  # cached and shared by every set
        out.append(idx)
    return tuple(out)


def detection_power(sorted_ref: np.ndarray, pool: np.ndarray, batch_sizes=BATCH_SIZES, trials: int = TRIALS,
                    alpha: float = ALPHA) -> list[float | None]:
    """Share of the ``trials`` batches of each size (``batches``) drawn from ``pool`` (N×K softmax) flagged."""
    m, k = sorted_ref.shape
    left, right = ks_ranks(sorted_ref, pool)
    out: list[float | None] = []
    for b, idx in zip(batch_sizes, batches(len(pool), tuple(batch_sizes), trials), strict=True):
        if idx is None or m == 0:
            out.append(None)
            continue
        # take() gathers into a contiguous K×T×b; left[:, idx] is a strided view-order copy whose
        # sorts and arithmetic ran 2.5x slower
        d = ks_statistic_batches(left.take(idx, axis=1), right.take(idx, axis=1), m, overwrite=True)  # K×T
        flagged = (d > ks_critical_value(m, b, alpha / k)).any(axis=0)  # some class has p < alpha / K
        out.append(float(flagged.mean()))
    return out


def reference(clean_probs: np.ndarray, batch_sizes=BATCH_SIZES, trials: int = TRIALS,
              alpha: float = ALPHA) -> Reference:
    ref = np.sort(clean_probs[0::2].astype(np.float32), axis=0)
    fa = detection_power(ref, clean_probs[1::2], batch_sizes, trials, alpha)
    return Reference(ref, fa, tuple(batch_sizes), trials, alpha)


def detection_metrics(ref: Reference, probs: np.ndarray) -> dict:
    power = detection_power(ref.sorted_probs, probs[1::2].astype(np.float32), ref.batch_sizes, ref.trials, ref.alpha)
    return as_record(ref, power, len(probs))


def as_record(ref: Reference, power: list[float | None], n: int) -> dict:
    return {"batch_sizes": list(ref.batch_sizes), "power": list(power), "false_alarm": list(ref.false_alarm),
            "test": TEST, "trials": ref.trials, "reference_n": int(len(ref.sorted_probs)), "pool_n": n // 2}
