"""The robustmnist checkpoint: a plain dict that ``torch.load(weights_only=True)`` can read.

    {"format": "robustmnist-checkpoint", "format_version": 1,
     "arch": "lenet5", "arch_kwargs": {}, "state_dict": {...},
     "preprocess": {...Preprocess fields...},
     "training": {config, history, test_accuracy, ...}, "versions": {...}}

Only tensors, str, int, float, bool, None, lists and dicts: no pickled classes, so loading
a checkpoint from a stranger cannot run code.
"""

from __future__ import annotations

import io
import platform
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__
from ..fileio import atomic_write_bytes
from .preprocess import Preprocess
from .zoo import build, get_arch

FORMAT = "robustmnist-checkpoint"
FORMAT_VERSION = 1


def versions() -> dict[str, str]:
    import torchvision

    # str(): torch.__version__ is a TorchVersion object, which weights_only loading rejects.
    return {"robustmnist": __version__, "torch": str(torch.__version__),
            "torchvision": str(torchvision.__version__), "python": platform.python_version()}


def make_checkpoint(
    arch: str,
    model: nn.Module,
    preprocess: Preprocess | None = None,
    training: dict[str, Any] | None = None,
    arch_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if preprocess is None:
        preprocess = Preprocess(layout=get_arch(arch).layout)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": arch,
        "arch_kwargs": dict(arch_kwargs or {}),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "preprocess": preprocess.to_dict(),
        "training": dict(training or {}),
        "versions": versions(),
    }


def save_checkpoint(path: str | Path, checkpoint: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(checkpoint, buf)
    atomic_write_bytes(path, buf.getvalue())


def is_checkpoint(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def model_from_checkpoint(ckpt: dict[str, Any]) -> nn.Module:
    model = build(ckpt["arch"], **ckpt.get("arch_kwargs", {}))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()
