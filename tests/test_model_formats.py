"""The formats beyond torch's own: --model-code classes, pickles from scripts, safetensors, NumPy
MLPs, skops estimators, precomputed predictions; and the errors that name the fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from robustmnist.errors import UserError
from robustmnist.models.load import load_model
from robustmnist.run.scoring import score

from .conftest import synthetic_digits
from .helpers import run_cli

MYNET = textwrap.dedent("""
    import torch
    from torch import nn

    class MyNet(nn.Module):
        def __init__(self, hidden=16):
            super().__init__()
            self.fc1 = nn.Linear(784, hidden)
            self.fc2 = nn.Linear(hidden, 10)

        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(x.reshape(len(x), -1))))

    if __name__ == "__main__":
        import sys
        torch.manual_seed(0)
        torch.save(MyNet(), sys.argv[1])
        raise SystemExit(0)
""")


@pytest.fixture(scope="module")
def digits():
    return synthetic_digits(64, seed=5)[0]


@pytest.fixture(scope="module")
def code_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("code")
    (d / "mynet.py").write_text(MYNET)
    return d


def _mynet(code_dir, hidden=16):
    from robustmnist.models.model_code import ModelCode, build_model

    torch.manual_seed(1)
    return build_model(ModelCode(code_dir / "mynet.py", "MyNet"), {"hidden": hidden})


def _same(model_a, loaded, digits):
    x = torch.from_numpy(digits).float().div(255).unsqueeze(1)
    with torch.no_grad():
        ref = model_a(x).numpy()
    got = score(loaded, digits)
    assert np.allclose(got, ref, atol=1e-5), np.abs(got - ref).max()


def test_state_dict_of_your_own_class(code_dir, tmp_path, digits):
    net = _mynet(code_dir, hidden=24)
    torch.save(net.state_dict(), tmp_path / "sd.pt")
    with pytest.raises(UserError, match='model_code="FILE.py:ClassName"'):
        load_model(tmp_path / "sd.pt")
    m = load_model(tmp_path / "sd.pt", model_code=f"{code_dir / 'mynet.py'}:MyNet", model_kwargs='{"hidden": 24}')
    assert m.format == "state_dict" and m.n_params == sum(p.numel() for p in net.parameters())
    _same(net, m, digits)
    with pytest.raises(UserError, match=r"key 'fc1.weight' has shape \(24, 784\) in the file but \(16, 784\)"):
        load_model(tmp_path / "sd.pt", model_code=f"{code_dir / 'mynet.py'}:MyNet")
    with pytest.raises(UserError, match="defines no 'Nope'; its nn.Module classes: MyNet"):
        load_model(tmp_path / "sd.pt", model_code=f"{code_dir / 'mynet.py'}:Nope")
    with pytest.raises(UserError, match="JSON object"):
        load_model(tmp_path / "sd.pt", model_code=f"{code_dir / 'mynet.py'}:MyNet", model_kwargs="hidden=24")


def test_arch_mismatch_names_the_first_missing_or_unexpected_key(tmp_path):
    from robustmnist.models.zoo import build

    torch.save(build("mlp-784-50-50-10").state_dict(), tmp_path / "mlp.pt")
    with pytest.raises(UserError, match=r"missing key '0.weight' \(shape \(6, 1, 5, 5\)\); pass arch=NAME"):
        load_model(tmp_path / "mlp.pt", arch="lenet5")
    state = build("lenet5").state_dict()
    state["extra.bias"] = torch.zeros(3)
    torch.save(state, tmp_path / "extra.pt")
    with pytest.raises(UserError, match=r"unexpected key 'extra.bias' \(shape \(3,\)\)"):
        load_model(tmp_path / "extra.pt", arch="lenet5")


def test_pickle_saved_from_a_script_names_the_fix(code_dir, tmp_path, digits):
    whole = tmp_path / "whole.pt"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    subprocess.run([sys.executable, str(code_dir / "mynet.py"), str(whole)], check=True, env=env, timeout=120)
    with pytest.raises(UserError, match="trust_pickle=True"):
        load_model(whole)
    with pytest.warns(UserWarning, match="unpickling"):
        with pytest.raises(UserError, match=r"class MyNet was defined in the script that saved it; pass "
                                            r'model_code="FILE.py:MyNet" .*torch.jit.script'):
            load_model(whole, trust_pickle=True)
    with pytest.warns(UserWarning, match="unpickling"):
        m = load_model(whole, trust_pickle=True, model_code=code_dir / "mynet.py")
    assert m.format == "pickle"
    torch.manual_seed(0)
    from robustmnist.models.model_code import import_file

    _same(import_file(code_dir / "mynet.py").MyNet(), m, digits)


def test_pickle_of_a_module_class_takes_its_directory(tmp_path):
    pkg = tmp_path / "src"
    pkg.mkdir()
    (pkg / "mymodels.py").write_text(MYNET.split("if __name__")[0])
    script = "import sys, torch; sys.path.insert(0, sys.argv[1]); from mymodels import MyNet; " \
             "torch.save(MyNet(), sys.argv[2])"
    subprocess.run([sys.executable, "-c", script, str(pkg), str(tmp_path / "w.pt")], check=True, timeout=120)
    with pytest.warns(UserWarning), pytest.raises(UserError, match=r"needs the module 'mymodels'.*mymodels.py"):
        load_model(tmp_path / "w.pt", trust_pickle=True)
    with pytest.warns(UserWarning):
        assert load_model(tmp_path / "w.pt", trust_pickle=True, model_code=pkg).format == "pickle"


def test_cli_model_code_flags_and_one_line_warning(code_dir, tmp_path, tiny_data_root, monkeypatch, capsys):
    torch.manual_seed(0)
    net = _mynet(code_dir, hidden=8)
    torch.save(net.state_dict(), tmp_path / "sd.pt")
    env = {**os.environ, "ROBUSTMNIST_DATA": str(tiny_data_root)}
    monkeypatch.setenv("ROBUSTMNIST_DATA", str(tiny_data_root))
    code, _, err = run_cli(monkeypatch, capsys, "eval", str(tmp_path / "sd.pt"), "--clean-only", "--model-code",
                           f"{code_dir / 'mynet.py'}:MyNet", "--model-kwargs", '{"hidden": 8}', "--out",
                           str(tmp_path / "o"), "--format", "json", "--force", "-q")
    assert code == 0, err
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["model"]["format"] == "state_dict" and res["clean"]["n"] == 200
    from robustmnist.models.zoo import build

    torch.save(build("mlp-784-50-50-10"), tmp_path / "whole.pt")  # a pickle of torch's own classes
    # a fresh process for the warning: pytest records warnings in-process instead of showing them
    r = subprocess.run([sys.executable, "-m", "robustmnist", "eval", str(tmp_path / "whole.pt"), "--trust-pickle",
                        "--clean-only", "--out", str(tmp_path / "p"), "--format", "json", "--force", "-q"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    warned = [ln for ln in r.stderr.splitlines() if "unpickling" in ln]
    assert warned == [f"robustmnist: warning: unpickling {tmp_path / 'whole.pt'} because --trust-pickle was given"]
    assert "warnings.warn" not in r.stderr and "UserWarning" not in r.stderr


def test_safetensors_state_dict(code_dir, tmp_path, digits):
    from safetensors.torch import save_file

    from robustmnist.models.zoo import build

    torch.manual_seed(2)
    lenet = build("lenet5").eval()
    save_file(lenet.state_dict(), tmp_path / "m.safetensors")
    m = load_model(tmp_path / "m.safetensors")  # matched against the zoo
    assert (m.format, m.arch) == ("safetensors", "lenet5")
    _same(lenet, m, digits)
    net = _mynet(code_dir)
    save_file(net.state_dict(), tmp_path / "mine.bin")  # found by content, not by name
    m = load_model(tmp_path / "mine.bin", model_code=f"{code_dir / 'mynet.py'}:MyNet")
    assert m.format == "safetensors"
    _same(net, m, digits)


def _numpy_mlp(rng, sizes):
    return [(rng.normal(0, 0.1, (a, b)), rng.normal(0, 0.1, b)) for a, b in zip(sizes, sizes[1:], strict=False)]


def _numpy_forward(layers, x):
    for i, (w, b) in enumerate(layers):
        x = x @ w + b
        if i < len(layers) - 1:
            x = np.maximum(x, 0)
    return x


@pytest.mark.parametrize("orientation", ["in_out", "out_in"])
def test_numpy_mlp_npz_matches_the_numpy_forward_pass(orientation, tmp_path, digits):
    layers = _numpy_mlp(np.random.default_rng(0), [784, 32, 16, 10])
    arrays = {}
    for i, (w, b) in enumerate(layers, start=1):
        arrays[f"W{i}"], arrays[f"b{i}"] = (w if orientation == "in_out" else w.T), b
    np.savez(tmp_path / "mlp.npz", **arrays)
    m = load_model(tmp_path / "mlp.npz")
    assert m.format == "npz-mlp" and m.preprocess.layout == "784" and m.metadata["layers"] == [32, 16, 10]
    ref = _numpy_forward(layers, digits.reshape(-1, 784) / 255.0)
    assert np.allclose(score(m, digits), ref, atol=1e-5)
    np.savez(tmp_path / "bad.npz", W1=layers[0][0], b1=layers[0][1], W2=np.zeros((5, 10)), b2=np.zeros(10))
    with pytest.raises(UserError, match="layer 2 does not chain"):
        load_model(tmp_path / "bad.npz")
    np.savez(tmp_path / "other.npz", clean=np.zeros((3, 10)))
    with pytest.raises(UserError, match="--predictions"):
        load_model(tmp_path / "other.npz")


def test_skops_estimators_and_their_trusted_types(tmp_path):
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    x, y = synthetic_digits(200, seed=1)
    flat = x.reshape(len(x), -1) / 255.0
    keep = y != 3  # an estimator that never saw a 3: classes_ skips it
    est = LogisticRegression(max_iter=200).fit(flat[keep], y[keep])
    sio.dump(est, tmp_path / "lr.skops")
    m = load_model(tmp_path / "lr.skops")
    assert m.format == "skops" and m.preprocess.output == "probs" and m.preprocess.layout == "784"
    ours = score(m, x).argmax(1)
    assert np.array_equal(ours, est.predict(flat))
    mlp = MLPClassifier((8,), max_iter=30, random_state=0).fit(flat, y)
    sio.dump(mlp, tmp_path / "mlp.skops")
    with pytest.raises(UserError, match="AdamOptimizer.*trust_pickle=True"):
        load_model(tmp_path / "mlp.skops")
    assert np.array_equal(score(load_model(tmp_path / "mlp.skops", trust_pickle=True), x).argmax(1),
                          mlp.predict(flat))


def test_predictions_file_errors(tmp_path):
    from robustmnist.models.predictions import load_predictions

    np.savez(tmp_path / "p.npz", clean=np.full((4, 10), 0.1))
    m = load_predictions(tmp_path / "p.npz")
    assert m.preprocess.output == "probs"
    with pytest.raises(UserError, match="no scores for set 'rotate@3'"):
        m.module.scores_for("rotate@3", 4)
    with pytest.raises(UserError, match="must be 5×10"):
        m.module.scores_for("clean", 5)
    np.savez(tmp_path / "q.npz", other=np.zeros((4, 10)))
    with pytest.raises(UserError, match="no 'clean' scores"):
        load_predictions(tmp_path / "q.npz")


class _Twice(nn.Module):
    def forward(self, x):
        return torch.cat([x.reshape(len(x), -1)[:, :5]] * 2, 1)


def test_in_memory_module_layout_is_probed():
    from robustmnist.models.load import load_object

    flat_only = nn.Sequential(nn.Linear(784, 10))
    assert load_object(flat_only).preprocess.layout == "784"
    assert load_object(_Twice()).preprocess.layout == "1x28x28"
