"""Photometric shifts: the same strokes seen through a different exposure or tone curve.

Nothing moves; only the grey levels change. MNIST is white ink (1.0) on black paper (0.0), so
"brighter" lifts the paper, "less contrast" pulls ink and paper towards each other, and a
photographed dark-on-light page arrives inverted.

Two of these are MNIST-C corruptions (google-research/mnist-c, corruptions.py): brightness and
fog. Their parameters can express MNIST-C's fixed setting exactly
(shifts/parts/mnistc-photometric.toml); our 5-level ladders live in shifts/parts/photometric.toml.
"""

from __future__ import annotations

import torch

from .registry import register

# ---------------------------------------------------------------------------------------------
# helpers


def _per_image_factor(x: torch.Tensor, g: torch.Generator, jitter: float) -> torch.Tensor:
    """N×1×1×1 factors uniform in [1 − jitter, 1 + jitter]: one exposure per photograph."""
    u = torch.rand(x.shape[0], generator=g) * 2.0 - 1.0
    return (1.0 + jitter * u).view(-1, 1, 1, 1).to(x.device)


def _image_max(x: torch.Tensor) -> torch.Tensor:
    return x.amax(dim=(1, 2, 3), keepdim=True)


def _subdivide(corners: torch.Tensor, wibble: float,
               g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One diamond-square level on N×k×k corner grids (wrapping around, as MNIST-C's rolls do):
    returns the square centres, the top-edge midpoints and the left-edge midpoints."""

    def wibbled_mean(total: torch.Tensor) -> torch.Tensor:
        u = torch.rand(total.shape, generator=g).mul_(2.0).sub_(1.0)
        return u.mul_(wibble * wibble).add_(total, alpha=0.25)

    right = corners.roll(-1, dims=2)
    centres = wibbled_mean(corners + right + (corners + right).roll(-1, dims=1))
    top = wibbled_mean(centres + centres.roll(1, dims=1) + corners + right)
    left = wibbled_mean(centres + centres.roll(1, dims=2) + corners + corners.roll(-1, dims=1))
    return centres, top, left


def _interleave(corners, top, left, centres) -> torch.Tensor:
    n, k, _ = corners.shape
    even_rows = torch.stack((corners, top), dim=-1).view(n, k, 2 * k)
    odd_rows = torch.stack((left, centres), dim=-1).view(n, k, 2 * k)
    return torch.stack((even_rows, odd_rows), dim=2).view(n, 2 * k, 2 * k)


def plasma_fractal(n: int, mapsize: int, decay: float, g: torch.Generator,
                   crop: int | None = None) -> torch.Tensor:
    """N diamond-square height maps normalised to [0, 1], all built at once; returns their
    top-left crop×crop corner (the whole map when crop is None).

    A batched port of MNIST-C's ``plasma_fractal`` (itself ImageNet-C's), quirk included: the
    random displacement is ``wibble * U(-wibble, wibble)``, i.e. it scales with wibble², so
    each finer level is damped by decay² and the maps are smoother than ``decay`` suggests.
    Keeping the quirk is what makes (strength 3.0, decay 1.4) look like MNIST-C's fog.

    The map grows as four dense grids (corners, edge midpoints, square centres) interleaved
    after each level: the same values as MNIST-C's strided updates of one wrapped array. The
    last level, three quarters of all points, only feeds the min/max used to normalise, so
    only the crop of it is interleaved.
    """
    if mapsize < 2 or mapsize & (mapsize - 1):
        raise ValueError(f"plasma mapsize must be a power of two, got {mapsize}")
    size = mapsize if crop is None else min(crop, mapsize)
    corners = torch.zeros(n, 1, 1)
    wibble = 100.0
    while True:
        centres, top, left = _subdivide(corners, wibble, g)
        wibble /= decay
        if 2 * corners.shape[-1] == mapsize:
            break
        corners = _interleave(corners, top, left, centres)
    grids = (corners, top, left, centres)
    lo = torch.stack([t.amin(dim=(1, 2)) for t in grids]).amin(dim=0).view(n, 1, 1)
    hi = torch.stack([t.amax(dim=(1, 2)) for t in grids]).amax(dim=0).view(n, 1, 1)
    half = (size + 1) // 2
    out = _interleave(*(t[:, :half, :half] for t in grids))[:, :size, :size]
    return (out - lo) / (hi - lo).clamp_min(1e-12)


# Big maps (MNIST-C draws 256×256 for a 28×28 crop) are built a slice of the batch at a time so
# memory stays near 16 MiB whatever the batch size.
_PLASMA_FLOATS_PER_SLICE = 1 << 22


def _plasma_crops(n: int, h: int, w: int, mapsize: int, decay: float,
                  g: torch.Generator) -> torch.Tensor:
    per_slice = max(1, _PLASMA_FLOATS_PER_SLICE // (mapsize * mapsize))
    crop = max(h, w)
    crops = [plasma_fractal(min(per_slice, n - i), mapsize, decay, g, crop)[:, :h, :w]
             for i in range(0, n, per_slice)]
    return torch.cat(crops).unsqueeze(1)


# ---------------------------------------------------------------------------------------------
# shifts


@register(family="photometric",
          description="over-exposed scan: black paper lifted to grey, ink stays white")
def brightness(x: torch.Tensor, g: torch.Generator, *, lift: float,
               jitter: float = 0.0) -> torch.Tensor:
    # MNIST-C adds c to V in HSV; for a grey pixel V is the pixel itself and rgb2gray(hsv2rgb)
    # gives it back, so its brightness is exactly x + c clipped (jitter 0, lift 0.5).
    return x + lift * _per_image_factor(x, g, jitter)


@register(family="photometric",
          description="washed-out photo: ink and paper pulled towards the mean grey")
def contrast(x: torch.Tensor, g: torch.Generator, *, factor: float,
             jitter: float = 0.0) -> torch.Tensor:
    # ImageNet-C/MNIST-C convention: scale about each image's own mean, so the overall
    # brightness of the picture stays and only the ink/paper separation shrinks.
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return mean + (x - mean) * (factor * _per_image_factor(x, g, jitter))


@register(family="photometric", version=3,
          description="from faintly tinted paper to dark ink on white paper (a page never re-inverted)")
def invert(x: torch.Tensor, g: torch.Generator, *, paper: float, ink: float = 0.0,
           jitter: float = 0.0) -> torch.Tensor:
    # Version 2 grades the way to full inversion (paper 1, ink 0 at the top level): tinted
    # paper and greying ink first, the digit fading towards the paper's tone. The levels stop
    # short of paper = ink (a blank page, harder than any real inversion) and then jump to the
    # full inversion, so difficulty rises with every level; version 1 graded only the paper's
    # brightness of an already inverted page, and accuracy rose with severity.
    paper_tone = paper * _per_image_factor(x, g, jitter)
    return paper_tone + (ink - paper_tone) * x


@register(family="photometric",
          description="wrong tone curve: anti-aliased stroke edges darkened or brightened")
def gamma(x: torch.Tensor, g: torch.Generator, *, gamma: float,
          two_sided: bool = True) -> torch.Tensor:
    # Ink (1) and paper (0) are fixed points of any power curve: only the grey edge pixels of
    # a stroke move. gamma > 1 eats them (hard, thin strokes); 1/gamma bleeds them (bold).
    # two_sided: each image gets gamma or 1/gamma with even odds, like an unknown camera.
    exponent = torch.full((x.shape[0],), float(gamma))
    if two_sided:
        flip = torch.rand(x.shape[0], generator=g) < 0.5
        exponent = torch.where(flip, 1.0 / exponent, exponent)
    return x.clamp_min(0.0).pow(exponent.view(-1, 1, 1, 1).to(x.device))


@register(family="photometric",
          description="fog or haze: a patchy grey veil (plasma fractal) over the digit")
def fog(x: torch.Tensor, g: torch.Generator, *, strength: float, decay: float,
        mapsize: int = 32) -> torch.Tensor:
    # MNIST-C: add strength × plasma, then rescale by max/(max + strength) so the brightest ink
    # stays at most where it was; the veil both lifts the paper and flattens the contrast.
    # MNIST-C crops 28×28 from a 256×256 map; a 32×32 map puts the fog's patches at the scale
    # of the digit instead (mapsize 256 reproduces MNIST-C).
    n, _, h, w = x.shape
    haze = _plasma_crops(n, h, w, mapsize, decay, g).to(x.device)
    peak = _image_max(x)
    return (x + strength * haze) * (peak / (peak + strength))
