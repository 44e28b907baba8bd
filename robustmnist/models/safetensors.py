"""safetensors state dicts: tensors and a JSON header only, so reading one cannot run code."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from ..errors import UserError
from .model_code import ModelCode
from .read import ReadModel, first_line
from .state_dict import read_state_dict


def is_safetensors(path: Path) -> bool:
    if path.suffix.lower() == ".safetensors":
        return True
    # the format: an 8-byte little-endian header length, then a JSON header
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    (size,) = struct.unpack("<Q", head[:8])
    if size > path.stat().st_size:
        return False
    with open(path, "rb") as f:
        f.seek(8)
        try:
            return isinstance(json.loads(f.read(size)), dict)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return False


def read_safetensors(path: Path, arch: str | None = None, model_code: ModelCode | None = None,
                     model_kwargs: dict | None = None) -> ReadModel:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise UserError(f"{path} is a safetensors file; install the safetensors extra: "
                        "pip install 'robustmnist[safetensors]'") from None
    try:
        state = load_file(str(path), device="cpu")
    except Exception as exc:  # noqa: BLE001 - a damaged header fails in the Rust reader
        raise UserError(f"{path} is not a readable safetensors file ({first_line(exc)})") from None
    return read_state_dict(state, path, "safetensors", arch, model_code, model_kwargs)
