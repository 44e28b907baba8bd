"""albumentations 2.0.8 counterparts of the border shifts, for speed comparisons.

``EQUIVALENTS[name](severity)`` returns a transform (p=1) for one uint8 28×28(×1) image, of
roughly the strength of our severity level, read from the same ladder
(shifts/parts/border.toml). Only three have a counterpart:

- scan_border: CropAndPad padding one edge with white and resizing back (a straight bar; ours
  is tilted, 1-2 edges, and does not squash the digit);
- crop_shift: CropAndPad cropping one side and padding the other, i.e. a whole-pixel move
  that loses part of the digit (ours measures the cut on each digit's ink box and re-centres);
- shadow: RandomShadow (a hard-edged polygon; ours is a soft cast shadow or a linear ramp) on
  the inverted image, since a shadow on the page is a *brighter* background in MNIST's
  white-on-black: RandomShadow multiplies, which on a black background would only dim the ink.

box_lines and neighbor_fragment have no albumentations counterpart.

Timed side by side with our shifts by ``benchmarks/shifts.py`` (all families, one run).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import albumentations as A
import cv2

ROOT = Path(__file__).resolve().parents[1]
LADDER = ROOT / "shifts" / "parts" / "border.toml"
DIGIT_BOX = 20  # MNIST digits fill a 20-px box, 4 px from each border


def _params(name: str, severity: int) -> dict:
    from robustmnist.shifts.suite import load_suite

    return load_suite(str(LADDER)).params(name, severity)


def scan_border(severity: int) -> A.BasicTransform:
    w = max(1, round(_params("scan_border", severity)["width"]))
    # px = (top, right, bottom, left); positive pads. One bar on the left edge.
    return A.CropAndPad(px=(0, 0, 0, w), keep_size=True, border_mode=cv2.BORDER_CONSTANT,
                        fill=255, sample_independently=False, p=1.0)


def crop_shift(severity: int) -> A.BasicTransform:
    cut = _params("crop_shift", severity)["cut"]
    k = round((28 - DIGIT_BOX) / 2 + cut * DIGIT_BOX)  # move that cuts `cut` of a 20-px digit
    return A.CropAndPad(px=(0, k, 0, -k), keep_size=False, border_mode=cv2.BORDER_CONSTANT,
                        fill=0, sample_independently=False, p=1.0)


def shadow(severity: int) -> A.Compose:
    lift = _params("shadow", severity)["lift"]
    return A.Compose([
        A.InvertImg(p=1.0),
        A.RandomShadow(shadow_roi=(0.0, 0.0, 1.0, 1.0), num_shadows_limit=(1, 1),
                       shadow_dimension=5, shadow_intensity_range=(lift, lift), p=1.0),
        A.InvertImg(p=1.0),
    ])


EQUIVALENTS: dict[str, Callable[[int], A.BasicTransform | A.Compose]] = {
    "scan_border": scan_border,
    "crop_shift": crop_shift,
    "shadow": shadow,
}
