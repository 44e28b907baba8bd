"""MNIST-style framing, batched: fit the ink into a 20×20 box keeping aspect ratio, then
place it in 28×28 so its centre of mass sits at the image centre.

This is how LeCun et al. built MNIST from NIST; digits that skip it (a font rendered
edge-to-edge, a photo of a digit) are a preprocessing mismatch, not a robustness result
(Stack Overflow 38389785: 99% on MNIST, ~20% on unframed font renderings).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

# MNIST test digits have their centre of mass at (14.0, 14.0) in pixel-index coordinates
# (measured: mean 13.99 / 14.01, sd 0.29), i.e. at size/2, not at the geometric 13.5.


def ink_boxes(x: torch.Tensor, threshold: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounding boxes (x1, y1, x2, y2, pixel-edge coordinates) of pixels above threshold.

    Returns (boxes N×4, has_ink N bool). Images without ink get a dummy 1-px box.
    """
    n, _, h, w = x.shape
    ink = x[:, 0] > threshold
    rows = ink.any(dim=2)
    cols = ink.any(dim=1)
    has_ink = rows.any(dim=1)
    ar_h = torch.arange(h, device=x.device)
    ar_w = torch.arange(w, device=x.device)
    big = torch.tensor(10**6, device=x.device)
    y1 = torch.where(rows, ar_h, big).amin(dim=1)
    y2 = torch.where(rows, ar_h, -big).amax(dim=1) + 1
    x1 = torch.where(cols, ar_w, big).amin(dim=1)
    x2 = torch.where(cols, ar_w, -big).amax(dim=1) + 1
    boxes = torch.stack([x1, y1, x2, y2], dim=1).to(torch.get_default_dtype())
    boxes[~has_ink] = torch.tensor([0.0, 0.0, 1.0, 1.0], device=x.device)
    return boxes, has_ink


def centre_of_mass(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(cy, cx) per image in pixel-index coordinates; the centre for empty images."""
    n, _, h, w = x.shape
    m = x[:, 0].clamp_min(0)
    total = m.sum(dim=(1, 2))
    ys = torch.arange(h, dtype=x.dtype, device=x.device)
    xs = torch.arange(w, dtype=x.dtype, device=x.device)
    safe = total.clamp_min(1e-8)
    cy = (m.sum(dim=2) * ys).sum(dim=1) / safe
    cx = (m.sum(dim=1) * xs).sum(dim=1) / safe
    empty = total <= 1e-8
    cy = torch.where(empty, torch.full_like(cy, (h - 1) / 2), cy)
    cx = torch.where(empty, torch.full_like(cx, (w - 1) / 2), cx)
    return cy, cx


def shift_integer(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Translate each image by whole pixels (zeros fill in); exact, no interpolation blur."""
    n, c, h, w = x.shape
    # Halves round up, decided 2^-20 early: a symmetric digit's centre of mass sits exactly on
    # a half pixel, and float error (which differs between CPUs) would pick either side.
    dy = torch.floor(dy + (0.5 + 2.0**-20)).long()
    dx = torch.floor(dx + (0.5 + 2.0**-20)).long()
    ys = torch.arange(h, device=x.device).view(1, h, 1) - dy.view(n, 1, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w) - dx.view(n, 1, 1)
    valid = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    idx = ys.clamp(0, h - 1) * w + xs.clamp(0, w - 1)
    flat = x.reshape(n, c, h * w)
    out = torch.gather(flat, 2, idx.reshape(n, 1, h * w).expand(n, c, h * w))
    return out.reshape(n, c, h, w) * valid.unsqueeze(1).to(x.dtype)


def centre_by_mass(x: torch.Tensor) -> torch.Tensor:
    """Move each image (whole pixels) so its centre of mass lands nearest (h/2, w/2), as MNIST."""
    cy, cx = centre_of_mass(x)
    h, w = x.shape[-2:]
    return shift_integer(x, h / 2 - cy, w / 2 - cx)


# torchvision's CPU roi_align runs on one thread; below this many images a split is not worth it.
_MIN_SPLIT = 256


@cache
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(workers, thread_name_prefix="robustmnist-roi")


# A forked child (a DataLoader worker, say) inherits the pool object but not its threads:
# work submitted there would wait forever, so the child starts a pool of its own.
os.register_at_fork(after_in_child=_pool.cache_clear)


def roi_align_batched(x: torch.Tensor, rois: torch.Tensor, **kwargs) -> torch.Tensor:
    """roi_align of one box per image (rois[i] on x[i]), split over the CPU's threads.

    Each box is resampled on its own, so the parts give the same bytes as one call; torch
    releases the GIL inside the op, so the parts really run side by side (2.0× on 2 cores).
    """
    n, workers = len(x), torch.get_num_threads()
    if x.device.type != "cpu" or workers < 2 or n < _MIN_SPLIT:
        return roi_align(x, rois, **kwargs)
    bounds = [n * k // workers for k in range(workers + 1)]
    parts = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        own = rois[lo:hi].clone()
        own[:, 0] -= lo  # image index within the part
        parts.append(_pool(workers).submit(roi_align, x[lo:hi], own, **kwargs))
    return torch.cat([p.result() for p in parts])


def frame_mnist(x: torch.Tensor, box: int = 20, size: int = 28, threshold: float = 0.05,
                sampling_ratio: int | None = None) -> torch.Tensor:
    """Batched MNIST framing of white-on-black float images N×1×H×W (any H, W) in [0, 1].

    The ink's bounding box is grown to a square around its middle (so the aspect ratio is
    kept), resampled to box×box with area-averaging (roi_align's adaptive sampling acts as
    an anti-aliasing filter when shrinking), pasted in the middle of size×size, and moved
    so the centre of mass is at the centre. ``sampling_ratio`` fixes roi_align's samples per
    output bin; by default it follows the batch's largest box (the fonts shift's bytes).
    """
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f"frame_mnist expects N×1×H×W, got {tuple(x.shape)}")
    n = x.shape[0]
    if n == 0:
        return x.new_zeros((0, 1, size, size))
    # roi_align reads 0 more than one pixel outside its input and repeats the edge within
    # one pixel, so one pixel of black makes everything outside black: no need to pad by a
    # whole image (that padding cost more than the resampling).
    pad = 1
    xp = F.pad(x, (pad, pad, pad, pad))
    boxes, has_ink = ink_boxes(x, threshold)
    bw = boxes[:, 2] - boxes[:, 0]
    bh = boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(bw, bh)
    cx = (boxes[:, 0] + boxes[:, 2]) / 2 + pad
    cy = (boxes[:, 1] + boxes[:, 3]) / 2 + pad
    rois = torch.stack(
        [torch.arange(n, dtype=x.dtype, device=x.device), cx - side / 2, cy - side / 2,
         cx + side / 2, cy + side / 2],
        dim=1,
    )
    # sampling_ratio: enough samples per output bin to average over the source pixels.
    ratio = sampling_ratio or int(max(2, torch.ceil(side.max() / box).item() * 2))
    patch = roi_align_batched(xp, rois, output_size=(box, box), spatial_scale=1.0,
                              sampling_ratio=ratio, aligned=True)
    # Rescale so the brightest pixel keeps the source's peak (area-averaging dims thin strokes).
    src_peak = x.amax(dim=(1, 2, 3)).clamp_min(1e-6)
    patch_peak = patch.amax(dim=(1, 2, 3)).clamp_min(1e-6)
    patch = (patch * (src_peak / patch_peak).view(n, 1, 1, 1)).clamp(0, 1)
    out = x.new_zeros((n, 1, size, size))
    o = (size - box) // 2
    out[:, :, o : o + box, o : o + box] = patch
    out = centre_by_mass(out)
    out[~has_ink] = 0
    return out


# -- real digits: scans, photos, other digit datasets --------------------------------------------

# Larger images are shrunk (antialiased) before framing: 112 px is 5.6 source pixels per pixel
# of the 20-px box, more detail than the box can show, and it bounds roi_align's sampling.
MAX_SIDE = 112
REAL_CHUNK = 4096  # images framed per batch (frame_mnist pads each to 3× its side)
POLARITIES = ("auto", "white-on-black", "dark-on-light")


def to_gray(x: torch.Tensor) -> torch.Tensor:
    """N×C×H×W in [0, 1] -> N×1×H×W: ITU-R 601 luminance for RGB(A), as PIL's convert('L')."""
    if x.shape[1] == 1:
        return x
    w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x[:, :3] * w).sum(dim=1, keepdim=True)


def _border(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x[:, 0, 0, :], x[:, 0, -1, :], x[:, 0, :, 0], x[:, 0, :, -1]], dim=1)


def detect_dark_on_light(x: torch.Tensor) -> torch.Tensor:
    """True where the ground (the border's median) is brighter than the image's mid-range.

    The mid-range of each image, not a fixed 0.5: a photo of dark digits on a grey meter face
    has a ground near 0.4 and ink near 0.1, and a house-number plate can be either way round.
    """
    flat = x.flatten(1)
    mid = (flat.amin(dim=1) + flat.amax(dim=1)) / 2
    return _border(x).median(dim=1).values > mid


def lift_ink(x: torch.Tensor) -> torch.Tensor:
    """White-on-black with the ground at 0 and the brightest ink at 1 (MNIST's range).

    Real images have grey paper, coloured plates and faint pencil: without this the ink box
    of frame_mnist would be the whole image. An MNIST digit (ground 0, peak 1) is unchanged.
    """
    ground = _border(x).median(dim=1).values.view(-1, 1, 1, 1)
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    span = peak - ground
    lifted = ((x - ground) / span.clamp_min(1e-3)).clamp(0, 1)
    return torch.where(span > 1e-3, lifted, torch.zeros_like(x))


def _frame_group(x: torch.Tensor, polarity: str) -> torch.Tensor:
    h, w = x.shape[-2:]
    if max(h, w) > MAX_SIDE:
        s = MAX_SIDE / max(h, w)
        x = F.interpolate(x, size=(max(1, round(h * s)), max(1, round(w * s))), mode="bilinear",
                          antialias=True, align_corners=False).clamp(0, 1)
        h, w = x.shape[-2:]
    if polarity == "dark-on-light":
        x = 1.0 - x
    elif polarity == "auto":
        x = torch.where(detect_dark_on_light(x).view(-1, 1, 1, 1), 1.0 - x, x)
    # A ratio from the image size alone (never from the other images in the batch) makes each
    # framed digit depend only on itself: a subset, a reordering or a chunking gives the same bytes.
    ratio = max(2, math.ceil(max(h, w) / 20) * 2)
    return frame_mnist(lift_ink(x), sampling_ratio=ratio)


def frame_real(images, polarity: str = "auto") -> torch.Tensor:
    """The MNIST framing of real digit images, each on its own: N×1×28×28 float in [0, 1].

    ``images``: a uint8 array N×H×W (or N×H×W×3), or a list of float arrays in [0, 1], each
    H×W or H×W×3, of any sizes. Steps: grayscale (ITU-R 601), shrink to at most MAX_SIDE,
    polarity ('auto' detects dark ink on a light ground), ground to 0 and ink peak to 1, then
    ``frame_mnist`` (tight ink box, longer side to 20 px keeping aspect, centre of mass at the
    centre of 28×28). Images of one size are framed together as one batch.
    """
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
    out = torch.zeros((len(items), 1, 28, 28))
    for idx in groups.values():
        for lo in range(0, len(idx), REAL_CHUNK):
            part = idx[lo : lo + REAL_CHUNK]
            if isinstance(images, np.ndarray) and len(groups) == 1:
                arr = images[part[0] : part[-1] + 1]  # one group of consecutive images: a view
            else:
                arr = np.stack([items[i] for i in part])
            t = torch.from_numpy(np.ascontiguousarray(arr)).to(torch.float32) / scale
            t = t.unsqueeze(1) if t.dim() == 3 else t.permute(0, 3, 1, 2)
            out[part] = _frame_group(to_gray(t), polarity)
    return out
