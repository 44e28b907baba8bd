"""The digit's ink in one image's ink map (``photo.photo_ink``): adaptive threshold, connected
components, and a fallback for faint ink under noise. Per image on CPU (scipy.ndimage.label):
photos arrive one by one at various sizes and a 112-px label is ~50 µs.

1. threshold: Otsu on the background-corrected ink (the correction makes one global threshold
   adaptive to the local light), with hysteresis (weak pixels down to half of it join a
   component holding a strong one) and a floor at a few noise sigmas.
2. components: long straight strokes that cross the whole image (ruled lines, grid cells, frame
   edges) are cut out; then the component nearest the centre among the large ones that do not
   touch the border is the digit, and components stacked over or inside it (the strokes of one
   digit broken by thresholding) join it; a neighbouring digit sits beside it and stays out.
3. faint-ink fallback (photos only): when the threshold keeps nothing, or only specks, the
   noise floor has swallowed the digit (faint pencil under sensor noise: the floor is read off
   the paper's upper quantile, which noise and paper grain inflate), or the polarity test has
   read the light instead of the ink. A second ink map (``photo.faint_ink``: polarity by the
   skew of the fine detail, local contrast at a few stroke widths) is smoothed once more and
   thresholded by robust z-scores against the paper (median, MAD); the same components step
   picks the digit, and its soft ink comes out, marked DOUBT_FALLBACK. When even that finds
   nothing credible the framing is blank and DOUBT_EMPTY: a speck framed up to 20 px would be
   an invented digit.
"""

from __future__ import annotations

import math

import numpy as np

LOW_CONTRAST = 0.12  # ink darker than its paper by less than this (0-1) is very faint
DOUBT_BORDER = "ink touches the border"
DOUBT_SEVERAL = "several large components"
DOUBT_CONTRAST = "very low contrast"
DOUBT_EMPTY = "no ink found"
DOUBT_FALLBACK = "faint ink: fallback"

# A digit is at least this fraction of the image's shorter side tall or wide (a 96-px photo
# crop: 8 px; MNIST-framed photo digits are 30-60 px there); smaller kept ink is specks.
MIN_EXTENT = 0.08
# The fallback's robust z-scores (paper's median and MAD, after a 3×3 mean on top of the ink
# map's own): pixels from FALLBACK_WEAK join a component that reaches FALLBACK_STRONG, and the
# digit needs FALLBACK_STRONG_SHARE of the image's pixels that strong (a stroke's worth: ~18 px
# of a 96-px crop), not a few peaks of noise or paper grain. Tuned on benchmarks/faint_ink.py's
# digits against blank paper rendered the same way (light, grain, noise, JPEG): a lower bar
# finds more faint digits and invents more on blank paper (weak 2.5 / strong 6 without the
# share: mean correlation 0.52 instead of 0.47, but 13% of blank noisy crops got a "digit").
FALLBACK_WEAK = 2.0
FALLBACK_STRONG = 6.0
FALLBACK_STRONG_SHARE = 0.002
# the MAD's floor, in ink units: 8-bit paper with no visible noise has a MAD of 0, and a
# gradient's leftovers would then score as ink
NOISE_FLOOR = 0.004


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


def _components(weak: np.ndarray, strong: np.ndarray, photo: bool) -> tuple[np.ndarray | None, list[str]]:
    """The digit's pixels among the components of ``weak`` that hold a ``strong`` pixel
    (hysteresis), grown by one pixel; None when there are none. Doubt reasons beside it."""
    from scipy import ndimage

    eight = np.ones((3, 3), bool)
    lab, n = ndimage.label(weak, structure=eight)
    if n == 0:
        return None, []
    strong_in = np.bincount(lab[strong], minlength=n + 1)[1:] > 0
    area = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    boxes = ndimage.find_objects(lab)
    h, w = weak.shape
    comps = []
    for i in range(n):
        ys, xs = boxes[i]
        touches = ys.start == 0 or xs.start == 0 or ys.stop == h or xs.stop == w
        comps.append((i + 1, int(area[i]), ys.start, ys.stop, xs.start, xs.stop, touches))
    big = max(c[1] for c, s in zip(comps, strong_in, strict=True) if s) if strong_in.any() else 0
    cands = [c for c, s in zip(comps, strong_in, strict=True) if s and c[1] >= max(2, 0.05 * big)]
    if not cands:
        return None, []
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
    reasons = []
    kept = sum(c[1] for c in group)
    if photo and any(c[6] for c in group):
        reasons.append(DOUBT_BORDER)
    if any(not c[6] and c[1] >= 0.5 * kept for c in others):
        reasons.append(DOUBT_SEVERAL)
    keep = np.isin(lab, [c[0] for c in group])
    # one pixel around the kept strokes: their anti-aliased edge, below the weak threshold
    return ndimage.binary_dilation(keep, structure=eight) & ~(weak & ~keep), reasons


def credible(kept: np.ndarray) -> bool:
    """Kept ink (H×W, 0 = none) spans enough of the image to be a digit, not a speck of noise
    or grain."""
    rows, cols = (kept > 0).any(axis=1), (kept > 0).any(axis=0)
    if not rows.any():
        return False
    ys, xs = np.flatnonzero(rows), np.flatnonzero(cols)
    extent = max(ys[-1] - ys[0], xs[-1] - xs[0]) + 1
    return extent >= max(4.0, MIN_EXTENT * min(kept.shape))


def faint_fallback(ink: np.ndarray, reasons: tuple[str, ...] = ()) -> tuple[np.ndarray, tuple[str, ...]]:
    """The digit of a photo's faint-ink map (``photo.faint_ink``, H×W, unclipped) by robust
    z-scores against the paper: its soft ink scaled to a peak of 1 and the doubt reasons
    (DOUBT_FALLBACK), or a blank and DOUBT_EMPTY when nothing credible stands out of the paper.
    ``reasons``: the threshold's, of which only DOUBT_CONTRAST still holds."""
    from scipy import ndimage

    low = (DOUBT_CONTRAST,) if DOUBT_CONTRAST in reasons else ()
    blank = np.zeros_like(ink), (*low, DOUBT_EMPTY)
    # a pen stroke in a ≤112-px photo is a few px wide: another 3×3 mean keeps it and cuts the
    # noise about 2.5× more (the map had one already)
    sm = ndimage.uniform_filter(ink, size=3, mode="nearest")
    # paper is most of a photo (the digit ~5-20%): its median and MAD ignore the ink
    level = float(np.median(sm))
    spread = max(1.4826 * float(np.median(np.abs(sm - level))), NOISE_FLOOR)
    z = (sm - level) / spread
    weak = z >= FALLBACK_WEAK
    weak &= ~_crossing_lines(weak)
    strong = z >= FALLBACK_STRONG
    keep, more = _components(weak, strong, photo=True)
    if keep is None or not credible(keep) or (strong & keep).sum() < FALLBACK_STRONG_SHARE * keep.size:
        return blank
    # soft ink, not the mask: faint strokes keep their shape; the paper inside the kept
    # pixels (noise up to the weak threshold) stays near 0
    out = np.where(keep, np.clip(sm - level - FALLBACK_WEAK * spread, 0.0, None), 0.0)
    peak = float(out.max())
    if peak <= 0:
        return blank
    return out / peak, (*low, *more, DOUBT_FALLBACK)


def select_digit(ink: np.ndarray, contrast: float, photo: bool) -> tuple[np.ndarray, tuple[str, ...]]:
    """Keep the digit's ink in one image's ink map (H×W, 0 = paper) by the adaptive threshold
    and components; the doubt reasons. ``credible`` tells whether the fallback should try."""
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
    keep, more = _components(weak, v >= hi, photo)
    if keep is None:
        return np.zeros_like(ink), (*reasons, DOUBT_EMPTY)
    out = np.where(keep, v, 0.0)
    return out / max(float(out.max()), 1e-6), (*reasons, *more)  # the digit's own peak to 1
