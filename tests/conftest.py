"""Shared fixtures. Unit tests build tiny data in temp dirs; tests marked ``mirror`` need the
offline data mirror (ROBUSTMNIST_DATA, or ../shared/data beside the checkout) and skip without it."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from .example_models import MLP, ExampleNet, script_model, train

ROOT = Path(__file__).resolve().parents[1]


def _mirror() -> Path | None:
    for cand in (os.environ.get("ROBUSTMNIST_DATA"), ROOT.parent / "shared" / "data"):
        if cand and (Path(cand) / "MNIST" / "raw" / "t10k-images-idx3-ubyte").is_file():
            return Path(cand)
    return None


@pytest.fixture(scope="session")
def mirror_root() -> Path:
    root = _mirror()
    if root is None:
        pytest.skip("offline data mirror not found (set ROBUSTMNIST_DATA)")
    return root


@pytest.fixture(scope="session")
def mnist_test(mirror_root):
    from robustmnist.data.datasets import load_mnist

    return load_mnist("test", mirror_root)


@pytest.fixture
def one_thread():
    """One torch thread for the test (files of many tiny forward passes use it for every test)."""
    from .helpers import single_thread

    with single_thread():
        yield


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Never write generated sets into the user's real cache from tests.
    monkeypatch.setenv("ROBUSTMNIST_CACHE", str(tmp_path_factory.getbasetemp() / "set-cache"))


def write_idx(root: Path, folder: str, images: np.ndarray, labels: np.ndarray, split: str = "t10k") -> None:
    """Write a tiny torchvision-layout dataset: ROOT/<folder>/raw/<split>-{images,labels}-idx*-ubyte."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    n = len(images)
    with open(raw / f"{split}-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">IIII", 2051, n, 28, 28))
        f.write(images.astype(np.uint8).tobytes())
    with open(raw / f"{split}-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">II", 2049, n))
        f.write(labels.astype(np.uint8).tobytes())


def synthetic_digits(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Blocky fake 'digits': class k draws a bar at a class-specific place (learnable, tiny)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for i, k in enumerate(labels):
        r = 4 + 2 * k
        images[i, r : r + 3, 6:22] = 255
        images[i] = np.clip(images[i] + rng.integers(0, 30, (28, 28)), 0, 255)
    return images, labels.astype(np.int64)


@pytest.fixture
def tiny_data_root(tmp_path) -> Path:
    """A data root holding tiny MNIST and Fashion-MNIST test+train sets in torchvision's layout."""
    for folder, seed in (("MNIST", 0), ("FashionMNIST", 1)):
        for split, n in (("t10k", 200), ("train", 400)):
            imgs, labels = synthetic_digits(n, seed)
            write_idx(tmp_path, folder, imgs, labels, split)
    return tmp_path


@pytest.fixture(scope="session")
def mirror_lenet(mirror_root, tmp_path_factory):
    """A lenet5 trained for a few hundred steps on mirror MNIST (≈95%), saved as a checkpoint."""
    from robustmnist.data.datasets import load_mnist
    from robustmnist.models.checkpoint import make_checkpoint, save_checkpoint

    from .model_factory import quick_train

    train = load_mnist("train", mirror_root)
    model = quick_train("lenet5", train.images, train.labels, steps=300)
    path = tmp_path_factory.mktemp("models") / "lenet5.pt"
    save_checkpoint(path, make_checkpoint("lenet5", model))
    return path


# -- models written the way tutorials write them (the convention guard's cases) ----------------

@pytest.fixture(scope="session")
def mnist_train(mirror_root):
    from robustmnist.data.datasets import load_mnist

    return load_mnist("train", mirror_root)


@pytest.fixture(scope="session")
def example_cnn(mnist_train, tmp_path_factory) -> Path:
    """PyTorch's examples/mnist Net (Normalize, log_softmax), 300 Adam steps: ~97%."""
    torch.set_num_threads(1)
    net = train(ExampleNet(), mnist_train.images, mnist_train.labels, normalize=True, steps=300)
    return script_model(net, tmp_path_factory.mktemp("models") / "example.ts.pt")


@pytest.fixture(scope="session")
def normalize_mlp(mnist_train, tmp_path_factory) -> Path:
    """An MLP trained on Normalize((0.1307,), (0.3081,)) inputs, declared 0-1 (TorchScript)."""
    torch.set_num_threads(1)
    # Most inits of this MLP lose 2-3 points of clean accuracy when fed 0-1 pixels (the guard
    # stops them: tests above); the one this test needs loses under one point, the "almost
    # nothing on clean" case of the issue. Seed 4 is such an init (declared 96.6%, fixed 97.2%,
    # p = 0.31 on the guard's sample, measured here); seeded explicitly so the test does not
    # depend on what earlier fixtures left in the global generator.
    torch.manual_seed(4)
    net = train(MLP(), mnist_train.images, mnist_train.labels, normalize=True, steps=1500, batch=128, seed=4)
    return script_model(net, tmp_path_factory.mktemp("models") / "norm-mlp.ts.pt")


@pytest.fixture(scope="session")
def log_softmax_mlp(mnist_train, tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    net = train(MLP(log_softmax=True), mnist_train.images, mnist_train.labels, normalize=False,
                steps=600, batch=128)
    return script_model(net, tmp_path_factory.mktemp("models") / "logsoftmax-mlp.ts.pt")
