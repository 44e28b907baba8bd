"""How many images per set a run can afford: a time budget and an honest estimate.

The full default suite is 261 sets of 10,000 images (2.61M). A GPU scores that in seconds;
a laptop CPU running a 32/64-channel CNN eagerly needs the better part of an hour, which a
new user only learns from a progress bar. So when neither ``--n`` nor a GPU is given, the
model's throughput is measured on a probe batch (the forward-path probe, models/fastpath.py)
and n is the largest multiple of the nesting chunk whose estimated run fits the budget. As
sets are nested (the first n images of a set are the same whatever n is), a smaller n is a
prefix of the full set, not a different sample, and ``--n 10000`` later refines it.

The estimate is scoring (measured), set generation (per-shift costs measured on a 2-core x86
CPU by benchmarks/shifts.py, or a cache read when the set is cached), metrics and the reports.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import re
import statistics
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

DEFAULT_CPU_BUDGET_S = 120.0
MIN_GAIN_NOTE = 1.5  # say "Nx eager" in the line only when the path gains at least this

# Seconds to generate 10,000 images of each level, measured on a 2-core x86 CPU by
# benchmarks/shifts.py, which rewrites the table (reference/generation_costs.json). A shift not
# listed (a spec's library shift) costs the median level; a cached set costs a read.
COSTS_FILE = Path(__file__).resolve().parent.parent / "reference" / "generation_costs.json"


@functools.cache
def generation_costs() -> dict[str, tuple[float, ...]]:
    table = json.loads(COSTS_FILE.read_text())["seconds_per_10k"]
    return {name: tuple(float(s) for s in levels) for name, levels in table.items()}


def generate_s_per_10k(name: str, severity: int) -> float:
    table = generation_costs()
    levels = table.get(name)
    if levels is None:
        return statistics.median(s for row in table.values() for s in row)
    return levels[min(max(severity, 1), len(levels)) - 1]


# Writing a new set to the cache, reading a cached one, and per-set metrics + gallery PNGs:
# the default suite's cold/warm evaluation (benchmarks/shifts.json "evaluation") split per set.
CACHE_WRITE_S_PER_10K = 0.19
CACHE_READ_S_PER_10K = 0.026
# What generating a set costs whatever its n (chunk bookkeeping, hashing, the file, per-call
# set-up of the print shifts): the no-flags cnn-small run at 2,500 per set spent 72.2 s
# generating 260 sets where the per-image table said 45 s (idle, benchmarks/score_paths.json).
GENERATE_S_PER_SET = 0.1
CACHE_READ_S_PER_SET = 0.005  # opening and checking a cached file, however small
METRICS_S_PER_10K = 0.0075
# results.json, predictions.npz and the HTML/Markdown/CSV reports at the end (4.8 s for the
# default suite's 240 sets, README "Speed")
REPORT_S = 1.5
REPORT_S_PER_SET = 0.014
CALIBRATION_IMAGES = 2000  # ~50 ms of generation (idle) to see how fast this machine is right now
# On an oversubscribed CPU two-thread torch kernels (generation) slow down far more than
# single-threaded Python (metrics, reports): at load 20 on 2 cores, measured 30-50x vs ~11x.
# The Python-side costs are scaled by factor ** PYTHON_EXPONENT (50 -> 10.5, 2 -> 1.5).
PYTHON_EXPONENT = 0.6


def nest_chunk() -> int:
    """Images per nested chunk: any multiple of it is a prefix of the full set."""
    from ..shifts.fingerprint import NEST_CHUNK

    return NEST_CHUNK


def parse_budget(text: str | None) -> float | None:
    """'2m', '90s', '1.5h', '120' (seconds) -> seconds; 'none'/'off'/'full' -> inf; None -> None."""
    if text is None:
        return None
    t = str(text).strip().lower()
    if t in ("none", "off", "full", "inf", "unlimited"):
        return math.inf
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|sec|m|min|h)?", t)
    if not m:
        raise UserError(f"`budget=` must be a duration like 90s, 2m or 1.5h (or 'none'), got '{text}'")
    value = float(m.group(1)) * {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}.get(m.group(2) or "s", 1)
    if value <= 0:
        raise UserError(f"`budget=` must be positive, got '{text}'")
    return value


def half_width_pt(n: int) -> float:
    """Largest 95% interval half-width of an accuracy measured on n images (at 50%), in points."""
    return 100 * 1.96 * math.sqrt(0.25 / max(1, n))


def duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "unbounded"
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min" if seconds >= 600 else f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def rate_text(rate: float) -> str:
    if rate >= 1e6:
        return f"{rate / 1e6:.1f}M"
    if rate >= 1000:
        return f"{rate / 1000:.1f}k" if rate < 1e4 else f"{rate / 1000:.0f}k"
    return f"{rate:.0f}"


@dataclass(frozen=True)
class SetCost:
    name: str
    generate_s_per_10k: float  # 0 for a cached set at the planned n: reading it is counted apart
    cached: bool


@dataclass
class Plan:
    """The n a run uses and why; ``line()`` is printed before scoring, ``to_dict()`` saved."""

    n: int
    n_full: int
    reason: str  # "--n", "budget", "fits the budget", "gpu", "no budget", "resume"
    budget_s: float | None
    images_per_s: float  # all models together (bench scores every set with each)
    estimated_s: float
    full_s: float
    device: str
    paths: list[str]  # each model's forward path, e.g. "onnxruntime, 5.3x eager"
    n_sets: int
    machine_factor: float = 1.0  # generation here and now vs the tabled costs

    def to_dict(self) -> dict:
        return {"n": self.n, "n_full": self.n_full, "n_reason": self.reason,
                "budget_s": None if self.budget_s is None or not math.isfinite(self.budget_s) else self.budget_s,
                "images_per_s": round(self.images_per_s), "estimated_s": round(self.estimated_s, 1),
                "full_estimated_s": round(self.full_s, 1), "interval_half_width_pt": round(half_width_pt(self.n), 2),
                "sets": self.n_sets, "machine_factor": round(self.machine_factor, 2), "line": self.line()}

    def line(self) -> str:
        path = f" ({'; '.join(self.paths)})" if self.paths else ""
        head = f"~{rate_text(self.images_per_s)} images/s on {self.device}{path}"
        per_set = f"{self.n:,} images per set"
        acc = f"accuracy ±{half_width_pt(self.n):.1f} pt at worst"
        if self.reason == "budget":
            fix = f"--n {self.n_full} or a GPU" if self.device == "cpu" else f"--n {self.n_full}"
            over = "" if self.estimated_s <= self.budget_s else \
                f" (the fewest allowed, still ~{duration(self.estimated_s)})"
            return (f"{head}: {per_set}{over} to fit --budget {duration(self.budget_s)}, {acc}; the full "
                    f"{self.n_full:,} would take ~{duration(self.full_s)}: {fix}")
        if self.reason in ("--n", "resume"):
            return f"{head}: {per_set} ({self.reason}), {acc}, ~{duration(self.estimated_s)}"
        if self.reason == "fits the budget":
            return (f"{head}: all {per_set}, {acc}, ~{duration(self.estimated_s)} "
                    f"(within --budget {duration(self.budget_s)})")
        return f"{head}: all {per_set} ({self.reason}), {acc}, ~{duration(self.estimated_s)}"


def set_costs(suite, n: int, seed: int, source_images=None, source_labels=None,
              use_cache: bool = True, source_sha: str | None = None) -> list[SetCost]:
    """Each (shift, severity) set's generation cost at n, and whether the cache already holds it."""
    if suite is None:
        return []
    if source_sha is None:
        source_sha = _source_sha(source_images, source_labels) if use_cache else ""
    out = []
    for name in suite.shift_names:
        shift = suite.shift(name)  # a spec's own library shifts are not in the registry
        for sev in suite.severities:
            cached = use_cache and _is_cached(shift, sev, suite.params(name, sev), seed, n, source_sha)
            out.append(SetCost(name, generate_s_per_10k(name, sev), cached))
    return out


def machine_factor(suite, images, labels, seed: int = 0) -> float:
    """This machine's generation time over the table's, now (a busy CPU can be 10x slower).

    Generates the first ``CALIBRATION_IMAGES`` digits of up to three of the suite's transform
    shifts (best of two tries each, on one thread) and compares with the tabled
    ``generation_costs``.
    """
    if suite is None or images is None or labels is None or len(images) == 0:
        return 1.0
    with one_thread():  # as the table was measured: one worker process's seconds
        return _machine_factor(suite, images, labels, seed)


@contextlib.contextmanager
def one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _machine_factor(suite, images, labels, seed: int) -> float:
    import time

    from ..shifts.registry import get_shift
    from ..shifts.sets import make_set

    k = min(CALIBRATION_IMAGES, len(images))
    measured = expected = 0.0
    picked = [nm for nm in suite.shift_names
              if nm in generation_costs() and get_shift(nm).kind != "generative"][:3]
    for name in picked:
        shift, sev = get_shift(name), suite.severities[len(suite.severities) // 2]
        best = float("inf")
        make_set(shift, sev, suite.params(name, sev), images[:1], labels[:1], 1, seed)  # warm-up
        for _ in range(2):
            t = time.perf_counter()
            make_set(shift, sev, suite.params(name, sev), images[:k], labels[:k], k, seed)
            best = min(best, time.perf_counter() - t)
        measured += best
        expected += generate_s_per_10k(name, sev) * k / 10_000
    if not expected:
        return 1.0
    return min(50.0, max(0.25, measured / expected))


def estimate_seconds(n: int, rates: list[float], costs: list[SetCost], ood_sets: int = 0,
                     factor: float = 1.0, workers: int | None = None) -> float:
    """Seconds for a run at n images per set: scoring, generation, cache, metrics, reports.

    ``factor`` scales the tabled (not measured) parts to this machine (``machine_factor``).
    Generation is shared out over the pipeline's worker processes (``workers``, else as many
    as it would start here): the table is one process's seconds, so it divides by their count.
    """
    from ..shifts.pipeline import processes_for

    per_image = sum(1.0 / max(r, 1e-9) for r in rates)
    scored = n * (1 + len(costs) + ood_sets)
    scale = factor * n / 10_000
    py = factor ** PYTHON_EXPONENT
    fresh = [c for c in costs if not c.cached]
    procs = processes_for(len(fresh), n, workers)
    generate = sum(c.generate_s_per_10k for c in fresh) * scale / procs \
        + CACHE_WRITE_S_PER_10K * len(fresh) * scale + GENERATE_S_PER_SET * len(fresh) * factor
    reads = sum(CACHE_READ_S_PER_SET + CACHE_READ_S_PER_10K * n / 10_000 for c in costs if c.cached) * py
    metrics = METRICS_S_PER_10K * n / 10_000 * (1 + len(costs)) * max(1, len(rates)) * py
    report = (REPORT_S + REPORT_S_PER_SET * len(costs)) * py
    return scored * per_image + generate + reads + metrics + report


def plan_run(
    models: list,
    suite,
    *,
    clean_images,
    clean_labels=None,
    n: int | None = None,
    budget: float | None = None,
    seed: int = 0,
    ood_sets: int = 0,
    use_cache: bool = True,
    batch_size: int = 512,
    fast: bool = True,
    resume_n: int | None = None,
    spent_s: float = 0.0,
) -> tuple[list, Plan]:
    """(the models on their fastest exact paths, the plan). ``budget``: seconds, inf, or None.

    None means the default: ``DEFAULT_CPU_BUDGET_S`` on a CPU, unlimited on a GPU. An explicit
    ``n`` (or the n of a run being resumed) always wins over any budget. ``spent_s``: what the
    command already used before this call (imports, loading), taken off the budget.
    """
    from ..models.fastpath import accelerate

    if fast:
        models = [accelerate(m, clean_images, batch_size) for m in models]
    n_full = len(clean_images)
    device = models[0].device.type if models else "cpu"
    rates = [_rate(m) for m in models]
    paths = [m.forward_path.describe() for m in models if m.forward_path is not None]
    probe_s = sum(m.forward_path.probe_s for m in models if m.forward_path is not None)
    n_sets = len(suite.shift_names) * len(suite.severities) if suite else 0
    factor = machine_factor(suite, clean_images, clean_labels, seed) if n_sets else 1.0

    shas: dict[int, str] = {}  # hashing the source digits once, not once per candidate n

    def cost(k: int) -> float:
        if use_cache and not shas:
            shas[0] = _source_sha(clean_images, clean_labels)
        costs = set_costs(suite, k, seed, clean_images, clean_labels, use_cache, shas.get(0, ""))
        # the clean record scores every clean digit whatever k (collect.py): the rest costs too
        rest = (n_full - k) * sum(1.0 / max(r, 1e-9) for r in rates) if fast else 0.0
        return estimate_seconds(k, rates, costs, ood_sets, factor) + rest

    full_s = cost(n_full)

    def plan(k: int, reason: str, budget_s: float | None) -> Plan:
        return Plan(k, n_full, reason, budget_s, _total(rates), full_s if k == n_full else cost(k), full_s,
                    device, paths, n_sets, factor)

    fixed = resume_n if resume_n is not None else n
    if fixed is not None:
        return models, plan(min(fixed, n_full), "resume" if resume_n is not None else "--n", budget)
    if budget is None:
        budget = DEFAULT_CPU_BUDGET_S if device == "cpu" else math.inf
        if not math.isfinite(budget):
            return models, plan(n_full, "gpu", None)
    if not math.isfinite(budget):
        return models, plan(n_full, "no budget", None)
    left = budget - probe_s - spent_s
    if full_s <= left:
        return models, plan(n_full, "fits the budget", budget)
    chunk = nest_chunk()
    k = (n_full // chunk) * chunk
    while k > chunk and cost(k) > left:
        k -= chunk
    return models, plan(max(min(chunk, n_full), k), "budget", budget)


def _total(rates: list[float]) -> float:
    return 1.0 / sum(1.0 / max(r, 1e-9) for r in rates) if rates else 0.0


def _rate(model) -> float:
    choice = getattr(model, "forward_path", None)
    if choice is not None and choice.images_per_s > 0:
        return float(choice.images_per_s)
    return 10_000.0  # not probed (fast=False): a middling CPU conv net


def _source_sha(images, labels) -> str:
    """The source digits' hash in the cache key: the whole source, since nested chunk k reads
    its digits by position."""
    if images is None or labels is None:
        return ""
    from ..shifts import sets

    return sets.set_sha256(images, labels)


def _is_cached(shift, severity: int, params: dict, seed: int, n: int, source_sha: str) -> bool:
    """Whether get_set would read this set from the cache (a cheap file test, no hashing)."""
    from ..shifts import sets

    try:
        return sets.set_cache_path(shift, severity, params, seed, n, source_sha).is_file()
    except Exception:  # noqa: BLE001 - a cache layout this module does not know: assume a miss
        return False
