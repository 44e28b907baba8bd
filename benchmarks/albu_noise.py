"""albumentations 2.0.8 counterparts of the noise shifts, for speed comparisons.

``EQUIVALENTS[name](severity)`` returns a transform (p=1) for one uint8 28×28(×1) image, of
roughly the strength of our severity level, read from the same ladder
(shifts/parts/noise.toml) so the two stay matched when a level is retuned. All four have a
counterpart: GaussNoise, ShotNoise, SaltAndPepper and MultiplicativeNoise. The models differ
in details noted per factory (ShotNoise works in gamma-linear light and has no background
light; MultiplicativeNoise draws uniform, not Gaussian, factors and has no grain); the work
per pixel is comparable.

Timed side by side with our shifts by ``benchmarks/shifts.py`` (all families, one run).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import albumentations as A

ROOT = Path(__file__).resolve().parents[1]
LADDER = ROOT / "shifts" / "parts" / "noise.toml"


def _params(name: str, severity: int) -> dict:
    from robustmnist.shifts.suite import load_suite

    return load_suite(str(LADDER)).params(name, severity)


def gaussian_noise(severity: int) -> A.BasicTransform:
    s = _params("gaussian_noise", severity)["sigma"]
    return A.GaussNoise(std_range=(s, s), mean_range=(0.0, 0.0), p=1.0)  # std as fraction of 255


def shot_noise(severity: int) -> A.BasicTransform:
    scale = 1.0 / _params("shot_noise", severity)["photons"]  # its scale = 1 / photons per white
    return A.ShotNoise(scale_range=(scale, scale), p=1.0)


def impulse_noise(severity: int) -> A.BasicTransform:
    p = _params("impulse_noise", severity)
    a, svp = p["amount"], p.get("salt_vs_pepper", 0.5)
    return A.SaltAndPepper(amount=(a, a), salt_vs_pepper=(svp, svp), p=1.0)


def speckle_noise(severity: int) -> A.BasicTransform:
    s = _params("speckle_noise", severity)["sigma"]
    # A uniform factor with our std (half-width sqrt(3) sigma); albumentations forbids factors
    # below 0, so strong levels are clipped on that side.
    half = math.sqrt(3.0) * s
    return A.MultiplicativeNoise(multiplier=(max(0.0, 1.0 - half), 1.0 + half), elementwise=True,
                                 p=1.0)


EQUIVALENTS: dict[str, Callable[[int], A.BasicTransform]] = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "speckle_noise": speckle_noise,
}
