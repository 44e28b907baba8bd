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

Run ``python benchmarks/albu_border.py [n]`` to time both sides on n MNIST test digits (all
five severities) and write benchmarks/results/albu_border.json.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import albumentations as A
import cv2

ROOT = Path(__file__).resolve().parents[1]
LADDER = ROOT / "shifts" / "parts" / "border.toml"
FAMILY = "border"
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


def main(n: int = 10_000) -> dict:
    import numpy as np
    import torch

    from robustmnist.data import load_mnist
    from robustmnist.shifts import get_shift
    from robustmnist.shifts.sets import make_set

    ds = load_mnist("test")
    images, labels = ds.images[:n], ds.labels[:n]
    out: dict = {"n": n, "torch_threads": torch.get_num_threads(), "shifts": {}}
    for name, factory in EQUIVALENTS.items():
        rows = []
        for severity in range(1, 6):
            t0 = time.perf_counter()
            make_set(get_shift(name), severity, _params(name, severity), images, labels, n, 0)
            ours = time.perf_counter() - t0
            transform = factory(severity)
            t0 = time.perf_counter()
            for img in images:
                transform(image=np.ascontiguousarray(img[..., None]))
            theirs = time.perf_counter() - t0
            rows.append({"severity": severity, "robustmnist_s": round(ours, 3),
                         "albumentations_s": round(theirs, 3)})
            print(f"{name:18s} s{severity}  ours {ours:6.3f} s   albumentations {theirs:6.3f} s")
        out["shifts"][name] = rows
    dest = ROOT / "benchmarks" / "results" / f"albu_{FAMILY}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
