"""Contract tests that every registered shift must pass, at every severity of the default suite."""

from __future__ import annotations

import numpy as np
import pytest

from robustmnist.errors import UserError
from robustmnist.shifts import all_shifts, get_shift, resolve_names
from robustmnist.shifts.sets import get_set, make_set
from robustmnist.shifts.suite import load_suite

from .conftest import synthetic_digits

DEFAULT = load_suite("default")
SHIFTS = DEFAULT.shift_names


@pytest.fixture(scope="module")
def digits():
    return synthetic_digits(40, seed=5)


def test_catalog_is_complete():
    names = set(all_shifts())
    required = {
        "gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise",
        "gaussian_blur", "motion_blur", "glass_blur", "defocus_blur",
        "ink_blot", "smudge", "coffee_stain", "strike_through", "spatter", "dotted_line", "zigzag", "stripe",
        "scan_border", "crop_shift", "box_lines", "neighbor_fragment", "shadow",
        "rotate", "shear", "scale", "translate", "elastic",
        "brightness", "contrast", "invert", "gamma", "fog",
        "jpeg", "pixelate", "downsample", "binarize", "canny_edges",
        "thin_stroke", "thick_stroke",
        "fonts", "fonts_sans", "fonts_serif", "fonts_mono", "fonts_ocr", "fonts_handwriting",
        "euro_one", "euro_seven", "euro",
    }
    assert required <= names
    # the default suite defines a ladder for every shift but the camera family's (its own suite)
    assert set(SHIFTS) == {n for n, s in all_shifts().items() if s.family != "camera"}
    for s in all_shifts().values():
        assert s.description and s.version >= 1


@pytest.mark.parametrize("name", SHIFTS)
def test_shape_dtype_range_and_determinism(name, digits):
    images, labels = digits
    shift = get_shift(name)
    for sev in DEFAULT.severities:
        params = DEFAULT.params(name, sev)
        a, ya = make_set(shift, sev, params, images, labels, len(images), seed=0)
        b, yb = make_set(shift, sev, params, images, labels, len(images), seed=0)
        assert a.shape == (len(images), 28, 28) and a.dtype == np.uint8
        assert ya.shape == (len(images),) and set(np.unique(ya)) <= set(range(10))
        assert np.array_equal(a, b) and np.array_equal(ya, yb), f"{name} s{sev} not deterministic"


# Shifts with no randomness in them: the same output whatever the seed.
SEED_FREE = {"invert", "gamma", "contrast", "thin_stroke", "thick_stroke", "pixelate", "downsample",
             "canny_edges", "stripe", "brightness", "jpeg"}


@pytest.mark.parametrize("name", [n for n in SHIFTS if n not in SEED_FREE])
def test_different_seeds_differ(name, digits, request):
    images, labels = digits
    shift = get_shift(name)
    if shift.family == "euro":  # stroke edits need real 1s and 7s (a synthetic bar has no stem)
        mnist = request.getfixturevalue("mnist_test")
        images, labels = mnist.images[:200], mnist.labels[:200]
    params = DEFAULT.params(name, 3)
    a, _ = make_set(shift, 3, params, images, labels, len(images), seed=0)
    b, _ = make_set(shift, 3, params, images, labels, len(images), seed=1)
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("name", [n for n in SHIFTS if get_shift(n).kind != "generative"])
def test_distance_from_clean_grows_with_severity(name, mnist_test):
    images, labels = mnist_test.images[:300], mnist_test.labels[:300]
    shift = get_shift(name)
    clean = images.astype(np.float32)
    dist = []
    for sev in range(1, 6):
        x, _ = make_set(shift, sev, DEFAULT.params(name, sev), images, labels, len(images), seed=0)
        dist.append(float(np.abs(x.astype(np.float32) - clean).mean()))
    assert all(a < b for a, b in zip(dist, dist[1:], strict=False)), f"{name}: {dist}"
    assert dist[0] > 0


def test_unknown_names_and_severities_list_what_exists():
    with pytest.raises(UserError, match="Known shifts: .*gaussian_noise"):
        get_shift("gausian_noise")
    with pytest.raises(UserError, match="Families: noise"):
        resolve_names("noise,wobble")
    for bad in (0, 6, -1):
        with pytest.raises(UserError, match="levels 1, 2, 3, 4, 5"):
            DEFAULT.params("rotate", bad)
    with pytest.raises(UserError, match="Known suites: .*default"):
        load_suite("nightly")
    assert resolve_names("noise") == ["gaussian_noise", "impulse_noise", "shot_noise", "speckle_noise"]


def test_suites_load():
    quick = load_suite("quick")
    assert quick.severities == (3,) and len({get_shift(n).family for n in quick.shift_names}) == 10
    assert quick.params("rotate", 3) == DEFAULT.params("rotate", 3)
    mc = load_suite("mnist-c")
    assert mc.levels == 1 and len(mc.shift_names) == 15


def test_default_suite_matches_its_family_parts():
    # default.toml includes shifts/parts/<family>.toml, and augmentation falls back to the parts
    # when a suite is unusable: every non-MNIST-C part must be in default, with the same ladders.
    from robustmnist.assets import shifts_dir

    # MNIST-C's parts and the camera family's (shifts/camera.toml) are suites of their own
    parts = [p for p in sorted((shifts_dir() / "parts").glob("*.toml"))
             if not p.stem.startswith("mnistc") and p.stem != "camera"]
    seen = set()
    for part in parts:
        spec = load_suite(str(part))
        for name in spec.shift_names:
            seen.add(name)
            for sev in range(1, 6):
                assert spec.params(name, sev) == DEFAULT.params(name, sev), (part.name, name, sev)
    assert seen == set(SHIFTS)


def test_cache_hit_and_corruption_detection(digits, tmp_path):
    images, labels = digits
    shift = get_shift("gaussian_noise")
    params = DEFAULT.params("gaussian_noise", 2)
    kw = dict(source_sha="x", cache_root=tmp_path)
    first = get_set(shift, 2, params, images, labels, len(images), 0, **kw)
    again = get_set(shift, 2, params, images, labels, len(images), 0, **kw)
    assert not first.cached and again.cached and again.sha256 == first.sha256
    (cached_file,) = list(tmp_path.rglob("*.npz"))
    z = dict(np.load(cached_file))
    z["images"][0, 0, 0] ^= 0xFF  # flip bits in one pixel, keep the stored hash
    np.savez_compressed(cached_file, **z)
    with pytest.warns(UserWarning, match="sha256"):
        healed = get_set(shift, 2, params, images, labels, len(images), 0, **kw)
    assert not healed.cached and healed.sha256 == first.sha256
    cached_file.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable"):
        assert get_set(shift, 2, params, images, labels, len(images), 0, **kw).sha256 == first.sha256


def test_preview_cli_writes_png(mirror_root, tmp_path, monkeypatch, capsys):
    from PIL import Image

    from .helpers import run_cli

    out = tmp_path / "grid.png"
    code, _, err = run_cli(monkeypatch, capsys, "shifts", "preview", "rotate,euro_one", "--out", str(out),
                           "--data-root", str(mirror_root))
    assert code == 0, err
    im = Image.open(out)
    assert im.width > 12 * 56 and im.height > 2 * 6 * 56  # two grids of 6 rows
