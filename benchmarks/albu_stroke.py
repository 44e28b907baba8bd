"""albumentations 2.0.8 transforms of roughly the same strength as our stroke shifts.

``EQUIVALENTS[name](severity)`` builds a p=1 transform for one uint8 28×28 image (see
albu_photometric.py). Morphological uses a flat elliptical kernel of odd integer size, so our
sub-pixel radius r maps to the nearest 2·round(r) + 1; thin_stroke's radius depends on each
digit's pen width, so the MNIST median (2.5 px) stands in for it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

import albumentations as A

from robustmnist.shifts.suite import load_suite

PARTS = Path(__file__).resolve().parents[1] / "shifts" / "parts" / "stroke.toml"


@cache
def _suite():
    return load_suite(str(PARTS))


MEDIAN_PEN_WIDTH = 2.5


def _kernel_size(radius: float) -> int:
    return 2 * max(1, round(radius)) + 1


def thick_stroke(severity: int) -> A.BasicTransform:
    k = _kernel_size(_suite().params("thick_stroke", severity)["radius"])
    return A.Morphological(scale=(k, k), operation="dilation", p=1.0)


def thin_stroke(severity: int) -> A.BasicTransform:
    share = _suite().params("thin_stroke", severity)["thinning"]
    k = _kernel_size(0.5 + share * 0.9 * MEDIAN_PEN_WIDTH / 2)  # as stroke.thin_stroke
    return A.Morphological(scale=(k, k), operation="erosion", p=1.0)


EQUIVALENTS: dict[str, Callable[[int], A.BasicTransform]] = {
    "thick_stroke": thick_stroke,
    "thin_stroke": thin_stroke,
}
