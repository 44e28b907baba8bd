"""Batched drawing primitives: distance fields over the pixel grid, one shape per image.

Every shape is drawn for a whole batch at once: its parameters are tensors with a leading
batch dimension N (one shape per image, or N×K for K shapes per image), and each function
returns an N×H×W field. Shapes become ink through ``stroke_from_distance`` (lines, rings)
or ``fill_from_sdf`` (filled regions), which anti-alias with a linear ramp about one pixel
wide, the way a 20×20 box-filtered NIST stroke looks after MNIST's downsampling.

Coordinates are (x, y) = (column, row) in pixel-index units: pixel (r, c) has its centre at
(c, r), so a point at (13.5, 13.5) is the geometric centre of a 28×28 image.

Segment loops below run over shapes (a handful), never over images.
"""

from __future__ import annotations

import functools
import math

import torch


def pixel_grid(h: int, w: int, device: torch.device | str | None = None):
    """(xs 1×1×W, ys 1×H×1) pixel-centre coordinates, ready to broadcast against N×1×1."""
    xs = torch.arange(w, dtype=torch.get_default_dtype(), device=device).view(1, 1, w)
    ys = torch.arange(h, dtype=torch.get_default_dtype(), device=device).view(1, h, 1)
    return xs, ys


def _per_image(v: torch.Tensor | float, device=None) -> torch.Tensor:
    """A scalar or an N-vector as something that broadcasts against N×H×W."""
    t = torch.as_tensor(v, dtype=torch.get_default_dtype(), device=device)
    return t.view(-1, 1, 1) if t.ndim else t


def _as_batches(p: torch.Tensor) -> torch.Tensor:
    """N×2 (one shape per image) or N×K×2 (K per image) -> N×K×2."""
    return p.unsqueeze(1) if p.ndim == 2 else p


def segment_field(p0: torch.Tensor, p1: torch.Tensor, h: int, w: int):
    """Distance from every pixel to the segment p0–p1 of its image, and how far along it.

    p0, p1: N×2 (x, y). Returns (dist N×H×W, along N×H×W) where ``along`` is the arc length
    from p0 to the closest point of the segment (for dashes, or ink that fades along a line).
    """
    xs, ys = pixel_grid(h, w, p0.device)
    delta = p1 - p0
    length = torch.linalg.vector_norm(delta, dim=1).clamp_min(1e-6)  # a point if degenerate
    ux, uy = (delta[:, 0] / length).view(-1, 1, 1), (delta[:, 1] / length).view(-1, 1, 1)
    ex, ey = xs - p0[:, 0].view(-1, 1, 1), ys - p0[:, 1].view(-1, 1, 1)
    # Project in the segment's own frame: both coordinates are sums of a row term and a column
    # term, so only the final additions touch the full N×H×W grid.
    along = ex * ux + ey * uy
    across = ey * ux - ex * uy
    along_on = torch.minimum(along.clamp_min(0.0), length.view(-1, 1, 1))
    return torch.hypot(across, along - along_on), along_on


def segments_distance(p0: torch.Tensor, p1: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """N×H×W distance to the nearest of each image's segments; p0, p1 are N×2 or N×K×2."""
    p0, p1 = _as_batches(p0), _as_batches(p1)
    dist = None
    for k in range(p0.shape[1]):
        d, _ = segment_field(p0[:, k], p1[:, k], h, w)
        dist = d if dist is None else torch.minimum(dist, d)
    return dist


def polyline_field(points: torch.Tensor, h: int, w: int):
    """Distance to each image's polyline (N×V×2 vertices) and arc length at the closest point.

    Returns (dist N×H×W, along N×H×W); ``along`` is measured from the first vertex, so a dash
    pattern on it runs continuously around corners.
    """
    dist = along = None
    start = torch.zeros(points.shape[0], 1, 1, device=points.device)
    for k in range(points.shape[1] - 1):
        a, b = points[:, k], points[:, k + 1]
        d, t = segment_field(a, b, h, w)
        t = t + start
        if dist is None:
            dist, along = d, t
        else:
            closer = d < dist
            dist = torch.where(closer, d, dist)
            along = torch.where(closer, t, along)
        start = start + torch.linalg.vector_norm(b - a, dim=1).view(-1, 1, 1)
    return dist, along


def polyline_distance(points: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """N×H×W distance to each image's polyline (N×V×2 vertices)."""
    return segments_distance(points[:, :-1], points[:, 1:], h, w)


def points_distance(centres: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """N×K×H×W distance from every pixel to each of K points per image (N×K×2 or N×2)."""
    c = _as_batches(centres)
    xs, ys = pixel_grid(h, w, c.device)
    ex = xs.unsqueeze(1) - c[..., 0, None, None]
    ey = ys.unsqueeze(1) - c[..., 1, None, None]
    return torch.sqrt(ex * ex + ey * ey)


def discs_sdf(centres: torch.Tensor, radii: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """N×K×H×W signed distance to K discs per image (negative inside); radii N×K or N."""
    r = radii if radii.ndim == 2 else radii.unsqueeze(1)
    return points_distance(centres, h, w) - r[..., None, None]


def circle_distance(centres: torch.Tensor, radii: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """N×K×H×W unsigned distance to K circles per image: stroke it to draw rings."""
    return discs_sdf(centres, radii, h, w).abs()


def union(sdf: torch.Tensor) -> torch.Tensor:
    """Hard union of N×K×H×W signed distances -> N×H×W."""
    return sdf.amin(dim=1)


def smooth_union(sdf: torch.Tensor, k: float) -> torch.Tensor:
    """Union of N×K×H×W signed distances that melts shapes within ~k px of each other.

    A log-sum-exp soft minimum: where two discs nearly touch it bridges them with a neck, as
    liquid ink does, instead of the pinched figure-eight a hard union leaves.
    """
    if k <= 0:
        return union(sdf)
    return -k * torch.logsumexp(-sdf / k, dim=1)


def fill_from_sdf(sdf: torch.Tensor, softness: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Coverage in [0, 1] of a filled shape: 1 well inside, 0 outside, a ramp ``softness`` px
    wide centred on the boundary (softness may be a scalar or per image, N)."""
    s = _per_image(softness, sdf.device).clamp_min(1e-3)
    return (0.5 - sdf / s).clamp(0.0, 1.0)


def stroke_from_distance(
    d: torch.Tensor, width: torch.Tensor | float, softness: torch.Tensor | float = 1.0
) -> torch.Tensor:
    """Coverage in [0, 1] of a pen of ``width`` px (scalar or per image, N) along a distance
    field: the overlap of the pen's cross-section with a ``softness``-wide pixel footprint.

    Every cross-section holds ``width`` px of ink, so a pen thinner than a pixel fades instead
    of vanishing or bloating to a full pixel, as an area-sampled renderer would draw it.
    """
    half = _per_image(width, d.device) / 2
    s = _per_image(softness, d.device).clamp_min(1e-3)
    hi = torch.minimum(d + s / 2, half)
    lo = torch.maximum(d - s / 2, -half)
    return (hi - lo).clamp_min(0.0) / s


def column_band(centre: torch.Tensor, reach: float) -> torch.Tensor:
    """N×B×W row indices within ``reach`` px above and below a curve given by its row at every
    column (centre: N×W, float).

    A thin, roughly horizontal mark only inks rows near its curve, so computing its field on
    this band instead of the full grid saves most of the work; ``splat_rows`` puts it back.
    Rows may fall outside the image; ``splat_rows`` drops them.
    """
    # Rows y - reach <= r <= y + reach lie within floor(y) - floor(reach) .. floor(y) +
    # floor(reach) + 1, whatever the fractional part of y.
    half = math.floor(reach)
    offsets = torch.arange(-half, half + 2, device=centre.device).view(1, -1, 1)
    return centre.floor().long().unsqueeze(1) + offsets


def splat_rows(canvas: torch.Tensor, rows: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Max-combine N×B×W non-negative ``values`` into canvas N×H×W (in place) at ``rows``."""
    h = canvas.shape[1]
    inside = (rows >= 0) & (rows < h)
    return canvas.scatter_reduce_(1, rows.clamp(0, h - 1), values * inside, reduce="amax")


def log_falloff(d: torch.Tensor, radius: float = 2.3) -> torch.Tensor:
    """MNIST-C's line profile ``log(1 - d/radius) + 1`` clipped to [0, 1] (corruptions.py,
    ``line_from_points``): 1 on the line, 0.43 at 1 px, zero beyond ``log_falloff_reach``."""
    # Capping d where the profile reaches 0 keeps log1p finite and makes the lower clip free.
    r = float(radius)
    return torch.log1p(d.clamp(max=log_falloff_reach(r)) / -r).add_(1.0).clamp_(0.0, 1.0)


def log_falloff_reach(radius: float = 2.3) -> float:
    """Distance at which ``log_falloff`` reaches 0: radius·(1 - 1/e), 1.45 px for MNIST-C."""
    return float(radius) * (1 - math.exp(-1))


def unit_vectors(angle: torch.Tensor) -> torch.Tensor:
    """N angles (radians, image axes: x right, y down) -> N×2 unit vectors (x, y)."""
    return torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)


def smooth_noise(
    n: int,
    cells: int,
    h: int,
    w: int,
    g: torch.Generator,
    scale: torch.Tensor | float = 1.0,
    offset: torch.Tensor | float = 0.0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """N×H×W smooth random field ``offset + scale·f`` (scale, offset: scalars or per image, N).

    f varies over about h/cells pixels, has zero mean and a standard deviation of about 0.5,
    so it stays mostly within [-1, 1]. It is ``cells``×``cells`` uniform draws per image
    interpolated by two small matrix products with Gaussian weights (no creases, unlike
    bilinear; far cheaper on CPU than F.interpolate(mode="bicubic") on a large batch). The
    weights of each output pixel sum to 1, so scale and offset are applied to the coarse draws
    and cost nothing on the full grid.
    """
    rows, cols, gain = _interpolation(cells, h, w)
    coarse = (torch.rand((n, cells, cells), generator=g) * 2 - 1).to(device)
    coarse = coarse * (_per_image(scale, device) * gain) + _per_image(offset, device)
    return rows.to(coarse) @ coarse @ cols.to(coarse).T


@functools.lru_cache(maxsize=32)
def _interpolation(cells: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    def weights(size: int) -> torch.Tensor:
        pos = torch.linspace(0, cells - 1, size).view(size, 1)
        wt = torch.exp(-0.5 * ((pos - torch.arange(cells).view(1, cells)) / 0.6) ** 2)
        return wt / wt.sum(dim=1, keepdim=True)

    rows, cols = weights(h), weights(w)
    # Interpolating averages neighbouring draws, which shrinks their spread (U(-1, 1) has
    # sd 1/sqrt(3)); this gain brings the field's typical sd back to 0.5.
    spread = rows.norm(dim=1).mean() * cols.norm(dim=1).mean() / math.sqrt(3)
    return rows, cols, float(0.5 / spread)


def uniform(n: int, lo: float, hi: float, g: torch.Generator, *shape: int,
            device: torch.device | str | None = None) -> torch.Tensor:
    """n (or n×shape) draws from U(lo, hi), made on CPU from g (so a set is the same whatever
    device draws it) and then moved to ``device``."""
    return (lo + (hi - lo) * torch.rand((n, *shape), generator=g)).to(device)


TAU = 2 * math.pi
