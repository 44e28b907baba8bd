"""Sensor and transmission noise: additive Gaussian, photon (shot), salt & pepper, speckle.

Parameters follow ImageNet-C / MNIST-C where those exist (``shot_noise`` photons = their c,
``impulse_noise`` amount = skimage's), so ``shifts/mnist-c.toml`` can state their settings.
"""

from __future__ import annotations

import math

import torch

from ._ops import as_levels, blur_matrix, poisson_from_levels, separable_blur
from .registry import register


def _randn(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    # Drawn on CPU from g so the bytes do not depend on the device the batch lives on.
    return torch.randn(x.shape, generator=g).to(x.device)


@register(family="noise", description="additive Gaussian sensor noise")
def gaussian_noise(x: torch.Tensor, g: torch.Generator, *, sigma: float) -> torch.Tensor:
    """Read-out and amplifier noise; ``sigma`` is its std in units of white (ImageNet-C's c)."""
    return x + sigma * _randn(x, g)


@register(family="noise",
          description="photon (Poisson) noise of a dim exposure, background light included")
def shot_noise(x: torch.Tensor, g: torch.Generator, *, photons: float,
               background: float = 0.0) -> torch.Tensor:
    """Each pixel counts Poisson(photons * intensity) photons; ``photons`` is the full-white count.

    MNIST-C's ``poisson(x * c) / c`` is ``background = 0``: black pixels get no photons and stay
    exactly black, so only the strokes get grainy. A real dim shot of dark paper still
    collects some light; ``background`` is that level as a fraction of white, and the black
    level is subtracted afterwards as a camera does, so the mean image is unchanged.
    """
    full_well = math.ceil(photons)  # more photons than white reads as white anyway
    levels = as_levels(x.cpu())
    if levels is None:  # not 8-bit data: fall back to torch's (slower) sampler
        rate = photons * (background + (1.0 - background) * x.cpu())
        counts = torch.poisson(rate, generator=g).clamp_max(full_well)
    else:
        rates = photons * (background + (1.0 - background) * torch.arange(256) / 255.0)
        counts = poisson_from_levels(levels, rates, g, full_well)
    gain = 1.0 / (photons * (1.0 - background))
    return counts.to(x.device) * gain - background / (1.0 - background)


@register(family="noise",
          description="salt-and-pepper: random pixels stuck at white or black")
def impulse_noise(x: torch.Tensor, g: torch.Generator, *, amount: float,
                  salt_vs_pepper: float = 0.5) -> torch.Tensor:
    """``amount`` of the pixels are replaced, a ``salt_vs_pepper`` share of them by white.

    Same model as skimage's ``random_noise(mode='s&p')`` that MNIST-C calls; one uniform draw
    per pixel decides both whether it is hit and which way.
    """
    u = torch.rand(x.shape, generator=g).to(x.device)
    salt = u < amount * salt_vs_pepper
    pepper = (u >= amount * salt_vs_pepper) & (u < amount)
    return torch.where(salt, 1.0, torch.where(pepper, 0.0, x))


@register(family="noise",
          description="multiplicative speckle: grainy strokes, clean background")
def speckle_noise(x: torch.Tensor, g: torch.Generator, *, sigma: float,
                  grain: float = 0.0) -> torch.Tensor:
    """``x * (1 + sigma * n)`` as in ImageNet-C, with n unit-variance Gaussian noise.

    ``grain`` > 0 gives the speckle a grain size, as laser or ultrasound speckle has: n is
    smoothed by a Gaussian of ``grain`` pixels and divided by the std that smoothing leaves
    (the squared norm of its 1-D kernel), so ``sigma`` keeps its meaning. 0 is ImageNet-C's
    per-pixel speckle.
    """
    n = torch.randn(x.shape, generator=g)
    if grain > 0:
        kernel_1d = blur_matrix(grain, x.shape[-1])[0, x.shape[-1] // 2]
        n = separable_blur(n, grain) / kernel_1d.square().sum()
    return x * (1.0 + sigma * n.to(x.device))
