"""A digit written (or printed) on paper and photographed with a phone, then framed by the
photo framing that real photos get (``data.photo``): the scenario robustmnist exists for.

``phone_photo`` renders each digit as ink on paper in a CANVAS×CANVAS crop (the digit ~55 px
tall: what a phone photo of a digit on a page gives once cut around it), in the order light
reaches the sensor:

1. paper (seen through a tilt): the digit placed by one homography per image (perspective
   ``tilt``, ``rotate``, ``offset``, ``zoom``), ink of darkness ``ink``..1 with uneven
   ``pressure``; ruled lines and grid cells drawn on the same paper (``lines``, ``grid``), a
   neighbouring digit beside it (``neighbour``); paper tone ``paper``..0.95 and ``texture``;
2. light: a gradient across the page (``light``), ``vignette``, a soft ``shadow`` (a hand or
   the phone), ``glare``; the dark edge of a window, table or frame (``frame``);
3. optics and sensor: ``defocus`` (Gaussian sigma, px), ``motion`` (streak length, px),
   sensor ``noise`` (signal-dependent), 8-bit, ``jpeg`` quality (0 = off);
4. photo framing (``data.photo.frame_photo``), so the sets carry the framing's failures (a
   line kept as ink, a neighbour merged, a faint digit lost) as real photos do.

Every per-image value is drawn up front from ``g`` in a fixed order, per-pixel noise per
chunk of CHUNK images in order, so the output does not depend on how a caller batches.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..data.photo import frame_photo
from ._ops import filter_per_image, splat_points
from .digital import jpeg_roundtrip
from .fonts import gaussian_blur, generate_fonts
from .registry import register

CANVAS = 96  # the photo crop, px (a multiple of 8: JPEG blocks tile it)
DIGIT = 0.55  # the 28-px MNIST box spans this fraction of the crop (the digit ~0.4 of it)
CHUNK = 128
BASE_BLUR = 1.5  # px of the crop (the digit ~55 px tall)


def _u(n: int, g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand((n, *shape), generator=g).to(torch.get_default_dtype())


def _draw(n: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Every per-image draw, in a fixed order (all drawn whatever the level: the ladder's
    levels then share the draws, so a harder level moves the same images further)."""
    names = ("tilt_x", "tilt_y", "rot", "off_r", "off_a", "zoom", "ink", "press_cells",
             "line_on", "line_phase", "line_gap", "grid_on", "grid_phase", "nb_on", "nb_side",
             "paper", "light_a", "light_s", "vig", "shadow_on", "shadow_a", "shadow_d", "shadow_s",
             "glare_s", "glare_x", "glare_y", "frame_on", "frame_side", "frame_w", "frame_tone",
             "defocus", "motion_len", "motion_a")
    d = {k: _u(n, g) for k in names}
    d["press_cells"] = _u(n, g, 5, 5)
    d["texture"] = _u(n, g, 12, 12)
    return d


def _homography(d: dict, tilt: float, rotate: float, offset: float, zoom: float) -> torch.Tensor:
    """N×3×3 from crop coordinates (-1..1) to the digit's own (-1..1 over its 28-px box)."""
    n = len(d["rot"])
    a = torch.deg2rad(rotate * (2 * d["rot"] - 1))
    s = (1 + zoom * (2 * d["zoom"] - 1)) * DIGIT
    r = offset * d["off_r"]
    ox, oy = r * torch.cos(2 * math.pi * d["off_a"]), r * torch.sin(2 * math.pi * d["off_a"])
    m = torch.zeros(n, 3, 3)
    m[:, 0, 0], m[:, 0, 1] = torch.cos(a) / s, torch.sin(a) / s
    m[:, 1, 0], m[:, 1, 1] = -torch.sin(a) / s, torch.cos(a) / s
    m[:, 0, 2] = -(m[:, 0, 0] * ox + m[:, 0, 1] * oy)
    m[:, 1, 2] = -(m[:, 1, 0] * ox + m[:, 1, 1] * oy)
    # perspective: the page leans away from the lens (w grows along x and y)
    m[:, 2, 0], m[:, 2, 1] = tilt * (2 * d["tilt_x"] - 1), tilt * (2 * d["tilt_y"] - 1)
    m[:, 2, 2] = 1
    return m


def _paper_coords(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n = len(m)
    t = (torch.arange(CANVAS) * 2 + 1) / CANVAS - 1
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    p = torch.stack([xx, yy, torch.ones_like(xx)], 0).view(1, 3, -1).expand(n, 3, -1)
    q = m @ p
    w = q[:, 2].clamp_min(0.2)
    return (q[:, 0] / w).view(n, CANVAS, CANVAS), (q[:, 1] / w).view(n, CANVAS, CANVAS)


def _band(coord: torch.Tensor, phase: torch.Tensor, gap: torch.Tensor, width: float) -> torch.Tensor:
    """Anti-aliased periodic lines (a ruled page) along ``coord`` (paper units)."""
    k = phase.view(-1, 1, 1)
    dist = torch.remainder(coord - k * gap.view(-1, 1, 1), gap.view(-1, 1, 1))
    dist = torch.minimum(dist, gap.view(-1, 1, 1) - dist)
    return (1.5 - dist / width).clamp(0, 1)


def _scene(x: torch.Tensor, d: dict, p: dict) -> torch.Tensor:
    """Photos N×1×CANVAS×CANVAS in [0, 1] of digits x (N×1×28×28, white ink on black)."""
    m = _homography(d, p["tilt"], p["rotate"], p["offset"], p["zoom"])
    u, v = _paper_coords(m)
    grid = torch.stack([u, v], dim=-1).to(x.dtype)
    # MNIST's soft edges read as a pen's line once sharpened: the upsampled digit is stretched
    digit = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    digit = ((digit - 0.15) / 0.5).clamp(0, 1)
    side = torch.where(d["nb_side"] < 0.5, -1.0, 1.0).view(-1, 1, 1, 1)
    nb_grid = grid.clone()
    nb_grid[..., 0] = grid[..., 0] - side[:, 0] * 1.45  # the next character, 0.7 digit boxes on
    nb = F.grid_sample(x, nb_grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    nb = ((nb - 0.15) / 0.5).clamp(0, 1) * (d["nb_on"] < p["neighbour"]).to(x.dtype).view(-1, 1, 1, 1)
    digit = torch.maximum(digit, nb)
    pressure = 1 - p["pressure"] * (0.5 + 0.5 * F.interpolate(d["press_cells"].unsqueeze(1),
                                                              size=(CANVAS, CANVAS), mode="bicubic",
                                                              align_corners=False).clamp(-1, 1))
    darkness = (p["ink"] + (1 - p["ink"]) * d["ink"]).view(-1, 1, 1, 1)
    ink = digit * pressure * darkness
    # ruled lines ~0.8 digit heights apart, grid cells one box wide; lines drawn lighter (blue ink
    # and printed rules read ~0.35-0.5 in grey)
    gap = (1.3 + 0.5 * d["line_gap"])
    width = 0.03
    lines = _band(v, d["line_phase"], gap, width) * (d["line_on"] < p["lines"]).to(x.dtype).view(-1, 1, 1)
    cells = torch.maximum(_band(u, d["grid_phase"], gap, width), _band(v, d["grid_phase"], gap, width))
    lines = torch.maximum(lines, cells * (d["grid_on"] < p["grid"]).to(x.dtype).view(-1, 1, 1))
    ink = torch.maximum(ink, 0.45 * lines.unsqueeze(1))
    paper = (p["paper"] + (0.95 - p["paper"]) * d["paper"]).view(-1, 1, 1, 1)
    tex = F.interpolate(d["texture"].unsqueeze(1) * 2 - 1, size=(CANVAS, CANVAS), mode="bilinear",
                        align_corners=False)
    reflect = paper * (1 + p["texture"] * tex) * (1 - ink)
    # light: a linear gradient, a vignette, a soft-edged shadow over part of the crop, a glare spot
    t = (torch.arange(CANVAS) * 2 + 1) / CANVAS - 1
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    la = 2 * math.pi * d["light_a"].view(-1, 1, 1)
    grad = 1 - p["light"] * d["light_s"].view(-1, 1, 1) * (0.5 + 0.5 * (torch.cos(la) * xx + torch.sin(la) * yy))
    vig = 1 - p["vignette"] * (0.5 + 0.5 * d["vig"].view(-1, 1, 1)) * (xx**2 + yy**2) / 2
    sa = 2 * math.pi * d["shadow_a"].view(-1, 1, 1)
    edge = torch.cos(sa) * xx + torch.sin(sa) * yy - (d["shadow_d"].view(-1, 1, 1) * 1.2 - 0.3)
    shadow = 1 - p["shadow"] * (0.6 + 0.4 * d["shadow_s"].view(-1, 1, 1)) * torch.sigmoid(edge / 0.12)
    shadow = torch.where((d["shadow_on"] < 0.8).view(-1, 1, 1), shadow, torch.ones_like(shadow))
    glare = p["glare"] * d["glare_s"].view(-1, 1, 1) * torch.exp(
        -((xx - (d["glare_x"].view(-1, 1, 1) - 0.5) * 1.4) ** 2
          + (yy - (d["glare_y"].view(-1, 1, 1) - 0.5) * 1.4) ** 2) / 0.18)
    img = reflect * (grad * vig * shadow).unsqueeze(1) + glare.unsqueeze(1)
    # the dark edge of a window, a table or the paper's end along one side of the crop
    fs = (d["frame_side"] * 4).long().clamp(0, 3)
    coord = torch.stack([xx, -xx, yy, -yy])[fs]  # 1 at the chosen side
    fw = 0.1 + 0.25 * d["frame_w"].view(-1, 1, 1)
    frame = torch.sigmoid((coord - (1 - fw)) / 0.02) * (d["frame_on"] < p["frame"]).to(x.dtype).view(-1, 1, 1)
    tone = 0.05 + 0.15 * d["frame_tone"].view(-1, 1, 1, 1)
    return torch.lerp(img, tone.expand_as(img), frame.unsqueeze(1)).clamp(0, 1)


def _optics(img: torch.Tensor, d: dict, p: dict, noise: torch.Tensor) -> torch.Tensor:
    n = len(img)
    # every phone photo is a little soft (lens, demosaicing, the phone's own denoising): a
    # sharp render framed like MNIST has harder edges than MNIST's digits, and reads worse
    # than a slightly blurred one; ``defocus`` adds to that base in quadrature
    sigma = (BASE_BLUR**2 + (p["defocus"] * (0.5 + 0.5 * d["defocus"])) ** 2).sqrt()
    img = gaussian_blur(img, sigma, radius=8)
    if p["motion"] > 0:
        length = p["motion"] * (0.5 + 0.5 * d["motion_len"])
        t = torch.linspace(-0.5, 0.5, 9).view(1, -1) * length.view(-1, 1)
        a = math.pi * d["motion_a"].view(-1, 1)
        reach = math.ceil(p["motion"] / 2) + 1
        kernels = splat_points(torch.sin(a) * t, torch.cos(a) * t, torch.full((n, 9), 1 / 9), 2 * reach + 1)
        img = filter_per_image(img, kernels.to(img.dtype))
    if p["noise"] > 0:  # shot noise grows with the signal, read noise does not
        img = img + p["noise"] * (0.3 + img).sqrt() * noise
    img = torch.floor(img.clamp(0, 1) * 255 + 0.5) / 255
    if p["jpeg"] > 0:
        img = jpeg_roundtrip(img, int(p["jpeg"]))
    return img.clamp(0, 1)


_DEFAULTS = dict(tilt=0.0, rotate=0.0, offset=0.0, zoom=0.0, ink=1.0, pressure=0.0, lines=0.0,
                 grid=0.0, neighbour=0.0, paper=0.9, texture=0.0, light=0.0, vignette=0.0,
                 shadow=0.0, glare=0.0, frame=0.0, defocus=0.0, motion=0.0, noise=0.0, jpeg=0)


def photograph(x: torch.Tensor, g: torch.Generator, framed: bool = True, **params) -> torch.Tensor:
    """Photos of digits x (N×1×28×28), framed to 28×28 (``framed``) or the raw CANVAS crops."""
    p = {**_DEFAULTS, **params}
    n = len(x)
    d = _draw(n, g)
    out = torch.empty(n, 1, 28, 28) if framed else torch.empty(n, 1, CANVAS, CANVAS)
    for a in range(0, n, CHUNK):
        sl = slice(a, a + CHUNK)
        k = len(x[sl])
        noise = torch.randn((k, 1, CANVAS, CANVAS), generator=g).to(torch.get_default_dtype())
        img = _optics(_scene(x[sl], {key: t[sl] for key, t in d.items()}, p),
                      {key: t[sl] for key, t in d.items()}, p, noise)
        out[sl] = frame_photo(img.to(torch.float64))[0].to(out.dtype) if framed else img
    return out


def phone_photo(x: torch.Tensor, g: torch.Generator, *, tilt: float = 0.0, rotate: float = 0.0,
                offset: float = 0.0, zoom: float = 0.0, ink: float = 1.0, pressure: float = 0.0,
                lines: float = 0.0, grid: float = 0.0, neighbour: float = 0.0, paper: float = 0.9,
                texture: float = 0.0, light: float = 0.0, vignette: float = 0.0, shadow: float = 0.0,
                glare: float = 0.0, frame: float = 0.0, defocus: float = 0.0, motion: float = 0.0,
                noise: float = 0.0, jpeg: int = 0) -> torch.Tensor:
    """Handwritten digits photographed on paper and framed; the parameters are in the module
    docstring (probabilities for lines, grid, neighbour, frame; maxima for the rest)."""
    params = {k: v for k, v in locals().items() if k not in ("x", "g")}
    return photograph(x, g, **params)


def phone_photo_print(n: int, g: torch.Generator, *, faces: str = "all", **params) -> tuple[torch.Tensor, torch.Tensor]:
    """Printed digits (the evaluation font faces) photographed the same way."""
    x, y = generate_fonts(n, g, category="all", faces=faces, split="eval")
    return photograph(x, g, **params), y


# version 3: the photo framing's faint-ink fallback (issue 26) frames the faint and noisy photos
# that came out blank or as a speck before
VERSION = 3

for _name, _what in (
    ("camera_light", "paper tone and texture, faint ink, uneven light, vignetting, shadow, glare"),
    ("camera_optics", "defocus and motion blur, sensor noise, JPEG"),
    ("camera_angle", "perspective tilt, rotation, off-centre and zoomed framing"),
    ("camera_marks", "ruled lines, grid cells, a neighbouring digit, a frame edge"),
    ("camera_phone", "everything a phone photo of a handwritten digit brings, together"),
):
    register(_name, family="camera", version=VERSION, description=f"phone photo of a handwritten digit: "
             f"{_what}; then photo framing")(phone_photo)
register("camera_print", family="camera", kind="generative", version=VERSION,
         description="phone photo of a printed digit (evaluation font faces): light, optics, tilt, "
                     "marks; then photo framing")(phone_photo_print)
