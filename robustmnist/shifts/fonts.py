"""Printed digits: 0-9 rendered from the pinned fonts in ``fonts/``, framed as MNIST was built.

An MNIST model meets printed digits on forms, receipts and screenshots; an MNIST-only model
scored 81.4% on ~8,200 Google-Fonts renderings (ANCHORS §7), and ~20% when the renderings
skipped MNIST's framing. So every digit here is white on black, anti-aliased, fitted into
20×20 keeping its aspect ratio, with its centre of mass at the centre (``frame_mnist``).

Pipeline. Each (face, digit) glyph is rasterised once from its outline into a cached glyph
bank: 256 coverage samples across the glyph (GLYPH_BOX px, 8×8 samples each, inside a
CANVAS px square leaving room to slant and rotate), 1.6× the 20-px box. A set is then built
with batched tensor ops only: pick glyphs, change the stroke weight (grey-scale dilation or
erosion), slant and rotate (one affine resample), drop out toner, frame down to 28×28 (the
resampling is where the anti-aliasing comes from), then uneven ink, a small mis-crop offset,
toner specks and scanner blur. Severity 1 is clean regular upright faces; the ladder's
parameters live in ``shifts/parts/fonts.toml``.

Why our own rasteriser instead of PIL/FreeType: the set must be byte-identical on any
machine, and FreeType's output varies with its version (bundled differently in every Pillow
wheel) and its hinting. Filling the flattened outline with a non-zero-winding scanline in
numpy depends on nothing but the font file, which ``fonts/manifest.toml`` pins by sha256.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..assets import fonts_dir
from ..data.framing import frame_mnist, shift_integer
from ..errors import UserError
from ._ops import max3x3, max_plus, resize, separable_filter
from .glyphs import (
    CANVAS,
    HIRES_PER_PX,
    _glyph_bank,
    _ink_span,
    glyph_bank,
    load_manifest,
    select_faces,
)
from .registry import register

FONTS_VERSION = 4  # v2: 200+ faces, evaluation faces only; v3: nested float64 generation (as every shift);
# v4: the suite ladders re-graded (all faces at every level, harder defects: issue 15)

MIN_WIDTH, MAX_WIDTH = 1.0, 4.5  # framed px; MNIST strokes are ~2.2 px (median)
# images per batch of hi-res work (the output does not depend on it): small enough that a
# batch's canvases stay in the CPU's cache, 15% faster than 1024
CHUNK = 256
# roi_align samples per output bin when framing. Fixed: frame_mnist's default follows the batch's
# largest glyph, so one glyph slanted and grown past 40 px (the ladder's level 5) changed its
# whole chunk's bytes with CHUNK. 4 is what every chunk of glyphs up to 40 px got before.
FRAME_SAMPLES = 4


# --------------------------------------------------------------------------- batched ops


def _dilate(x: torch.Tensor, step: int) -> torch.Tensor:
    """One step of grey-scale dilation, alternating a 3×3 square and a plus: repeated, the
    pair grows strokes by an octagon, close to the round pen of a real bold face."""
    if step % 2 == 0:
        return max3x3(x)
    return max_plus(x)


def change_weight(x: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Grow (radius > 0) or thin (radius < 0) each image's strokes by ``radius`` px per side,
    fractional radii interpolating between whole steps (a hat-weighted sum of the levels).

    Maxima, products and sums of two numbers round the same on every CPU, so this runs in
    x's dtype even when sets are made in float64; only the weights come from ``radius``.
    An image's sum has at most two non-zero terms (the steps either side of its radius), so
    each image is dilated only as far as its own radius and only in its own direction: the
    terms left out are exact zeros, and the bytes are those of summing every level for all."""
    r = radius.view(-1, 1, 1, 1)

    def hat(k: int, rr: torch.Tensor) -> torch.Tensor:
        return (1 - (rr - k).abs()).clamp_min(0).to(x.dtype)

    out = x * hat(0, r)
    for sign in (1, -1):
        idx = torch.nonzero(radius.view(-1) * sign > 0).squeeze(1)
        level = x[idx] * sign  # thinning dilates the negated ink
        rr = r[idx]
        k = 1
        while len(idx):
            level = _dilate(level, k)
            out.index_add_(0, idx, level * sign * hat(sign * k, rr))
            more = (rr.view(-1) * sign > k).nonzero().squeeze(1)  # images still short of |radius|
            idx, level, rr = idx[more], level[more], rr[more]
            k += 1
    return out


def warp_square(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Resample square images: output pixel p reads source ``m @ (p - c) + c`` (m N×2×2 in
    (x, y) order, c the grid centre), bilinear, zeros outside. On a square grid with
    align_corners=False, affine_grid's normalised coordinates are pixel coordinates about the
    centre scaled equally on both axes, so ``m`` goes into theta unchanged."""
    n, _, h, w = x.shape
    assert h == w, "warp_square needs square images"
    # affine_grid's grid, by broadcasting: its batched matrix product costs more than the
    # sampling on CPU. Plain products and sums (no fused multiply-add) round alike on any CPU.
    t = ((torch.arange(w, dtype=x.dtype) * 2 + 1) / w - 1).view(1, 1, w)
    c = m.to(x.dtype).reshape(n, 4, 1, 1)
    grid = torch.empty(n, h, w, 2, dtype=x.dtype)
    # each component summed straight into its strided place: no temporary of the grid's size
    torch.add(c[:, 0] * t, c[:, 1] * t.view(1, w, 1), out=grid[..., 0])
    torch.add(c[:, 2] * t, c[:, 3] * t.view(1, w, 1), out=grid[..., 1])
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, radius: int = 3) -> torch.Tensor:
    """Gaussian blur with one sigma per image (0 = unchanged), edges repeated: the separable
    kernel, ``2·radius + 1`` taps, as one matrix per axis and image."""
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    s = sigma.to(x.dtype).clamp_min(1e-3).view(-1, 1)
    k = torch.exp(-0.5 * (t.view(1, -1) / s) ** 2)
    return separable_filter(x, k / k.sum(dim=1, keepdim=True))


def smooth_field(coarse: torch.Tensor, size: int) -> torch.Tensor:
    """Upsample an N×1×k×k random grid to size×size (bicubic): a smooth random field in ~[0, 1]."""
    return resize(coarse, size, size, "bicubic")


# --------------------------------------------------------------------------- the shift


@dataclass(frozen=True)
class PrintParams:
    """One severity level of printing defects (see shifts/parts/fonts.toml for the ladder)."""

    weight: float = 0.0  # max change of stroke width, framed px (bold/light ink spread)
    shear: float = 0.0  # max slant (dx/dy) of an oblique/italic lean, mostly to the right
    rotate: float = 0.0  # max rotation, degrees, either way (skewed page)
    offset: float = 0.0  # max mis-crop of the digit after framing, px
    ink: float = 0.0  # max darkening of low-frequency uneven ink, fraction of intensity
    dropout: float = 0.0  # fraction of the stroke area where toner is missing
    toner: float = 0.0  # probability of a stray toner speck per background pixel
    blur: float = 0.0  # max scanner blur sigma, framed px


def render_digits(glyph_idx: torch.Tensor, labels: torch.Tensor, g: torch.Generator,
                  p: PrintParams, root: Path | None = None) -> torch.Tensor:
    """Float N×1×28×28 digits for the given face indices and labels, with printing defects.

    Every random number is drawn up front for all N (in a fixed order), then the hi-res work
    runs in chunks: the output does not depend on CHUNK and memory stays bounded.
    """
    glyphs, widths = glyph_bank(root)
    glyphs32 = _glyph_bank(str(root or fonts_dir()), torch.float32)[0]
    ink_lo, ink_hi = _ink_span(str(root or fonts_dir()))
    n = len(labels)
    u = lambda *shape: torch.rand((n, *shape), generator=g)  # noqa: E731
    # Thin faces must survive thinning (keep >= MIN_WIDTH framed px) and bold faces must not
    # fill their counters (keep <= MAX_WIDTH): ink spread changes a face, it does not erase it.
    w_px = p.weight * (2 * u() - 1)
    w_hi = widths[glyph_idx, labels]
    lo = -((w_hi - MIN_WIDTH * HIRES_PER_PX) / 2).clamp_min(0)
    hi = ((MAX_WIDTH * HIRES_PER_PX - w_hi) / 2).clamp_min(0)
    radius = torch.minimum(torch.maximum(w_px * HIRES_PER_PX / 2, lo), hi)
    slant = p.shear * (1.25 * u() - 0.25)  # print leans right; a little left for skew
    angle = torch.deg2rad(p.rotate * (2 * u() - 1))
    off_r, off_a = p.offset * u(), 2 * math.pi * u()
    ink_coarse = u(1, 4, 4)
    drop_coarse = u(1, CANVAS // 2, CANVAS // 2)
    speck_at, speck_level = u(1, 28, 28), u(1, 28, 28)
    sigma = p.blur * (0.5 + 0.5 * u())

    out = torch.empty(n, 1, 28, 28)
    if n == 0:
        return out
    for s in range(0, n, CHUNK):
        sl = slice(s, s + CHUNK)
        # float32 is exact for the glyphs (multiples of 1/64) and for change_weight, and
        # halves the memory traffic of the gather and the dilations
        x = glyphs32[glyph_idx[sl], labels[sl]].unsqueeze(1)
        if p.weight > 0:
            # only the square around the bank's ink that the dilations can reach (and a pixel
            # of black beyond): outside it every level is exactly 0, so the bytes are those of
            # the whole canvas, for 40% fewer pixels
            reach = int(math.ceil(float(radius[sl].abs().max()))) + 1
            a, b = max(0, ink_lo - reach), min(CANVAS, ink_hi + reach)
            part = change_weight(x[..., a:b, a:b], radius[sl]).clamp_(0, 1)
            x = F.pad(part, (a, CANVAS - b, a, CANVAS - b))
        x = x.to(glyphs.dtype)
        if p.shear > 0 or p.rotate > 0:
            cos, sin = torch.cos(angle[sl]), torch.sin(angle[sl])
            rot = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
            sh = torch.eye(2).repeat(len(cos), 1, 1)
            sh[:, 0, 1] = -slant[sl]  # x' = x - slant·(y - centre): the top moves right
            x = warp_square(x, torch.linalg.inv(rot @ sh))
        if p.dropout > 0:
            field = resize(drop_coarse[sl], CANVAS, CANVAS, "bilinear")
            # Soft threshold: blobs ~1.2 framed px where the field is lowest lose their toner.
            x = x * field.sub_(p.dropout).div_(0.05).clamp_(0, 1)
        out[sl] = frame_mnist(x, sampling_ratio=FRAME_SAMPLES)
    if p.ink > 0:
        out = out * (1 - p.ink * smooth_field(ink_coarse, 28).clamp(0, 1))
    if p.offset > 0:
        # A segmenter's crop off by whole pixels of the scan (a sub-pixel bilinear shift would
        # blur every digit as well, confounding offset with blur).
        out = shift_integer(out, off_r * torch.sin(off_a), off_r * torch.cos(off_a))
    if p.toner > 0:
        specks = (speck_at < p.toner).to(torch.get_default_dtype()) * (0.3 + 0.6 * speck_level)
        out = torch.maximum(out, specks)
    if p.blur > 0:
        out = gaussian_blur(out, sigma)
    return out.clamp_(0, 1)


def balanced_labels(n: int, g: torch.Generator) -> torch.Tensor:
    """n labels, each digit n/10 times (±1), in random order."""
    return (torch.arange(n) % 10)[torch.randperm(n, generator=g)]


def sample_faces(n: int, eligible: list[int], g: torch.Generator) -> torch.Tensor:
    """n face indices cycling evenly through ``eligible``, in random order."""
    idx = torch.tensor(eligible, dtype=torch.long)
    return idx[(torch.arange(n) % len(idx))[torch.randperm(n, generator=g)]]


def generate_fonts(n: int, g: torch.Generator, *, category: str = "all", faces: str = "regular",
                   split: str = "eval", root: Path | None = None,
                   **defects: float) -> tuple[torch.Tensor, torch.Tensor]:
    """n balanced printed digits from the faces of ``category`` in face set ``faces`` and face
    split ``split`` (training-time augmentation passes "train")."""
    unknown = set(defects) - set(PrintParams.__dataclass_fields__)
    if unknown:
        raise UserError(f"unknown fonts parameter(s) {', '.join(sorted(unknown))}; known: "
                        f"category, faces, {', '.join(PrintParams.__dataclass_fields__)}")
    eligible = select_faces(load_manifest(root), category, faces, split)
    y = balanced_labels(n, g)
    face = sample_faces(n, eligible, g)
    x = render_digits(face, y, g, PrintParams(**defects), root)
    return x, y


def _register_category(name: str, category: str, description: str) -> None:
    def fn(n: int, g: torch.Generator, *, category: str = category, split: str = "eval",
           **params):
        return generate_fonts(n, g, category=category, split=split, **params)

    fn.__name__ = name
    fn.__doc__ = generate_fonts.__doc__
    register(name, family="fonts", description=description, kind="generative",
             version=FONTS_VERSION)(fn)


_register_category("fonts", "all", "printed digits from the pinned fonts, framed as MNIST")
_register_category("fonts_sans", "sans", "printed digits, sans-serif faces")
_register_category("fonts_serif", "serif", "printed digits, serif faces")
_register_category("fonts_mono", "mono", "printed digits, monospace (typewriter/code) faces")
_register_category("fonts_ocr", "ocr", "printed digits, OCR and signage faces (OCR-A/B, DIN, "
                   "road signs, cockpit, CAD)")
_register_category("fonts_display", "display", "printed digits, display faces (condensed, "
                   "rounded, stencil, decorative)")
_register_category("fonts_segment", "segment", "seven- and fourteen-segment display digits")
_register_category("fonts_handwriting", "handwriting", "digits from handwriting-like fonts")
