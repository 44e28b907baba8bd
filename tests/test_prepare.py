"""The pre-checks eval, bench and the Python API share (robustmnist/prepare.py): the API refuses
what the CLI refuses, in its own words, and runs the same convention guard."""

from __future__ import annotations

import pytest
from torch import nn

import robustmnist
from robustmnist.errors import UserError

from .model_factory import quick_train


@pytest.mark.parametrize("kwargs, words", [
    ({"n": 0}, "n= must be at least 1, got 0"),
    ({"n": -5}, "n= must be at least 1, got -5"),
    ({"batch_size": 0}, "batch_size= must be at least 1, got 0"),
    ({"ood": "fashon"}, "fashon"),
])
def test_api_refuses_bad_requests_before_loading_anything(tmp_path, kwargs, words):
    with pytest.raises(UserError) as exc:
        robustmnist.evaluate(tmp_path / "missing.pt", **kwargs)  # the file's absence is not what fails
    assert words in str(exc.value) and "missing.pt" not in str(exc.value) and "--" not in str(exc.value)


def test_api_runs_the_same_convention_guard_as_eval(tiny_data_root):
    from robustmnist.data.datasets import load_mnist

    train = load_mnist("train", tiny_data_root)
    probs = nn.Sequential(quick_train("lenet5", train.images, train.labels, steps=40), nn.Softmax(dim=1))
    args = dict(clean_only=True, n=100, device="cpu", data_root=tiny_data_root)
    with pytest.raises(UserError) as exc:  # softmax outputs read as logits: stopped, with the fix
        robustmnist.evaluate(probs, **args)
    msg = str(exc.value)
    assert "probabilities" in msg and 'pass preprocess="' in msg and "output=probs" in msg
    assert "(or force=True to evaluate as declared)" in msg and "--" not in msg
    forced = robustmnist.evaluate(probs, force=True, **args)  # evaluated as declared, the verdict kept
    assert forced.summary["convention_check"]["status"] == "stop"
    assert any("probabilities" in w and "force" not in w for w in forced.summary["warnings"])
    explicit = robustmnist.evaluate(probs, preprocess="probs", **args)  # the user's call: no guard
    assert "convention_check" not in explicit.summary and explicit.summary["clean_prefix"]["n"] == 100
