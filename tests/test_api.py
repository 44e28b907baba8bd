"""The Python API a notebook uses: lazy import, evaluate(module | path | callable), Result, sets."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import robustmnist
from robustmnist.errors import UserError

from .model_factory import quick_train

SUITE = """
name = "tiny"
levels = 2
[shifts.rotate]
degrees = [10, 40]
[shifts.gaussian_noise]
sigma = [0.1, 0.3]
"""


@pytest.fixture(scope="module")
def net(tiny_root_module):
    from robustmnist.data.datasets import load_mnist

    train = load_mnist("train", tiny_root_module)
    return quick_train("lenet5", train.images, train.labels, steps=40)


@pytest.fixture(scope="module")
def tiny_root_module(tmp_path_factory):
    from .conftest import synthetic_digits, write_idx

    root = tmp_path_factory.mktemp("data")
    for split, n in (("t10k", 200), ("train", 400)):
        write_idx(root, "MNIST", *synthetic_digits(n, 0), split)
    return root


@pytest.fixture
def suite_path(tmp_path):
    p = tmp_path / "tiny.toml"
    p.write_text(SUITE)
    return p


def test_import_robustmnist_does_not_import_torch():
    code = ("import sys, robustmnist; assert 'torch' not in sys.modules, 'torch imported'; "
            "assert set(robustmnist.__all__) >= {'evaluate', 'load_model', 'load_set', 'shifts', 'diagnose', "
            "'Result'}; assert 'evaluate' in dir(robustmnist); print(robustmnist.__version__)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        robustmnist.nope  # noqa: B018


def test_shifts_lists_the_catalog_and_is_the_subpackage():
    import robustmnist.shifts.registry as registry

    listed = robustmnist.shifts()
    assert [s.name for s in listed] == list(registry.all_shifts())
    assert {s.family for s in robustmnist.shifts("noise")} == {"noise"}
    assert robustmnist.shifts.get_shift("rotate").family == "geometric"  # still the package
    with pytest.raises(UserError, match="unknown family"):
        robustmnist.shifts("nope")


def test_evaluate_an_in_memory_module(net, tiny_root_module, suite_path, tmp_path):
    r = robustmnist.evaluate(net, suite=suite_path, n=100, device="cpu", data_root=tiny_root_module, force=True)
    assert isinstance(r, robustmnist.Result)
    assert r.model.format == "module" and r.model.name == "Sequential" and len(r.model.sha256) == 64
    assert r.clean.n == 200 and r.summary["clean_prefix"]["n"] == 100 and r.clean.accuracy > 0.5
    assert [(s.name, s.severity) for s in r.shifts] == [("rotate", 1), ("rotate", 2), ("gaussian_noise", 1),
                                                       ("gaussian_noise", 2)]
    df = r.to_pandas()
    assert list(df.columns)[:6] == ["model", "set", "kind", "family", "severity", "class"]
    clean_all = df[(df["set"] == "clean") & (df["class"] == "all")].iloc[0]
    assert clean_all["n"] == 200 and abs(clean_all["accuracy"] - r.clean.accuracy) < 1e-6
    written = r.save(tmp_path / "out", formats="json,html")
    assert set(written) == {"json", "html"} and (tmp_path / "out" / "predictions.npz").is_file()
    assert robustmnist.results.Result.load(written["json"]).clean.accuracy == r.clean.accuracy
    page = r._repr_html_()
    assert page.startswith("<iframe srcdoc=") and "&lt;html" in page and "<script" not in page
    assert "Sequential" in repr(r)


def test_callables_get_numpy_digits_in_the_declared_convention(net, tiny_root_module):
    seen = {}

    def probs_255(x):  # a NumPy model that wants raw pixels and returns probabilities
        seen["dtype"], seen["shape"] = x.dtype, x.shape
        t = torch.from_numpy(x).float().div(255).unsqueeze(1)
        return net(t).softmax(1).detach().numpy()

    r = robustmnist.evaluate(probs_255, preprocess="0-255", clean_only=True, n=60, device="cpu",
                             data_root=tiny_root_module, force=True)
    assert seen["dtype"] == np.uint8 and seen["shape"][1:] == (28, 28)
    assert r.model.format == "callable" and "output=probs" in r.model.preprocess
    ref = robustmnist.evaluate(net, clean_only=True, n=60, device="cpu", data_root=tiny_root_module, force=True)
    assert r.clean.accuracy == ref.clean.accuracy and r.clean.confusion == ref.clean.confusion
    assert abs(r.clean.nll - ref.clean.nll) < 1e-4


def test_sklearn_estimator_object(tiny_root_module):
    from sklearn.linear_model import LogisticRegression

    from robustmnist.data.datasets import load_mnist

    train, test = load_mnist("train", tiny_root_module), load_mnist("test", tiny_root_module)
    est = LogisticRegression(max_iter=200).fit(train.images.reshape(-1, 784) / 255.0, train.labels)
    r = robustmnist.evaluate(est, clean_only=True, device="cpu", data_root=tiny_root_module, force=True)
    own = est.predict(test.images.reshape(-1, 784) / 255.0)
    assert r.model.format == "sklearn" and abs(r.clean.accuracy - (own == test.labels).mean()) < 1e-9


def test_load_set_is_the_evaluated_set(tiny_root_module, suite_path):
    x1, y1 = robustmnist.load_set("rotate", 2, n=50, suite=suite_path, data_root=tiny_root_module)
    x2, _ = robustmnist.load_set("rotate", 2, n=50, suite=suite_path, data_root=tiny_root_module)
    clean, labels = robustmnist.load_set("clean", n=50, data_root=tiny_root_module)
    assert x1.shape == (50, 28, 28) and x1.dtype == np.uint8 and np.array_equal(x1, x2)
    assert np.array_equal(y1, labels) and not np.array_equal(x1, clean)
    from robustmnist.shifts.sets import set_sha256

    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    r = robustmnist.evaluate(net, suite=suite_path, shift="rotate", severity=2, n=50, device="cpu",
                             data_root=tiny_root_module, force=True)
    assert r.shifts[0].sha256 == set_sha256(x1, y1)


def test_real_sets_through_the_api(net, tiny_root_module):
    r = robustmnist.evaluate(net, clean_only=True, real="digits", n=80, device="cpu", data_root=tiny_root_module,
                             force=True)
    assert [x.name for x in r.real] == ["digits"] and r.real[0].n == 80


def test_unbuilt_options_and_bad_models_are_one_clear_error(tiny_root_module):
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with pytest.raises(UserError, match="budget"):
        robustmnist.evaluate(net, shift="gaussian_noise", severity=1, budget="ten minutes", device="cpu",
                             data_root=tiny_root_module, force=True)
    with pytest.raises(UserError, match="cannot score a int"):
        robustmnist.evaluate(3, data_root=tiny_root_module)
    with pytest.raises(UserError, match="in-memory model is already built"):
        robustmnist.load_model(net, arch="lenet5")


def test_doctor_reads_an_in_memory_callable(net, tiny_root_module):
    from robustmnist.data.datasets import load_mnist
    from robustmnist.doctor import diagnose

    test = load_mnist("test", tiny_root_module)

    def inverted(x):  # a model trained on black-on-white digits
        return net(torch.from_numpy(1.0 - x).float().unsqueeze(1)).detach().numpy()

    d = diagnose(robustmnist.load_model(inverted), sample=(test.images, test.labels), check_dead_units=False)
    assert "polarity=inverted" in (d.fix_preprocess or "")


def test_budget_plans_n_and_is_recorded(net, tiny_root_module):
    r = robustmnist.evaluate(net, shift="gaussian_noise", severity=1, budget="10m", device="cpu",
                             data_root=tiny_root_module, force=True)
    assert r.execution["budget_s"] == 600 and r.execution["n_reason"] in ("fits the budget", "budget")
    assert r.shifts[0].n == r.execution["n"] == r.clean.n
