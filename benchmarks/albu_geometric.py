"""albumentations 2.0.8 counterparts of the geometric shifts, for speed comparisons.

``EQUIVALENTS[name](severity)`` returns a transform (p=1) for one uint8 28×28(×1) image, of
roughly the strength of our severity level, read from the same ladder
(shifts/parts/geometric.toml) so the two stay matched when a level is retuned. All five have a
real counterpart: Affine (rotate, shear, scale, translate; bilinear, zeros outside, like ours)
and ElasticTransform (Simard's uniform noise). Where albumentations cannot express our
per-image draw (a fixed angle with a random sign, a random direction at a fixed distance), the
factory keeps the magnitude and lets albumentations pick its own direction; the cost is the same.

Timed side by side with our shifts by ``benchmarks/shifts.py`` (all families, one run).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import albumentations as A
import cv2

ROOT = Path(__file__).resolve().parents[1]
LADDER = ROOT / "shifts" / "parts" / "geometric.toml"


def _params(name: str, severity: int) -> dict:
    from robustmnist.shifts.suite import load_suite

    return load_suite(str(LADDER)).params(name, severity)


def _affine(**kw) -> A.BasicTransform:
    return A.Affine(interpolation=cv2.INTER_LINEAR, border_mode=cv2.BORDER_CONSTANT, fill=0,
                    p=1.0, **kw)


def rotate(severity: int) -> A.BasicTransform:
    d = _params("rotate", severity)["degrees"]
    return _affine(rotate=(d, d))  # ours draws the sign per image


def shear(severity: int) -> A.BasicTransform:
    d = _params("shear", severity)["degrees"]
    return _affine(shear={"x": (d, d), "y": (0.0, 0.0)})


def scale(severity: int) -> A.BasicTransform:
    p = _params("scale", severity)
    f, j = p["factor"], p.get("jitter", 0.0)
    return _affine(scale=(f * (1 - j), f * (1 + j)), keep_ratio=True)


def translate(severity: int) -> A.BasicTransform:
    px = round(_params("translate", severity)["pixels"])
    # Independent x and y shifts in [-px, px]; ours puts the digit px away in any direction.
    return _affine(translate_px={"x": (-px, px), "y": (-px, px)})


def elastic(severity: int) -> A.BasicTransform:
    p = _params("elastic", severity)
    return A.ElasticTransform(alpha=p["alpha"], sigma=p["sigma"], noise_distribution="uniform",
                              interpolation=cv2.INTER_LINEAR, border_mode=cv2.BORDER_CONSTANT,
                              fill=0, p=1.0)


EQUIVALENTS: dict[str, Callable[[int], A.BasicTransform]] = {
    "rotate": rotate,
    "shear": shear,
    "scale": scale,
    "translate": translate,
    "elastic": elastic,
}
