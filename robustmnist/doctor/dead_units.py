"""Dead ReLU units: which hidden units never fire on the doctor's sample (forward hooks)."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..models.load import LoadedModel, OnnxModule
from .measure import first_line


@dataclass
class LayerUnits:
    name: str  # module path, e.g. "2" in an nn.Sequential, plus what it follows
    units: int
    dead: int

    @property
    def fraction(self) -> float:
        return self.dead / self.units if self.units else 0.0


@dataclass
class DeadUnits:
    method: str  # how activity was measured (ReLU module outputs, or Linear pre-activations)
    layers: list[LayerUnits]

    @property
    def total(self) -> int:
        return sum(layer.units for layer in self.layers)

    @property
    def dead(self) -> int:
        return sum(layer.dead for layer in self.layers)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "dead": self.dead, "units": self.total,
                "layers": [{"name": x.name, "units": x.units, "dead": x.dead} for x in self.layers]}


def _layer_label(name: str, module: nn.Module) -> str:
    if isinstance(module, nn.Linear):
        return f"{name} (Linear {module.in_features}->{module.out_features})"
    if isinstance(module, nn.Conv2d):
        return f"{name} (Conv2d {module.in_channels}->{module.out_channels})"
    return name


def _uses_functional_relu(module: nn.Module) -> bool:
    for sub in module.modules():
        try:
            src = inspect.getsource(type(sub).forward)
        except (OSError, TypeError):
            continue
        if "relu" in src and type(sub).__module__.split(".")[0] != "torch":
            return True
    return False


def measure_dead_units(model: LoadedModel, x: torch.Tensor) -> tuple[DeadUnits | None, str | None]:
    """Which ReLU units never fire on the sample; (None, why) where it cannot be measured.

    A unit is dead when its output is 0 for every image (for conv layers: a whole channel).
    Dead units receive no gradient, so they never recover: the network trains at a fraction of
    its width. Measured with forward hooks, which TorchScript and ONNX modules do not offer.
    """
    module = model.module
    if isinstance(module, torch.jit.ScriptModule):
        return None, "dead-unit check skipped: TorchScript modules do not support forward hooks"
    if isinstance(module, OnnxModule):
        return None, "dead-unit check skipped: ONNX models run in onnxruntime, whose activations are not visible"
    if not isinstance(module, nn.Module):
        return None, "dead-unit check skipped: the model is not a torch nn.Module"

    relus = [(n, m) for n, m in module.named_modules() if isinstance(m, nn.ReLU)]
    layers = [(n, m) for n, m in module.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    active: dict[str, torch.Tensor] = {}  # label -> per-unit "fired at least once"
    order: list[str] = []
    last_layer = [""]
    handles = []

    def record(label: str, out: torch.Tensor) -> None:
        if not isinstance(out, torch.Tensor) or out.dim() not in (2, 4):
            return
        fired = (out > 0).flatten(2).any(dim=2).any(dim=0) if out.dim() == 4 else (out > 0).any(dim=0)
        if label in active and active[label].shape == fired.shape:
            active[label] |= fired.cpu()
        else:
            active[label] = fired.cpu()
            order.append(label)

    if relus:
        method = "outputs of nn.ReLU modules (conv layers: per channel)"
        calls: dict[str, int] = {}

        def relu_hook(name):
            def hook(_mod, _inp, out):
                k = calls.get(name, 0)  # one ReLU module may be reused after several layers
                calls[name] = k + 1
                record(f"relu {name}{f'#{k}' if k else ''} after {last_layer[0] or 'input'}", out)
            return hook

        def layer_hook(label):
            def hook(_mod, _inp, _out):
                last_layer[0] = label
            return hook

        handles += [m.register_forward_hook(relu_hook(n)) for n, m in relus]
        handles += [m.register_forward_hook(layer_hook(_layer_label(n, m))) for n, m in layers]
    elif layers and _uses_functional_relu(module):
        # No ReLU modules but F.relu in forward: a hidden Linear unit whose pre-activation is
        # never positive is dead after the relu. The last layer (the logits) is not hidden.
        method = "pre-activations of hidden Linear layers (the model applies relu functionally)"
        linears = [(n, m) for n, m in layers if isinstance(m, nn.Linear)]
        handles += [m.register_forward_hook(lambda _m, _i, out, lbl=_layer_label(n, m): record(lbl, out))
                    for n, m in linears[:-1]]
    else:
        return None, "dead-unit check skipped: the model has no ReLU units"
    try:
        with torch.inference_mode():
            model.module(x.to(model.device))
    except Exception as exc:  # noqa: BLE001
        return None, f"dead-unit check failed: {first_line(exc)}"
    finally:
        for h in handles:
            h.remove()
    result = [LayerUnits(lbl, int(active[lbl].numel()), int((~active[lbl]).sum())) for lbl in order]
    return DeadUnits(method, result), None
