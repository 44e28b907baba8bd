"""Stroke shifts: the same digit written with a finer or a broader pen.

Pen width is grey-level morphology with a soft disc: dilation (max over the disc) widens a
white stroke, erosion (min over the disc) narrows it. The disc's rim pixels get fractional
weights, so a radius of 1.3 px is a real 1.3 px and levels can grow in sub-pixel steps, which
matters on 28 px digits whose strokes are only 2–4 px wide.
"""

from __future__ import annotations

import math

import torch

from ._ops import max3x3
from .registry import register


def _pen_radii(x: torch.Tensor, g: torch.Generator, radius: float, jitter: float) -> torch.Tensor:
    """N×1×1×1 radii uniform in radius·[1 − jitter, 1 + jitter]: writers press differently."""
    u = torch.rand(x.shape[0], generator=g) * 2.0 - 1.0
    return (radius * (1.0 + jitter * u)).clamp_min(0.0).view(-1, 1, 1, 1).to(x.device)


def _rings(reach: int) -> dict[float, list[tuple[int, int]]]:
    """Offsets within ``reach`` (Chebyshev) grouped by distance from the centre, nearest first."""
    rings: dict[float, list[tuple[int, int]]] = {}
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            if dy or dx:
                rings.setdefault(math.hypot(dy, dx), []).append((dy, dx))
    return dict(sorted(rings.items()))


def _flat_canvas(levels: torch.Tensor, reach: int) -> tuple[torch.Tensor, int, int]:
    """The batch as one flat buffer in which every shift by (dy, dx), |dy|, |dx| ≤ reach, is
    a single contiguous slice: each image row is followed by ``reach`` zeros and each image
    by ``reach`` zero rows, so a shift past an edge reads zeros, never a neighbour's ink.
    Returns (buffer, row length, offset of the first image's first pixel)."""
    n, _, h, w = levels.shape
    row, rows = w + reach, h + reach
    canvas = levels.new_zeros(n + 2, rows, row)  # one spare image of zeros before and after
    canvas[1 : n + 1, :h, :w] = levels[:, 0]
    return canvas.view(-1), row, rows * row


def _levels(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0.0, 1.0).mul_(255.0).round_().to(torch.int16)


def _dilate_levels(levels: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """Soft-disc dilation of N×1×H×W 8-bit levels (int16) by per-image radii (N×1×1×1).

    Images are grouped by how far their disc reaches (a handful of groups at most): a batch
    where a few digits need a 3 px disc then does not run every digit through 36 offsets.
    """
    reach = torch.floor(radii.reshape(-1) + 0.5)
    groups = torch.unique(reach)
    if len(groups) == 1:
        return _dilate_group(levels, radii)
    out = torch.empty_like(levels)
    for r in groups:
        idx = torch.nonzero(reach == r).squeeze(1)
        out[idx] = _dilate_group(levels[idx], radii[idx])
    return out


def _dilate_group(levels: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    n, _, h, w = levels.shape
    r_max, r_min = float(radii.max()), float(radii.min())
    reach = int(math.floor(r_max + 0.5))
    if reach == 0:
        return levels.clone()
    flat, row, start = _flat_canvas(levels, reach)
    size = n * (h + reach) * row
    out = flat[start : start + size].clone()  # the centre offset always has weight 1
    ring = torch.empty_like(out)
    radii = radii.reshape(n, 1)

    def shifted(dy: int, dx: int) -> torch.Tensor:
        at = start + dy * row + dx
        return flat[at : at + size]

    for dist, offsets in _rings(reach).items():
        if dist >= r_max + 0.5:
            break
        if dist <= r_min - 0.5:  # full weight for every image
            for dy, dx in offsets:
                torch.maximum(out, shifted(dy, dx), out=out)
            continue
        ring.copy_(shifted(*offsets[0]))
        for dy, dx in offsets[1:]:
            torch.maximum(ring, shifted(dy, dx), out=ring)
        weight = torch.round((radii + 0.5 - dist).clamp(0.0, 1.0) * 128.0).to(torch.int16)
        ring.view(n, -1).mul_(weight).add_(64).bitwise_right_shift_(7)
        torch.maximum(out, ring, out=out)
    return out.view(n, h + reach, row)[:, :h, :w].unsqueeze(1)


def soft_dilate(x: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """Grey dilation of each image by a disc of its own radius (N×1×1×1, in pixels).

    Offset q carries weight clamp(r + ½ − |q|, 0, 1), the disc's coverage of that pixel, and
    the output is max_q w(q)·x(p + q). Offsets at one distance share a weight, so each ring
    is a plain running max of shifted copies, scaled once; rings every image covers fully
    skip the scaling. Shifts are contiguous slices of one flat buffer (``_flat_canvas``), so
    each of the few dozen offsets is one long vectorised max over the batch.

    It runs on 8-bit levels (the precision every set is stored at) held in int16, several
    times faster than float32 on CPU: ring weights are 7-bit fixed point, so a scaled level
    is (level·round(128·w) + 64) >> 7, within two levels of the float computation.
    """
    return _dilate_levels(_levels(x), radii).to(x.dtype).div_(255.0)


def soft_erode(x: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """Grey erosion by the same soft discs: erosion of the ink is dilation of the paper."""
    return (255 - _dilate_levels(255 - _levels(x), radii)).to(x.dtype).div_(255.0)


@register(family="stroke",
          description="broad pen or ink bleed: strokes widened, loops start to fill")
def thick_stroke(x: torch.Tensor, g: torch.Generator, *, radius: float,
                 jitter: float = 0.0) -> torch.Tensor:
    return soft_dilate(x, _pen_radii(x, g, radius, jitter))


def mean_stroke_width(x: torch.Tensor) -> torch.Tensor:
    """N×1×1×1 mean pen width of each image in pixels: twice the ink over the outline length.

    A stroke of width w and length l has ink w·l and an outline of about 2·l, and the total
    gradient magnitude of an anti-aliased image is its outline length. MNIST's median is
    about 2.5 px (1.8 px for the finest 1%, 4.4 px for the broadest 1%).
    """
    # Central differences, |gx| + |gy| averaged over edge directions is 4/π times |∇x|.
    gy = (x[..., 2:, :] - x[..., :-2, :]).abs_().sum(dim=(1, 2, 3), keepdim=True)
    gx = (x[..., :, 2:] - x[..., :, :-2]).abs_().sum(dim=(1, 2, 3), keepdim=True)
    outline = (gy + gx) * (math.pi / 8.0)
    return 2.0 * x.sum(dim=(1, 2, 3), keepdim=True) / outline.clamp_min(1e-6)


# A soft disc of radius r erodes about r − ½ px from each side of a stroke. The finest pen
# (thinning 1) leaves a tenth of the digit's mean pen width, the anti-aliased hairline.
_KEEP = 0.1
# Re-inking gain cap: specks the erosion nearly removed stay faint instead of becoming dots.
_MAX_GAIN = 3.0


@register(family="stroke",
          description="fine pen: strokes narrowed towards a hairline, the whole path still drawn")
def thin_stroke(x: torch.Tensor, g: torch.Generator, *, thinning: float,
                jitter: float = 0.0) -> torch.Tensor:
    # thinning is the share of each digit's own pen width (down to the hairline) that the
    # finer pen loses. One absolute radius for all would erase a digit already written
    # finely (a 2 px stroke has nothing left after a 1.5 px erosion) and barely touch a
    # broad one.
    share = _pen_radii(x, g, thinning, jitter).clamp_max(1.0)
    radii = 0.5 + share * (1.0 - _KEEP) * mean_stroke_width(x) / 2.0
    # On a 28 px grid erosion also dims what it narrows (a 1 px line is grey once
    # anti-aliased): that reads as faint pencil, but a fine-liner lays ink as dense as a
    # broad nib. So the ink is re-inked: each pixel is scaled by how much its neighbourhood's
    # peak lost, which restores the density of a narrowed stroke and keeps the shape of its
    # anti-aliased flanks.
    eroded = soft_erode(x, radii)
    # In place: four full-batch temporaries fewer (the same arithmetic, byte-identical sets).
    gain = max3x3(x).div_(max3x3(eroded).clamp_min_(1e-3)).clamp_max_(_MAX_GAIN)
    return eroded.mul_(gain)
