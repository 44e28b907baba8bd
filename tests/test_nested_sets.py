"""Nested sets: the first n images of a set are the same whatever n is (shifts/sets.py)."""

from __future__ import annotations

import numpy as np
import pytest

from robustmnist.errors import UserError
from robustmnist.shifts import get_shift
from robustmnist.shifts.sets import NEST_CHUNK, get_set, make_set
from robustmnist.shifts.suite import load_suite

from .conftest import synthetic_digits

DEFAULT = load_suite("default")


@pytest.fixture(scope="module")
def source():
    # Two whole chunks and a part of a third, so n can end inside a chunk or past one.
    return synthetic_digits(2 * NEST_CHUNK + 30, seed=3)


def test_chunk_contract():
    assert NEST_CHUNK == 500  # others build on it: reference prefixes, budgets in whole chunks


@pytest.mark.parametrize("name", DEFAULT.shift_names)
def test_every_shift_is_a_prefix_of_its_larger_sets(name, source):
    images, labels = source
    shift = get_shift(name)
    params = DEFAULT.params(name, 4)
    small, y_small = make_set(shift, 4, params, images, labels, 7, seed=0)
    big, y_big = make_set(shift, 4, params, images, labels, NEST_CHUNK + 10, seed=0)
    assert small.shape == (7, 28, 28) and big.shape == (NEST_CHUNK + 10, 28, 28)
    assert np.array_equal(big[:7], small) and np.array_equal(y_big[:7], y_small)


def test_chunks_have_their_own_draws_and_digits(source):
    images, labels = source
    same = np.concatenate([images[:NEST_CHUNK]] * 2)
    same_y = np.concatenate([labels[:NEST_CHUNK]] * 2)
    shift = get_shift("gaussian_noise")
    x, _ = make_set(shift, 3, DEFAULT.params("gaussian_noise", 3), same, same_y, 2 * NEST_CHUNK, 0)
    # The same digits in chunks 0 and 1 get different noise: chunk 1 is not chunk 0 again.
    assert not np.array_equal(x[:NEST_CHUNK], x[NEST_CHUNK:])
    # Digits past the chunks a set uses do not touch it.
    other = images.copy()
    other[NEST_CHUNK:] = 255 - other[NEST_CHUNK:]
    a, _ = make_set(shift, 3, DEFAULT.params("gaussian_noise", 3), images, labels, 300, 0)
    b, _ = make_set(shift, 3, DEFAULT.params("gaussian_noise", 3), other, labels, 300, 0)
    assert np.array_equal(a, b)


def test_generative_chunks_are_balanced():
    shift = get_shift("fonts")
    _, y = make_set(shift, 1, DEFAULT.params("fonts", 1), None, None, NEST_CHUNK, 0)
    assert np.bincount(y, minlength=10).tolist() == [NEST_CHUNK // 10] * 10


def test_params_are_part_of_the_recipe(source):
    images, labels = source
    shift = get_shift("gaussian_noise")
    p = DEFAULT.params("gaussian_noise", 3)
    a, _ = make_set(shift, 3, p, images, labels, 50, 0)
    b, _ = make_set(shift, 3, {**p, "sigma": p["sigma"] * 1.0001}, images, labels, 50, 0)
    # Another ladder is another recipe: its own draws, not the same noise scaled.
    assert np.abs(a.astype(int) - b.astype(int)).max() > 3


def test_more_images_than_the_source_is_a_user_error(source):
    images, labels = source
    with pytest.raises(UserError, match="only"):
        make_set(get_shift("rotate"), 1, DEFAULT.params("rotate", 1), images, labels, len(images) + 1, 0)


def test_cached_sets_keep_the_prefix(source, tmp_path):
    images, labels = source
    shift = get_shift("rotate")
    p = DEFAULT.params("rotate", 2)
    small = get_set(shift, 2, p, images, labels, 20, 0, source_sha="s", cache_root=tmp_path)
    big = get_set(shift, 2, p, images, labels, 600, 0, source_sha="s", cache_root=tmp_path)
    again = get_set(shift, 2, p, images, labels, 20, 0, source_sha="s", cache_root=tmp_path)
    assert again.cached and np.array_equal(big.images[:20], small.images)


def test_generation_runs_in_float64_and_restores_the_default_dtype(source):
    import torch

    from robustmnist.shifts.sets import generation_precision

    images, labels = source
    with pytest.raises(UserError), generation_precision():
        assert torch.get_default_dtype() == torch.float64
        raise UserError("boom")
    assert torch.get_default_dtype() == torch.float32
    make_set(get_shift("rotate"), 1, DEFAULT.params("rotate", 1), images, labels, 5, 0)
    assert torch.get_default_dtype() == torch.float32


def test_halfway_values_round_up_whatever_the_float_error():
    import torch

    from robustmnist.shifts.sets import quantise

    # 127.5/255 computed three ways a CPU might: exact, and a few units in the last place off
    tie = torch.tensor(127.5 / 255, dtype=torch.float64)
    x = torch.stack([tie, torch.nextafter(tie, torch.tensor(0.0, dtype=torch.float64)),
                     tie * (1 - 4e-16), tie * (1 + 4e-16), torch.tensor(0.3 / 255, dtype=torch.float64)])
    assert quantise(x.view(-1, 1, 1, 1)).ravel().tolist() == [128, 128, 128, 128, 0]
