"""The forward-path probe: the chosen path is exact, inexact or broken candidates are dropped,
and the choice rests on evidence timing noise cannot fake (also with every core busy)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from robustmnist.models import fastpath
from robustmnist.models.load import LoadedModel
from robustmnist.models.preprocess import Preprocess
from robustmnist.models.zoo import build
from robustmnist.run.collect import evaluate
from robustmnist.run.scoring import score

from .conftest import synthetic_digits


def _loaded(module, preprocess: Preprocess | None = None) -> LoadedModel:
    return LoadedModel(module, preprocess or Preprocess(), "m.pt", "", "test")


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return synthetic_digits(300, seed=3)[0]


@pytest.mark.parametrize("arch", ["lenet5", "mlp-784-50-50-10"])
def test_the_chosen_path_scores_like_eager(arch, digits):
    torch.manual_seed(0)
    eager = _loaded(build(arch).eval(), Preprocess(layout="784" if arch.startswith("mlp") else "1x28x28"))
    fast = fastpath.accelerate(eager, digits)
    choice = fast.forward_path
    assert choice.name in (fastpath.EAGER, fastpath.ONNX, fastpath.FROZEN, fastpath.CHANNELS_LAST)
    # every candidate was either timed or dropped with a reason, and eager is always timed
    tried = set(choice.rates) | set(choice.rejected)
    assert fastpath.EAGER in choice.rates
    if arch == "lenet5":
        assert {fastpath.ONNX, fastpath.FROZEN, fastpath.CHANNELS_LAST} <= tried
    else:  # a plain MLP stays eager on every load (fastpath.worth_timing)
        assert tried == {fastpath.EAGER} and choice.name == fastpath.EAGER
    assert choice.images_per_s == choice.rates[choice.name] > 0
    a, b = score(eager, digits, 64), score(fast, digits, 64)  # other batch sizes than the probe's
    assert (a.argmax(1) == b.argmax(1)).all()
    assert np.abs(a - b).max() <= fastpath.EXACT_ATOL
    assert fastpath.accelerate(fast, digits) is fast  # idempotent: probed once


class Branchy(nn.Module):
    """Data-dependent control flow: a traced or exported graph keeps only one branch. (Weights of
    its own, not Linear layers: an MLP is not timed at all.)"""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Parameter(torch.randn(784, 10)), nn.Parameter(torch.randn(784, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        return x @ self.a if float(x.mean()) > 0.2 else x @ self.b


def test_a_graph_that_differs_from_eager_is_dropped(digits):
    # the first batch (holding the bright odd-size check batch) takes branch a, so the graph is
    # traced and exported through a; the later, dark batches take b in eager PyTorch
    images = digits.copy()
    images[:fastpath.ODD_BATCH] = 255
    _, choice = fastpath.choose(Branchy().eval(), Preprocess(layout="784"), images, batch_size=128)
    for name in (fastpath.ONNX, fastpath.FROZEN):
        assert name in choice.rejected and name not in choice.rates
        assert "not exact" in choice.rejected[name] or "failed" in choice.rejected[name]
    assert choice.name == fastpath.EAGER


class NotExportable(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x.numpy()[:, 0, :10, 0])) * 1.0


@pytest.fixture
def busy_cores():
    """Every core (up to 8) kept busy by a spinning process for the test: the load under which the
    old probe chose channels-last for models it cannot speed up."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(min(os.cpu_count() or 2, 8))]
    try:
        yield
    finally:
        for proc in spinners:
            proc.kill()
            proc.wait()


def test_a_candidate_that_cannot_be_built_leaves_eager(digits, busy_cores):
    module, choice = fastpath.choose(NotExportable().eval(), Preprocess(), digits, batch_size=128)
    assert choice.name == fastpath.EAGER and module.__class__ is NotExportable
    assert fastpath.ONNX in choice.rejected
    assert fastpath.CHANNELS_LAST not in choice.rates  # no convolution: nothing for it to speed up


class CustomMLP(nn.Module):
    """An MLP with a forward of its own, as many are written."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(784, 64), nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


class OwnWeights(nn.Module):
    """No convolution, and weights outside any layer: the probe times its graph paths."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(784, 10) / 28)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x.flatten(1)) @ self.w


def test_mlps_stay_eager_and_nothing_takes_channels_last_with_every_core_busy(digits, busy_cores):
    torch.manual_seed(0)
    # a zoo MLP fed 1x28x28 (it flattens): the model the old probe put on "channels-last, 3.5x eager"
    for module in (build("mlp-784-256-128-64-10").eval(), CustomMLP().eval()):
        fast, choice = fastpath.choose(module, Preprocess(), digits, batch_size=128)
        assert choice.name == fastpath.EAGER and fast is module
        assert set(choice.rates) == {fastpath.EAGER} and choice.rejected == {}
    # a model that is neither has its graph paths timed, but channels-last is no candidate for it
    _, choice = fastpath.choose(OwnWeights().eval(), Preprocess(), digits, batch_size=128)
    assert fastpath.CHANNELS_LAST not in set(choice.rates) | set(choice.rejected)
    assert {fastpath.ONNX, fastpath.FROZEN} <= set(choice.rates) | set(choice.rejected)


def test_which_paths_a_model_structure_can_use():
    torch.manual_seed(0)

    def timed(module, layout="1x28x28"):
        return [name for name in fastpath.candidates(module, Preprocess(layout=layout), torch.device("cpu"))
                if fastpath.worth_timing(name, module)]

    lenet, mlp = build("lenet5").eval(), build("mlp-784-50-50-10").eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, still shipped
        traced, traced_mlp = (torch.jit.trace(m, torch.zeros(2, 1, 28, 28)) for m in (lenet, mlp))
        frozen = torch.jit.freeze(traced)
    everything = [fastpath.ONNX, fastpath.FROZEN, fastpath.CHANNELS_LAST]
    assert timed(lenet) == timed(traced) == everything
    assert timed(frozen) == everything  # no weights left, but conv ops in the graph
    assert timed(mlp) == timed(mlp, "784") == timed(traced_mlp) == []
    assert timed(CustomMLP()) == []
    assert timed(OwnWeights()) == timed(NotExportable()) == timed(Branchy()) == [fastpath.ONNX, fastpath.FROZEN]
    # a Ray worker can still follow any path its driver chose (candidates is what can be built)
    assert list(fastpath.candidates(mlp, Preprocess(), torch.device("cpu"))) == everything


def test_gpus_and_foreign_callables_keep_their_own_path():
    model = build("lenet5").eval()
    assert fastpath.candidates(model, Preprocess(), torch.device("cuda")) == {}
    assert fastpath.candidates(model, Preprocess(), torch.device("mps")) == {}
    assert fastpath.candidates(lambda x: x, Preprocess(), torch.device("cpu")) == {}
    _, choice = fastpath.choose(lambda x: torch.zeros(len(x), 10), Preprocess(),
                                np.zeros((20, 28, 28), np.uint8))
    assert choice.name == fastpath.EAGER and choice.rejected == {} and set(choice.rates) == {"eager"}


def test_a_torchscript_model_takes_a_fast_path_too(digits):
    torch.manual_seed(1)
    net = build("lenet5").eval()
    script = torch.jit.trace(net, torch.zeros(2, 1, 28, 28))
    _, choice = fastpath.choose(script, Preprocess(), digits, batch_size=128)
    assert {fastpath.ONNX, fastpath.FROZEN} <= set(choice.rates) | set(choice.rejected)
    assert fastpath.ONNX in choice.rates, choice.rejected  # the exporter takes ScriptModules


def test_the_engine_records_the_path_and_predictions_do_not_change(tiny_data_root):
    from robustmnist.shifts.suite import load_suite

    torch.manual_seed(0)
    model = _loaded(build("lenet5").eval())
    suite = load_suite("quick").restrict(["gaussian_noise"], [3])
    fast = evaluate(model, suite, n=100, data_root=tiny_data_root, use_cache=False)
    slow = evaluate(model, suite, n=100, data_root=tiny_data_root, use_cache=False, fast=False)
    for key in slow.predictions:
        assert (fast.predictions[key] == slow.predictions[key]).all(), key
    path = fast.result.execution["forward_path"]
    assert path["name"] in path["rates"] and path["max_abs_diff"] <= fastpath.EXACT_ATOL
    assert "forward_path" not in slow.result.execution


def test_the_onnxruntime_path_survives_pickling(digits):
    import pickle

    torch.manual_seed(0)
    net = build("lenet5").eval()
    ort_module = fastpath.candidates(net, Preprocess(), torch.device("cpu"))[fastpath.ONNX](torch.zeros(4, 1, 28, 28))
    again = pickle.loads(pickle.dumps(ort_module))  # Ray ships models to worker processes
    a = score(_loaded(ort_module), digits)
    assert np.array_equal(a, score(_loaded(again), digits))
    assert np.abs(a - score(_loaded(net), digits)).max() <= fastpath.EXACT_ATOL


@pytest.mark.mirror
def test_a_trained_lenet5_predicts_identically_on_the_whole_clean_test_set(mirror_lenet, mnist_test):
    from robustmnist.models.load import load_model

    eager = load_model(mirror_lenet)
    fast = fastpath.accelerate(eager, mnist_test.images)
    a, b = score(eager, mnist_test.images), score(fast, mnist_test.images)
    assert (a.argmax(1) == b.argmax(1)).all() and np.abs(a - b).max() <= fastpath.EXACT_ATOL
    assert (a.argmax(1) == mnist_test.labels).mean() > 0.9  # a real model, not chance


def test_as_loaded_gives_back_the_module_gradients_flow_through(digits):
    net = build("lenet5").eval()
    fast = fastpath.accelerate(_loaded(net), digits)
    back = fastpath.as_loaded(fast)
    assert back.module is net and back.forward_path is None
    assert fastpath.as_loaded(back) is back  # never accelerated: unchanged
    x = torch.zeros(2, 1, 28, 28, requires_grad=True)
    back.module(x).sum().backward()
    assert x.grad is not None
