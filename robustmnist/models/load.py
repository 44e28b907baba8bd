"""Model files (and in-memory models) -> a ready-to-score ``LoadedModel``; dispatch only.

Formats are detected from the file's content rather than its name, each read by its own module:

- TorchScript archives (``torch.jit.save``)                 torchscript.py    -> "torchscript"
- Keras 3 ``.keras`` / legacy ``.h5`` (the ``keras`` extra)  keras.py          -> "keras"
- safetensors state dicts (with ``arch=`` or ``model_code=``) safetensors.py   -> "safetensors"
- scikit-learn estimators saved with skops (``skops`` extra) skops.py          -> "skops"
- NumPy MLP weights ``.npz`` (W1, b1, W2, b2, ...)           npz_mlp.py        -> "npz-mlp"
- ONNX models (the ``onnx`` extra: onnxruntime)              onnx.py           -> "onnx"
- ``torch.save`` files, read by pickled.torch_load:
  robustmnist checkpoints                                    checkpoint.py     -> "checkpoint"
  bare state_dicts, with ``arch=``/``model_code=`` or matched state_dict.py    -> "state_dict"
  pickled ``nn.Module`` files, only with ``trust_pickle=True``                 -> "pickle"
- in memory: nn.Module, Keras model, sklearn classifier, any callable  callable.py

Everything torch.load reads goes through ``weights_only=True`` first: unpickling a
stranger's file can run arbitrary code, so full pickle needs an explicit opt-in.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from ..fileio import sha256_file
from .checkpoint import is_checkpoint, model_from_checkpoint
from .keras import is_keras, read_keras
from .model_code import ModelCode, parse_model_code, parse_model_kwargs
from .npz_mlp import is_npz_mlp, npz_keys, read_npz_mlp
from .onnx import OnnxModule, is_onnx, read_onnx
from .pickled import torch_load
from .preprocess import Preprocess
from .read import ReadModel, first_line
from .safetensors import is_safetensors, read_safetensors
from .skops import is_skops, read_skops
from .state_dict import read_state_dict
from .torchscript import is_torchscript, read_torchscript
from .zoo import all_archs

IN_MEMORY = "in-memory:"  # the path of a model passed as an object (it has no file)

__all__ = ["LoadedModel", "OnnxModule", "load_model", "load_object", "validate"]


@dataclass
class LoadedModel:
    module: Any  # nn.Module / ScriptModule / OnnxModule: a callable taking a float tensor
    preprocess: Preprocess
    path: str
    sha256: str
    format: str
    arch: str | None = None
    n_params: int | None = None
    metadata: dict = field(default_factory=dict)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    forward_path: Any = None  # fastpath.PathChoice once the fastest exact path was chosen

    @property
    def name(self) -> str:
        if self.path.startswith(IN_MEMORY):
            return self.path[len(IN_MEMORY):]
        return Path(self.path).stem

    def to(self, device: torch.device) -> LoadedModel:
        if isinstance(self.module, nn.Module | torch.jit.ScriptModule):
            self.module = self.module.to(device)
            self.device = device
        return self


def _param_count(module: Any) -> int | None:
    if isinstance(module, nn.Module):
        return int(sum(p.numel() for p in module.parameters()))
    return None


def _read_torch_file(p: Path, arch: str | None, trust_pickle: bool, code: ModelCode | None,
                     kwargs: dict) -> ReadModel:
    obj = torch_load(p, trust_pickle, code)
    if is_checkpoint(obj):
        try:
            module = model_from_checkpoint(obj)
        except (KeyError, RuntimeError) as exc:
            raise UserError(f"{p} is a damaged robustmnist checkpoint ({first_line(exc)})") from None
        return ReadModel(module, "checkpoint", obj["arch"], Preprocess.from_dict(obj.get("preprocess")),
                         {"training": obj.get("training", {}), "versions": obj.get("versions", {})})
    if isinstance(obj, nn.Module):
        return ReadModel(obj.eval(), "pickle")
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if isinstance(obj, dict):
        return read_state_dict(obj, p, "state_dict", arch, code, kwargs)
    raise UserError(f"{p} holds a {type(obj).__name__}, not a model")


def _read_file(p: Path, arch: str | None, trust_pickle: bool, code: ModelCode | None, kwargs: dict) -> ReadModel:
    if is_torchscript(p):
        return read_torchscript(p)
    if is_keras(p):
        return read_keras(p)
    if is_skops(p):
        return read_skops(p, trust_pickle)
    keys = npz_keys(p)
    if keys is not None:
        if is_npz_mlp(keys):
            return read_npz_mlp(p)
        hint = ("; to score predictions made elsewhere use robustmnist eval --predictions FILE"
                if "clean" in keys else "")
        raise UserError(f"{p} is a NumPy .npz archive without MLP weights W1, b1, W2, b2, ... "
                        f"(it holds {', '.join(keys[:8])}){hint}")
    if is_safetensors(p):
        return read_safetensors(p, arch, code, kwargs)
    if is_onnx(p):
        return read_onnx(p)
    return _read_torch_file(p, arch, trust_pickle, code, kwargs)


def _names_layout(text: str | None) -> bool:
    return bool(text) and any(t in text for t in ("layout", "784", "1x28x28", "flat"))


def _finish(read: ReadModel, path: str, digest: str, preprocess: str | None,
            layout_given: bool | None = None) -> LoadedModel:
    stored = read.preprocess
    if stored is None and read.arch is not None:
        stored = Preprocess(layout=all_archs()[read.arch].layout)
    spec = stored or Preprocess()
    if preprocess:
        spec = Preprocess.parse(preprocess, base=spec)
    metadata = dict(read.metadata)
    n_params = _param_count(read.module) or metadata.pop("n_params", None)
    loaded = LoadedModel(read.module, spec, path, digest, read.format, read.arch, n_params, metadata)
    if layout_given is None:
        layout_given = stored is not None or _names_layout(preprocess)
    return validate(loaded, layout_given=layout_given)


def load_model(
    path: str | Path,
    arch: str | None = None,
    preprocess: str | None = None,
    trust_pickle: bool = False,
    model_code: str | Path | ModelCode | None = None,
    model_kwargs: str | dict | None = None,
) -> LoadedModel:
    """Load any supported model file; ``preprocess`` (a spec string) overrides the stored spec.

    ``model_code`` ("FILE.py:ClassName") builds the user's class for a state_dict (with
    ``model_kwargs`` as constructor arguments) and makes a pickled module's class importable.
    """
    p = Path(path)
    if not p.exists():
        raise UserError(f"model file {p} does not exist")
    if not p.is_file():
        raise UserError(f"model path {p} is not a file")
    try:
        digest = sha256_file(p)
    except OSError as exc:
        raise UserError(f"cannot read model file {p}: {exc.strerror}") from None
    if p.stat().st_size == 0:
        raise UserError(f"model file {p} is empty")
    read = _read_file(p, arch, trust_pickle, parse_model_code(model_code), parse_model_kwargs(model_kwargs))
    if arch is not None and (read.format not in ("state_dict", "safetensors", "checkpoint") or read.arch != arch):
        # Only a bare state_dict needs to be told its architecture; anywhere else --arch would
        # be silently ignored (or contradict the file), so say so.
        carried = f"stores architecture '{read.arch}'" if read.arch else "carries its own architecture"
        raise UserError(f"`arch=` applies to bare state_dicts only: {p} is a {read.format} file, which "
                        f"{carried}; drop `arch=`")
    return _finish(read, str(p), digest, preprocess)


def load_object(obj: Any, preprocess: str | Preprocess | None = None, name: str | None = None) -> LoadedModel:
    """An in-memory model (nn.Module, Keras model, sklearn classifier, callable) as a LoadedModel."""
    from .callable import module_sha256, read_object

    text = preprocess.to_string() if isinstance(preprocess, Preprocess) else preprocess
    spec = Preprocess.parse(text) if text else None
    read = read_object(obj, spec, output_given=bool(text) and ("output" in text or _bare_output(text)))
    digest = module_sha256(obj) if isinstance(obj, nn.Module) else ""
    label = name or type(getattr(obj, "__self__", obj)).__name__
    # a Keras model states its input shape; anything else is probed unless the caller named a layout
    layout_given = read.format == "keras" or _names_layout(text)
    return _finish(read, f"{IN_MEMORY}{label}", digest, None, layout_given)


def _bare_output(text: str | None) -> bool:
    return bool(text) and any(t.strip() in ("logits", "log-probs", "probs", "logprobs", "log_probs")
                              for t in text.split(","))


def _probe(module: Any, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        out = module(x)
    if isinstance(out, tuple | list):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"the model returned {type(out).__name__}, not a tensor")
    return out


def validate(model: LoadedModel, layout_given: bool = True) -> LoadedModel:
    """Probe the model with two blank digits: output must be N×10; find the layout if unknown."""
    params = next(model.module.parameters(), None) if isinstance(model.module, nn.Module) else None
    blank = torch.zeros(2, 1, 28, 28, device=params.device if params is not None else "cpu")
    layouts = [model.preprocess.layout]
    if not layout_given:
        layouts += [lay for lay in ("1x28x28", "784") if lay not in layouts]
    errors = []
    for layout in layouts:
        spec = replace(model.preprocess, layout=layout)
        try:
            out = _probe(model.module, spec.apply_input(blank))
        except Exception as exc:  # noqa: BLE001 - a model may raise anything on a wrong shape
            errors.append(f"{layout}: {first_line(exc)}")
            continue
        if out.dim() != 2 or out.shape != (2, 10):
            raise UserError(
                f"{model.path}: the model's output has shape {tuple(out.shape)} for a batch of 2; "
                "robustmnist needs N×10 class scores"
            )
        model.preprocess = spec
        return model
    raise UserError(
        f"{model.path}: the model rejects both 1×28×28 and 784 input ({'; '.join(errors)})"
    )
