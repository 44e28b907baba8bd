"""MNIST-style framing, batched: fit the ink into a 20×20 box keeping aspect ratio, then
place it in 28×28 so its centre of mass sits at the image centre.

This is how LeCun et al. built MNIST from NIST; digits that skip it (a font rendered
edge-to-edge, a photo of a digit) are a preprocessing mismatch, not a robustness result
(Stack Overflow 38389785: 99% on MNIST, ~20% on unframed font renderings).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import cache

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
    dy = dy.round().long()
    dx = dx.round().long()
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


def frame_mnist(x: torch.Tensor, box: int = 20, size: int = 28, threshold: float = 0.05) -> torch.Tensor:
    """Batched MNIST framing of white-on-black float images N×1×H×W (any H, W) in [0, 1].

    The ink's bounding box is grown to a square around its middle (so the aspect ratio is
    kept), resampled to box×box with area-averaging (roi_align's adaptive sampling acts as
    an anti-aliasing filter when shrinking), pasted in the middle of size×size, and moved
    so the centre of mass is at the centre.
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
    ratio = int(max(2, torch.ceil(side.max() / box).item() * 2))
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
