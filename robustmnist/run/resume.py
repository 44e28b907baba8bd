"""Write as you go, and pick up where an interrupted run stopped.

While a run goes, its results so far are saved (results.json marked ``"partial": true`` plus
predictions.npz, each an atomic rewrite) after clean MNIST and then at most every few seconds
as sets finish. A run killed at any moment therefore leaves a valid results.json that
``robustmnist report`` renders (flagged partial) and ``robustmnist eval --resume`` finishes,
re-scoring only what is missing. The interval keeps the rewrites (a few MB of JSON each for
the full suite) to a small share of the run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..results import Result

SAVE_EVERY_S = 5.0


def save_every_s() -> float:
    """Seconds between partial saves; ROBUSTMNIST_SAVE_EVERY_S overrides (0 = after every set)."""
    raw = os.environ.get("ROBUSTMNIST_SAVE_EVERY_S")
    try:
        return max(0.0, float(raw)) if raw else SAVE_EVERY_S
    except ValueError:
        return SAVE_EVERY_S


class PartialSaver:
    """``run.collect.evaluate_many(on_update=saver)``: saves the partial outputs, throttled.

    ``save(output)`` writes one model's results (e.g. cli.eval_cmd.save_run); the first update
    (clean MNIST scored) is always saved, later ones once ``every`` seconds have passed.
    """

    def __init__(self, save: Callable, every: float | None = None, finish: Callable | None = None):
        self.save = save
        self.finish = finish  # applied to each partial Result before saving (e.g. mCE)
        self.every = save_every_s() if every is None else every
        self.last = -float("inf")
        self.saves = 0
        self.sets_saved = 0

    def __call__(self, outputs) -> None:
        """``outputs``: the partial outputs, or a thunk that builds them (only called when a save is due)."""
        now = time.monotonic()
        if self.saves and now - self.last < self.every:
            return
        if callable(outputs):
            outputs = outputs()
        for output in outputs:
            if self.finish:
                self.finish(output.result)
            self.save(output)
        self.last = time.monotonic()
        self.saves += 1
        self.sets_saved = len(outputs[0].result.shifts) if outputs else 0


def load_partial(out: Path):
    """The RunOutput an interrupted run left in ``out`` (results.json + predictions.npz)."""
    from .collect import RunOutput

    path = out / "results.json"
    if not path.is_file():
        raise UserError(f"nothing to resume: {path} does not exist; run without `resume=True`")
    result = Result.load(path)
    if not result.partial:
        raise UserError(f"{path} is already complete; nothing to resume (run without `resume=True` to redo it)")
    preds_name = (result.predictions or {}).get("file") or "predictions.npz"
    preds: dict[str, np.ndarray] = {}
    try:
        # No sha256 check here: a kill between the two atomic rewrites leaves a newer npz beside
        # an older results.json, and the newer file holds every set the older one lists.
        with np.load(out / preds_name, allow_pickle=False) as z:
            preds = {k.replace("__at__", "@").replace("__labels", ":labels"): z[k] for k in z.files}
    except (OSError, ValueError):
        preds = {}  # predictions lost: every set is scored again, nothing else is wrong
    n = result.suite.get("n")
    preds = {k: v for k, v in preds.items() if len(v) == n}
    return RunOutput(result, preds)


def check_resumable(prior, model, suite, seed: int, n: int | None, ood: list[str] | None) -> int:
    """The prior run's n, after checking it is the same model and recipe; else a UserError."""
    r = prior.result
    what = []
    if r.model.sha256 != model.sha256:
        what.append("another model file")
    if r.model.preprocess != model.preprocess.to_string():
        what.append(f"preprocess {r.model.preprocess}")
    if r.seed != seed:
        what.append(f"`seed={r.seed}`")
    have = r.suite or {}
    if suite is not None and (have.get("name") != suite.name or have.get("shifts") != suite.shift_names
                              or have.get("severities") != list(suite.severities)):
        what.append(f"suite {have.get('name')} with other shifts or severities")
    if suite is None and have.get("shifts"):
        what.append(f"suite {have.get('name')}")
    prior_n = int(have.get("n") or 0)
    if n is not None and n != prior_n:
        what.append(f"`n={prior_n}`")
    prior_ood = (r.execution or {}).get("ood") or []
    if sorted(prior_ood) != sorted(ood or []):
        what.append("other `ood=` sets")
    if what:
        raise UserError(f"the partial results were made with {', '.join(what)}; resume with the same "
                        "settings, or run without `resume=True` (or with another `out=`) to start over")
    return prior_n
