"""Noise family: each shift has the statistics of the artefact it is named after."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from robustmnist.shifts import get_shift
from robustmnist.shifts._ops import as_levels, poisson_from_levels
from robustmnist.shifts.sets import make_set
from robustmnist.shifts.suite import load_suite

PARTS = Path(__file__).resolve().parents[1] / "shifts" / "parts"
NOISE = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise")


def _grey(n: int = 64, level: int = 128) -> torch.Tensor:
    """Flat 8-bit grey images, far from the clamp on both sides."""
    return torch.full((n, 1, 28, 28), level / 255.0)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_gaussian_noise_adds_zero_mean_noise_of_the_given_std():
    x = _grey()
    r = get_shift("gaussian_noise").fn(x, _gen(), sigma=0.1) - x
    assert abs(r.mean().item()) < 0.002
    assert r.std().item() == pytest.approx(0.1, rel=0.02)


@pytest.mark.parametrize("rate", [0.0, 0.4, 3.0, 12.5])
def test_poisson_sampler_matches_the_poisson_distribution(rate):
    n = 200_000
    levels = torch.zeros(n)
    counts = poisson_from_levels(levels, torch.tensor([rate]), _gen(), max_count=60)
    assert torch.equal(counts, counts.round())
    k = np.arange(61)
    log_fact = np.array([math.lgamma(i + 1) for i in k])
    pmf = np.exp(k * math.log(rate) - rate - log_fact) if rate else (k == 0).astype(float)
    freq = np.bincount(counts.long().numpy(), minlength=61) / n
    # Every count's frequency within 5 binomial standard errors (plus a floor for empty bins).
    se = np.sqrt(pmf * (1 - pmf) / n)
    assert np.all(np.abs(freq - pmf) <= 5 * se + 1e-5), np.abs(freq - pmf).max()


def test_poisson_sampler_caps_counts_at_the_full_well():
    counts = poisson_from_levels(torch.zeros(50_000), torch.tensor([4.0]), _gen(), max_count=5)
    assert counts.max().item() == 5
    # P(count >= 5) for Poisson(4) is 0.371: the tail is reported at the cap, not dropped.
    assert (counts == 5).float().mean().item() == pytest.approx(0.371, abs=0.01)


def test_shot_noise_mnistc_setting_is_poisson_of_x_times_c_over_c():
    mc = load_suite(str(PARTS / "mnistc-noise.toml"))
    params = mc.params("shot_noise", 1)
    assert params == {"photons": 3, "background": 0.0}
    x = torch.cat([_grey(32, 0), _grey(32, 128)])
    y = get_shift("shot_noise").fn(x, _gen(), **params)
    assert torch.all(y[:32] == 0)  # no light, no photons: MNIST-C keeps black exactly black
    grey = y[32:]
    assert torch.allclose(grey * 3, (grey * 3).round(), atol=1e-5)  # whole photon counts / 3
    # Poisson(3 * 128/255 = 1.506) capped at the full well of 3 photons: E[min(N, 3)] = 1.415.
    assert (grey * 3).mean().item() == pytest.approx(1.415, abs=0.02)


def test_shot_noise_background_light_makes_dark_paper_grainy_without_changing_the_mean():
    x = torch.cat([_grey(64, 0), _grey(64, 128)])
    y = get_shift("shot_noise").fn(x, _gen(), photons=20.0, background=0.2)
    black, grey = y[:64], y[64:]
    assert black.std().item() > 0.05  # the background is noisy...
    assert abs(black.mean().item()) < 0.01  # ...around black, since the black level is removed
    assert grey.mean().item() == pytest.approx(128 / 255, abs=0.01)
    # Photon noise: std of the counts is sqrt(rate); rate = 20 * (0.2 + 0.8 * 0.502) = 12.03.
    assert (grey.std() * 20 * 0.8).item() == pytest.approx(math.sqrt(12.03), rel=0.05)


def test_shot_noise_off_the_8bit_grid_falls_back_to_torch_poisson():
    x = _grey(16) + 1e-4
    assert as_levels(x) is None
    shot = get_shift("shot_noise").fn
    y = shot(x, _gen(), photons=10.0)
    assert torch.allclose(y * 10, (y * 10).round(), atol=1e-4)
    assert torch.equal(y, shot(x, _gen(), photons=10.0))


def test_impulse_noise_sets_the_given_share_of_pixels_to_white_or_black():
    x = _grey(200)
    y = get_shift("impulse_noise").fn(x, _gen(), amount=0.2, salt_vs_pepper=0.25)
    hit = y != x
    assert hit.float().mean().item() == pytest.approx(0.2, abs=0.005)
    assert set(torch.unique(y[hit]).tolist()) == {0.0, 1.0}
    assert (y == 1).float().mean().item() == pytest.approx(0.05, abs=0.003)


def test_impulse_noise_mnistc_setting():
    mc = load_suite(str(PARTS / "mnistc-noise.toml"))
    assert mc.levels == 1
    assert mc.params("impulse_noise", 1) == {"amount": 0.17, "salt_vs_pepper": 0.5}


def test_speckle_is_multiplicative_and_grain_correlates_neighbours():
    speckle = get_shift("speckle_noise").fn
    x = torch.cat([_grey(64, 0), _grey(64, 128)])
    for grain in (0.0, 1.0):
        y = speckle(x, _gen(), sigma=0.3, grain=grain)
        assert torch.all(y[:64] == 0)  # no signal, no speckle
        rel = (y[64:] / x[64:] - 1)[..., 4:24, 4:24]  # away from the edges the blur repeats
        assert rel.std().item() == pytest.approx(0.3, rel=0.05)
        pairs = torch.stack([rel[..., :-1].flatten(), rel[..., 1:].flatten()])
        neighbour_corr = torch.corrcoef(pairs)[0, 1]
        if grain:
            assert neighbour_corr > 0.6  # grains span several pixels
        else:
            assert abs(neighbour_corr) < 0.02


@pytest.mark.parametrize("name", NOISE)
def test_noise_shifts_leave_their_input_alone(name):
    ladder = load_suite(str(PARTS / "noise.toml"))
    x = _grey(8)
    before = x.clone()
    get_shift(name).fn(x, _gen(), **ladder.params(name, 5))
    assert torch.equal(x, before)


@pytest.mark.mirror
def test_noise_ladder_strength_grows_and_keeps_the_digit(mnist_test):
    """Severity 5 is clearly corrupted, yet the ink is still where the digit is."""
    ladder = load_suite(str(PARTS / "noise.toml"))
    images, labels = mnist_test.images[:200], mnist_test.labels[:200]
    ink = images > 128
    for name in NOISE:
        x, _ = make_set(get_shift(name), 5, ladder.params(name, 5), images, labels, 200, seed=0)
        x = x.astype(np.float32)
        assert np.abs(x - images).mean() > 10  # clearly visible
        assert x[ink].mean() > x[~ink].mean() + 60, name  # strokes still stand out
