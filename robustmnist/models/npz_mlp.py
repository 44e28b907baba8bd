"""NumPy MLP weights as ``.npz``: ``W1, b1, W2, b2, ...`` with ReLU between the layers.

The from-scratch networks of NumPy tutorials. Each ``Wi`` may be stored in×out (``x @ W``)
or out×in (``W @ x``, torch's convention): the orientation is read from the first layer's
784 side and checked along the chain. The network runs in the arrays' own dtype (float64
for most tutorials), so its scores are the NumPy forward pass's.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from .preprocess import Preprocess
from .read import ReadModel

_KEY = re.compile(r"^([WwBb])(\d+)$")


def npz_keys(path: Path) -> list[str] | None:
    """The array names of an .npz archive, or None when the file is not one."""
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    if not names or not all(n.endswith(".npy") for n in names):
        return None
    return [n[:-4] for n in names]


def is_npz_mlp(keys: list[str]) -> bool:
    return any(k in ("W1", "w1") for k in keys)


class NumpyMLP(nn.Module):
    def __init__(self, layers: list[nn.Linear], dtype: torch.dtype):
        super().__init__()
        stack: list[nn.Module] = [nn.Flatten()]
        for i, layer in enumerate(layers):
            stack += [layer] if i == len(layers) - 1 else [layer, nn.ReLU()]
        self.net = nn.Sequential(*stack)
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.to(self.dtype))


def read_npz_mlp(path: Path) -> ReadModel:
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    found: dict[int, dict[str, np.ndarray]] = {}
    for key, value in arrays.items():
        m = _KEY.match(key)
        if m:
            found.setdefault(int(m.group(2)), {})[m.group(1).upper()] = value
    depth = len(found)
    if sorted(found) != list(range(1, depth + 1)) or any(set(v) != {"W", "B"} for v in found.values()):
        raise UserError(f"{path}: an MLP needs W1, b1, W2, b2, ... with no gaps (found {', '.join(arrays)})")
    ws = [found[i]["W"] for i in range(1, depth + 1)]
    bs = [found[i]["B"].reshape(-1) for i in range(1, depth + 1)]
    if any(w.ndim != 2 for w in ws):
        raise UserError(f"{path}: every Wi must be a 2-D matrix")
    if ws[0].shape[0] == 784:
        ws = [w.T for w in ws]  # stored in×out: make them out×in like nn.Linear
    elif ws[0].shape[1] != 784:
        raise UserError(f"{path}: W1 has shape {ws[0].shape}; one side must be 784 (28×28 pixels)")
    layers = []
    dtype = torch.from_numpy(np.zeros(1, dtype=np.result_type(*ws, *bs))).dtype
    if not dtype.is_floating_point:
        dtype = torch.float32
    prev = 784
    for i, (w, b) in enumerate(zip(ws, bs, strict=True), start=1):
        if w.shape[1] != prev or b.shape[0] != w.shape[0]:
            raise UserError(f"{path}: layer {i} does not chain: W{i} {w.shape}, b{i} {b.shape} after {prev} units")
        layer = nn.Linear(w.shape[1], w.shape[0], dtype=dtype)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
            layer.bias.copy_(torch.from_numpy(np.ascontiguousarray(b)))
        layers.append(layer)
        prev = w.shape[0]
    if prev != 10:
        raise UserError(f"{path}: the last layer has {prev} outputs; robustmnist needs 10 class scores")
    return ReadModel(NumpyMLP(layers, dtype).eval(), "npz-mlp", preprocess=Preprocess(layout="784"),
                     metadata={"layers": [int(w.shape[0]) for w in ws], "dtype": str(dtype).replace("torch.", "")})
