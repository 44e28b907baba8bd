"""A Normalize-trained CNN fed 0-1 pixels loses little clean accuracy but most of its likelihood:
the guard stops it on a paired likelihood test, and ``preprocess="auto"`` applies the convention
it detects (issue 25 item 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import robustmnist
from robustmnist.errors import UserError

from .example_models import script_model
from .helpers import run_cli as cli

NORM = "range=norm:0.1307:0.3081,polarity=normal,layout=1x28x28,output=logits"
pytestmark = [pytest.mark.mirror, pytest.mark.usefixtures("one_thread")]


class PlainLogits(nn.Module):
    """The example CNN without its log_softmax giving the game away: softmax-equal logits."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x) + 1.0


@pytest.fixture(scope="session")
def normalize_cnn(example_cnn, tmp_path_factory) -> Path:
    return script_model(PlainLogits(torch.jit.load(str(example_cnn))),
                        tmp_path_factory.mktemp("models") / "norm-cnn-logits.ts.pt")


def test_a_likelihood_gap_stops_the_run_and_offers_auto(normalize_cnn, mirror_root, tmp_path, monkeypatch,
                                                         capsys):
    out = tmp_path / "res"
    code, stdout, err = cli(monkeypatch, capsys, "eval", str(normalize_cnn), "--clean-only", "--n", "200",
                            "--data-root", str(mirror_root), "--out", str(out))
    assert code == 2 and stdout == "" and len(err.strip().splitlines()) == 1, err
    assert "NLL" in err and "paired sign test" in err and "range=norm:0.1307:0.3081" in err
    assert "--preprocess auto" in err and f"--preprocess {NORM}" in err and "--force" in err
    assert not out.exists()
    with pytest.raises(UserError, match='pass preprocess="auto"'):  # the API says it in its own words
        robustmnist.evaluate(str(normalize_cnn), clean_only=True, n=100, data_root=mirror_root)


def test_auto_applies_what_it_detects_and_says_so(normalize_cnn, mirror_root, tmp_path, monkeypatch, capsys):
    code, _, err = cli(monkeypatch, capsys, "eval", str(normalize_cnn), "--preprocess", "auto", "--shift",
                       "contrast", "--severity", "3", "--n", "200", "--data-root", str(mirror_root),
                       "--out", str(tmp_path), "--format", "json,md,html")
    assert code == 0, err
    assert "convention detected: range=norm:0.1307:0.3081 instead of the declared range=0-1" in " ".join(err.split())
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["model"]["preprocess"] == NORM
    check = res["summary"]["convention_check"]
    assert check["applied"] is True and check["fix"] == NORM and check["likelihood"]["lower"] > 900
    assert res["summary"]["convention_detected"].startswith("convention detected: range=norm")
    assert "convention detected" in (tmp_path / "report.md").read_text()
    assert "convention detected" in (tmp_path / "report.html").read_text()
    # the same numbers as naming the convention, better than evaluating as declared
    args = dict(shift="contrast", severity=3, n=200, data_root=mirror_root, device="cpu")
    named = robustmnist.evaluate(str(normalize_cnn), preprocess=NORM, **args)
    declared = robustmnist.evaluate(str(normalize_cnn), force=True, **args)
    assert res["clean"]["confusion"] == named.clean.confusion
    assert res["shifts"][0]["accuracy"] == named.shifts[0].accuracy
    assert named.shifts[0].accuracy > declared.shifts[0].accuracy + 0.1
    assert named.clean.nll < declared.clean.nll / 3


def test_auto_leaves_a_right_convention_alone(mirror_lenet, mirror_root):
    args = dict(shift="contrast", severity=3, n=150, data_root=mirror_root, device="cpu")
    auto = robustmnist.evaluate(str(mirror_lenet), preprocess="auto", **args)
    plain = robustmnist.evaluate(str(mirror_lenet), **args)
    assert auto.model.preprocess == plain.model.preprocess
    assert auto.summary["convention_check"]["applied"] is False and "convention_detected" not in auto.summary
    assert auto.clean.confusion == plain.clean.confusion and auto.shifts[0].accuracy == plain.shifts[0].accuracy


def test_bench_model_auto(normalize_cnn, mirror_lenet, mirror_root, tmp_path, monkeypatch, capsys):
    code, _, err = cli(monkeypatch, capsys, "bench", f"{normalize_cnn}::auto", str(mirror_lenet), "--shift",
                       "contrast", "--severity", "3", "--n", "150", "--data-root", str(mirror_root),
                       "--out", str(tmp_path), "--format", "json")
    assert code == 0, err
    got = {p.parent.name: json.loads(p.read_text()) for p in tmp_path.glob("*/results.json")}
    cnn = next(r for name, r in got.items() if "norm-cnn" in name)
    lenet = next(r for name, r in got.items() if "norm-cnn" not in name)
    assert cnn["model"]["preprocess"] == NORM and cnn["summary"]["convention_check"]["applied"] is True
    assert "range=0-1" in lenet["model"]["preprocess"]


def test_auto_is_for_runs_that_can_detect(mirror_lenet):
    with pytest.raises(UserError, match="evaluate and bench"):
        robustmnist.load_model(str(mirror_lenet), preprocess="auto")
