"""Sets out (shifts export), predictions in (eval --predictions), and suite-declared library shifts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from robustmnist.errors import UserError
from robustmnist.shifts.suite import load_suite

from .helpers import run_cli

SUITE = """
name = "libs"
levels = 2
[shifts.rotate]
degrees = [10, 40]
[shifts.albu_flip]
type = "albumentations"
transform = "HorizontalFlip"
family = "geometric"
[shifts.albu_noise]
type = "albumentations"
transform = "GaussNoise"
family = "noise"
std_range = [[0.1, 0.1], [0.4, 0.4]]
[shifts.tv_rotation]
type = "torchvision"
transform = "RandomRotation"
degrees = [[-30, 30], [90, 90]]
"""


@pytest.fixture
def suite_file(tmp_path):
    p = tmp_path / "libs.toml"
    p.write_text(SUITE)
    return p


def _set(suite, name, sev, images, labels, seed=0):
    from robustmnist.shifts.sets import make_set

    return make_set(suite.shift(name), sev, suite.params(name, sev), images, labels, len(images), seed)[0]


def test_library_shifts_are_seeded_and_byte_identical(suite_file, tiny_data_root):
    from robustmnist.data.datasets import load_mnist

    suite = load_suite(str(suite_file))
    assert suite.shift_names == ["rotate", "albu_flip", "albu_noise", "tv_rotation"]
    assert suite.shift("albu_noise").family == "noise" and suite.shift("tv_rotation").family == "custom"
    assert suite.params("albu_noise", 2)["library"].startswith("albumentations==")
    mnist = load_mnist("test", tiny_data_root)
    x, y = mnist.images[:40], mnist.labels[:40]
    # p defaults to 1: every image is flipped, exactly as numpy flips it
    assert np.array_equal(_set(suite, "albu_flip", 1, x, y), x[:, :, ::-1])
    for name, sev in (("albu_noise", 2), ("tv_rotation", 1)):
        a, b = _set(suite, name, sev, x, y), _set(suite, name, sev, x, y)
        assert a.dtype == np.uint8 and a.shape == x.shape and np.array_equal(a, b), name
        assert not np.array_equal(a, _set(suite, name, sev, x, y, seed=1)), name
    change = [float(np.abs(_set(suite, "albu_noise", s, x, y).astype(int) - x).mean()) for s in (1, 2)]
    assert 0 < change[0] < change[1]
    # a torchvision RandomRotation of exactly 90 degrees is a transpose-and-flip of the square image
    rot = _set(suite, "tv_rotation", 2, x, y)
    turned = torch.from_numpy(x).rot90(1, (1, 2)).numpy()
    turned_back = torch.from_numpy(x).rot90(-1, (1, 2)).numpy()
    assert all(np.array_equal(r, t) or np.array_equal(r, u) for r, t, u in zip(rot, turned, turned_back, strict=True))


@pytest.mark.parametrize("table, message", [
    ('type = "albumentations"\ntransform = "NoSuchThing"', "is not a albumentations transform"),
    ('type = "albumentations"\ntransform = "GaussNoise"\nstd_range = [[2, 1], [0.1, 0.1]]', "level 1: GaussNoise"),
    ('type = "albumentations"\ntransform = "GaussNoise"\nsigmaa = [1, 2]', "'sigmaa' are not valid"),
    ('type = "keras"\ntransform = "X"', "type must be one of"),
])
def test_bad_library_shift_specs_are_one_clear_error(table, message, tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text(f'name = "bad"\nlevels = 2\n[shifts.mine]\n{table}\n')
    with pytest.raises(UserError, match=message):
        load_suite(str(p))


def _cli(*args, env):
    return subprocess.run([sys.executable, "-m", "robustmnist", *args], capture_output=True, text=True,
                          env=env, timeout=600)


def test_export_then_predictions_score_like_the_model(suite_file, tiny_data_root, tmp_path, monkeypatch, capsys):
    import robustmnist
    from robustmnist.models.zoo import build
    from robustmnist.shifts.export import export_sets

    env = {**os.environ, "ROBUSTMNIST_DATA": str(tiny_data_root)}
    torch.manual_seed(0)
    net = build("mlp-784-50-50-10").eval()
    picked = robustmnist.api.build_suite(str(suite_file), "rotate,albu_noise")
    r = _cli("shifts", "export", "--suite", str(suite_file), "--shift", "rotate,albu_noise", "--n", "30",
             "--out", str(tmp_path / "npz"), "--format", "npz", env=env)
    assert r.returncode == 0, r.stderr
    for fmt in ("idx", "png"):
        export_sets(picked, tmp_path / fmt, fmt, n=30, data_root=tiny_data_root)
    manifest = json.loads((tmp_path / "npz" / "manifest.json").read_text())
    names = [s["name"] for s in manifest["sets"]]
    assert names == ["clean", "rotate@1", "rotate@2", "albu_noise@1", "albu_noise@2"]
    assert json.loads((tmp_path / "png" / "manifest.json").read_text())["sets"] == \
        [{**s, "files": [f"{s['files'][0][:-4]}/", f"{s['files'][0][:-4]}/labels.csv"]} for s in manifest["sets"]]
    preds = {}
    for s in manifest["sets"]:
        z = np.load(tmp_path / "npz" / s["files"][0])
        idx = (tmp_path / "idx" / f"{s['files'][0][:-4]}-images-idx3-ubyte").read_bytes()
        assert np.array_equal(np.frombuffer(idx[16:], np.uint8).reshape(-1, 28, 28), z["images"])
        png = tmp_path / "png" / s["files"][0][:-4] / f"00007_{int(z['labels'][7])}.png"
        from PIL import Image

        assert np.array_equal(np.asarray(Image.open(png)), z["images"][7])
        with torch.no_grad():
            preds[s["name"]] = net(torch.from_numpy(z["images"]).float().div(255)).softmax(1).numpy()
    np.savez(tmp_path / "preds.npz", **preds)
    a = robustmnist.evaluate(net, suite=picked, n=30, data_root=tiny_data_root, device="cpu", force=True)
    # export ran in a fresh process (its sets must be the bytes this one makes); scoring runs in-process
    monkeypatch.setenv("ROBUSTMNIST_DATA", str(tiny_data_root))
    code, _, err = run_cli(monkeypatch, capsys, "eval", "--predictions", str(tmp_path / "preds.npz"), "--out",
                           str(tmp_path / "e2"), "--suite", str(suite_file), "--shift", "rotate,albu_noise",
                           "--n", "30", "--format", "json", "-q")
    assert code == 0, err
    b = json.loads((tmp_path / "e2" / "results.json").read_text())
    assert b["model"]["format"] == "predictions" and "output=probs" in b["model"]["preprocess"]
    # a predictions file holds the n exported clean digits; the net's own run scores every one
    assert b["clean"]["n"] == 30 and b["clean"]["accuracy"] == a.summary["clean_prefix"]["accuracy"]
    for x, y in zip(a.shifts, b["shifts"], strict=True):
        assert x.confusion == y["confusion"] and abs(x.nll - y["nll"]) < 1e-4
        assert getattr(x, "sha256", None) == y.get("sha256")
    assert [s["sha256"] for s in manifest["sets"][1:]] == [s.sha256 for s in a.shifts]
    with pytest.raises(UserError, match="already exists"):
        export_sets(picked, tmp_path / "npz", "npz", n=30, data_root=tiny_data_root)
    code, _, err = run_cli(monkeypatch, capsys, "eval", "--predictions", str(tmp_path / "preds.npz"), "--suite",
                           str(suite_file), "--n", "30", "--out", str(tmp_path / "e3"))
    assert code == 2 and "no scores for set 'albu_flip@1'" in err
    assert not (tmp_path / "e3").exists()
