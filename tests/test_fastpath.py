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
    assert choice.name == fastpath.decide(choice.times)  # the record holds what decided


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


def test_paths_after_a_clear_gain_are_neither_built_nor_timed(digits, monkeypatch):
    # made-up timings in preference order: onnxruntime as fast as eager, then frozen 3x faster
    made_up = iter([[(1.0, 1.0)] * 5, [(1.0, 1 / 3)] * 5])
    monkeypatch.setattr(fastpath, "_time_rounds", lambda *a: next(made_up))
    _, choice = fastpath.choose(build("lenet5").eval(), Preprocess(), digits, batch_size=128)
    assert choice.name == fastpath.FROZEN and list(choice.times) == [fastpath.ONNX, fastpath.FROZEN]
    assert choice.rejected == {fastpath.CHANNELS_LAST: "not tried: an earlier path already beat eager clearly"}
    assert fastpath.CHANNELS_LAST not in choice.build_s and choice.rates[fastpath.FROZEN] == 3.0


def test_only_limits_the_paths_tried(digits, monkeypatch):
    monkeypatch.setattr(fastpath, "_time_rounds", lambda *a: [(1.0, 0.25)] * 5)  # 4x, made up
    _, choice = fastpath.choose(build("lenet5").eval(), Preprocess(), digits, batch_size=128,
                                only=[fastpath.FROZEN])
    assert choice.name == fastpath.FROZEN and set(choice.rates) == {fastpath.EAGER, fastpath.FROZEN}
    assert choice.rejected == {}


# -- the decision rule on made-up timings (seconds per round; paths in preference order) --------

def _times(eager: list[float], **paths: list[float]) -> dict[str, list[tuple[float, float]]]:
    """Each path timed against the same eager rounds, in the form ``decide`` reads."""
    names = {"ort": fastpath.ONNX, "frozen": fastpath.FROZEN, "cl": fastpath.CHANNELS_LAST}
    return {names[k]: list(zip(eager, v, strict=False)) for k, v in paths.items()}


def test_a_clear_steady_gain_wins():
    assert fastpath.decide(_times(eager=[1.0] * 5, ort=[0.3, 0.35, 0.3, 0.32, 0.31])) == fastpath.ONNX


def test_a_gain_under_the_margin_keeps_eager():
    assert fastpath.decide(_times(eager=[1.0] * 5, ort=[0.8] * 5)) == fastpath.EAGER  # 1.25x every round


def test_one_lucky_round_does_not_win():
    # the old rule took each path's best round: 100x here, where the path is as fast as eager
    lucky = _times(eager=[1.0, 1.0, 1.1, 0.9, 1.0], cl=[0.01, 1.0, 1.05, 0.95, 1.0])
    assert fastpath.decide(lucky) == fastpath.EAGER
    slow_eager = _times(eager=[50.0, 1.0, 1.0, 1.0, 1.0], cl=[1.0] * 5)  # a spike in eager's round
    assert fastpath.decide(slow_eager) == fastpath.EAGER


def test_a_median_gain_without_a_majority_of_rounds_keeps_eager():
    # three rounds 4x faster, three 2x slower: the median (2.25x) passes, the majority does not
    assert fastpath.decide(_times(eager=[1.0] * 6, ort=[0.25] * 3 + [2.0] * 3)) == fastpath.EAGER
    assert fastpath.decide(_times(eager=[1.0] * 5, ort=[0.25] * 3 + [2.0] * 2)) == fastpath.ONNX


def test_too_few_rounds_are_no_evidence():
    n = fastpath.MIN_ROUNDS
    assert fastpath.decide(_times(eager=[1.0] * (n - 1), ort=[0.1] * (n - 1))) == fastpath.EAGER
    assert fastpath.decide(_times(eager=[1.0] * n, ort=[0.1] * n)) == fastpath.ONNX


def test_the_first_path_that_gains_runs_even_if_a_later_one_is_faster():
    # which graph path is fastest changes with the load: the preference order decides among them
    both = _times(eager=[1.0] * 5, ort=[0.5] * 5, frozen=[0.1] * 5)
    assert fastpath.decide(both) == fastpath.ONNX
    # lenet5 on a quiet machine: onnxruntime 1.2x, frozen 2x; the clear gain is frozen's, but
    # onnxruntime (2-3x with every core busy) is faster than eager too, so it runs on every load
    quiet = _times(eager=[1.0] * 5, ort=[1 / 1.2] * 5, frozen=[0.5] * 5)
    assert fastpath.decide(quiet) == fastpath.ONNX
    # no path that gains MIN_KEPT comes before it: the path with the clear gain runs
    assert fastpath.decide(_times(eager=[1.0] * 5, ort=[0.95] * 5, frozen=[0.5] * 5)) == fastpath.FROZEN
    noisy_first = _times(eager=[1.0] * 5, ort=[0.01, 0.01, 1.0, 1.0, 1.0], cl=[0.4] * 5)
    assert fastpath.decide(noisy_first) == fastpath.CHANNELS_LAST
    # a small gain on its own is no evidence to leave eager
    assert fastpath.decide(_times(eager=[1.0] * 5, ort=[1 / 1.2] * 5, frozen=[1 / 1.25] * 5)) == fastpath.EAGER


def test_eager_alone_or_incomplete_timings_keep_eager():
    assert fastpath.decide(_times(eager=[1.0] * 5)) == fastpath.EAGER
    assert fastpath.decide(_times(eager=[1.0] * 5, ort=[0.1] * 4)) == fastpath.EAGER
    assert fastpath.decide(_times(eager=[1.0] * 5, ort=[])) == fastpath.EAGER
