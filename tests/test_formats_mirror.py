"""Every way in, end to end on the mirror's MNIST test set: the same predictions as the framework's
own inference (for torch formats: a TorchScript of the same network)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import robustmnist
from robustmnist.models.load import load_model
from robustmnist.run.scoring import score

pytestmark = pytest.mark.mirror

LENET_FILE = textwrap.dedent("""
    import sys
    import torch
    from torch import nn
    from robustmnist.models.zoo import build

    class LeNet(nn.Sequential):
        def __init__(self):
            super().__init__(*build("lenet5"))

    if __name__ == "__main__":
        net = LeNet()
        net.load_state_dict(torch.load(sys.argv[1]))
        torch.save(net, sys.argv[2])
""")


def _x(images):
    return torch.from_numpy(images).float().div(255).unsqueeze(1)


def test_torch_paths_match_torchscript(mirror_lenet, mnist_test, tmp_path):
    from safetensors.torch import save_file

    ckpt = load_model(mirror_lenet)
    net = ckpt.module
    ts = tmp_path / "ref.ts"
    torch.jit.script(net).save(str(ts))
    ref = score(load_model(ts), mnist_test.images).argmax(1)
    assert (ref == mnist_test.labels).mean() > 0.9
    code = tmp_path / "lenet.py"
    code.write_text(LENET_FILE)
    torch.save(net.state_dict(), tmp_path / "sd.pt")
    save_file(net.state_dict(), tmp_path / "sd.safetensors")
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, str(code), str(tmp_path / "sd.pt"), str(tmp_path / "whole.pt")],
                   check=True, env=env, timeout=120)
    with pytest.warns(UserWarning, match="unpickling"):
        pickled = load_model(tmp_path / "whole.pt", trust_pickle=True, model_code=code)
    loaded = {
        "state_dict+model_code": load_model(tmp_path / "sd.pt", model_code=f"{code}:LeNet"),
        "safetensors": load_model(tmp_path / "sd.safetensors", arch="lenet5"),
        "pickle+model_code": pickled,
        "in-memory": robustmnist.load_model(net),
        "callable": robustmnist.load_model(lambda a: net(torch.from_numpy(a).unsqueeze(1)).detach().numpy()),
    }
    onnx_path = tmp_path / "m.onnx"
    torch.onnx.export(net, (torch.zeros(2, 1, 28, 28),), str(onnx_path), dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    loaded["onnx"] = load_model(onnx_path)
    for what, m in loaded.items():
        assert np.array_equal(score(m, mnist_test.images).argmax(1), ref), what


def test_exported_clean_set_scored_elsewhere_matches(mirror_lenet, mirror_root, mnist_test, tmp_path):
    from robustmnist.models.predictions import load_predictions
    from robustmnist.run.collect import evaluate
    from robustmnist.shifts.export import export_sets

    export_sets(None, tmp_path / "sets", "idx", data_root=mirror_root)  # clean only, MNIST's own format
    raw = (tmp_path / "sets" / "clean-images-idx3-ubyte").read_bytes()
    images = np.frombuffer(raw[16:], np.uint8).reshape(-1, 28, 28)
    assert np.array_equal(images, mnist_test.images)
    ts = tmp_path / "ref.ts"
    torch.jit.script(load_model(mirror_lenet).module).save(str(ts))
    ref = load_model(ts)
    np.savez(tmp_path / "preds.npz", clean=score(ref, images))
    a = evaluate(ref, None, data_root=mirror_root).result
    b = evaluate(load_predictions(tmp_path / "preds.npz"), None, data_root=mirror_root).result
    assert a.clean.confusion == b.clean.confusion and abs(a.clean.nll - b.clean.nll) < 1e-6


def test_keras_models_match_keras_predict(mnist_test, mirror_root, tmp_path):
    from robustmnist.data.datasets import load_mnist
    from robustmnist.models.keras import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(0)
    train = load_mnist("train", mirror_root)
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.MaxPooling2D(2), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(train.images[:3000, :, :, None] / 255.0, train.labels[:3000], epochs=1, batch_size=64, verbose=0)
    own = model.predict(mnist_test.images[:, :, :, None] / 255.0, verbose=0, batch_size=512).argmax(1)
    assert (own == mnist_test.labels).mean() > 0.6  # one short epoch: trained, not tuned
    model.save(tmp_path / "mnist.keras")
    model.save(tmp_path / "mnist.h5")
    for name in ("mnist.keras", "mnist.h5"):
        m = load_model(tmp_path / name)
        assert m.format == "keras" and m.preprocess.output == "probs" and m.n_params == model.count_params()
        assert np.array_equal(score(m, mnist_test.images).argmax(1), own), name
    flat = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10)])
    assert robustmnist.load_model(flat).preprocess.to_string().endswith("layout=784,output=logits")


def test_skops_and_numpy_mlp_match_their_own_inference(mnist_test, mirror_root, tmp_path):
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    from robustmnist.data.datasets import load_mnist

    from .model_factory import quick_train

    train = load_mnist("train", mirror_root)
    flat_test = mnist_test.images.reshape(-1, 784) / 255.0
    est = LogisticRegression(max_iter=60).fit(train.images[:3000].reshape(-1, 784) / 255.0, train.labels[:3000])
    sio.dump(est, tmp_path / "lr.skops")
    m = load_model(tmp_path / "lr.skops")
    assert np.array_equal(score(m, mnist_test.images).argmax(1), est.predict(flat_test))

    mlp = quick_train("mlp-784-50-50-10", train.images, train.labels, steps=150)
    linears = [layer for layer in mlp if isinstance(layer, torch.nn.Linear)]
    weights = {}
    for i, layer in enumerate(linears, start=1):  # a NumPy tutorial's x @ W + b, in float64
        weights[f"W{i}"] = layer.weight.detach().double().numpy().T
        weights[f"b{i}"] = layer.bias.detach().double().numpy()
    np.savez(tmp_path / "mlp.npz", **weights)
    h = flat_test
    for i in range(1, 4):
        h = h @ weights[f"W{i}"] + weights[f"b{i}"]
        h = np.maximum(h, 0) if i < 3 else h
    own = h.argmax(1)
    assert (own == mnist_test.labels).mean() > 0.85
    assert np.array_equal(score(load_model(tmp_path / "mlp.npz"), mnist_test.images).argmax(1), own)


def test_api_diagnose_on_the_mirror(mirror_lenet, mirror_root):
    d = robustmnist.diagnose(str(mirror_lenet), data_root=mirror_root)
    assert d.healthy and d.fix_preprocess is None
