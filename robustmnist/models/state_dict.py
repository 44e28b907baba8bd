"""Bare state_dicts (``torch.save(model.state_dict())``, safetensors): weights without a class.

The network comes from ``--arch NAME`` (the zoo), ``--model-code FILE.py:Class`` (the user's
own class), or, with neither, the zoo architecture whose parameter names and shapes match.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from .model_code import ModelCode, build_model
from .read import ReadModel
from .zoo import all_archs, build, get_arch

FIX = "pass `arch=NAME`, or `model_code=\"FILE.py:ClassName\"` for your own class"


def _shapes(state: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}


def match_arch(state: dict[str, torch.Tensor]) -> str | None:
    """The zoo architecture whose parameter names and shapes match a bare state_dict."""
    shapes = _shapes(state)
    for name, arch in all_archs().items():
        if _shapes(arch.builder().state_dict()) == shapes:
            return name
    return None


def mismatch(expected: dict[str, Any], given: dict[str, Any]) -> str | None:
    """The first difference between two state_dicts, as a user reads it; None when they fit."""
    want, have = _shapes(expected), _shapes(given)
    for key, shape in want.items():
        if key not in have:
            return f"missing key '{key}' (shape {shape})"
    for key, shape in have.items():
        if key not in want:
            return f"unexpected key '{key}' (shape {shape})"
    for key, shape in want.items():
        if have[key] != shape:
            return f"key '{key}' has shape {have[key]} in the file but {shape} in the model"
    return None


def load_into(model: nn.Module, state: dict[str, torch.Tensor], path: Path, what: str) -> nn.Module:
    problem = mismatch(model.state_dict(), state)
    if problem:
        raise UserError(f"{path} does not fit {what}: {problem}; {FIX} that matches the file")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # dtype trouble etc.; the shapes matched
        raise UserError(f"{path} does not fit {what}: {str(exc).strip().splitlines()[-1].strip()}") from None
    return model.eval()


def read_state_dict(state: dict, path: Path, fmt: str, arch: str | None = None,
                    model_code: ModelCode | None = None, model_kwargs: dict | None = None) -> ReadModel:
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} holds a dict that is neither a robustmnist checkpoint nor a state_dict")
    if model_code is not None:
        model = build_model(model_code, model_kwargs)
        what = f"{model_code.path.name}:{model_code.class_name}"
        return ReadModel(load_into(model, state, path, what), fmt)
    if arch is None:
        arch = match_arch(state)
        if arch is None:
            raise UserError(
                f"{path} is a bare state_dict and matches no zoo architecture; {FIX} "
                f"(zoo: {', '.join(all_archs())}), or save the model with torch.jit.script"
            )
    get_arch(arch)  # unknown names fail listing the zoo
    model = build(arch, **(model_kwargs or {}))
    return ReadModel(load_into(model, state, path, f"architecture '{arch}'"), fmt, arch=arch)
