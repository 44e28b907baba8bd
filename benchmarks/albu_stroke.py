"""albumentations 2.0.8 transforms of roughly the same strength as our stroke shifts.

``EQUIVALENTS[name](severity)`` builds a p=1 transform for one uint8 28×28 image (see
albu_photometric.py). Morphological uses a flat elliptical kernel of odd integer size, so our
sub-pixel radius r maps to the nearest 2·round(r) + 1; thin_stroke's radius depends on each
digit's pen width, so the MNIST median (2.5 px) stands in for it.

thin_stroke is an erosion *and* a re-inking (each pixel scaled by how much its 3×3
neighbourhood's peak lost, capped at 3×, so a narrowed stroke keeps its density).
albumentations has no re-inking, so its counterpart is what a user of albumentations would
write: Morphological's kernel and cv2 inside one ImageOnlyTransform, image by image.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

import albumentations as A
import cv2
import numpy as np

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


class ErodeAndReink(A.ImageOnlyTransform):
    """cv2 erosion by an elliptical kernel, then thin_stroke's re-inking, on one uint8 image."""

    def __init__(self, k: int, max_gain: float = 3.0, p: float = 1.0):
        super().__init__(p=p)
        self.kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        self.box = np.ones((3, 3), np.uint8)
        self.max_gain = max_gain

    def apply(self, img: np.ndarray, **params) -> np.ndarray:
        eroded = cv2.erode(img, self.kernel)
        peak = cv2.dilate(img, self.box).astype(np.float32)
        kept = np.maximum(cv2.dilate(eroded, self.box).astype(np.float32), 0.255)
        out = eroded * np.minimum(peak / kept, self.max_gain) + 0.5
        return np.clip(out, 0, 255).astype(np.uint8).reshape(img.shape)


def thin_stroke(severity: int) -> A.BasicTransform:
    share = _suite().params("thin_stroke", severity)["thinning"]
    k = _kernel_size(0.5 + share * 0.9 * MEDIAN_PEN_WIDTH / 2)  # as stroke.thin_stroke
    return ErodeAndReink(k)


EQUIVALENTS: dict[str, Callable[[int], A.BasicTransform]] = {
    "thick_stroke": thick_stroke,
    "thin_stroke": thin_stroke,
}
