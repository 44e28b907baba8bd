"""Named architectures. ``build(name, **kwargs)`` makes a fresh, untrained network.

The MLPs are the networks of the MNIST MLP experiments people publish (784-50-50-10,
784-256-128-64-10, 784-1000×3-10, ...); lenet5 and cnn-small are the usual CNN baselines.
Every network takes N×1×28×28 (MLPs flatten first, so N×784 works too) and returns N×10 logits.

All builders also take ``in_channels`` and ``image_size`` (defaults 1 and 28) so the same
architectures can train on 32×32 RGB CIFAR-10; a checkpoint stores them as ``arch_kwargs``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..errors import UserError


@dataclass(frozen=True)
class Arch:
    name: str
    description: str
    builder: Callable[..., nn.Module]
    layout: str  # the input layout the network was designed for: "784" or "1x28x28"


_ARCHS: dict[str, Arch] = {}


def register_arch(name: str, description: str, layout: str):
    def deco(fn: Callable[..., nn.Module]):
        _ARCHS[name] = Arch(name, description, fn, layout)
        return fn

    return deco


def mlp(hidden: list[int], n_in: int = 784, n_out: int = 10) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    prev = n_in
    for h in hidden:
        layers += [nn.Linear(prev, h), nn.ReLU()]
        prev = h
    layers.append(nn.Linear(prev, n_out))
    return nn.Sequential(*layers)


def _register_mlp(name: str, hidden: list[int], note: str) -> None:
    def builder(in_channels: int = 1, image_size: int = 28) -> nn.Sequential:
        return mlp(hidden, n_in=in_channels * image_size * image_size)

    register_arch(name, f"MLP {'-'.join(map(str, [784, *hidden, 10]))}: {note}", "784")(builder)


_register_mlp("mlp-784-50-50-10", [50, 50], "the classic two-hidden-layer tutorial MLP")
_register_mlp("mlp-784-50x3-10", [50, 50, 50], "three hidden layers of 50")
_register_mlp("mlp-784-100x3-10", [100, 100, 100], "three hidden layers of 100")
_register_mlp("mlp-784-1000x3-10", [1000, 1000, 1000], "three hidden layers of 1000")
_register_mlp("mlp-784-256-128-64-10", [256, 128, 64], "the tapering MLP of many blog posts")


@register_arch("lenet5", "LeNet-5 (ReLU, max-pool): conv6-conv16-fc120-fc84-fc10", "1x28x28")
def lenet5(in_channels: int = 1, image_size: int = 28) -> nn.Sequential:
    # padding=2 makes a 28×28 digit behave like LeCun's 32×32 input; the side after
    # conv-pool-conv(5, no padding)-pool is (size/2 - 4)/2: 5 for 28, 6 for 32.
    side = (image_size // 2 - 4) // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * side * side, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10),
    )


@register_arch("cnn-small", "small 2-conv CNN: conv32-conv64-fc128-fc10", "1x28x28")
def cnn_small(in_channels: int = 1, image_size: int = 28) -> nn.Sequential:
    side = image_size // 4  # two 2×2 pools after size-preserving convs
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * side * side, 128), nn.ReLU(),
        nn.Linear(128, 10),
    )


def all_archs() -> dict[str, Arch]:
    return dict(_ARCHS)


def get_arch(name: str) -> Arch:
    if name not in _ARCHS:
        raise UserError(f"unknown architecture '{name}'. Known: {', '.join(_ARCHS)}")
    return _ARCHS[name]


def build(name: str, **kwargs) -> nn.Module:
    return get_arch(name).builder(**kwargs)
