"""Score one model on one set: uint8 images -> logits -> the set's metrics and gallery.

The unit of work of every executor (local and Ray call the same ``score_set``), so a set scored
anywhere gives the same record by construction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UserError
from ..metrics.classification import classification_metrics
from ..models.fastpath import forward as fast_forward
from ..models.load import LoadedModel
from ..report.images import png_b64

# 512, not larger: on a 2-core x86 CPU lenet5 scores ~60k images/s at 512 but ~35k at 1024
# (its conv activations fall out of cache); MLPs lose under 10% (benchmarks/score.json). CUDA
# callers may pass more, and the scorer halves the batch on out-of-memory anyway.
DEFAULT_BATCH = 512
GALLERY_MISCLASSIFIED = 8

# progress(kind, advance_images, status_text); kind is "total" (advance = the run's image count),
# "score", "attack" or "set"
ProgressFn = Callable[[str, int, str], None]


def set_id(name: str, severity: int) -> str:
    return f"{name}@{severity}"


def score(
    model: LoadedModel,
    images: np.ndarray,
    batch_size: int = DEFAULT_BATCH,
    progress: ProgressFn | None = None,
) -> np.ndarray:
    """uint8 N×28×28 -> float32 N×10 logits (softmax(logits) = the model's probabilities)."""
    device = model.device
    n = len(images)
    out = np.empty((n, 10), dtype=np.float32)
    src = torch.from_numpy(np.ascontiguousarray(images))
    on_cuda = device.type == "cuda"
    if on_cuda:
        src = src.pin_memory()  # lets the copy overlap with compute (non_blocking)
    start = 0
    bs = max(1, batch_size)
    with torch.inference_mode():
        while start < n:
            stop = min(n, start + bs)
            try:
                xb = src[start:stop].to(device, non_blocking=on_cuda)
                logits = fast_forward(model.module, model.preprocess, xb)
            except torch.cuda.OutOfMemoryError:
                if bs == 1:
                    raise UserError("CUDA ran out of memory even at batch size 1") from None
                torch.cuda.empty_cache()
                bs = max(1, bs // 2)  # back off and retry the same slice
                continue
            except UserError:
                raise
            except Exception as exc:  # noqa: BLE001 - the user's model can raise anything
                raise UserError(f"the model failed on a batch: {str(exc).splitlines()[0]}") from None
            if logits.dim() != 2 or logits.shape[1] != 10 or logits.shape[0] != stop - start:
                raise UserError(f"the model returned shape {tuple(logits.shape)}; expected N×10")
            out[start:stop] = logits.float().cpu().numpy()
            if progress:
                progress("score", stop - start, "")
            start = stop
    if not np.isfinite(out).all():
        bad = int((~np.isfinite(out)).any(axis=1).sum())
        raise UserError(
            f"the model produced NaN or inf outputs for {bad} of {n} images; check its weights "
            "and the `preprocess=` input range (robustmnist doctor MODEL can help)"
        )
    return out


def score_named(model: LoadedModel, key: str | None, images: np.ndarray, batch_size: int = DEFAULT_BATCH,
                progress: ProgressFn | None = None) -> np.ndarray:
    """``score`` for the set named ``key``; scores computed elsewhere are looked up by that name."""
    lookup = getattr(model.module, "scores_for", None)
    if lookup is None or key is None:
        return score(model, images, batch_size, progress)
    out = lookup(key, len(images))  # eval with predictions= (models/predictions.py)
    if progress:
        progress("score", len(images), "")
    return out


# -- galleries: tiny PNGs inside results.json so the report never needs the set cache ----------

def sample_indices(labels: np.ndarray) -> list[int]:
    """The first digit of each class (0..9): the same columns in every gallery strip."""
    idx = []
    for k in range(10):
        hits = np.flatnonzero(labels == k)
        if len(hits):
            idx.append(int(hits[0]))
    return idx


def gallery(images: np.ndarray, labels: np.ndarray, logits: np.ndarray, indices: list[int]) -> dict:
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    preds = probs.argmax(axis=1)
    strip = np.concatenate([images[i] for i in indices], axis=1) if indices else np.zeros((28, 28))
    wrong = np.flatnonzero((preds != labels) & (labels >= 0))[:GALLERY_MISCLASSIFIED]
    return {
        "samples_png": png_b64(strip),
        "sample_indices": [int(i) for i in indices],
        "misclassified": [
            {"index": int(i), "true": int(labels[i]), "pred": int(preds[i]),
             "confidence": float(probs[i].max()), "png": png_b64(images[i])}
            for i in wrong
        ],
    }


@dataclass
class SetScore:
    """One model scored on one set."""

    metrics: dict  # classification_metrics + gallery
    preds: np.ndarray  # int8 N, the argmax
    # float32 N×10: the collector derives the deployment records from them (metrics/deployment.py)
    # and keeps clean's only (OOD scores compare against it)
    logits: np.ndarray
    score_s: float
    metrics_s: float


def score_set(model: LoadedModel, images: np.ndarray, labels: np.ndarray, indices: list[int] | None = None,
              batch_size: int = DEFAULT_BATCH, progress: ProgressFn | None = None,
              key: str | None = None) -> SetScore:
    t = time.perf_counter()
    logits = score_named(model, key, images, batch_size, progress)  # key: the set's name (predictions=)
    score_s = time.perf_counter() - t
    t = time.perf_counter()
    m = classification_metrics(labels, logits)
    m["gallery"] = gallery(images, labels, logits, sample_indices(labels) if indices is None else indices)
    preds = logits.argmax(axis=1).astype(np.int8)
    return SetScore(m, preds, logits, score_s, time.perf_counter() - t)


def whole_clean(model: LoadedModel, prefix: SetScore, images: np.ndarray, labels: np.ndarray,
                indices: list[int], batch_size: int = DEFAULT_BATCH,
                progress: ProgressFn | None = None) -> SetScore | None:
    """The clean record on every clean digit: ``prefix`` (the first n, scored with logits kept)
    plus the rest, scored here. A user compares this number with their own test loop, so it is
    never a prefix; shifted sets and their flip rates keep pairing with the first n. None where
    there is no rest, or the scores come from a predictions file (it holds the n exported)."""
    n = len(prefix.preds)
    if n >= len(images) or prefix.logits is None or getattr(model.module, "scores_for", None) is not None:
        return None
    t = time.perf_counter()
    logits = np.concatenate([prefix.logits, score(model, images[n:], batch_size, progress)])
    score_s = time.perf_counter() - t
    t = time.perf_counter()
    m = classification_metrics(labels, logits)
    m["gallery"] = gallery(images, labels, logits, indices)
    return SetScore(m, logits.argmax(axis=1).astype(np.int8), logits, score_s, time.perf_counter() - t)
