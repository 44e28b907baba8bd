"""Printed digits as they reach a classifier from a form, a receipt or a meter photo.

``fonts`` renders one clean glyph and frames it: the kindest case. Real print is scanned at
10-16 px per digit, with neighbouring characters, underlines and the grid or box lines of a
form inside the cell that a segmenter cuts out, with ink spread, uneven toner, grey ink and
glare. The published anchor (ANCHORS §7): an MNIST-only model at 98.73% on MNIST scored 81.39%
on ~8,200 renderings of Google Fonts, far below what a clean ``fonts`` set suggests.

``print_scan`` follows the order in which that happens:

1. print: a strip of three glyphs (neighbours left and right, from the same face) on a hi-res
   page, with an underline and cell lines drawn in ink, then ink spread and toner variation;
2. scan: area-resampled so the digit is ``px`` pixels tall, grey ink (``contrast``), glare and
   scanner blur;
3. crop: the square cell around the digit (its ``margin`` a fraction of the digit height),
   at whole scan pixels, off by up to a pixel;
4. MNIST framing of the crop as it is, so the lines and neighbour parts in the cell are framed
   with the digit and the digit shrinks as it does when a cell is cut from a form.

``dot_matrix`` draws 5×7 dot-matrix digits (receipt printers, LED/LCD displays) with dots that
fail, shrink or bleed. Seven- and fourteen-segment digits are the DSEG faces of
``fonts_segment``. Faces are the evaluation faces (``split="train"`` for augmentation).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from ..assets import fonts_dir
from ..data.framing import frame_mnist
from ._ops import resize
from .fonts import balanced_labels, change_weight, gaussian_blur, sample_faces
from .glyphs import CANVAS, GLYPH_BOX, HIRES_PER_PX, _glyph_bank, glyph_bank, load_manifest, select_faces
from .registry import register

STRIP_H, STRIP_W = 64, 3 * CANVAS  # hi-res page strip: glyph canvases side by side, 8 px more
# above and below so cell lines and an underline have room
# images per batch of hi-res work (the output does not depend on it); small enough that a
# batch's strips stay in the CPU's cache: 30% faster than 512
CHUNK = 128


@functools.lru_cache(maxsize=4)
def _ink_widths(root_str: str) -> torch.Tensor:
    """Ink width (hi-res px) of every glyph, F×10, from the columns holding ink (cached: it
    reads the whole bank)."""
    glyphs = _glyph_bank(root_str, torch.float32)[0]
    cols = glyphs.amax(dim=2) > 0.05  # F×10×W
    idx = torch.arange(glyphs.shape[-1])
    left = torch.where(cols, idx, CANVAS).amin(dim=-1)
    right = torch.where(cols, idx, -1).amax(dim=-1)
    return (right - left + 1).clamp_min(1).float()


def _place(glyph: torch.Tensor, dx: torch.Tensor, c0: int, c1: int) -> torch.Tensor:
    """Columns [c0, c1) of the strip (glyph rows only, CANVAS high) holding N×1×CANVAS×CANVAS
    glyphs centred at column STRIP_W/2 + dx (dx rounded as ``shift_integer`` rounds it)."""
    pad_x = (STRIP_W - CANVAS) // 2
    dxi = torch.floor(dx + (0.5 + 2.0**-20)).long()
    src = torch.arange(c0, c1).view(1, -1) - pad_x - dxi.view(-1, 1)  # N×(c1-c0)
    valid = (src >= 0) & (src < CANVAS)
    idx = src.clamp(0, CANVAS - 1).view(-1, 1, 1, c1 - c0).expand(-1, 1, CANVAS, -1)
    return glyph.gather(3, idx) * valid.view(-1, 1, 1, c1 - c0).to(glyph.dtype)


def _window(lw: int, side: int, s: float, miscrop: float, steps: int) -> tuple[int, int, int, int]:
    """Strip columns [t0, t1) that decide every pixel a crop can see, and [c0, c1) around them
    at whole periods of the area resampling.

    Only the cell window matters: the crop (``side`` scan px, off by up to ``miscrop``), the
    scanner blur's reach (2 scan px), the area bins under them and the dilation's reach
    (``steps`` hi-res px) on either side. A period is STRIP_W/gcd(STRIP_W, lw) hi-res px:
    resampling [c0, c1) (the tight window padded with black) averages, for every scan pixel
    the crop can see, the same hi-res pixels in the same order as the whole strip does, so
    the bytes do not change."""
    cx = STRIP_W / 2 * s
    first = min(max(round(cx - side / 2 - miscrop) - 1, 0), lw - side) - 2
    last = max(min(round(cx - side / 2 + miscrop) + 1, lw - side), 0) + side + 2  # past the end
    t0 = max(0, first * STRIP_W // lw - steps - 1)
    t1 = min(STRIP_W, -(-last * STRIP_W // lw) + steps + 1)
    period = STRIP_W // math.gcd(STRIP_W, lw)
    return t0, t1, t0 // period * period, min(STRIP_W, -(-t1 // period) * period)


def _line_mask(coord: torch.Tensor, at: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """Anti-aliased band |coord - at| < width/2 (coverage of a pixel-wide box filter)."""
    d = (coord - at).abs() - width / 2
    return (0.5 - d).clamp(0, 1)


def _smooth(coarse: torch.Tensor, h: int, w: int, cols: tuple[int, int]) -> torch.Tensor:
    """Columns [c0, c1) of the smooth h×w field (bicubic) of an N×1×k×m coarse grid."""
    return resize(coarse, h, w, "bicubic", cols).clamp_(0, 1)


def print_scan(n: int, g: torch.Generator, *, px: float = 14, margin: float = 0.2,
               neighbours: float = 0.0, underline: float = 0.0, box: float = 0.0,
               spread: float = 0.0, toner: float = 0.0, contrast: float = 1.0, glare: float = 0.0,
               blur: float = 0.3, miscrop: float = 0.0, category: str = "all",
               faces: str = "all", split: str = "eval") -> tuple[torch.Tensor, torch.Tensor]:
    """n balanced printed digits through print -> page artefacts -> scan -> crop -> framing.

    px: digit height in scan pixels; margin: cell margin around the digit, fraction of its
    height; neighbours/underline/box: probability of each neighbour, of an underline, of each of
    the four cell lines; spread: max ink spread (framed px); toner: max toner loss; contrast:
    lowest ink level (1 = black ink); glare: max glare; blur: scanner sigma (scan px); miscrop:
    max crop offset (scan px).
    """
    glyphs, _ = glyph_bank()
    widths = _ink_widths(str(fonts_dir()))
    eligible = select_faces(load_manifest(), category, faces, split)
    y = balanced_labels(n, g)
    face = sample_faces(n, eligible, g)
    u = lambda *shape: torch.rand((n, *shape), generator=g)  # noqa: E731
    # every draw up front, in a fixed order: the output does not depend on CHUNK
    nb_digit = torch.randint(10, (n, 2), generator=g)
    nb_on = u(2) < neighbours
    gap = GLYPH_BOX * (0.15 + 0.15 * u(2))
    ul_on, ul_gap = u() < underline, GLYPH_BOX * (0.06 + 0.1 * u())
    box_on, box_jit = u(4) < box, (u(4) - 0.5) * GLYPH_BOX * 0.1
    radius = spread * HIRES_PER_PX / 2 * u()
    toner_coarse = u(1, 4, 9)
    level = contrast + (1 - contrast) * u()
    glare_coarse, glare_amt = u(1, 3, 5), glare * u()
    crop_dy, crop_dx = (u() - 0.5) * 2 * miscrop, (u() - 0.5) * 2 * miscrop

    s = px / GLYPH_BOX  # scan px per hi-res px
    m = margin * GLYPH_BOX  # hi-res px
    half = GLYPH_BOX / 2 + m
    line_w = max(1.0 / s, 1.0) * 0.9  # a rule about one scan pixel wide
    cy, cx = STRIP_H / 2, STRIP_W / 2
    lh, lw = max(1, round(STRIP_H * s)), max(1, round(STRIP_W * s))
    side = max(4, round(2 * half * s))
    steps = math.ceil(float(radius.max())) if spread > 0 else 0
    t0, t1, c0, c1 = _window(lw, side, s, miscrop, steps)
    s0, s1 = c0 * lw // STRIP_W, c1 * lw // STRIP_W  # the window's scan columns (exact)
    yy = torch.arange(STRIP_H, dtype=torch.float32).view(1, 1, -1, 1) + 0.5
    xx = torch.arange(t0, t1, dtype=torch.float32).view(1, 1, 1, -1) + 0.5
    pad_y = (STRIP_H - CANVAS) // 2
    out = torch.empty(n, 1, 28, 28)
    for a in range(0, n, CHUNK):
        sl = slice(a, a + CHUNK)
        k = len(y[sl])
        f, d = face[sl], y[sl]
        v = lambda t: t.view(-1, 1, 1, 1)  # noqa: E731
        # rows (underline, top, bottom) and columns (left, right) apart, then one full-size
        # maximum: maxima are exact, so the order does not change a bit
        rules = _line_mask(yy, v(cy + GLYPH_BOX / 2 + ul_gap[sl]), line_w) * v(ul_on[sl].float())
        inset = 0.5 / s  # half a scan pixel inside the crop, so the rule survives the crop
        by_axis = [rules, None]
        for j, (coord, at) in enumerate(((yy, cy - half + inset), (yy, cy + half - inset),
                                         (xx, cx - half + inset), (xx, cx + half - inset))):
            band = _line_mask(coord, at + v(box_jit[sl, j]), line_w) * v(box_on[sl, j].float())
            i = j // 2
            by_axis[i] = band if by_axis[i] is None else torch.maximum(by_axis[i], band)
        rows_, cols_ = (t.to(glyphs.dtype) for t in by_axis)
        strip = torch.maximum(rows_.expand(k, 1, STRIP_H, t1 - t0), cols_)  # written below
        ink = strip[:, :, pad_y : pad_y + CANVAS]  # the glyph rows
        w_main = widths[f, d]
        torch.maximum(ink, _place(glyphs[f, d].unsqueeze(1), torch.zeros(k), t0, t1), out=ink)
        for side_i, sign in ((0, -1.0), (1, 1.0)):
            nd = nb_digit[sl, side_i]
            adv = (w_main + widths[f, nd]) / 2 + gap[sl, side_i]
            nb = _place(glyphs[f, nd].unsqueeze(1), sign * adv, t0, t1)
            torch.maximum(ink, nb.mul_(nb_on[sl, side_i].view(-1, 1, 1, 1)), out=ink)
        if spread > 0:
            strip = change_weight(strip, radius[sl]).clamp_(0, 1)
        if toner > 0:
            strip = strip * (1 - toner * _smooth(toner_coarse[sl], STRIP_H, STRIP_W, (t0, t1)))
        # area resampling of whole periods: the same bins (and sums) as of the whole strip
        strip = F.pad(strip, (t0 - c0, c1 - t1))
        scan = F.interpolate(strip, size=(lh, s1 - s0), mode="area")
        scan = scan * v(level[sl])
        if glare > 0:
            scan = scan * (1 - v(glare_amt[sl]) * _smooth(glare_coarse[sl], lh, lw, (s0, s1)))
        if blur > 0:
            scan = gaussian_blur(scan, torch.full((k,), float(blur)), radius=2)
        top = (cy * s - side / 2 + crop_dy[sl]).round().long().clamp(0, lh - side)
        left = (cx * s - side / 2 + crop_dx[sl]).round().long().clamp(0, lw - side) - s0
        rows = (top.view(-1, 1) + torch.arange(side)).view(k, side, 1).expand(k, side, side)
        cols = (left.view(-1, 1) + torch.arange(side)).view(k, 1, side).expand(k, side, side)
        crop = scan[torch.arange(k).view(-1, 1, 1), 0, rows, cols].unsqueeze(1)
        out[sl] = frame_mnist(crop)
    return out.clamp_(0, 1), y


# 5×7 dot-matrix digits (the HD44780 LCD controller's character ROM, as receipt printers and
# LED displays use), one row string per dot row.
_DOTS = (
    ("01110", "10001", "10011", "10101", "11001", "10001", "01110"),
    ("00100", "01100", "00100", "00100", "00100", "00100", "01110"),
    ("01110", "10001", "00001", "00010", "00100", "01000", "11111"),
    ("11111", "00010", "00100", "00010", "00001", "10001", "01110"),
    ("00010", "00110", "01010", "10010", "11111", "00010", "00010"),
    ("11111", "10000", "11110", "00001", "00001", "10001", "01110"),
    ("00110", "01000", "10000", "11110", "10001", "10001", "01110"),
    ("11111", "00001", "00010", "00100", "01000", "01000", "01000"),
    ("01110", "10001", "10001", "01110", "10001", "10001", "01110"),
    ("01110", "10001", "10001", "01111", "00001", "00010", "01100"),
)
DOT_PATTERNS = torch.tensor([[[c == "1" for c in row] for row in d] for d in _DOTS],
                            dtype=torch.float32)  # 10×7×5
_PITCH = 6  # hi-res px between dot centres


def dot_matrix(n: int, g: torch.Generator, *, dot: float = 0.45, dot_jitter: float = 0.0,
               dropout: float = 0.0, square: float = 0.0, shear: float = 0.0,
               blur: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """n balanced 5×7 dot-matrix digits, framed as MNIST.

    dot: dot radius as a fraction of the dot pitch (0.5 = touching dots); dot_jitter: random
    change of each dot's radius (fraction of itself); dropout: probability that a dot fails;
    square: probability of square (LCD) instead of round (LED, printer) dots; shear: max slant
    (dx/dy) of an italic display; blur: max blur sigma (framed px).
    """
    y = balanced_labels(n, g)
    u = lambda *shape: torch.rand((n, *shape), generator=g)  # noqa: E731
    r = dot * _PITCH * (1 + dot_jitter * (2 * u(7, 5) - 1))
    alive = (u(7, 5) >= dropout).float()
    is_square = (u() < square).view(-1, 1, 1)
    slant = shear * u()
    sigma = blur * (0.5 + 0.5 * u())
    x = torch.empty(n, 1, 28, 28)
    for a in range(0, n, CHUNK):  # batches whose canvases stay in the CPU's cache
        sl = slice(a, a + CHUNK)
        # 6 samples per bin: what the largest canvas (54 px) needs; fixed, so that an image
        # does not depend on the others in its batch
        x[sl] = frame_mnist(dot_canvas(DOT_PATTERNS[y[sl]] * alive[sl], r[sl], is_square[sl], slant[sl]),
                            sampling_ratio=6)
    if blur > 0:
        x = gaussian_blur(x, sigma)
    return x.clamp_(0, 1), y


def dot_canvas(bits: torch.Tensor, r: torch.Tensor, is_square: torch.Tensor,
               slant: torch.Tensor) -> torch.Tensor:
    """N×1×H×W hi-res dots: dot (i, j) lit where bits[:, i, j], radius r[:, i, j] (hi-res px),
    square where ``is_square``, rows shifted right by ``slant`` per row up; a one-pitch margin.

    Coverage is counted on 2×2 samples per hi-res pixel. A dot cuts each sample row in one
    interval (clipped to its cell), so every (image, sample row, dot) gives the first and the
    past-the-end sample of its run: +1 and -1 there and a cumulative sum along the row fill
    the runs. That is a few hundred numbers per image instead of a test at every sample."""
    n = len(bits)
    h, w = 7 * _PITCH + 2 * _PITCH, 5 * _PITCH + 2 * _PITCH
    ss = 2  # supersampling per hi-res pixel (framing then area-averages ~2.7x more); the
    # coverage count below adds pairs, so ss stays 2
    p = _PITCH
    # the sample rows of the 7 dot rows (the margin rows stay dark): 7 × ss·p rows
    ys = (torch.arange(p * ss, 8 * p * ss, dtype=torch.get_default_dtype()) + 0.5) / ss - p
    rows = (ys / p).floor().long()  # dot row of each sample row, 0..6
    dy = ys - (rows + 0.5) * p  # exact: multiples of 1/(2 ss)
    # slant: a dot row higher up moves right (print leans right); sample j sits at
    # v = (j + 0.5)/ss - p + off in the unslanted frame of the dots
    off = slant.view(-1, 1, 1) * (7 * p / 2 - ys.view(1, -1, 1))  # N×R×1
    rad = r[:, rows].to(ys.dtype)  # N×R×5
    on = bits[:, rows] > 0
    d2 = rad * rad - dy.view(1, -1, 1) ** 2
    inside_row = torch.where(is_square.view(-1, 1, 1), dy.abs().view(1, -1, 1) < rad, d2 > 0)
    half = torch.where(is_square.view(-1, 1, 1), rad, d2.clamp_min(0).sqrt())
    centre = (torch.arange(5, dtype=ys.dtype) + 0.5) * p  # N×R×5 after broadcasting
    cell = torch.arange(5, dtype=ys.dtype) * p

    def first_at_or_after(v: torch.Tensor) -> torch.Tensor:  # first j with (j+0.5)/ss - p + off >= v
        return torch.ceil((v + p - off) * ss - 0.5)

    def first_after(v: torch.Tensor) -> torch.Tensor:  # first j with (j+0.5)/ss - p + off > v
        return torch.floor((v + p - off) * ss - 0.5) + 1

    width = w * ss
    start = torch.maximum(first_after(centre - half), first_at_or_after(cell)).clamp(0, width)
    stop = torch.minimum(first_at_or_after(centre + half), first_at_or_after(cell + p)).clamp(0, width)
    lit = on & inside_row & (stop > start)
    start = torch.where(lit, start, 0).long()
    stop = torch.where(lit, stop, 0).long()
    edges = torch.zeros(n, len(ys), width + 1, dtype=torch.int32)
    edges.scatter_add_(2, start, lit.to(torch.int32))
    edges.scatter_add_(2, stop, -lit.to(torch.int32))
    runs = edges.cumsum_(2)[:, :, :width]
    # samples counted per pixel in integers (exact), then the coverage in the generation dtype
    # (float64: the framing's float32 sums differed between CPUs, v3's bytes on Intel Xeons)
    rows_ = runs[:, 0::ss] + runs[:, 1::ss]  # ss = 2: pairs of sample rows, then of columns
    counts = rows_[..., 0::ss] + rows_[..., 1::ss]
    counts = F.pad(counts, (0, 0, p, h - 8 * p))  # the dark margin rows
    return counts.unsqueeze(1).to(torch.get_default_dtype()).mul_(1 / (ss * ss))


register(family="fonts", kind="generative",
         description="print -> page artefacts (neighbours, underline, cell lines) -> scan at "
                     "10-16 px -> cell crop -> MNIST framing")(print_scan)
# v3: ladder re-graded; v4: framed in float64 (v3's float32 framing gave other bytes on Intel CPUs)
register(family="fonts", kind="generative", version=4,
         description="5×7 dot-matrix digits (receipt printers, LED/LCD displays)")(dot_matrix)


