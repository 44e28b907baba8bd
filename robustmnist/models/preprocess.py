"""The preprocess spec: how a model wants its input and what its output means.

Stored with a robustmnist checkpoint, overridable with ``--preprocess``, detectable by
``doctor``, and applied only inside the scorer. Written as comma-separated tokens::

    range=0-1|0-255|-1-1|norm|norm:MEAN:STD   polarity=normal|inverted
    layout=1x28x28|784   transpose=false|true   output=logits|log-probs|probs

Bare tokens are accepted too: ``0-255,inverted,784,probs``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch

from ..errors import UserError

MNIST_MEAN = 0.1307  # the usual torchvision tutorial constants
MNIST_STD = 0.3081

RANGES = ("0-1", "0-255", "-1-1", "norm")
LAYOUTS = ("1x28x28", "784")
OUTPUTS = ("logits", "log-probs", "probs")
POLARITIES = ("normal", "inverted")


@dataclass(frozen=True)
class Preprocess:
    range: str = "0-1"
    mean: float = MNIST_MEAN
    std: float = MNIST_STD
    polarity: str = "normal"
    layout: str = "1x28x28"
    transpose: bool = False
    output: str = "logits"

    def __post_init__(self):
        if self.range not in RANGES:
            raise UserError(f"unknown input range '{self.range}'; use one of {', '.join(RANGES)}")
        if self.layout not in LAYOUTS:
            raise UserError(f"unknown layout '{self.layout}'; use one of {', '.join(LAYOUTS)}")
        if self.output not in OUTPUTS:
            raise UserError(f"unknown output kind '{self.output}'; use one of {', '.join(OUTPUTS)}")
        if self.polarity not in POLARITIES:
            raise UserError(f"unknown polarity '{self.polarity}'; use normal or inverted")
        if self.range == "norm" and not self.std > 0:
            raise UserError(f"std must be positive, got {self.std}")

    # -- text form ---------------------------------------------------------------------------
    def to_string(self) -> str:
        rng = self.range
        if rng == "norm":
            rng = f"norm:{self.mean:g}:{self.std:g}"
        parts = [f"range={rng}", f"polarity={self.polarity}", f"layout={self.layout}"]
        if self.transpose:
            parts.append("transpose=true")
        parts.append(f"output={self.output}")
        return ",".join(parts)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> Preprocess:
        if not d:
            return cls()
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)

    @classmethod
    def parse(cls, text: str, base: Preprocess | None = None) -> Preprocess:
        """Parse a spec string; keys not given keep ``base``'s values (default: the default)."""
        if text.strip().lower() == "auto":  # only evaluate and bench can detect one: they run the guard
            raise UserError('`preprocess="auto"` is for evaluate and bench, which detect the convention on '
                            "MNIST test digits; here write the convention itself, e.g. range=norm")
        spec = base or cls()
        changes: dict = {}
        for raw in text.split(","):
            tok = raw.strip()
            if not tok:
                continue
            key, _, val = tok.partition("=")
            if not val:  # bare token: infer the key from the value
                key, val = _infer_key(tok), tok
            key = key.strip().lower()
            val = val.strip()
            if key == "range":
                if val.startswith("norm"):
                    bits = val.split(":")
                    changes["range"] = "norm"
                    if len(bits) == 3:
                        try:
                            changes["mean"], changes["std"] = float(bits[1]), float(bits[2])
                        except ValueError:
                            raise UserError(f"bad norm values in '{val}'; write norm:MEAN:STD") from None
                    elif len(bits) != 1:
                        raise UserError(f"bad range '{val}'; write norm or norm:MEAN:STD")
                else:
                    changes["range"] = val
            elif key in ("mean", "std"):
                try:
                    changes[key] = float(val)
                except ValueError:
                    raise UserError(f"{key} must be a number, got '{val}'") from None
            elif key in ("polarity", "invert"):
                if key == "invert":
                    val = "inverted" if val.lower() in ("1", "true", "yes") else "normal"
                changes["polarity"] = val
            elif key == "layout":
                changes["layout"] = {"flat": "784", "1x28x28": "1x28x28", "784": "784"}.get(val, val)
            elif key == "transpose":
                changes["transpose"] = val.lower() in ("1", "true", "yes", "transpose")
            elif key == "output":
                changes["output"] = {"logprobs": "log-probs", "log_probs": "log-probs"}.get(val, val)
            else:
                raise UserError(
                    f"unknown preprocess key '{key}' in '{text}'. Keys: range, mean, std, "
                    "polarity, layout, transpose, output (e.g. range=0-255,layout=784,output=probs)"
                )
        return replace(spec, **changes)

    # -- application -------------------------------------------------------------------------
    def apply_input(self, x: torch.Tensor) -> torch.Tensor:
        """float N×1×28×28 in [0, 1] (white on black) -> what the model expects."""
        if self.polarity == "inverted":
            x = 1.0 - x
        if self.transpose:
            x = x.transpose(-1, -2)
        if self.range == "0-255":
            x = x * 255.0
        elif self.range == "-1-1":
            x = x * 2.0 - 1.0
        elif self.range == "norm":
            x = (x - self.mean) / self.std
        if self.layout == "784":
            x = x.reshape(x.shape[0], 784)
        return x.contiguous()

    def to_logits(self, out: torch.Tensor) -> torch.Tensor:
        """Model output -> 'logits' in the sense softmax(logits) = the model's probabilities.

        For log-probs that is the output itself; for probabilities it is log(p) (so max-logit
        and energy OOD scores degrade to functions of p, which is all such a model exposes).
        """
        out = out.float()
        if self.output == "probs":
            return out.clamp_min(1e-12).log()
        return out


def _infer_key(tok: str) -> str:
    t = tok.lower()
    if t in RANGES or t.startswith("norm"):
        return "range"
    if t in LAYOUTS or t == "flat":
        return "layout"
    if t in OUTPUTS or t in ("logprobs", "log_probs"):
        return "output"
    if t in POLARITIES:
        return "polarity"
    if t == "transpose":
        return "transpose"
    raise UserError(
        f"cannot read preprocess token '{tok}'. Examples: 0-255, norm:0.1307:0.3081, inverted, "
        "784, probs, or key=value pairs (range=, polarity=, layout=, transpose=, output=)"
    )
