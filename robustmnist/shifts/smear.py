"""Ink and paper: marks that get onto a digit after it was written.

MNIST is white ink on black paper, so ink added here is bright and a stain on the paper is a
faint grey that lifts the black background. New ink is composited with ``max`` (ink on ink is
no brighter than ink), stains with a screen blend (they tint the paper, the ink stays on top).

Four of these are MNIST-C corruptions (google-research/mnist-c, corruptions.py): spatter,
dotted_line, zigzag and stripe. Their parameters can express MNIST-C's fixed setting exactly
(shifts/parts/mnistc-smear.toml); our own 5-level ladders live in shifts/parts/smear.toml.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..data.framing import centre_of_mass
from . import _draw as draw
from .registry import register

# ---------------------------------------------------------------------------------------------
# helpers


def _add_ink(x: torch.Tensor, ink: torch.Tensor) -> torch.Tensor:
    """Lay N×H×W ink coverage over the digits (white ink, opaque: max, not sum)."""
    return torch.maximum(x, ink.unsqueeze(1))


def _stain_paper(x: torch.Tensor, stain: torch.Tensor) -> torch.Tensor:
    """Screen-blend an N×H×W stain: it lifts the black paper and leaves saturated ink alone."""
    s = stain.unsqueeze(1)
    return x + s * (1.0 - x)


def _ink_points(x: torch.Tensor, k: int, g: torch.Generator) -> torch.Tensor:
    """N×k×2 (x, y) pixel positions drawn where the ink is, so marks land on the strokes.

    Inverse-CDF sampling (one cumsum, k uniforms per image) rather than torch.multinomial,
    which draws an exponential variate for every pixel of every image.
    """
    n, _, h, w = x.shape
    weight = x.reshape(n, h * w).cpu().clamp_min(0) ** 2 + 1e-6  # blank images: uniform
    cdf = weight.cumsum(dim=1)
    u = torch.rand((n, k), generator=g) * cdf[:, -1:]
    idx = torch.searchsorted(cdf, u).clamp_(max=h * w - 1)
    return torch.stack([idx % w, idx // w], dim=-1).to(device=x.device, dtype=torch.get_default_dtype())


def _gaussian_matrix(size: int, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """size×size matrix M with M @ v = 1-D Gaussian filter of v, edges replicated.

    Same support and boundary as skimage.filters.gaussian (radius int(truncate·sigma + 0.5),
    mode 'nearest'), which MNIST-C's spatter uses. On 28-px images a dense matrix product is
    several times faster on CPU than a padded conv2d.
    """
    radius = max(1, int(truncate * sigma + 0.5))
    taps = torch.arange(-radius, radius + 1)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    out_idx = torch.arange(size).view(-1, 1).expand(size, taps.numel())
    in_idx = (out_idx + taps.view(1, -1)).clamp(0, size - 1)
    m = torch.zeros(size, size)
    m.index_put_((out_idx.reshape(-1), in_idx.reshape(-1)),
                 kernel.repeat(size), accumulate=True)
    return m


def _gaussian_filter(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian filter of an N×1×H×W batch (skimage-compatible edges)."""
    if sigma <= 0:
        return img
    h, w = img.shape[-2:]
    rows, cols = _gaussian_matrix(h, sigma).to(img.device), _gaussian_matrix(w, sigma).to(img.device)
    return rows @ img @ cols.T


def _affine_grid(a: torch.Tensor, b: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """N×h×w×2 grid_sample grid mapping output to input normalised coordinates by
    ``in = a @ out + b`` (a: N×2×2, b: N×2; align_corners=False).

    Same result as F.affine_grid, built from one row and one column term per axis; on CPU
    that is several times faster than affine_grid's batched matrix product on large batches.
    """
    n = a.shape[0]
    xs = ((torch.arange(w, device=a.device) * 2 + 1) / w - 1).view(1, 1, w)
    ys = ((torch.arange(h, device=a.device) * 2 + 1) / h - 1).view(1, h, 1)
    coeff = a.reshape(n, 4, 1, 1)
    gx = (coeff[:, 0] * xs + b[:, 0].view(n, 1, 1)) + coeff[:, 1] * ys
    gy = (coeff[:, 2] * xs + b[:, 1].view(n, 1, 1)) + coeff[:, 3] * ys
    return torch.stack([gx, gy], dim=-1)


def _rotation(angle: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], dim=1)  # N×2×2


def _to_drag_frame(x: torch.Tensor, angle: torch.Tensor, room: int) -> torch.Tensor:
    """Each image rotated by -angle about its centre, so direction ``angle`` points along +x,
    on a canvas 2 px taller and ``room`` px wider than the image, the extra room on the +x
    side where the dragged ink goes (align_corners=False convention throughout)."""
    n, _, h, w = x.shape
    ch, cw = h + 2, w + 2 + room
    shift = torch.tensor([room / 2, 0.0], device=x.device)  # canvas centre - image centre
    rot = _rotation(angle)
    a = rot * torch.tensor([cw / w, ch / h], device=x.device).view(1, 1, 2)
    b = rot @ (shift / (w / 2))
    return F.grid_sample(x, _affine_grid(a, b, ch, cw), align_corners=False)


def _from_drag_frame(c: torch.Tensor, angle: torch.Tensor, room: int, h: int, w: int):
    """Inverse of ``_to_drag_frame``: the canvas read back into h×w images."""
    n, _, ch, cw = c.shape
    rot_t = _rotation(angle).transpose(1, 2)
    a = torch.tensor([w / cw, h / ch], device=c.device).view(1, 2, 1) * rot_t
    b = torch.tensor([-room / cw, 0.0], device=c.device).expand(n, 2)
    return F.grid_sample(c, _affine_grid(a, b, h, w), align_corners=False)


def _drag_matrix(size: int, length: float) -> torch.Tensor:
    """size×size matrix that drags every row's ink towards +x: a one-sided kernel over 0..length
    px whose weight fades linearly (the ink left behind thins out), normalised to keep ink."""
    steps = torch.arange(size).view(-1, 1) - torch.arange(size).view(1, -1)  # out - in
    weight = (1 - steps / (length + 1)).clamp_min(0) * (steps >= 0)
    return weight / (1 - torch.arange(size) / (length + 1)).clamp_min(0).sum()


def _random_rows(n: int, rows: Sequence[int], g: torch.Generator, k: int, device) -> torch.Tensor:
    """n×k row indices from [rows[0], rows[1]) (half-open, as MNIST-C's np.random.randint)."""
    lo, hi = int(rows[0]), int(rows[1])
    return torch.randint(lo, hi, (n, k), generator=g).to(torch.get_default_dtype()).to(device)


# ---------------------------------------------------------------------------------------------
# ink added by the pen or the paper


@register(family="smear", description="a blob of ink spilled on the digit's strokes")
def ink_blot(
    x: torch.Tensor,
    g: torch.Generator,
    *,
    radius: float,
    blots: int = 1,
    wobble: float = 0.5,
    droplets: int = 3,
    jitter: float = 1.5,
    intensity: float = 1.0,
) -> torch.Tensor:
    """Blots of ``radius`` px centred on the strokes (where a resting pen nib pools ink), with an
    irregular edge from a smooth noise field and a few droplets flung around the first blot."""
    n, _, h, w = x.shape
    dev = x.device
    centres = _ink_points(x, blots, g) + draw.uniform(n, -jitter, jitter, g, blots, 2, device=dev)
    radii = radius * draw.uniform(n, 0.8, 1.2, g, blots, device=dev)
    edge = draw.smooth_noise(n, 6, h, w, g, scale=wobble, offset=1.0, device=dev).unsqueeze(1)
    blob = (draw.points_distance(centres, h, w) - radii[..., None, None] * edge).amin(dim=1)
    ink = draw.fill_from_sdf(blob)
    if droplets > 0:
        angle = draw.uniform(n, 0, draw.TAU, g, droplets, device=dev)
        reach = radii[:, :1] * draw.uniform(n, 1.4, 2.3, g, droplets, device=dev)
        spots = centres[:, :1] + reach.unsqueeze(-1) * draw.unit_vectors(angle)
        sizes = draw.uniform(n, 0.5, 1.0, g, droplets, device=dev) * min(1.0, radius / 2.5)
        drops = draw.union(draw.discs_sdf(spots, sizes, h, w))
        ink = torch.maximum(ink, draw.fill_from_sdf(drops))
    return _add_ink(x, intensity * ink)


@register(family="smear",
          description="wet ink dragged along one direction by a finger or the hand")
def smudge(
    x: torch.Tensor,
    g: torch.Generator,
    *,
    length: float,
    strength: float,
) -> torch.Tensor:
    """A fraction ``strength`` of the ink is dragged up to ``length`` px in a random direction
    per image: the strokes thin out and a fading tail grows on one side, unlike motion blur,
    whose kernel is symmetric and leaves no stroke sharp."""
    n, _, h, w = x.shape
    dev = x.device
    angle = draw.uniform(n, 0, draw.TAU, g, device=dev)
    # Rotate each digit so its drag runs along +x, drag every row with one shared matrix, and
    # rotate back: two resamplings and a matrix product instead of one resampling per tap.
    room = math.ceil(length) + 1
    upright = _to_drag_frame(x, angle, room)
    dragged = upright @ _drag_matrix(upright.shape[-1], length).to(dev).T
    trail = _from_drag_frame(dragged, angle, room, h, w)
    return (1 - strength) * x + strength * trail


@register(family="smear",
          description="faint rings and blotches left by a wet cup on the paper")
def coffee_stain(
    x: torch.Tensor,
    g: torch.Generator,
    *,
    stains: int,
    rim: float,
    fill: float,
    radius: float = 14.0,
    rim_width: float = 1.2,
    wobble: float = 2.0,
) -> torch.Tensor:
    """Each stain is a blotch of about ``radius`` px whose edge is darker than its inside:
    coffee dries with its pigment at the rim (the "coffee ring effect", Deegan et al. 1997).
    On black paper that rim is a grey arc of brightness up to ``rim`` around a mottled
    ``fill``; the edge wanders by about ±``wobble`` px. Centres fall so the rim crosses the
    digit, since a stain that misses it changes nothing a reader cares about."""
    n, _, h, w = x.shape
    dev = x.device
    r = radius * draw.uniform(n, 0.7, 1.3, g, stains, device=dev)
    bearing = draw.uniform(n, 0, draw.TAU, g, stains, device=dev)
    away = r * draw.uniform(n, 0.4, 1.0, g, stains, device=dev)
    centres = (h - 1) / 2 + away.unsqueeze(-1) * draw.unit_vectors(bearing)
    clear = torch.ones(n, h, w, device=dev)  # the fraction of the paper no stain covers
    for k in range(stains):
        # Per stain: a noise field bends its edge, another makes the rim and fill uneven.
        edge = draw.smooth_noise(n, 4, h, w, g, scale=wobble, offset=r[:, k], device=dev)
        tone = draw.smooth_noise(n, 5, h, w, g, scale=0.3, offset=0.8, device=dev)
        inside = edge.sub_(draw.points_distance(centres[:, k], h, w)[:, 0])  # > 0 inside
        ring = torch.exp(inside.clamp_min(0).mul_(-1 / rim_width))
        paint = ring.mul_(rim - fill).add_(fill).mul_(tone)
        level = paint.mul_((inside + 0.5).clamp_(0, 1))
        clear = clear * (1 - level)
    return _stain_paper(x, 1 - clear)


@register(family="smear", description="a pen line struck across the digit")
def strike_through(
    x: torch.Tensor,
    g: torch.Generator,
    *,
    width: float,
    length: float,
    strokes: int = 1,
    angle: float = 30.0,
    offset: float = 3.0,
    bend: float = 1.0,
    intensity: float = 1.0,
) -> torch.Tensor:
    """``strokes`` slightly bowed pen lines of ``width`` px and ``length`` px through the digit's
    centre of mass (± ``offset`` px), at up to ± ``angle`` degrees from horizontal."""
    n, _, h, w = x.shape
    dev = x.device
    cy, cx = centre_of_mass(x)
    ink = torch.zeros(n, h, w, device=dev)
    for _ in range(strokes):
        theta = torch.deg2rad(draw.uniform(n, -angle, angle, g, device=dev))
        along = draw.unit_vectors(theta)
        across = torch.stack([-along[:, 1], along[:, 0]], dim=1)
        mid = torch.stack([cx, cy], dim=1) + draw.uniform(n, -offset, offset, g, 2, device=dev)
        half = 0.5 * length * draw.uniform(n, 0.85, 1.15, g, device=dev).unsqueeze(1)
        bow = draw.uniform(n, -bend, bend, g, device=dev).unsqueeze(1) * across
        points = torch.stack([mid - half * along, mid + bow, mid + half * along], dim=1)
        pen = width * draw.uniform(n, 0.85, 1.15, g, device=dev)
        ink = torch.maximum(ink, draw.stroke_from_distance(draw.polyline_distance(points, h, w),
                                                           pen))
    return _add_ink(x, intensity * ink)


# ---------------------------------------------------------------------------------------------
# MNIST-C's ink corruptions, generalised to severity ladders


@register(family="smear", description="droplets of mud spattered over the image")
def spatter(
    x: torch.Tensor,
    g: torch.Generator,
    *,
    loc: float,
    scale: float,
    sigma: float,
    threshold: float,
    mask_sigma: float,
    cutoff: float = 0.8,
    colour: float = 63 / 255,
) -> torch.Tensor:
    """MNIST-C's spatter: Gaussian noise N(loc, scale) smoothed by ``sigma`` is the liquid;
    where it exceeds ``threshold`` the paper is wet; that mask, smoothed by ``mask_sigma`` and
    kept above ``cutoff``, is the opacity of mud of grey level ``colour`` over the digit."""
    n, _, h, w = x.shape
    noise = torch.randn((n, 1, h, w), generator=g).to(x.device)
    liquid = _gaussian_filter(loc + scale * noise, sigma)
    wet = (liquid > threshold).to(torch.get_default_dtype())
    mask = _gaussian_filter(wet, mask_sigma)
    mask = torch.where(mask < cutoff, torch.zeros_like(mask), mask)
    return x * (1 - mask) + colour * mask


@register(family="smear",
          description="dashed lines drawn across the image from edge to edge")
def dotted_line(
    x: torch.Tensor,
    g: torch.Generator,
    *,
    lines: int = 1,
    intensity: float = 1.0,
    dash: float = 2.0,
    gap: float = 2.0,
    radius: float = 2.3,
    rows: Sequence[int] = (0, 27),
) -> torch.Tensor:
    """MNIST-C's dotted_line: a line from column 0 to column 27 between rows drawn from
    ``rows`` (half-open), MNIST-C's log-falloff profile, ``gap`` px off then ``dash`` px on."""
    n, _, h, w = x.shape
    dev = x.device
    r0, r1 = _random_rows(n, rows, g, lines, dev), _random_rows(n, rows, g, lines, dev)
    xs = torch.arange(w, dtype=torch.get_default_dtype(), device=dev).view(1, w)
    ink = torch.zeros(n, h, w, device=dev)
    for k in range(lines):
        # An edge-to-edge line crosses every column once, so it is drawn column by column, on
        # the few rows around it: its row and the dash pattern are per-column quantities.
        # Dashes are cut at column boundaries, as MNIST-C cuts them.
        slope = ((r1[:, k] - r0[:, k]) / (w - 1)).view(n, 1)
        cos = torch.rsqrt(1 + slope * slope)
        centre = r0[:, k].view(n, 1) + slope * xs
        on = (torch.remainder(xs / cos, dash + gap) >= gap).to(torch.get_default_dtype())
        band = draw.column_band(centre, draw.log_falloff_reach(radius) / cos.min().item())
        dist = (band - centre.unsqueeze(1)).abs_().mul_(cos.unsqueeze(1))  # perpendicular
        draw.splat_rows(ink, band, draw.log_falloff(dist, radius).mul_(on.unsqueeze(1)))
    return _add_ink(x, intensity * ink)


def _zigzag_vertices(n: int, a: float, b: float, d: torch.Tensor) -> torch.Tensor:
    """MNIST-C's zigzag polyline before rotation: N×K×2 points (column, row offset).

    From (0, 0), vertices at columns (2i + 1)·a alternating +b, -b, ..., then an end point at
    column d (the line's length) whose row is the last vertex's divided by 2·(d - max_c),
    max_c = 2a·floor(d / 2a), exactly as corruptions.py builds it. Images whose line has fewer
    vertices repeat the end point: a zero-length segment draws nothing, as in MNIST-C.
    """
    n_v = torch.floor((d - a) / (2 * a)).long() + 1
    k_max = int(n_v.max())
    i = torch.arange(k_max)
    vc = ((2 * i + 1) * a).float().expand(n, k_max)
    vr = (b * (1 - 2 * (i % 2))).float().expand(n, k_max)
    last_r = b * (1 - 2 * ((n_v - 1) % 2)).float()
    max_c = 2 * a * torch.floor(d / (2 * a))
    end_r = torch.where(d != max_c, last_r / (2 * (d - max_c)).clamp_min(1e-12), last_r)
    end_c = torch.where(d != max_c, d, (2 * n_v - 1).float() * a)
    valid = i.view(1, -1) < n_v.view(-1, 1)
    vc = torch.where(valid, vc, end_c.view(-1, 1))
    vr = torch.where(valid, vr, end_r.view(-1, 1))
    cols = torch.cat([torch.zeros(n, 1), vc, end_c.view(-1, 1)], dim=1)
    rows = torch.cat([torch.zeros(n, 1), vr, end_r.view(-1, 1)], dim=1)
    return torch.stack([cols, rows], dim=2)


def _mnistc_segments(points: torch.Tensor, h: int, w: int, radius: float) -> torch.Tensor:
    """Sum of MNIST-C ``line_from_points`` strokes along N×K×2 (column, row) polylines.

    Each segment is drawn as MNIST-C draws it: the profile of the *vertical* distance from the
    pixel to the segment's line (not the perpendicular one: a 45° flank is √2 thinner than its
    profile radius), only in columns floor(c_start) to ceil(c_end) - 1, nothing for a vertical
    or zero-length segment.
    """
    n, k = points.shape[0], points.shape[1] - 1
    cc = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w)
    rr = torch.arange(h, dtype=torch.float32).view(1, 1, h, 1)
    c0, r0 = points[:, :-1, 0, None, None], points[:, :-1, 1, None, None]
    c1, r1 = points[:, 1:, 0, None, None], points[:, 1:, 1, None, None]
    run = c1 - c0
    flat = run == 0
    slope = (r1 - r0) / torch.where(flat, torch.ones_like(run), run)
    inside = (cc >= torch.floor(c0)) & (cc < torch.ceil(c1)) & ~flat  # N×K×1×W
    # A column lies in the span of only one or two segments of a polyline: draw, per column,
    # just the segments that cover it (in their order, so each pixel sums the same terms in
    # the same order as over all K; the others add exact zeros).
    j = max(1, int(inside.sum(dim=1).max()))
    pick = torch.sort(torch.where(inside, 0, k) + torch.arange(k).view(1, k, 1, 1), dim=1).values[:, :j] % k
    take = lambda t: t.expand(n, k, 1, w).gather(1, pick)  # noqa: E731
    dist = (rr - (take(slope) * (cc - take(c0)) + take(r0))).abs_()
    ink = draw.log_falloff(dist, radius)
    return (ink * inside.gather(1, pick)).sum(dim=1).view(n, h, w)


@register(family="smear", version=3,
          description="zigzag pen scribbles across the image")
def zigzag(
    x: torch.Tensor,
    g: torch.Generator,
    *,
    lines: int = 1,
    intensity: float = 1.0,
    amplitude: float = 2.0,
    spacing: float = 4.0,
    cols: Sequence[int] = (2, 25),
    tilt: int = 5,
    radius: float = 2.3,
    rows: Sequence[int] = (0, 27),
) -> torch.Tensor:
    """MNIST-C's zigzag: from column cols[0] to cols[1], vertices every ``spacing`` px
    alternating ±``amplitude`` px, starting on a row drawn from ``rows`` and ending up to
    ``tilt`` rows higher or lower; MNIST-C's log-falloff profile of the vertical distance,
    added to the image (not laid over it) and clipped, as corruptions.py does.

    v2 matches MNIST-C's own code: v1 measured the perpendicular distance to the polyline, so
    its 45° flanks were √2 thicker and the set 5.2 points harder than MNIST-C's on an outside
    CNN (76.8% vs 82.0%).
    """
    n, _, h, w = x.shape
    c0, c1 = float(cols[0]), float(cols[1])
    r0 = _random_rows(n, rows, g, lines, "cpu")
    # randint(-tilt, tilt) is half-open like MNIST-C's np.random.randint(-5, 5).
    rise = (torch.randint(-tilt, tilt, (n, lines), generator=g).to(torch.get_default_dtype()) if tilt > 0
            else torch.zeros(n, lines))
    ink = torch.zeros(n, h, w)
    for k in range(lines):
        theta = torch.atan(rise[:, k] / (c1 - c0))
        cos, sin = torch.cos(theta).view(n, 1), torch.sin(theta).view(n, 1)
        pts = _zigzag_vertices(n, spacing / 2, amplitude, (c1 - c0) / cos[:, 0])
        pc = cos * pts[..., 0] - sin * pts[..., 1] + c0
        pr = sin * pts[..., 0] + cos * pts[..., 1] + r0[:, k].view(n, 1)
        ink += _mnistc_segments(torch.stack([pc, pr], dim=2), h, w, radius)
    return (x + intensity * ink.to(x.device).unsqueeze(1)).clamp_(0, 1)


@register(family="smear",
          description="vertical bands at the sides with inverted polarity")
def stripe(
    x: torch.Tensor,
    g: torch.Generator,
    *,
    width: int,
    jitter: int = 0,
) -> torch.Tensor:
    """MNIST-C's stripe inverts columns 0-6 and 21-27 (``width`` 7 from each side). Each side's
    band here is ``width`` ± ``jitter`` columns wide, drawn per image and per side."""
    n, _, h, w = x.shape
    left = (width + torch.randint(-jitter, jitter + 1, (n, 1), generator=g)).to(x.device)
    right = (width + torch.randint(-jitter, jitter + 1, (n, 1), generator=g)).to(x.device)
    col = torch.arange(w, device=x.device).view(1, w)
    inverted = ((col < left) | (col >= w - right)).view(n, 1, 1, w)
    return torch.where(inverted, 1 - x, x)
