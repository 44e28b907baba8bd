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

from ..errors import UserError
from ..shifts.sets import derive_seed
from .datasets import DigitSet, load_cifar10_gray, load_fashion, load_image_folder, to_uint8

SYNTHETIC_N = 10_000


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

