"""``--model-code FILE.py:ClassName``: the user's own nn.Module class, from the file defining it.

The file is imported like any module (its top-level code runs; ``__name__`` is not
``"__main__"``, so a training script's ``if __name__ == "__main__":`` block does not).
It serves two cases: building the class to load a state_dict into, and making the class of a
pickled module importable again (the pickle names it ``__main__.MyNet`` when it was saved
from a script, or ``mymodels.MyNet``), the latter still only with ``--trust-pickle``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from ..errors import UserError
from .read import first_line


@dataclass(frozen=True)
class ModelCode:
    path: Path  # a .py file, or a directory whose modules a pickle imports
    class_name: str | None = None

    @property
    def directory(self) -> Path:
        return self.path if self.path.is_dir() else self.path.parent


def parse_model_code(spec: str | Path | ModelCode | None) -> ModelCode | None:
    if spec is None or isinstance(spec, ModelCode):
        return spec
    text = str(spec)
    head, sep, cls = text.rpartition(":")
    if not (sep and head.endswith(".py")):  # a bare file or directory (or a Windows drive colon)
        head, sep, cls = text, "", ""
    path = Path(head).expanduser()
    if not path.exists():
        raise UserError(f"`model_code=`: {path} does not exist; write FILE.py:ClassName, e.g. train.py:MyNet")
    if path.is_file() and path.suffix != ".py":
        raise UserError(f"`model_code=`: {path} is not a .py file; write FILE.py:ClassName")
    if sep and not cls.isidentifier():
        raise UserError(f"`model_code=`: '{cls}' is not a class name; write FILE.py:ClassName")
    return ModelCode(path, cls or None)


def parse_model_kwargs(text: str | dict | None) -> dict[str, Any]:
    if text is None:
        return {}
    if isinstance(text, dict):
        return dict(text)
    try:
        kwargs = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"`model_kwargs=` must be a JSON object, e.g. '{{\"hidden\": 128}}' ({exc.msg})") from None
    if not isinstance(kwargs, dict):
        raise UserError("`model_kwargs=` must be a JSON object, e.g. '{\"hidden\": 128}'")
    return kwargs


def import_file(path: Path) -> ModuleType:
    """Import FILE.py under a private name (so two files called model.py do not collide)."""
    path = path.resolve()
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    name = f"_robustmnist_user_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"`model_code=`: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    # the file may import its neighbours (from layers import Block)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's file can raise anything
        del sys.modules[name]
        raise UserError(f"`model_code=`: importing {path} failed: {type(exc).__name__}: {first_line(exc)}") from None
    finally:
        sys.path.remove(str(path.parent))
    return module


def build_model(code: ModelCode, kwargs: dict[str, Any] | None = None) -> nn.Module:
    if code.path.is_dir() or code.class_name is None:
        raise UserError(f"`model_code=\"{code.path}\"`: name the class too, e.g. {code.path.name}:MyNet")
    module = import_file(code.path)
    cls = getattr(module, code.class_name, None)
    if cls is None:
        found = sorted(k for k, v in vars(module).items()
                       if isinstance(v, type) and issubclass(v, nn.Module) and v.__module__ == module.__name__)
        raise UserError(f"{code.path} defines no '{code.class_name}'"
                        + (f"; its nn.Module classes: {', '.join(found)}" if found else ""))
    try:
        model = cls(**(kwargs or {}))
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{code.class_name}(**{kwargs or {}}) failed: {type(exc).__name__}: {first_line(exc)}; "
                        "pass constructor arguments with `model_kwargs=` '{\"hidden\": 128}'") from None
    if not isinstance(model, nn.Module):
        raise UserError(f"{code.path}:{code.class_name} is not a torch.nn.Module class")
    return model
