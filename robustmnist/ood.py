"""Out-of-distribution sets and their records: an MNIST model should not be confident on a
shoe, a cat, static, or an empty page.

Sets: ``fashion`` (Fashion-MNIST test, near-OOD), ``cifar10`` (CIFAR-10 test as 28×28
grayscale, far-OOD, as in OpenOOD's MNIST benchmark), ``noise`` (uniform static), ``blank``
(empty pages of random tone), ``folder:PATH`` (any images, MNIST-framed like digits).
Every set is scored with the model's own preprocess spec (OpenOOD#198: normalise OOD data
with the in-distribution statistics, never per OOD set).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data import DigitSet, load_cifar10_gray, load_fashion, load_image_folder, to_uint8
from .errors import UserError
from .metrics import OOD_SCORES, ood_detection_metrics, ood_scores
from .report.images import png_b64
from .results import OODRecord
from .shifts.sets import derive_seed, set_sha256

CONVENTION = ("ID (MNIST test) is the positive class; scores are higher-is-in-distribution; "
              "fpr95 = fraction of OOD images accepted at the threshold accepting 95% of MNIST "
              "test (Hendrycks & Gimpel 2017; OpenOOD's fpr95 uses OOD as positive instead)")
SYNTHETIC_N = 10_000
HIST_EDGES = np.linspace(0.0, 1.0, 21)


@dataclass(frozen=True)
class OODSource:
    name: str
    description: str
    load: Callable[[str | os.PathLike | None, int], DigitSet]


def _noise(root, seed: int) -> DigitSet:
    g = torch.Generator().manual_seed(derive_seed("ood-noise", seed))
    x = torch.rand((SYNTHETIC_N, 1, 28, 28), generator=g)
    return DigitSet(to_uint8(x), np.full(SYNTHETIC_N, -1, np.int64), "noise")


def _blank(root, seed: int) -> DigitSet:
    g = torch.Generator().manual_seed(derive_seed("ood-blank", seed))
    tone = torch.rand((SYNTHETIC_N, 1, 1, 1), generator=g)
    return DigitSet(to_uint8(tone.expand(-1, 1, 28, 28)), np.full(SYNTHETIC_N, -1, np.int64), "blank")


SOURCES: dict[str, OODSource] = {
    "fashion": OODSource("fashion", "Fashion-MNIST test set (10,000 clothing images, 28×28 grey; "
                         "near-OOD)", lambda root, seed: load_fashion("test", root)),
    "cifar10": OODSource("cifar10", "CIFAR-10 test set (10,000 photos) converted to 28×28 "
                         "grayscale: ITU-R 601 luminance, then Lanczos (antialiased) downscale "
                         "from 32×32; not inverted, not framed (far-OOD)",
                         lambda root, seed: load_cifar10_gray(root, "test")),
    "noise": OODSource("noise", "10,000 images of uniform random pixels (sanity check)", _noise),
    "blank": OODSource("blank", "10,000 empty pages of uniform random tone (sanity check)", _blank),
}


def check_ood_names(names: list[str]) -> None:
    for name in names:
        if name.startswith("folder:"):
            path = Path(name[len("folder:"):]).expanduser()
            if not path.is_dir():
                raise UserError(f"OOD folder {path} does not exist or is not a folder")
        elif name not in SOURCES:
            raise UserError(
                f"unknown OOD set '{name}'. Known: {', '.join(SOURCES)}, folder:PATH"
            )


def load_ood(name: str, root: str | os.PathLike | None = None, seed: int = 0) -> tuple[DigitSet, str]:
    check_ood_names([name])
    if name.startswith("folder:"):
        path = Path(name[len("folder:"):]).expanduser()
        ds = load_image_folder(path)
        desc = (f"images from {path} ({len(ds.images)}), grayscale, auto polarity, fitted into "
                "20×20 and centred by mass like MNIST digits")
        return ds, desc
    src = SOURCES[name]
    return src.load(root, seed), src.description


# Max-logit and energy read the scale of unnormalised logits. A model that outputs
# probabilities or log-probabilities has none: its "logits" are log p, whose max is log(msp)
# and whose logsumexp is 0 for every image, so both scores would be noise dressed as numbers.
LOGIT_ONLY = ("max_logit", "energy")


def unavailable_scores(output: str) -> dict[str, dict]:
    """The score records marked "not available" for a model whose output kind is ``output``."""
    if output == "logits":
        return {}
    reason = (f"not available: the model outputs {output}, not logits; max-logit and energy are "
              "defined on unnormalised logits only (for such a model they are functions of "
              "max-softmax or constant)")
    return {k: {"auroc": None, "fpr95": None, "aupr_in": None, "aupr_out": None, "available": False,
                "reason": reason} for k in LOGIT_ONLY}


def ood_record(name: str, description: str, images: np.ndarray, in_logits: np.ndarray,
               out_logits: np.ndarray, output: str = "logits") -> OODRecord:
    s_in, s_out = ood_scores(in_logits), ood_scores(out_logits)
    missing = unavailable_scores(output)
    msp_out = s_out["msp"]
    preds = out_logits.argmax(axis=1)
    return OODRecord(
        name=name,
        n=int(len(out_logits)),
        scores={k: missing.get(k) or ood_detection_metrics(s_in[k], s_out[k]) for k in OOD_SCORES},
        mean_confidence=float(msp_out.mean()),
        frac_confidence_over_0_9=float((msp_out > 0.9).mean()),
        frac_confidence_over_0_99=float((msp_out > 0.99).mean()),
        predicted_histogram=np.bincount(preds, minlength=10).tolist(),
        sha256=set_sha256(images, np.full(len(images), -1, np.int64)),
        description=description,
        convention=CONVENTION,
        msp_histogram={"edges": HIST_EDGES.tolist(),
                       "in": np.histogram(s_in["msp"], HIST_EDGES)[0].tolist(),
                       "out": np.histogram(msp_out, HIST_EDGES)[0].tolist()},
        gallery={"samples_png": png_b64(np.concatenate(list(images[:10]), axis=1))},
    )


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
