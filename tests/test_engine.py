"""The scorer's contract beyond formats: batch-size independence and the out-of-memory back-off
(simulated on CPU: the engine catches torch.cuda.OutOfMemoryError whatever the device)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from robustmnist.errors import UserError
from robustmnist.models.load import LoadedModel
from robustmnist.models.preprocess import Preprocess
from robustmnist.models.zoo import build
from robustmnist.run.scoring import score

from .conftest import synthetic_digits


class RunsOutOfMemoryAbove(nn.Module):
    """A network whose device 'fits' at most ``limit`` images per batch."""

    def __init__(self, inner: nn.Module, limit: int):
        super().__init__()
        self.inner, self.limit, self.batches = inner, limit, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(len(x))
        if len(x) > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.inner(x)


def _loaded(module: nn.Module) -> LoadedModel:
    return LoadedModel(module.eval(), Preprocess(), "sim.pt", "", "test")


def test_out_of_memory_halves_the_batch_and_keeps_every_logit():
    torch.manual_seed(0)
    net = build("lenet5")
    images, _ = synthetic_digits(300)
    expected = score(_loaded(net), images, batch_size=300)
    flaky = RunsOutOfMemoryAbove(net, limit=70)
    got = score(_loaded(flaky), images, batch_size=512)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # 512 -> 256 -> 128 -> 64 fits: the back-off stops there and stays there.
    assert flaky.batches[:4] == [300, 256, 128, 64] and set(flaky.batches[4:]) <= {64, 300 - 4 * 64}


def test_out_of_memory_at_batch_one_is_a_clear_error():
    flaky = RunsOutOfMemoryAbove(build("lenet5"), limit=0)
    with pytest.raises(UserError, match="out of memory even at batch size 1"):
        score(_loaded(flaky), synthetic_digits(10)[0], batch_size=8)


def test_scores_do_not_depend_on_the_batch_size():
    torch.manual_seed(1)
    model = _loaded(build("mlp-784-256-128-64-10"))
    images, _ = synthetic_digits(257)
    a = score(model, images, batch_size=1)
    b = score(model, images, batch_size=512)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert a.shape == (257, 10) and a.dtype == np.float32
