"""Scores computed elsewhere (any framework, any language), read from one ``.npz``.

The file holds one float array N×10 per set, named as ``robustmnist shifts export`` names the
sets: ``clean``, ``rotate@3`` (or ``rotate__at__3``, the npz-safe spelling). Rows are in the
exported order. Probabilities (non-negative rows summing to 1) are detected, so softmax
outputs and logits both score correctly; ``--preprocess output=...`` overrides.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..fileio import sha256_file
from .preprocess import Preprocess
from .read import first_line


def npz_name(set_id: str) -> str:
    return set_id.replace("@", "__at__")


class PrecomputedScores:
    """Looks scores up by set name instead of computing them; run.scoring asks ``scores_for``."""

    def __init__(self, path: Path, arrays: dict[str, np.ndarray], output: str):
        self.path = path
        self.arrays = arrays
        self.spec = Preprocess(output=output)

    def scores_for(self, set_id: str, n: int) -> np.ndarray:
        raw = self.arrays.get(set_id)
        if raw is None:
            raw = self.arrays.get(npz_name(set_id))
        if raw is None:
            have = ", ".join(sorted(self.arrays)[:12])
            raise UserError(f"{self.path} has no scores for set '{set_id}' (it has: {have}); score the sets "
                            "written by robustmnist shifts export with the same `suite=`, `shift=`, "
                            "`severity=`, `n=` and `seed=`")
        if raw.ndim != 2 or raw.shape != (n, 10):
            raise UserError(f"{self.path}: scores '{set_id}' have shape {raw.shape}; that set has {n} images, "
                            f"so they must be {n}×10")
        out = self.spec.to_logits(torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32))).numpy()
        if not np.isfinite(out).all():
            raise UserError(f"{self.path}: scores '{set_id}' contain NaN or inf")
        return out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        raise UserError("precomputed scores can only score the exported sets (eval --predictions)")

    def eval(self) -> PrecomputedScores:
        return self


def _is_probs(a: np.ndarray) -> bool:
    a = a.astype(np.float64)
    return bool(len(a)) and bool((a >= 0).all()) and bool(np.allclose(a.sum(axis=1), 1.0, atol=1e-3))


def load_predictions(path: str | Path, preprocess: str | None = None):
    """PREDS.npz -> a LoadedModel whose scores are looked up by set name."""
    from .load import LoadedModel

    p = Path(path)
    if not p.is_file():
        raise UserError(f"predictions file {p} does not exist")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k]) for k in z.files}
    except Exception as exc:  # noqa: BLE001 - not an npz, or one holding pickled objects
        raise UserError(f"{p} is not a NumPy .npz of score arrays ({first_line(exc)})") from None
    if "clean" not in arrays:
        raise UserError(f"{p} has no 'clean' scores; it needs one N×10 array per exported set, plus 'clean'")
    output = "probs" if _is_probs(arrays["clean"]) else "logits"
    if preprocess:
        output = Preprocess.parse(preprocess, base=Preprocess(output=output)).output
    module = PrecomputedScores(p, arrays, output)
    return LoadedModel(module, module.spec, str(p), sha256_file(p), "predictions",
                       metadata={"sets": len(arrays)})
