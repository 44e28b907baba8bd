"""Score a model on the OOD sets of a run (both executors call this, the Ray one in a task)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..data.ood import load_ood
from ..metrics.ood import ood_record
from ..results import OODRecord


def evaluate_ood(names: list[str], in_logits: np.ndarray, score_fn: Callable[[np.ndarray], np.ndarray],
                 data_root=None, seed: int = 0, n: int | None = None, output: str = "logits",
                 ) -> list[OODRecord]:
    """Score each OOD set with ``score_fn`` (uint8 images -> logits) against ID logits;
    ``output`` is the model's declared output kind (logit-only scores need logits)."""
    records = []
    for name in names:
        ds, desc = load_ood(name, data_root, seed)
        images = ds.images[:n] if n else ds.images
        records.append(ood_record(name, desc, images, in_logits, score_fn(images), output))
    return records
