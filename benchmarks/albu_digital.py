"""albumentations 2.0.8 transforms of roughly the same strength as our digital shifts.

``EQUIVALENTS[name](severity)`` builds a p=1 transform for one uint8 28×28 image (see
albu_photometric.py). canny_edges has no albumentations counterpart.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

import albumentations as A
import cv2

from robustmnist.shifts.suite import load_suite

PARTS = Path(__file__).resolve().parents[1] / "shifts" / "parts" / "digital.toml"
SIDE = 28


@cache
def _suite():
    return load_suite(str(PARTS))


def level(name: str, severity: int) -> dict:
    return _suite().params(name, severity)


def jpeg(severity: int) -> A.Compose:
    p = level("jpeg", severity)
    q = p["quality"]
    # Our later levels re-save the image several times (on a moved grid, which albumentations
    # cannot do); the same number of saves keeps the timing comparison fair.
    saves = [A.ImageCompression(compression_type="jpeg", quality_range=(q, q), p=1.0)
             for _ in range(p.get("generations", 1))]
    return A.Compose(saves)


def pixelate(severity: int) -> A.BasicTransform:
    scale = 1.0 / level("pixelate", severity)["block"]
    return A.Downscale(scale_range=(scale, scale),
                       interpolation_pair={"downscale": cv2.INTER_AREA,
                                           "upscale": cv2.INTER_NEAREST}, p=1.0)


def downsample(severity: int) -> A.BasicTransform:
    scale = level("downsample", severity)["size"] / SIDE
    return A.Downscale(scale_range=(scale, scale),
                       interpolation_pair={"downscale": cv2.INTER_AREA,
                                           "upscale": cv2.INTER_LINEAR}, p=1.0)


def binarize(severity: int) -> A.BasicTransform:
    del severity  # one bit per pixel is a threshold at 128; albumentations has no noisy variant
    return A.Posterize(num_bits=1, p=1.0)


EQUIVALENTS: dict[str, Callable[[int], A.BasicTransform | A.Compose]] = {
    "jpeg": jpeg,
    "pixelate": pixelate,
    "downsample": downsample,
    "binarize": binarize,
}
