"""Photo framing: find the digit in a photo (or scan) and hand only its ink to the MNIST framing.

The usual pipeline of phone-photo digit readers, in one place for real sets, folder OOD sets,
``predict`` and the camera shifts:

1. ink map (batched torch, one group of same-size images): for photo-sized images, the
   background is estimated at a large scale by grey-level opening/closing (a window wider than
   any pen stroke removes the strokes and keeps paper, shading, vignetting and glare), and the
   ink is the local contrast against it, divided by the local paper brightness so a shadow does
   not thin the strokes. Polarity: the side (white or black top-hat) with more centre-weighted
   energy, since the digit is near the middle and paper texture, glare and frame edges are not.
   Small crops (< SMALL_SIDE, the 8-32 px scans of digit datasets) keep the border-median ground
   of ``framing.lift_ink``: at 16 px there is no light gradient to model and the digit fills
   the frame, so an opening would eat it.
2. adaptive threshold and 3. connected components (``photo_digit``, per image on CPU): Otsu
   with hysteresis on the background-corrected ink, straight lines that cross the image cut
   out, the component nearest the centre and the strokes stacked over it kept.
   When that keeps nothing or only specks (faint ink under sensor noise), the faint-ink
   fallback (``faint_ink`` here, batched over those images only; ``photo_digit.faint_fallback``)
   thresholds a stroke-scale ink map by robust z-scores against the paper and marks the
   framing doubtful; when nothing credible stands out either, the framing is blank.
4. the kept ink goes to ``framing.frame_mnist`` (20 px box, centre of mass at the centre).

Real images (``frame_real``) larger than MAX_SIDE are shrunk to it first, antialiased; much
larger ones (a phone's 12 megapixels) by whole-block means before anything else
(``PRE_SIDE``), so a 4000×3000 photo frames about as fast as a 500-px one.

Each image also gets the reasons its framing is doubtful (``DOUBT_*``), for the report and
``predict``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .framing import MAX_SIDE, POLARITIES, REAL_CHUNK, detect_dark_on_light, frame_mnist, lift_ink, to_gray
from .photo_digit import (  # noqa: F401 - the doubt reasons are read from here
    DOUBT_BORDER,
    DOUBT_CONTRAST,
    DOUBT_EMPTY,
    DOUBT_FALLBACK,
    DOUBT_SEVERAL,
    LOW_CONTRAST,
    credible,
    faint_fallback,
    select_digit,
)

SMALL_SIDE = 40  # below this (shorter side) an image is a cropped scan, not a photo


def _odd(v: float) -> int:
    k = max(3, int(round(v)))
    return k if k % 2 else k + 1


def _max_filter(x: torch.Tensor, k: int) -> torch.Tensor:
    # separable: a k×k maximum is the maximum over rows of the maximum over columns (exact),
    # 2k comparisons per pixel instead of k²
    p = k // 2
    x = F.max_pool2d(F.pad(x, (p, p, 0, 0), mode="replicate"), (1, k), stride=1)
    return F.max_pool2d(F.pad(x, (0, 0, p, p), mode="replicate"), (k, 1), stride=1)


def _min_filter(x: torch.Tensor, k: int) -> torch.Tensor:
    return -_max_filter(-x, k)


def _box_blur(x: torch.Tensor, k: int) -> torch.Tensor:
    p = k // 2
    x = F.avg_pool2d(F.pad(x, (p, p, 0, 0), mode="replicate"), (1, k), stride=1)
    return F.avg_pool2d(F.pad(x, (0, 0, p, p), mode="replicate"), (k, 1), stride=1)


def _centre_weight(h: int, w: int, dtype, device) -> torch.Tensor:
    ys = (torch.arange(h, dtype=dtype, device=device) - (h - 1) / 2) / (0.3 * h)
    xs = (torch.arange(w, dtype=dtype, device=device) - (w - 1) / 2) / (0.3 * w)
    return torch.exp(-0.5 * (ys.view(h, 1) ** 2 + xs.view(1, w) ** 2))


def _dark_ink(x: torch.Tensor, cells: int = 6) -> torch.Tensor:
    """True where the ink is darker than its ground. The ground is the median of each of
    cells×cells tiles (ink covers less than half of a tile wider than a stroke, whatever the
    light does across the page); ink is the side of the residual with more centre-weighted
    mass (the digit is near the middle; paper grain and glare are everywhere). Top-hats would
    not do: a digit's counters are narrower than the window, so the white top-hat of dark ink
    lights up the whole inside of the digit."""
    n, _, h, w = x.shape
    ch, cw = h // cells, w // cells
    tiles = x[:, 0, : ch * cells, : cw * cells].reshape(n, cells, ch, cells, cw)
    ground = tiles.permute(0, 1, 3, 2, 4).reshape(n, 1, cells, cells, ch * cw).median(dim=-1).values
    ground = F.interpolate(ground, size=(h, w), mode="bilinear", align_corners=False)
    r = (x - ground) * _centre_weight(h, w, x.dtype, x.device)
    return r.clamp_max(0).sum(dim=(1, 2, 3)).neg() > r.clamp_min(0).sum(dim=(1, 2, 3))


def _dark_by_skew(x: torch.Tensor) -> torch.Tensor:
    """True where the ink is darker than the paper, for faint ink (the fallback's polarity).
    Paper is most of a photo and ink a sparse minority, so the detail left after a local mean
    (window 1/10 of the side: a few stroke widths) is skewed towards the ink's side; noise,
    grain and a shadow's edge are symmetric. ``_dark_ink``'s tile medians read the light
    instead once the ink is faint (a vignette's or shadow's curvature outweighs it: at ink
    0.18 it called 3-27% of dark digits dark; this test 99-100%)."""
    h, w = x.shape[-2:]
    k = _odd(max(h, w) / 10)
    detail = _box_blur(x, 3) - _box_blur(_box_blur(x, k), k)
    skew = (detail**3 * _centre_weight(h, w, x.dtype, x.device)).sum(dim=(1, 2, 3))
    return skew < 0


def faint_ink(x: torch.Tensor, polarity: str = "auto") -> torch.Tensor:
    """The faint-ink fallback's ink map N×1×H×W of photos, unclipped (paper noise on both sides
    of 0): each pixel's 3×3 mean against the mean of a window a few stroke widths wide (1/8 of
    the side), relative to that local paper. At this scale shading, a shadow's soft edge and a
    vignette are flat, so the paper's spread is what the noise and grain leave, and a faint
    stroke stands out of it (the opening's window, wide enough for a marker's stroke, leaves
    light bands that the fallback would take for ink on blank paper)."""
    h, w = x.shape[-2:]
    dark = (_dark_by_skew(x) if polarity == "auto"
            else torch.full((len(x),), polarity == "dark-on-light", device=x.device))
    y = torch.where(dark.view(-1, 1, 1, 1), 1.0 - x, x)
    k = _odd(max(h, w) / 8)
    local = _box_blur(_box_blur(y, k), k)
    return (_box_blur(y, 3) - local) / (1.0 - local).clamp_min(0.15)


def photo_ink(x: torch.Tensor, polarity: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Ink strength N×1×H×W in [0, 1] (0 = paper) and the ink's contrast N (0-1) of grey images
    N×1×H×W in [0, 1], batched. See the module docstring for the method."""
    raw, contrast = _photo_ink(x, polarity)
    return raw.clamp(0, 1), contrast


def _photo_ink(x: torch.Tensor, polarity: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``photo_ink`` before clipping to [0, 1]."""
    h, w = x.shape[-2:]
    if min(h, w) < SMALL_SIDE:
        if polarity == "dark-on-light":
            x = 1.0 - x
        elif polarity == "auto":
            x = torch.where(detect_dark_on_light(x).view(-1, 1, 1, 1), 1.0 - x, x)
        ground = torch.cat([x[:, 0, 0, :], x[:, 0, -1, :], x[:, 0, :, 0], x[:, 0, :, -1]], dim=1)
        contrast = x.amax(dim=(1, 2, 3)) - ground.median(dim=1).values
        return lift_ink(x), contrast.clamp_min(0)
    # the window must be well wider than a stroke (a marker's stroke is up to ~1/5 of the digit's
    # height, and the digit up to most of the image: at 1/6 of the side, thick strokes kept a
    # dark core in the background and came out hollow) and narrower than the light's
    # variation (a vignette, a shadow's soft edge); the smoothing, half the window, blends the
    # plateaus the opening leaves without reaching back into the strokes
    k = _odd(max(h, w) / 3.5)
    bg_white = _box_blur(_max_filter(_min_filter(x, k), k), _odd(k / 2))  # under bright ink: opening
    bg_black = _box_blur(_min_filter(_max_filter(x, k), k), _odd(k / 2))  # over dark ink: closing
    if polarity == "auto":
        dark = _dark_ink(x)
    else:
        dark = torch.full((len(x),), polarity == "dark-on-light", device=x.device)
    d = dark.view(-1, 1, 1, 1)
    y = torch.where(d, 1.0 - x, x)
    b = torch.where(d, 1.0 - bg_black, bg_white).clamp(0, 1)
    # ink relative to the local paper: (paper - pixel) / paper for dark ink, so ink under a
    # shadow keeps its strength; the floor stops a black corner (a vignette) from exploding
    # 3×3 mean first: sensor noise drops 3×, a pen stroke (several px wide in a photo) does not
    raw = _box_blur(((y - b) / (1.0 - b).clamp_min(0.15)), 3)
    flat = raw.clamp(0, 1).flatten(1)
    contrast = torch.quantile(flat, 0.998, dim=1) if flat.shape[1] <= 2**24 else flat.amax(dim=1)
    return raw, contrast


def frame_photo(x: torch.Tensor, polarity: str = "auto") -> tuple[torch.Tensor, list[tuple[str, ...]]]:
    """Photo framing of grey images N×1×H×W (one size, float64, at most framing.MAX_SIDE):
    framed N×1×28×28 and, per image, the reasons its framing is doubtful (empty when none)."""
    h, w = x.shape[-2:]
    ink, contrast = photo_ink(x, polarity)
    photo = min(h, w) >= SMALL_SIDE
    arr = ink[:, 0].cpu().numpy()
    kept = np.empty_like(arr)
    reasons, redo = [], []
    for i in range(len(arr)):  # per image: components (see photo_digit)
        kept[i], why = select_digit(arr[i], float(contrast[i]), photo)
        reasons.append(why)
        if photo and not credible(kept[i]):
            redo.append(i)
    if redo:  # faint ink lost under the noise floor: the fallback's own ink map, for those only
        faint = faint_ink(x[torch.tensor(redo)], polarity)[:, 0].cpu().numpy()
        for j, i in enumerate(redo):
            kept[i], reasons[i] = faint_fallback(faint[j], reasons[i])
    # a ratio from the image size alone: each framed digit depends only on itself
    ratio = max(2, math.ceil(max(h, w) / 20) * 2)
    out = frame_mnist(torch.from_numpy(kept).to(x.dtype).unsqueeze(1), sampling_ratio=ratio)
    return out, reasons


# -- the entry for real images (real sets, folder OOD sets, predict) --------------------------------

# Images this much longer than MAX_SIDE are first shrunk by whole k×k block means, in their own
# dtype, to between PRE_SIDE and 2×PRE_SIDE: a 4000×3000 phone photo made float64 and grey at
# full size, then filtered down to 112 px, spent ~100 ms on 12 megapixels the 28×28 never shows.
# 4× MAX_SIDE keeps the antialiased resize to MAX_SIDE that follows in charge of the result.
PRE_SIDE = 4 * MAX_SIDE
PRE_PIXELS = 2**24  # large images per batch: at most this many source pixels (~0.1 GB float64)


def _box_shrink(a: np.ndarray, k: int) -> np.ndarray:
    """Means of k×k blocks of images N×H×W(×C), float64 (the last, partial block of a row or
    column: the mean of the pixels there are). Block sums are added slice by slice in a fixed
    order and divided once, so the bytes do not depend on the CPU's vector width (uint8 sums
    are exact integers)."""
    sums, counts = a, []
    for axis in (1, 2):
        size = sums.shape[axis]
        blocks = -(-size // k)
        shape = list(sums.shape)
        shape[axis] = blocks
        acc = np.zeros(shape, np.float64)
        count = np.zeros(blocks)
        for i in range(min(k, size)):  # k strided slices (of every image at once), not pixels
            src = [slice(None)] * sums.ndim
            src[axis] = slice(i, None, k)
            part = sums[tuple(src)]
            dst = [slice(None)] * sums.ndim
            dst[axis] = slice(0, part.shape[axis])
            acc[tuple(dst)] += part
            count[: part.shape[axis]] += 1
        sums = acc
        counts.append(count)
    area = np.multiply.outer(counts[0], counts[1])
    return sums / (area if sums.ndim == 3 else area[..., None])


def _frame_group(x: torch.Tensor, polarity: str, size: tuple[int, int]) -> tuple[torch.Tensor, list[tuple[str, ...]]]:
    """Frame one batch; ``size``: the images' (h, w) before any block shrinking, which fixes the
    working size, so a shrunk photo is framed at the same size as it would have been."""
    h, w = size
    if max(h, w) > MAX_SIDE:
        s = MAX_SIDE / max(h, w)
        x = F.interpolate(x, size=(max(1, round(h * s)), max(1, round(w * s))), mode="bilinear",
                          antialias=True, align_corners=False).clamp(0, 1)
    return frame_photo(x, polarity)


def frame_real(images, polarity: str = "auto") -> torch.Tensor:
    """The framing of real digit images, each on its own: N×1×28×28 float32 in [0, 1].

    ``images``: a uint8 array N×H×W (or N×H×W×3), or a list of float arrays in [0, 1], each
    H×W or H×W×3, of any sizes. Steps: grayscale (ITU-R 601), shrink to at most MAX_SIDE, then
    the photo framing (``photo.frame_photo``: background and polarity, adaptive threshold, the
    digit's connected components, then ``frame_mnist``: tight ink box, longer side to 20 px
    keeping aspect, centre of mass at the centre of 28×28). Images of one size are framed
    together as one batch. ``frame_real_report`` also returns why each framing is doubtful.
    """
    return frame_real_report(images, polarity)[0]


def frame_real_report(images, polarity: str = "auto") -> tuple[torch.Tensor, list[tuple[str, ...]]]:
    """``frame_real`` and, per image, the reasons its framing is doubtful (empty when none)."""
    if polarity not in POLARITIES:
        raise ValueError(f"polarity must be one of {POLARITIES}, got {polarity!r}")
    if isinstance(images, np.ndarray):
        scale = 255.0 if images.dtype == np.uint8 else 1.0
        if images.ndim not in (3, 4):
            raise ValueError(f"frame_real expects N×H×W or N×H×W×3 images, got {images.shape}")
        items = list(images)
        shapes = {images.shape[1:]} if len(images) else set()
        groups = {shape: list(range(len(images))) for shape in shapes}
    else:
        scale, items = 1.0, list(images)
        groups: dict[tuple, list[int]] = {}
        for i, a in enumerate(items):
            groups.setdefault(tuple(a.shape), []).append(i)
    out = torch.zeros((len(items), 1, 28, 28), dtype=torch.float64)
    reasons: list[tuple[str, ...]] = [()] * len(items)
    for shape, idx in groups.items():
        h, w = shape[:2]
        k = max(h, w) // PRE_SIDE  # ≥ 2: shrink by k×k blocks first (see PRE_SIDE)
        step = REAL_CHUNK if k < 2 else max(1, min(REAL_CHUNK, PRE_PIXELS // (h * w)))
        for lo in range(0, len(idx), step):
            part = idx[lo : lo + step]
            if isinstance(images, np.ndarray) and len(groups) == 1:
                arr = images[part[0] : part[-1] + 1]  # one group of consecutive images: a view
            elif len(part) == 1 and k >= 2:
                arr = items[part[0]][None]  # a view: the block means below are the only copy
            else:
                arr = np.stack([items[i] for i in part])
            if k >= 2:
                arr = _box_shrink(arr, k)
            # float64, as sets are generated: float32 sums and matrix products differ between
            # CPUs by a unit in the last place, enough to move a pixel across a rounding step
            t = torch.from_numpy(np.ascontiguousarray(arr)).to(torch.float64) / scale
            t = t.unsqueeze(1) if t.dim() == 3 else t.permute(0, 3, 1, 2)
            framed, why = _frame_group(to_gray(t), polarity, (h, w))
            out[part] = framed
            for i, r in zip(part, why, strict=True):
                reasons[i] = r
    return out.to(torch.float32), reasons  # rounded once, the same on every CPU
