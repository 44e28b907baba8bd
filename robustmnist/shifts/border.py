"""Border shifts: what a bad crop or scan leaves around the digit.

MNIST is white ink on black, i.e. the scan inverted: anything dark on the page (the scanner
lid or table beyond the page edge, printed form lines, a neighbouring digit, a shadow)
shows up *bright* here. Every shift draws per image, for the whole batch at once, which
edge or side it hits.

Edges are numbered 0 left, 1 right, 2 top, 3 bottom; coordinates are (x, y) = (column, row)
in pixel-index units, so the image spans -0.5 .. 27.5 in both.
"""

from __future__ import annotations

import math

import torch

from ..data.framing import centre_of_mass, ink_boxes
from ._draw import fill_from_sdf, pixel_grid, uniform
from .geometric import move_whole_pixels
from .registry import register


def _depth_from_edge(
    edge: torch.Tensor, tilt: torch.Tensor, h: int, w: int, minus: torch.Tensor | float = 0.0
) -> torch.Tensor:
    """N×H×W distance of each pixel from its image's ``edge`` (N ints), measured inward along
    that edge's normal turned by ``tilt`` radians about the edge's midpoint (a line of constant
    depth is a straight line nearly parallel to the edge, as a skewed page edge is), less
    ``minus`` (per image or scalar)."""
    xs, ys = pixel_grid(h, w)
    base = torch.tensor([0.0, math.pi, math.pi / 2, -math.pi / 2])[edge] + tilt
    nx, ny = torch.cos(base).view(-1, 1, 1), torch.sin(base).view(-1, 1, 1)
    # Midpoint of each edge, on the pixel boundary (-0.5 or size - 0.5).
    mx = torch.tensor([-0.5, w - 0.5, (w - 1) / 2, (w - 1) / 2])[edge].view(-1, 1, 1)
    my = torch.tensor([(h - 1) / 2, (h - 1) / 2, -0.5, h - 0.5])[edge].view(-1, 1, 1)
    minus = torch.as_tensor(minus, dtype=torch.get_default_dtype()).reshape(-1, 1, 1)
    # A row term plus a column term: one full-size operation instead of five.
    return ((xs - mx) * nx - minus) + (ys - my) * ny


def _adjacent_edge(edge: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """One of the two edges that meet ``edge`` at a corner, per image."""
    pick = torch.randint(0, 2, edge.shape, generator=g)
    return torch.where(edge < 2, 2 + pick, pick)


@register(family="border",
          description="bright bar where the page edge or scanner lid shows along 1-2 edges")
def scan_border(
    x: torch.Tensor, g: torch.Generator, *, width: float, corner_prob: float,
    tilt: float = 3.0, level: tuple[float, float] = (0.8, 1.0),
) -> torch.Tensor:
    """A bar ``width`` px deep (±25% per image) along a random edge, its inner boundary turned
    by up to ``tilt`` degrees; with probability ``corner_prob`` a second bar along an adjacent
    edge, as a crop that caught a page corner. Beyond the page edge there is no paper, so the
    bar *replaces* the digit there, at a brightness drawn from ``level`` per image."""
    n, _, h, w = x.shape
    cover = torch.zeros(n, h, w)
    edge = torch.randint(0, 4, (n,), generator=g)
    second = torch.rand(n, generator=g) < corner_prob
    for k, e in enumerate((edge, _adjacent_edge(edge, g))):
        depth = width * uniform(n, 0.75, 1.25, g).view(-1, 1, 1)
        turn = uniform(n, -math.radians(tilt), math.radians(tilt), g)
        bar = fill_from_sdf(_depth_from_edge(e, turn, h, w, minus=depth))
        if k == 1:
            bar = bar * second.view(-1, 1, 1)
        cover = torch.maximum(cover, bar)
    bright = uniform(n, level[0], level[1], g).view(-1, 1, 1)
    cover = cover.unsqueeze(1).to(x.device)
    return x * (1 - cover) + bright.unsqueeze(1).to(x.device) * cover


@register(family="border",
          description="misplaced crop: part of the digit cut off at one edge")
def crop_shift(x: torch.Tensor, g: torch.Generator, *, cut: float, recentre: bool = True):
    """Move each digit towards a random edge until ``cut`` of its ink box's extent (width for
    left/right, height for top/bottom) lies outside the frame and is lost. Relative to the ink
    box, so a narrow 1 loses as much of itself as a wide 0.

    ``recentre`` then moves what is left back to the centre of mass, as MNIST's own framing
    (and ``load_image_folder(frame=True)``) would: without it the 5-10 px move dominates
    (LeNet-5 falls to 20% at the mildest cut) and the shift re-measures ``translate`` rather
    than missing strokes."""
    n, _, h, w = x.shape
    edge = torch.randint(0, 4, (n,), generator=g)
    boxes, has_ink = ink_boxes(x)
    x1, y1, x2, y2 = boxes.cpu().unbind(1)
    # Whole pixels, so what is kept is exactly the source's pixels.
    moves = torch.stack([
        -(x1 + cut * (x2 - x1)),            # left: the box's left `cut` goes past column 0
        w - x2 + cut * (x2 - x1),           # right
        -(y1 + cut * (y2 - y1)),            # top
        h - y2 + cut * (y2 - y1),           # bottom
    ], 1).gather(1, edge.view(-1, 1)).squeeze(1).round() * has_ink.cpu()
    horizontal = edge < 2
    dx = torch.where(horizontal, moves, torch.zeros_like(moves))
    dy = torch.where(horizontal, torch.zeros_like(moves), moves)
    if not recentre:
        return move_whole_pixels(x, dx, dy)
    # Moving, losing what leaves the frame, then re-centring is one move of the source with
    # the lost pixels blanked: keep the source pixels that the first move leaves inside.
    xs, ys = pixel_grid(h, w, x.device)
    mx, my = dx.view(-1, 1, 1).to(x.device), dy.view(-1, 1, 1).to(x.device)
    inside = ((xs + mx >= 0) & (xs + mx < w)) & ((ys + my >= 0) & (ys + my < h))
    kept = x * inside.unsqueeze(1)
    cy, cx = centre_of_mass(kept)  # MNIST puts the centre of mass at (h/2, w/2)
    return move_whole_pixels(kept, w / 2 - cx, h / 2 - cy)


@register(family="border",
          description="edges of a printed form box: thin lines near the borders")
def box_lines(
    x: torch.Tensor, g: torch.Generator, *, inset: float, sides: int,
    line_width: float = 1.2, jitter: float = 1.0, tilt: float = 2.0,
    level: tuple[float, float] = (0.6, 1.0),
) -> torch.Tensor:
    """The cell of a printed form, cropped too tight: ``sides`` of its four edges show as
    straight lines ``inset`` px (± ``jitter``) inside the image border, the box turned by up
    to ``tilt`` degrees. Printed ink and pen ink both show bright, so lines add to the digit
    (a maximum) and cross it once the inset reaches the digit's 20-px box (4 px)."""
    n, _, h, w = x.shape
    # A random subset of `sides` sides per image: the `sides` smallest of 4 random keys.
    rank = torch.rand(n, 4, generator=g).argsort(1).argsort(1)
    turn = uniform(n, -math.radians(tilt), math.radians(tilt), g)  # the box turns as one
    dist = None
    for e in range(4):
        # A hidden side is moved far outside the image rather than masked out afterwards.
        at = inset + uniform(n, -jitter, jitter, g)
        at = torch.where(rank[:, e] < sides, at, torch.full_like(at, 1e4))
        d = _depth_from_edge(torch.full((n,), e), turn, h, w, minus=at).abs_()
        dist = d if dist is None else torch.minimum(dist, d)
    ink = uniform(n, level[0], level[1], g).view(-1, 1, 1)
    lines = _line_coverage(dist, line_width).mul_(ink).unsqueeze(1)
    return torch.maximum(x, lines.to(x.device))


def _line_coverage(dist: torch.Tensor, width: float) -> torch.Tensor:
    """Area coverage of a pixel (1 px footprint) by a line ``width`` px wide at unsigned
    distance ``dist`` (as _draw.stroke_from_distance), computed in place, overwriting ``dist``:
    on a full batch each fresh N×28×28 temporary costs more in page faults than the arithmetic.
    """
    half = width / 2
    hi = (dist + 0.5).clamp_(max=half)
    return hi.sub_(dist.sub_(0.5).clamp_(min=-half)).clamp_(min=0.0)


def _neighbours(n: int, g: torch.Generator, step: int) -> torch.Tensor:
    """For each image the index of another image of the batch: the images are put in a random
    order and each takes the one ``step`` places after it (cyclically), so no image is its own
    neighbour (for n > step) and different steps give different neighbours."""
    order = torch.randperm(n, generator=g)
    nb = torch.empty(n, dtype=torch.long)
    nb[order] = order.roll(-step)
    return nb


@register(family="border",
          description="part of the adjacent digit of a written number shows at the side")
def neighbor_fragment(
    x: torch.Tensor, g: torch.Generator, *, spacing: float, both_prob: float,
    jitter: float = 1.0,
) -> torch.Tensor:
    """Digits of a number written in a row, cropped one by one: another real digit of the
    batch is pasted with its centre ``spacing`` px (± ``jitter``, and ± ``jitter`` up or down)
    to the left or right, so its near part shows at that edge; with probability ``both_prob``
    a third digit also shows on the other side. Ink adds (a maximum)."""
    n = x.shape[0]
    side = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    out = x
    for k, keep in ((1, torch.ones(n, dtype=torch.bool)), (2, torch.rand(n, generator=g) < both_prob)):
        nb = _neighbours(n, g, k)
        dx = side * (-1) ** (k - 1) * (spacing + uniform(n, -jitter, jitter, g))
        dy = uniform(n, -jitter, jitter, g)
        frag = move_whole_pixels(x[nb.to(x.device)], dx, dy)
        out = torch.maximum(out, frag * keep.view(-1, 1, 1, 1).to(x.device))
    return out


def _linear_ramp(n: int, g: torch.Generator, h: int, w: int) -> torch.Tensor:
    """N×H×W: 0 on the lit side rising to 1 on the far side, in a random direction."""
    xs, ys = pixel_grid(h, w)
    a = uniform(n, 0.0, 2 * math.pi, g).view(-1, 1, 1)
    return (((xs - (w - 1) / 2) * torch.cos(a) + (ys - (h - 1) / 2) * torch.sin(a)) / w + 0.5
            ).clamp(0, 1)


def _cast_shadow(n: int, g: torch.Generator, h: int, w: int) -> torch.Tensor:
    """N×H×W: 1 inside a large soft-edged disc reaching 30-60% into the image from a random
    side (a hand or phone between the lamp and the page), 0 outside; penumbra 3-8 px."""
    xs, ys = pixel_grid(h, w)
    b = uniform(n, 0.0, 2 * math.pi, g).view(-1, 1, 1)
    radius = uniform(n, 0.6, 1.0, g).view(-1, 1, 1) * w
    reach = uniform(n, 0.3, 0.6, g).view(-1, 1, 1) * w
    # Centre outside the image, so that the disc's edge is reach px past the centre line.
    out = 0.5 * w + radius - reach
    cx, cy = (w - 1) / 2 + out * torch.cos(b), (h - 1) / 2 + out * torch.sin(b)
    penumbra = uniform(n, 3.0, 8.0, g).view(-1, 1, 1)
    return fill_from_sdf(((xs - cx) ** 2 + (ys - cy) ** 2).sqrt() - radius, penumbra)


@register(family="border",
          description="uneven lighting: a smooth shadow lifts the background, fades the ink")
def shadow(
    x: torch.Tensor, g: torch.Generator, *, lift: float, fade: float, cast_prob: float = 0.5,
) -> torch.Tensor:
    """Where the shadow is deepest the background rises by ``lift`` and the ink's contrast
    against it falls by ``fade``: x -> x·(1 - fade·s) + lift·s for shadow strength s in [0, 1].
    (A dim page that the camera or scanner's automatic gain stretches: paper turns grey and
    pencil or ballpoint ink, never fully black, loses contrast with it.)

    The shadow is a linear fall-off across the image in a random direction, or (with
    probability ``cast_prob``) a soft-edged cast shadow entering from one side."""
    n, _, h, w = x.shape
    ramp = _linear_ramp(n, g, h, w)
    cast = _cast_shadow(n, g, h, w)
    s = torch.where((torch.rand(n, generator=g) < cast_prob).view(-1, 1, 1), cast, ramp)
    s = s.unsqueeze(1).to(x.device)
    return x * (1 - fade * s) + lift * s
