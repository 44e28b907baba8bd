"""Optical blur: out of focus (Gaussian, defocus disk), camera or hand motion, frosted glass.

Kernels are built per image (each digit gets its own direction or focus) and applied to the
whole batch at once: Gaussian blur as two small matmuls, other kernels as one grouped
convolution. Parameter names follow ImageNet-C / MNIST-C so ``shifts/mnist-c.toml`` can state
their settings directly.
"""

from __future__ import annotations

import math

import torch

from ._ops import disk_kernels, filter_per_image, random_local_swaps, separable_blur, splat_points
from .registry import register

# Taps of a motion kernel lighter than this fraction of the heaviest add less than 1/1000 of
# a grey level in total; dropping them keeps MNIST-C's 21-tap kernel small and fast.
_NEGLIGIBLE_TAP = 1e-4


def _jittered(value: float, jitter: float, n: int, g: torch.Generator) -> torch.Tensor:
    """Per-image values spread uniformly over value * [1 - jitter, 1 + jitter]."""
    return value * (1.0 + jitter * (2.0 * torch.rand(n, generator=g) - 1.0))


@register(family="blur",
          description="out-of-focus or soft lens: Gaussian blur, focus varying between images")
def gaussian_blur(x: torch.Tensor, g: torch.Generator, *, sigma: float,
                  jitter: float = 0.0) -> torch.Tensor:
    """Gaussian blur of standard deviation ``sigma`` pixels: scipy's ``gaussian_filter`` with
    edges repeated, as ImageNet-C and MNIST-C blur (their c is sigma at 224 px, though).

    ``jitter`` spreads sigma over ``sigma * [1 - jitter, 1 + jitter]`` per image, as a batch
    of photos is never all equally out of focus.
    """
    return separable_blur(x, _jittered(sigma, jitter, x.shape[0], g))


@register(family="blur",
          description="lens out of focus: each point spreads into a disk")
def defocus_blur(x: torch.Tensor, g: torch.Generator, *, radius: float,
                 jitter: float = 0.0) -> torch.Tensor:
    """Convolution with an antialiased flat disk of ``radius`` pixels (a round aperture's
    out-of-focus spot, ImageNet-C's ``disk``), jittered per image like ``gaussian_blur``.

    Unlike a Gaussian, the disk has a hard rim: strokes widen into flat-topped bands and
    nearby strokes merge sooner, the look of a misfocused phone photo.
    """
    r = _jittered(radius, jitter, x.shape[0], g).clamp_min(0.0)
    size = 2 * math.ceil(float(r.max()) + 0.5) - 1  # pixels nearer than r + 0.5 have weight
    return filter_per_image(x, disk_kernels(r, size).to(x.device))


@register(family="blur",
          description="camera or hand moving during exposure: a streak in a random direction")
def motion_blur(x: torch.Tensor, g: torch.Generator, *, radius: float, sigma: float,
                max_angle: float = 180.0, centred: bool = True) -> torch.Tensor:
    """ImageMagick's ``-motion-blur radius x sigma + angle``, the kernel MNIST-C uses.

    Each pixel averages ``2 ceil(radius) + 1`` samples taken 0, 1, 2, ... pixels away along
    the motion direction, weighted ``exp(-t^2 / 2 sigma^2)``: a streak that fades with
    distance (large sigma: a uniform streak of length 2 radius). The direction is drawn per
    image, uniform in [-max_angle, max_angle] degrees from horizontal. ImageMagick rounds
    sample positions to whole pixels; here they are bilinear, so oblique streaks stay smooth.

    The one-sided kernel also moves the digit by the streak's mean length (2.1 px in
    MNIST-C). ``centred`` cancels that move, so the shift measures the blur alone.
    """
    n = x.shape[0]
    t = torch.arange(2 * math.ceil(radius) + 1, dtype=torch.get_default_dtype())
    w = torch.exp(-0.5 * (t / max(sigma, 1e-6)) ** 2)
    keep = w >= _NEGLIGIBLE_TAP * w.max()
    t, w = t[keep], w[keep] / w[keep].sum()
    if centred:
        t = t - (w * t).sum()
    angle = torch.deg2rad(max_angle * (2.0 * torch.rand(n, generator=g) - 1.0))
    ys = torch.sin(angle)[:, None] * t
    xs = torch.cos(angle)[:, None] * t
    reach = max(1, math.ceil(float(t.abs().max())))  # bilinear weights stop 1 px out
    kernels = splat_points(ys, xs, w.expand(n, -1), 2 * reach + 1)
    return filter_per_image(x, kernels.to(x.device))


@register(family="blur",
          description="seen through frosted glass: blur, local pixel scrambling, blur again")
def glass_blur(x: torch.Tensor, g: torch.Generator, *, sigma: float, max_delta: int,
               iterations: int, swap_prob: float = 0.5) -> torch.Tensor:
    """ImageNet-C's glass blur: Gaussian blur (``sigma``), ``iterations`` rounds of random
    swaps of pixels with neighbours up to ``max_delta`` away, Gaussian blur again.

    The reference swaps pixels one at a time in a raster-order Python loop (230 s to 1,200 s
    per 10,000 digits in MNIST-C's code); ``random_local_swaps`` draws the same swaps as a
    few batched permutations. ``swap_prob`` is the reference's per-pixel 1/2, a finer
    control of strength than whole iterations.
    """
    # The reference truncates the first blur to 8 bits (np.uint8) before shuffling.
    y = torch.floor(separable_blur(x, sigma).cpu() * 255.0) / 255.0
    y = random_local_swaps(y, g, int(max_delta), int(iterations), swap_prob).to(x.device)
    return separable_blur(y, sigma)
