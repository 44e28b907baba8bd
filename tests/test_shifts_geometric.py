"""Geometric shifts: the warps land where MNIST-C's skimage warps land, and each parameter
means what its docstring says. (Shape, range, determinism and severity ordering are checked
for every shift by the generic shift tests.)"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from robustmnist.data.framing import centre_of_mass, ink_boxes, shift_integer
from robustmnist.shifts import get_shift
from robustmnist.shifts.geometric import smoothing_basis, valid_blur_matrix
from robustmnist.shifts.suite import load_suite

ROOT = Path(__file__).resolve().parents[1]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def blocks(n: int = 16, seed: int = 0) -> torch.Tensor:
    """Asymmetric random blobs inside the central 20×20 box, like digits: rotations and flips
    of them differ, so a wrong direction or centre shows."""
    g = gen(seed)
    x = torch.zeros(n, 1, 28, 28)
    x[:, :, 4:24, 4:24] = (torch.rand(n, 1, 20, 20, generator=g) > 0.6).float()
    x[:, :, 4:8, 4:12] = 1.0  # a heavy top-left corner breaks every symmetry
    return x


def apply(name: str, x: torch.Tensor, seed: int = 0, **params) -> torch.Tensor:
    return get_shift(name).apply(x.clone(), gen(seed), **params)


def principal_angle(img: torch.Tensor) -> float:
    """Angle (degrees) of the ink's long axis from vertical, positive leaning right."""
    ys, xs = torch.nonzero(img > 0.5, as_tuple=True)
    pts = torch.stack([xs.float() - xs.float().mean(), ys.float() - ys.float().mean()])
    _, vecs = torch.linalg.eigh(pts @ pts.T)
    vx, vy = vecs[:, -1].tolist()
    if vy < 0:
        vx, vy = -vx, -vy
    return -math.degrees(math.atan2(vx, vy))


def vertical_bar() -> torch.Tensor:
    x = torch.zeros(1, 1, 28, 28)
    x[..., 4:24, 13:15] = 1.0
    return x


def test_rotate_quarter_turn_is_exact_about_the_grid_centre():
    x = blocks()
    out = apply("rotate", x, degrees=90)
    plus, minus = torch.rot90(x, 1, dims=(2, 3)), torch.rot90(x, -1, dims=(2, 3))
    err = torch.minimum((out - plus).abs().amax(dim=(1, 2, 3)), (out - minus).abs().amax(dim=(1, 2, 3)))
    assert err.max() < 1e-4
    # Both directions occur: the sign is drawn per image.
    assert ((out - plus).abs().amax(dim=(1, 2, 3)) < 1e-4).any()
    assert ((out - minus).abs().amax(dim=(1, 2, 3)) < 1e-4).any()


@pytest.mark.parametrize("degrees", [10.0, 30.0, 50.0])
def test_rotate_turns_a_bar_by_the_given_angle(degrees):
    bars = vertical_bar().repeat(8, 1, 1, 1)
    out = apply("rotate", bars, degrees=degrees)
    angles = [abs(principal_angle(img[0])) for img in out]
    assert all(abs(a - degrees) < 2.0 for a in angles)


def test_shear_slants_the_vertical_and_keeps_rows():
    bars = vertical_bar().repeat(8, 1, 1, 1)
    out = apply("shear", bars, degrees=45)
    for img in out:
        assert abs(abs(principal_angle(img[0])) - 45) < 2.0
    # A pure shear moves pixels along rows only: the bar still spans rows 4..23.
    boxes, _ = ink_boxes(out, threshold=0.3)
    assert torch.all(boxes[:, 1] == 4) and torch.all(boxes[:, 3] == 24)


def test_shear_stretch_reproduces_skimage_legacy_height_gain():
    bar = torch.zeros(1, 1, 28, 28)
    bar[..., 9:19, 13:15] = 1.0
    out = apply("shear", bar, degrees=math.degrees(0.9), stretch=True)
    rows = (out[0, 0] > 0.3).any(dim=1).nonzero().flatten()
    height = int(rows.max() - rows.min() + 1)
    assert abs(height - 10 / math.cos(0.9)) <= 1.0  # 16 px, not 10


def test_scale_shrinks_about_the_centre():
    x = torch.zeros(4, 1, 28, 28)
    x[..., 4:24, 4:24] = 1.0
    out = apply("scale", x, factor=0.5)
    boxes, _ = ink_boxes(out, threshold=0.5)
    assert torch.allclose(boxes, torch.tensor([[9.0, 9.0, 19.0, 19.0]]).expand(4, 4))


def test_scale_jitter_varies_size_per_image_within_bounds():
    x = torch.zeros(64, 1, 28, 28)
    x[..., 4:24, 4:24] = 1.0
    mass = apply("scale", x, factor=0.6, jitter=0.1).sum(dim=(1, 2, 3)) / 400
    assert mass.min() >= (0.54**2) * 0.95 and mass.max() <= (0.66**2) * 1.05
    assert mass.std() > 0.01


def test_translate_moves_whole_pixels_without_blur():
    x = blocks()
    out = apply("translate", x, pixels=3, seed=5)
    values = set(out.unique().tolist())
    assert values <= {0.0, 1.0}  # no interpolated grey levels
    cy0, cx0 = centre_of_mass(x)
    cy1, cx1 = centre_of_mass(out)
    # Content cut at the border pulls the centre of mass a little; 3 px within rounding.
    dist = ((cy1 - cy0) ** 2 + (cx1 - cx0) ** 2).sqrt()
    assert torch.all((dist > 2.0) & (dist < 4.0))


def test_translate_diagonal_is_mnist_c_three_pixels_each_way():
    x = blocks(32)
    out = apply("translate", x, pixels=3, diagonal=True)
    seen = set()
    for i in range(len(x)):
        for dy in (-3, 3):
            for dx in (-3, 3):
                ref = shift_integer(x[i : i + 1], torch.tensor([dy]), torch.tensor([dx]))
                if torch.allclose(out[i : i + 1], ref, atol=1e-5):
                    seen.add((dy, dx))
                    break
            else:
                continue
            break
        else:
            pytest.fail(f"image {i} was not moved by (±3, ±3)")
    assert len(seen) >= 3  # signs drawn per image and per axis


def test_elastic_with_zero_alpha_is_identity():
    x = blocks()
    assert torch.allclose(apply("elastic", x, alpha=0.0, sigma=4.0), x, atol=1e-5)


def test_elastic_low_rank_field_has_the_smoothed_noise_covariance():
    # B B^T must equal K K^T (the covariance of K·white noise) up to the dropped energy.
    k = valid_blur_matrix(28, 4.0).float()
    b = smoothing_basis(28, 4.0)
    assert b.shape[1] < 12
    assert torch.allclose(b @ b.T, k @ k.T, atol=1e-3 * float((k @ k.T).max()))
    # Stationary: corners move as far as the centre (no edge rule inflating the border).
    cov = torch.diag(b @ b.T)
    assert float(cov.max() / cov.min()) < 1.01


def test_elastic_displacement_matches_simard_scale():
    """Simard's alpha 34, sigma 4 moves a pixel ~1.4 px RMS along each axis (U(-1,1) noise)."""
    x = torch.zeros(400, 1, 28, 28)
    x[..., 13:15, 13:15] = 1.0  # a 2×2 dot at the centre: its centre of mass tracks the warp
    out = apply("elastic", x, alpha=34.0, sigma=4.0)
    cy, cx = centre_of_mass(out)
    rms = (((cy - 13.5) ** 2 + (cx - 13.5) ** 2).mean() / 2).sqrt()
    assert 1.1 < rms < 1.7


def test_elastic_distorts_more_with_alpha():
    x = blocks(64)
    d = [(apply("elastic", x, alpha=a, sigma=4.0) - x).abs().mean() for a in (10, 30, 60)]
    assert d[0] < d[1] < d[2]


def test_ladders_load_with_five_levels_and_grow():
    suite = load_suite(str(ROOT / "shifts" / "parts" / "geometric.toml"))
    assert set(suite.shift_names) == {"rotate", "shear", "scale", "translate", "elastic"}
    assert [suite.params("rotate", s)["degrees"] for s in range(1, 6)] == sorted(
        suite.params("rotate", s)["degrees"] for s in range(1, 6))
    factors = [suite.params("scale", s)["factor"] for s in range(1, 6)]
    assert factors == sorted(factors, reverse=True) and factors[0] < 1


def test_mnist_c_levels_reproduce_its_parameters(tmp_path):
    # The parts file holds only [shifts.*] tables; MNIST-C has one level, which the merged
    # mnist-c suite declares.
    text = (ROOT / "shifts" / "parts" / "mnistc-geometric.toml").read_text()
    spec = tmp_path / "mnistc.toml"
    spec.write_text("levels = 1\n" + text)
    suite = load_suite(str(spec))
    assert math.radians(suite.params("rotate", 1)["degrees"]) == pytest.approx(0.4)
    assert math.radians(suite.params("shear", 1)["degrees"]) == pytest.approx(0.4)
    assert suite.params("shear", 1)["stretch"] is True
    assert suite.params("scale", 1)["factor"] == pytest.approx(0.7)
    assert suite.params("translate", 1) == {"pixels": 3, "diagonal": True}
    # skimage's shear(0.4) inverse map, src = c + [[1, -sin s], [0, cos s]] (out - c), sends a
    # dot 8 rows below the centre to 8/cos(s) rows below it and 8·tan(s) columns aside.
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 21:23, 13:15] = 1.0  # centre (13.5, 21.5)
    out = apply("shear", x, **suite.params("shear", 1))
    cy, cx = centre_of_mass(out)
    assert float(cy[0]) == pytest.approx(13.5 + 8 / math.cos(0.4), abs=0.05)
    assert abs(float(cx[0]) - 13.5) == pytest.approx(8 * math.tan(0.4), abs=0.05)
