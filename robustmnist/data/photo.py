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
2. adaptive threshold: Otsu on the background-corrected ink (the correction makes one global
   threshold adaptive to the local light), with hysteresis (weak pixels down to half of it join
   a component holding a strong one) and a floor at a few noise sigmas.
3. connected components (scipy.ndimage.label, per image): long straight strokes that cross the
   whole image (ruled lines, grid cells, frame edges) are cut out; then the component nearest
   the centre among the large ones that do not touch the border is the digit, and components
   stacked over or inside it (the strokes of one digit broken by thresholding) join it; a
   neighbouring digit sits beside it and stays out. Labelling runs per image on CPU because
   photos arrive one by one at various sizes and a 112-px label is ~50 µs; a batched torch
   union-find would save nothing at these sizes.
4. the kept ink goes to ``framing.frame_mnist`` (20 px box, centre of mass at the centre).

Each image also gets the reasons its framing is doubtful (``DOUBT_*``), for the report and
``predict``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .framing import MAX_SIDE, POLARITIES, REAL_CHUNK, detect_dark_on_light, frame_mnist, lift_ink, to_gray

SMALL_SIDE = 40  # below this (shorter side) an image is a cropped scan, not a photo
LOW_CONTRAST = 0.12  # ink darker than its paper by less than this (0-1) is very faint
DOUBT_BORDER = "ink touches the border"
DOUBT_SEVERAL = "several large components"
DOUBT_CONTRAST = "very low contrast"
DOUBT_EMPTY = "no ink found"


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


def photo_ink(x: torch.Tensor, polarity: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Ink strength N×1×H×W in [0, 1] (0 = paper) and the ink's contrast N (0-1) of grey images
    N×1×H×W in [0, 1], batched. See the module docstring for the method."""
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
    ink = _box_blur(((y - b) / (1.0 - b).clamp_min(0.15)), 3).clamp(0, 1)
    flat = ink.flatten(1)
    contrast = torch.quantile(flat, 0.998, dim=1) if flat.shape[1] <= 2**24 else flat.amax(dim=1)
    return ink, contrast


def _otsu(v: np.ndarray) -> float:
    """Otsu's threshold of the values (64 bins over their range)."""
    hist, edges = np.histogram(v, bins=64, range=(0.0, float(v.max())))
    hist = hist.astype(np.float64)
    mids = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * mids)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(edges[int(np.argmax(between[:-1])) + 1])


def _crossing_lines(mask: np.ndarray) -> np.ndarray:
    """Pixels of straight horizontal or vertical strokes that cross (nearly) the whole image:
    ruled lines, grid cells, the edges of a window or frame. A digit's own bar (a 7's top, a
    4's crossbar) does not span 85% of a photo, so it stays."""
    from scipy import ndimage

    h, w = mask.shape
    out = np.zeros_like(mask)
    for axis, length, span in ((1, w, w), (0, h, h)):
        shape = (1, max(3, length // 3)) if axis == 1 else (max(3, length // 3), 1)
        opened = ndimage.binary_opening(mask, structure=np.ones(shape, bool))
        if not opened.any():
            continue
        lab, n = ndimage.label(opened, structure=np.ones((3, 3), bool))
        for i, sl in enumerate(ndimage.find_objects(lab), start=1):
            extent = sl[axis].stop - sl[axis].start
            if extent >= 0.85 * span:
                out |= lab == i
    # grow by a pixel: the line's anti-aliased edge would otherwise stay as two thin slivers
    return ndimage.binary_dilation(out, structure=np.ones((3, 3), bool)) & mask if out.any() else out


def select_digit(ink: np.ndarray, contrast: float, photo: bool) -> tuple[np.ndarray, tuple[str, ...]]:
    """Keep the digit's ink in one image's ink map (H×W, 0 = paper); the doubt reasons."""
    from scipy import ndimage

    reasons: list[str] = []
    peak = float(ink.max())
    if peak <= 1e-6:
        return np.zeros_like(ink), (DOUBT_EMPTY,)
    if contrast < LOW_CONTRAST:
        reasons.append(DOUBT_CONTRAST)
    v = ink / peak
    hi = _otsu(v[v > 0.02]) if (v > 0.02).sum() > 4 else 0.5
    # noise: the ink map is the positive half of (ink + noise) on paper, so the paper's 75th
    # percentile (ink covers far less than a quarter of a photo) sits at 0.674 sigma
    sigma = float(np.quantile(v, 0.75)) / 0.674 if photo else 0.0
    lo = max(0.5 * hi, 3.0 * sigma, 0.05)
    hi = max(hi, lo)
    weak = v >= lo
    if photo:
        weak &= ~_crossing_lines(weak)
    eight = np.ones((3, 3), bool)
    lab, n = ndimage.label(weak, structure=eight)
    if n == 0:
        return np.zeros_like(ink), (*reasons, DOUBT_EMPTY)
    strong_in = np.bincount(lab[v >= hi], minlength=n + 1)[1:] > 0  # hysteresis
    area = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    boxes = ndimage.find_objects(lab)
    h, w = ink.shape
    comps = []
    for i in range(n):
        ys, xs = boxes[i]
        touches = ys.start == 0 or xs.start == 0 or ys.stop == h or xs.stop == w
        comps.append((i + 1, int(area[i]), ys.start, ys.stop, xs.start, xs.stop, touches))
    big = max(c[1] for c, s in zip(comps, strong_in, strict=True) if s) if strong_in.any() else 0
    cands = [c for c, s in zip(comps, strong_in, strict=True) if s and c[1] >= max(2, 0.05 * big)]
    if not cands:
        return np.zeros_like(ink), (*reasons, DOUBT_EMPTY)
    inner = [c for c in cands if not c[6]]
    pool = inner or cands
    top = max(c[1] for c in pool)
    pool = [c for c in pool if c[1] >= 0.25 * top]

    def dist(c) -> float:
        return math.hypot((c[2] + c[3]) / 2 - h / 2, (c[4] + c[5]) / 2 - w / 2)

    seed = min(pool, key=lambda c: (dist(c), -c[1]))
    group = [seed]
    y0, y1, x0, x1 = seed[2:6]
    others = [c for c in cands if c is not seed and (seed[6] or not c[6])]
    changed = True
    while changed:  # strokes of one digit: stacked over the group, or inside its box
        changed = False
        for c in list(others):
            gh, gw = y1 - y0, x1 - x0
            overlap_x = min(x1, c[5]) - max(x0, c[4])
            gap_y = max(c[2] - y1, y0 - c[3], 0)
            inside = c[2] >= y0 - 1 and c[3] <= y1 + 1 and c[4] >= x0 - 1 and c[5] <= x1 + 1
            if inside or (overlap_x >= 0.5 * min(gw, c[5] - c[4]) and gap_y <= 0.25 * gh):
                group.append(c)
                others.remove(c)
                y0, y1, x0, x1 = min(y0, c[2]), max(y1, c[3]), min(x0, c[4]), max(x1, c[5])
                changed = True
    kept = sum(c[1] for c in group)
    if photo and any(c[6] for c in group):
        reasons.append(DOUBT_BORDER)
    if any(not c[6] and c[1] >= 0.5 * kept for c in others):
        reasons.append(DOUBT_SEVERAL)
    keep = np.isin(lab, [c[0] for c in group])
    # one pixel around the kept strokes: their anti-aliased edge, below the weak threshold
    keep = ndimage.binary_dilation(keep, structure=eight) & ~(weak & ~keep)
    out = np.where(keep, v, 0.0)
    return out / max(float(out.max()), 1e-6), tuple(reasons)  # the digit's own peak to 1


def frame_photo(x: torch.Tensor, polarity: str = "auto") -> tuple[torch.Tensor, list[tuple[str, ...]]]:
    """Photo framing of grey images N×1×H×W (one size, float64, at most framing.MAX_SIDE):
    framed N×1×28×28 and, per image, the reasons its framing is doubtful (empty when none)."""
    h, w = x.shape[-2:]
    ink, contrast = photo_ink(x, polarity)
    photo = min(h, w) >= SMALL_SIDE
    arr = ink[:, 0].cpu().numpy()
    kept = np.empty_like(arr)
    reasons = []
    for i in range(len(arr)):
        kept[i], why = select_digit(arr[i], float(contrast[i]), photo)
        reasons.append(why)
    # a ratio from the image size alone: each framed digit depends only on itself
    ratio = max(2, math.ceil(max(h, w) / 20) * 2)
    out = frame_mnist(torch.from_numpy(kept).to(x.dtype).unsqueeze(1), sampling_ratio=ratio)
    return out, reasons


# -- the entry for real images (real sets, folder OOD sets, predict) --------------------------------

def _frame_group(x: torch.Tensor, polarity: str) -> tuple[torch.Tensor, list[tuple[str, ...]]]:
    h, w = x.shape[-2:]
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
    for idx in groups.values():
        for lo in range(0, len(idx), REAL_CHUNK):
            part = idx[lo : lo + REAL_CHUNK]
            if isinstance(images, np.ndarray) and len(groups) == 1:
                arr = images[part[0] : part[-1] + 1]  # one group of consecutive images: a view
            else:
                arr = np.stack([items[i] for i in part])
            # float64, as sets are generated: float32 sums and matrix products differ between
            # CPUs by a unit in the last place, enough to move a pixel across a rounding step
            t = torch.from_numpy(np.ascontiguousarray(arr)).to(torch.float64) / scale
            t = t.unsqueeze(1) if t.dim() == 3 else t.permute(0, 3, 1, 2)
            framed, why = _frame_group(to_gray(t), polarity)
            out[part] = framed
            for i, r in zip(part, why, strict=True):
                reasons[i] = r
    return out.to(torch.float32), reasons  # rounded once, the same on every CPU
