"""bench --trained-on and MODEL::trained-on=...: declared augmentation per model, marked seen."""

from __future__ import annotations

import csv
import json
import sys

import pytest
import torch

from robustmnist.errors import UserError
from robustmnist.run.trained_on_spec import split_trained_on


@pytest.mark.parametrize("spec, want", [
    ("range=norm", ("range=norm", None)),
    ("trained-on=fonts", (None, "fonts")),
    ("trained-on=fonts,noise", (None, "fonts,noise")),
    ("range=0-1,trained-on=fonts,gaussian_noise,polarity=normal", ("range=0-1,polarity=normal",
                                                                    "fonts,gaussian_noise")),
    ("trained-on=none", (None, "")),
])
def test_trained_on_is_split_from_the_convention(spec, want):
    assert split_trained_on(f"m.pt::{spec}", spec) == want


def test_empty_trained_on_says_how_to_write_it():
    with pytest.raises(UserError, match="MODEL::trained-on=FAMILIES"):
        split_trained_on("m.pt::trained-on=", "trained-on=")


def test_per_model_declaration_overrides_the_flag(tmp_path):
    from robustmnist.run.model_args import model_specs

    a, b, c = (tmp_path / f"{k}.pt" for k in "abc")
    for p in (a, b, c):
        p.write_bytes(b"x")
    specs = model_specs([str(a), f"{b}::trained-on=fonts,range=norm", f"{c}::trained-on=none"],
                                   None, "range=0-1", "noise")
    assert [(s, t) for _, s, t in specs] == [("range=0-1", "noise"), ("range=norm", "fonts"),
                                             ("range=0-1", None)]
    with pytest.raises(UserError, match="unknown shift or family 'fontz'"):
        model_specs([f"{a}::trained-on=fontz"], None)
    with pytest.raises(UserError, match="unknown shift or family 'nois'"):
        model_specs([str(a)], None, None, "nois")


def _cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    from robustmnist.cli import main

    monkeypatch.setattr(sys, "argv", ["robustmnist", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code or 0, capsys.readouterr().err


def test_bench_marks_what_each_model_was_trained_on(tiny_data_root, tmp_path, monkeypatch, capsys):
    from robustmnist.models.zoo import build

    paths = []
    for i, name in enumerate(("plain", "rotated")):
        torch.manual_seed(i)
        paths.append(tmp_path / f"{name}.pt")
        torch.save(build("lenet5").state_dict(), paths[-1])
    out = tmp_path / "bench"
    code, err = _cli(monkeypatch, capsys, "bench", str(paths[0]), f"{paths[1]}::trained-on=rotate",
                     "--trained-on", "noise", "--arch", "lenet5", "--shift", "contrast,gaussian_noise,rotate",
                     "--severity", "1", "--n", "40", "--data-root", str(tiny_data_root), "--force",
                     "--out", str(out), "--format", "json")
    assert code == 0, err
    seen = {}
    for name in ("plain", "rotated"):
        res = json.loads((out / name / "results.json").read_text())
        seen[name] = {r["name"] for r in res["shifts"] if r.get("seen")}
        assert res["summary"]["seen_in_training"]["source"] == "--trained-on"
        unseen = [r["accuracy"] for r in res["shifts"] if not r.get("seen")]
        assert res["summary"]["mean_shifted_accuracy"] == pytest.approx(sum(unseen) / len(unseen))
    assert seen == {"plain": {"gaussian_noise"}, "rotated": {"rotate"}}  # ::trained-on replaces the flag
    with (out / "leaderboard.csv").open(newline="") as f:
        rows = {r["model"]: r for r in csv.DictReader(f)}
    assert rows["plain"]["seen_in_training"] == "noise" and rows["rotated"]["seen_in_training"] == "geometric"
    assert "noise" in (out / "leaderboard.md").read_text()


def test_api_evaluate_takes_trained_on(tiny_data_root):
    import robustmnist
    from robustmnist.models.zoo import build

    torch.manual_seed(0)
    r = robustmnist.evaluate(build("lenet5"), shift="contrast,rotate", severity=1, n=40, force=True,
                             data_root=tiny_data_root, trained_on="geometric", device="cpu").as_result()
    assert {x.name: x.seen for x in r.shifts} == {"contrast": False, "rotate": True}
    assert r.summary["mean_shifted_accuracy"] == pytest.approx(r.shifts[0].accuracy)
    with pytest.raises(UserError, match="unknown shift or family"):
        robustmnist.evaluate(build("lenet5"), shift="rotate", n=40, trained_on="fontz")
