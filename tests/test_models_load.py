"""Model formats, preprocess options and the bad inputs users hit: one clear line, exit 2."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from robustmnist.errors import UserError
from robustmnist.models.checkpoint import make_checkpoint, save_checkpoint
from robustmnist.models.load import load_model
from robustmnist.models.preprocess import Preprocess
from robustmnist.models.zoo import all_archs, build
from robustmnist.run.scoring import score

from .conftest import synthetic_digits
from .helpers import run_cli
from .model_factory import quick_train

REQUIRED_ARCHS = {"mlp-784-50-50-10", "mlp-784-50x3-10", "mlp-784-100x3-10", "mlp-784-1000x3-10",
                  "mlp-784-256-128-64-10", "lenet5", "cnn-small"}


@pytest.fixture(scope="module")
def digits():
    return synthetic_digits(300, seed=3)


@pytest.fixture(scope="module")
def trained(digits):
    return quick_train("lenet5", *digits, steps=60)


def export_all(model: nn.Module, tmp_path) -> dict[str, tuple]:
    """The same network in every supported format: path plus extra load kwargs."""
    ckpt = tmp_path / "model.pt"
    save_checkpoint(ckpt, make_checkpoint("lenet5", model))
    sd = tmp_path / "state.pt"
    torch.save(model.state_dict(), sd)
    ts = tmp_path / "model.ts"
    torch.jit.save(torch.jit.trace(model, torch.zeros(1, 1, 28, 28)), ts)
    onnx_path = tmp_path / "model.onnx"
    torch.onnx.export(model, (torch.zeros(2, 1, 28, 28),), str(onnx_path), dynamo=False,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    return {"checkpoint": (ckpt, {}), "state_dict": (sd, {"arch": "lenet5"}),
            "torchscript": (ts, {}), "onnx": (onnx_path, {})}


def test_zoo_has_the_published_architectures():
    assert REQUIRED_ARCHS <= set(all_archs())
    for name in REQUIRED_ARCHS:
        out = build(name)(torch.zeros(3, 1, 28, 28))
        assert out.shape == (3, 10)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_every_format_gives_identical_predictions(trained, digits, tmp_path):
    images, labels = digits
    preds = {}
    for fmt, (path, kw) in export_all(trained, tmp_path).items():
        m = load_model(path, **kw)
        assert m.format == fmt
        preds[fmt] = score(m, images).argmax(axis=1)
    ref = preds["checkpoint"]
    assert (ref == labels).mean() > 0.5  # the network really is trained
    for fmt, p in preds.items():
        assert np.array_equal(p, ref), fmt


def test_state_dict_architecture_is_matched_without_arch(trained, tmp_path):
    path = tmp_path / "sd.pt"
    torch.save(trained.state_dict(), path)
    assert load_model(path).arch == "lenet5"


def test_pickled_module_needs_trust_pickle(trained, tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(trained, path)
    with pytest.raises(UserError, match="trust_pickle=True"):
        load_model(path)
    with pytest.warns(UserWarning, match="unpickling"):
        assert load_model(path, trust_pickle=True).format == "pickle"


class Expects(nn.Module):
    """Wraps a network trained on 0-1 input so it expects another convention."""

    def __init__(self, inner: nn.Module, spec: Preprocess):
        super().__init__()
        self.inner, self.spec = inner, spec

    def forward(self, x):
        if self.spec.layout == "784":
            assert x.dim() == 2 and x.shape[1] == 784
            x = x.view(-1, 1, 28, 28)
        if self.spec.range == "0-255":
            x = x / 255.0
        elif self.spec.range == "-1-1":
            x = (x + 1) / 2
        elif self.spec.range == "norm":
            x = x * self.spec.std + self.spec.mean
        if self.spec.transpose:
            x = x.transpose(-1, -2)
        if self.spec.polarity == "inverted":
            x = 1 - x
        out = self.inner(x)
        if self.spec.output == "probs":
            return out.softmax(dim=1)
        if self.spec.output == "log-probs":
            return out.log_softmax(dim=1)
        return out


@pytest.mark.parametrize("spec_text", [
    "0-255", "-1-1", "norm", "norm:0.5:0.5", "inverted", "784", "transpose", "probs", "log-probs",
    "range=0-255,layout=784,output=probs,polarity=inverted",
])
def test_every_preprocess_option_recovers_the_model(trained, digits, spec_text):
    from robustmnist.models.load import LoadedModel

    images, _ = digits
    ref = score(LoadedModel(trained, Preprocess(), "ref", "", "test"), images)
    spec = Preprocess.parse(spec_text)
    wrapped = LoadedModel(Expects(trained, spec), spec, "w", "", "test")
    got = score(wrapped, images)
    assert np.array_equal(got.argmax(1), ref.argmax(1))
    # probabilities agree whatever the output kind (logits differ by a constant per row)
    p_ref = torch.from_numpy(ref).softmax(1)
    p_got = torch.from_numpy(got).softmax(1)
    assert torch.allclose(p_ref, p_got, atol=1e-4)


def test_preprocess_round_trips_and_rejects_nonsense():
    spec = Preprocess.parse("norm:0.2:0.4,inverted,784,probs")
    assert Preprocess.parse(spec.to_string()) == spec
    for bad in ("range=0-9", "layout=3d", "colour=blue", "wobble", "norm:x:y"):
        with pytest.raises(UserError):
            Preprocess.parse(bad)


class Shape(nn.Module):
    def __init__(self, out_dim=10, bad=None):
        super().__init__()
        self.lin = nn.Linear(784, out_dim)
        self.bad = bad

    def forward(self, x):
        out = self.lin(x.reshape(x.shape[0], -1))
        if self.bad == "nan":
            out = out * float("nan")
        return out


class Rejects(nn.Module):
    def forward(self, x):
        raise ValueError("expected a 3-channel image")


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"),
    ("empty", "is empty"),
    ("text", "not a model file"),
    ("wrong_out", "N×10"),
    ("rejects", "rejects both"),
    ("not_model", "not a model"),
])
def test_bad_model_files_give_one_clear_error(case, message, tmp_path):
    path = tmp_path / "m.pt"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("hello, I am not a model\n")
    elif case == "wrong_out":
        torch.jit.save(torch.jit.trace(Shape(out_dim=7), torch.zeros(2, 1, 28, 28)), path)
    elif case == "rejects":
        torch.jit.save(torch.jit.script(Rejects()), path)
    elif case == "not_model":
        torch.save([1, 2, 3], path)
    with pytest.raises(UserError, match=message):
        load_model(path)


def test_nan_outputs_are_reported(tmp_path):
    path = tmp_path / "nan.ts"
    torch.jit.save(torch.jit.trace(Shape(bad="nan"), torch.zeros(2, 1, 28, 28)), path)
    m = load_model(path)
    with pytest.raises(UserError, match="NaN"):
        score(m, np.zeros((4, 28, 28), np.uint8))


def fresh_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "robustmnist", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_cli_bad_input_is_one_line_exit_2(tmp_path, tiny_data_root, monkeypatch, capsys):
    import os

    env = {**os.environ, "ROBUSTMNIST_DATA": str(tiny_data_root)}
    bad = tmp_path / "junk.pt"
    bad.write_text("junk")
    cases = [
        ["eval", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "o1")],
        ["eval", str(bad), "--out", str(tmp_path / "o2")],
        ["eval", str(bad), "--device", "tpu", "--out", str(tmp_path / "o3")],
    ]
    # The first in a fresh process (all a user sees, import-time warnings included), the others
    # through the same main() in-process: a torch import less each.
    r = fresh_cli(*cases[0], env=env)
    outcomes = [(r.returncode, r.stderr)]
    monkeypatch.setenv("ROBUSTMNIST_DATA", str(tiny_data_root))
    for args in cases[1:]:
        code, _, err = run_cli(monkeypatch, capsys, *args)
        outcomes.append((code, err))
    for args, (code, err) in zip(cases, outcomes, strict=True):
        assert code == 2, (args, err)
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("robustmnist: error:"), err
        assert "Traceback" not in err
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_missing_data_root_is_one_line(tmp_path, trained, monkeypatch, capsys):
    model = tmp_path / "m.pt"
    save_checkpoint(model, make_checkpoint("lenet5", trained))
    monkeypatch.setenv("ROBUSTMNIST_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("ROBUSTMNIST_OFFLINE", "1")
    code, _, err = run_cli(monkeypatch, capsys, "eval", str(model), "--clean-only", "--out", str(tmp_path / "o"),
                           "--force")
    assert code == 2
    assert "MNIST/raw/t10k-images-idx3-ubyte" in err and "ROBUSTMNIST_DATA" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
