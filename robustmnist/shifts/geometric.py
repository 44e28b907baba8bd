"""Geometric shifts: the digit is written, cropped or captured at another pose than MNIST's.

Every shift here is one inverse map per image (output pixel -> source pixel, as MNIST-C's
``skimage.transform.warp(inverse_map=...)``) resampled for the whole batch by a single
``grid_sample``: bilinear (translate: whole pixels, copied exactly), zeros outside, affine
maps about the grid centre (13.5, 13.5). Those are MNIST-C's choices, so its fixed levels
(shifts/parts/mnistc-geometric.toml) come out of the same functions as our 5-level ladders.

Coordinates are (x, y) = (column, row) in pixel-index units.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from .registry import register

# Simard's U(-1, 1) noise has this standard deviation; elastic draws N(0, 1) scaled to match.
UNIFORM_STD = 1 / math.sqrt(3)


def random_sign(n: int, g: torch.Generator) -> torch.Tensor:
    """n draws of ±1.0 from g: MNIST-C picks each warp's direction this way."""
    return torch.randint(0, 2, (n,), generator=g).to(torch.get_default_dtype()) * 2 - 1


def _normalised_axes(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """grid_sample's (align_corners=False) coordinates of the pixel centres, shaped to
    broadcast into an N×H×W×2 grid: u 1×1×W×1, v 1×H×1×1."""
    u = (2 * torch.arange(w, dtype=torch.get_default_dtype()) + 1) / w - 1
    v = (2 * torch.arange(h, dtype=torch.get_default_dtype()) + 1) / h - 1
    return u.view(1, 1, w, 1), v.view(1, h, 1, 1)


def _sample(x: torch.Tensor, grid: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    return F.grid_sample(x, grid.to(device=x.device, dtype=x.dtype), mode=mode,
                         padding_mode="zeros", align_corners=False)


def warp_affine(
    x: torch.Tensor, m: torch.Tensor, offset: torch.Tensor | None = None, mode: str = "bilinear"
) -> torch.Tensor:
    """Resample each image through its own inverse affine map about the grid centre:
    src - c = m @ (out - c) - offset, with m N×2×2 and offset N×2 in pixels (so the content
    moves by +offset).

    The grid is built by broadcasting, each component written in place into the interleaved
    N×H×W×2 tensor: ``F.affine_grid``'s batched 3×2 matmul, or a ``torch.stack``, costs more
    than the sampling itself on CPU."""
    n, _, h, w = x.shape
    # Normalised coordinates scale x by 2/w and y by 2/h about the same centre, so only the
    # off-diagonal terms and the offset change.
    sx, sy = 2.0 / w, 2.0 / h
    off = torch.zeros(n, 2) if offset is None else offset
    rows = (
        (m[:, 0, 0], m[:, 0, 1] * sx / sy, -off[:, 0] * sx),
        (m[:, 1, 0] * sy / sx, m[:, 1, 1], -off[:, 1] * sy),
    )
    u, v = _normalised_axes(h, w)
    u, v = u.view(1, 1, w), v.view(1, h, 1)
    grid = torch.empty(n, h, w, 2)
    for k, (cu, cv, ct) in enumerate(rows):
        torch.addcmul(torch.addcmul(ct.view(n, 1, 1), cv.view(n, 1, 1), v), cu.view(n, 1, 1), u,
                      out=grid[..., k])
    return _sample(x, grid, mode)


def _linear(m00, m01, m10, m11) -> torch.Tensor:
    """N×2×2 from four N-vectors (or scalars broadcast against them)."""
    m00, m01, m10, m11 = torch.broadcast_tensors(*(torch.as_tensor(t) for t in (m00, m01, m10, m11)))
    return torch.stack([torch.stack([m00, m01], 1), torch.stack([m10, m11], 1)], 1)


@register(family="geometric", description="digit rotated by a fixed angle, either way")
def rotate(x: torch.Tensor, g: torch.Generator, *, degrees: float) -> torch.Tensor:
    a = math.radians(degrees) * random_sign(x.shape[0], g)
    return warp_affine(x, _linear(torch.cos(a), -torch.sin(a), torch.sin(a), torch.cos(a)))


@register(family="geometric", description="digit slanted sideways, either way")
def shear(
    x: torch.Tensor, g: torch.Generator, *, degrees: float, stretch: bool = False
) -> torch.Tensor:
    """Slant each digit's vertical axis by ``degrees``, either way, keeping rows horizontal.

    ``stretch`` reproduces skimage <= 0.19's ``AffineTransform(shear=s)``, which MNIST-C used:
    its inverse map turns the vertical axis but keeps it unit length, so the digit also grows
    by 1/cos(s) in height (8% at MNIST-C's 0.4 rad, 56% at 50 degrees)."""
    s = math.radians(degrees) * random_sign(x.shape[0], g)
    if stretch:
        return warp_affine(x, _linear(1.0, -torch.sin(s), 0.0, torch.cos(s)))
    return warp_affine(x, _linear(1.0, -torch.tan(s), 0.0, 1.0))


@register(family="geometric", description="digit written smaller than MNIST's 20 px box")
def scale(x: torch.Tensor, g: torch.Generator, *, factor: float, jitter: float = 0.0):
    """Resize each digit about the centre to ``factor`` times its size (MNIST-C: 0.7, as its
    inverse map 1/0.7), times 1 ± up to ``jitter`` per image, since people's digits vary in
    size and one fixed size would probe one point rather than a shift."""
    f = factor * (1 + jitter * (2 * torch.rand(x.shape[0], generator=g) - 1))
    return warp_affine(x, _linear(1 / f, 0.0, 0.0, 1 / f))


@register(family="geometric", description="digit off-centre by a few whole pixels")
def translate(
    x: torch.Tensor, g: torch.Generator, *, pixels: float, diagonal: bool = False
) -> torch.Tensor:
    """Move each digit ``pixels`` away from the centre in a random direction, rounded to whole
    pixels, so strokes stay exactly the source's pixels.
    ``diagonal`` moves ±pixels along both axes instead, as MNIST-C does (its "3 px" puts the
    digit 4.2 px from the centre)."""
    n = x.shape[0]
    if diagonal:
        return move_whole_pixels(x, pixels * random_sign(n, g), pixels * random_sign(n, g))
    a = 2 * math.pi * torch.rand(n, generator=g)
    return move_whole_pixels(x, pixels * torch.cos(a), pixels * torch.sin(a))


def move_whole_pixels(x: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Move image i by (dx[i], dy[i]) rounded to whole pixels, zeros coming in: an exact copy
    of the source pixels (nearest sampling at whole-pixel offsets), and on CPU about 2.5× as
    fast as a gather with a 64-bit index per pixel."""
    off = torch.stack([dx, dy], 1).to(torch.get_default_dtype()).cpu().round()
    return warp_affine(x, _linear(torch.ones(x.shape[0]), 0.0, 0.0, 1.0), off, mode="nearest")


def valid_blur_matrix(size: int, sigma: float, truncate: float = 3.0) -> torch.Tensor:
    """size × (size + 2r) K: K @ v blurs a noise line that extends r = ceil(truncate·sigma) px
    past both ends of the image and keeps the middle, as if the page's distortion went on
    beyond the crop. Unlike any edge rule (reflect, nearest), this keeps the field's variance
    the same everywhere; with reflection the corners move twice as far as the centre and smear
    strokes along the border."""
    r = int(math.ceil(truncate * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    mat = torch.zeros(size, size + 2 * r, dtype=torch.float64)
    for i in range(size):  # size rows, not images
        mat[i, i : i + 2 * r + 1] = k
    return mat


@functools.lru_cache(maxsize=32)
def smoothing_basis(size: int, sigma: float, energy: float = 1 - 1e-4) -> torch.Tensor:
    """B (size×r) such that B Z B^T, Z white r×r, is distributed as K N K^T, N white, with
    K = valid_blur_matrix(size, sigma): the Gaussian-smoothed noise field of Simard et al.

    Write K = U S V^T (V square, orthogonal). K N K^T = U S (V^T N V) S U^T and V^T N V is
    white noise again, so only the top singular directions matter; B = U[:, :r] S[:r] keeps
    all but 1 - energy of the variance. At sigma 4 that is r = 8 of 28: 64 random numbers per
    field component instead of 28² (52² with the margin)."""
    u_mat, svals, _ = torch.linalg.svd(valid_blur_matrix(size, sigma))
    kept = (svals**2).cumsum(0) / (svals**2).sum()
    r = int((kept < energy).sum()) + 1
    return (u_mat[:, :r] * svals[:r]).to(torch.get_default_dtype())


@register(family="geometric", description="wobbly strokes: smooth random local warp")
def elastic(x: torch.Tensor, g: torch.Generator, *, alpha: float, sigma: float) -> torch.Tensor:
    """Simard, Steinkraus & Platt (2003): per-pixel random displacements, Gaussian-smoothed with
    ``sigma`` px and scaled by ``alpha`` (they augment MNIST with sigma 4, alpha 34: about
    1.4 px RMS along each axis). Smaller sigma wiggles the strokes; larger sigma bends the whole digit.

    The per-pixel noise is Gaussian with U(-1, 1)'s variance rather than uniform: after
    smoothing over dozens of pixels both give the same Gaussian field, and Gaussian noise lets
    ``smoothing_basis`` draw the smoothed field directly from a few dozen numbers."""
    n, _, h, w = x.shape
    bh, bw = smoothing_basis(h, float(sigma)), smoothing_basis(w, float(sigma))
    z = torch.randn((n, bh.shape[1], bw.shape[1], 2), generator=g) * UNIFORM_STD
    bh, bw = bh.to(z), bw.to(z)  # cached in the dtype of their first call
    disp = torch.einsum("ia,nabc,lb->nilc", bh, z, bw)  # (dx, dy) px, output -> source
    u, v = _normalised_axes(h, w)
    base = torch.cat(torch.broadcast_tensors(u, v), dim=-1)
    return _sample(x, torch.addcmul(base, disp, torch.tensor([2.0 / w, 2.0 / h]) * alpha))
