"""Shifts a suite spec declares with a library transform: albumentations or torchvision.transforms.v2.

    [shifts.albu_noise]
    type = "albumentations"            # or "torchvision" (torchvision.transforms.v2)
    transform = "GaussNoise"
    family = "noise"                   # optional (default "custom"); also description, version
    std_range = [[0.05, 0.05], [0.1, 0.1], [0.15, 0.15], [0.2, 0.2], [0.3, 0.3]]

Every other key is the transform's constructor argument, one value per level as for the
built-in shifts (constants under ``.const``); ``p`` defaults to 1, so a shift applies to every
image. Randomness is explicit: each chunk of images gets one seed drawn from the set's
generator (albumentations' ``Compose(seed=...)``; for torchvision a forked, seeded torch RNG),
so a set is byte-identical run to run for the same library version, which is recorded in
the set's parameters. Library transforms run image by image (their API), so the built-in
catalog keeps its batched torch implementations.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..errors import UserError
from .registry import Shift

TYPES = ("albumentations", "torchvision")
META_KEYS = ("type", "transform", "family", "description", "version")


def _library(kind: str):
    if kind == "albumentations":
        import albumentations

        return albumentations
    from torchvision.transforms import v2

    return v2


def _library_tag(kind: str) -> str:
    if kind == "albumentations":
        import albumentations

        return f"albumentations=={albumentations.__version__}"
    import torchvision

    return f"torchvision=={torchvision.__version__}"


def _seed(g: torch.Generator) -> int:
    return int(torch.randint(0, 2**31 - 1, (1,), generator=g))


def _albumentations_fn(cls: type) -> Callable:
    def fn(x: torch.Tensor, g: torch.Generator, library: str = "", **params) -> torch.Tensor:
        import albumentations as A

        pipeline = A.Compose([cls(**params)], seed=_seed(g))
        images = x[:, 0].mul(255.0).add_(0.5).floor_().clamp_(0, 255).to(torch.uint8).numpy()
        out = np.stack([np.asarray(pipeline(image=im)["image"]).reshape(28, 28) for im in images])
        if out.dtype == np.uint8:
            return torch.from_numpy(out).to(torch.float32).div_(255.0).unsqueeze(1)
        return torch.from_numpy(out.astype(np.float32)).unsqueeze(1)

    return fn


def _torchvision_fn(cls: type) -> Callable:
    def fn(x: torch.Tensor, g: torch.Generator, library: str = "", **params) -> torch.Tensor:
        transform = cls(**params)
        # v2 transforms draw from torch's global RNG: fork it (CPU only) and seed it explicitly
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_seed(g))
            return torch.stack([transform(img) for img in x]).to(torch.float32)

    return fn


def custom_shift(name: str, table: dict[str, Any], where: str) -> tuple[Shift, dict[str, Any]]:
    """The Shift a [shifts.NAME] table declares, and the table's level keys (meta keys removed)."""
    kind = table.get("type")
    if kind not in TYPES:
        raise UserError(f"{where}: [shifts.{name}] type must be one of {', '.join(TYPES)}, got {kind!r}")
    transform = table.get("transform")
    lib = _library(kind)
    cls = getattr(lib, transform, None) if isinstance(transform, str) else None
    if not isinstance(cls, type):
        raise UserError(f"{where}: [shifts.{name}] transform {transform!r} is not a {kind} transform class "
                        f"(e.g. {'GaussNoise' if kind == 'albumentations' else 'RandomRotation'})")
    version = table.get("version", 1)
    if not isinstance(version, int) or version < 1:
        raise UserError(f"{where}: [shifts.{name}] version must be a positive whole number")
    fn = _albumentations_fn(cls) if kind == "albumentations" else _torchvision_fn(cls)
    desc = table.get("description") or f"{kind} {transform}"
    shift = Shift(name, str(table.get("family", "custom")), str(desc), version, "transform", fn)
    levels = {k: v for k, v in table.items() if k not in META_KEYS}
    return shift, levels


def finish_levels(shift: Shift, per_level: list[dict[str, Any]], table: dict[str, Any], where: str) -> None:
    """Fill in p=1 and the library tag, and build the transform at every level to check its arguments."""
    kind = table["type"]
    cls = getattr(_library(kind), table["transform"])
    tag = _library_tag(kind)
    for i, params in enumerate(per_level, start=1):
        if kind == "albumentations":
            params.setdefault("p", 1.0)
        args = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
        params.clear()
        params.update(args, library=tag)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # albumentations only warns about unknown arguments
                cls(**args)
        except Exception as exc:  # noqa: BLE001 - pydantic, TypeError, ValueError, warnings...
            first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
            detail = " ".join(ln.strip() for ln in str(exc).splitlines()[1:3])
            raise UserError(f"{where}: [shifts.{shift.name}] level {i}: {table['transform']}("
                            f"{', '.join(f'{k}={v!r}' for k, v in args.items())}) is rejected: "
                            f"{first}{' ' + detail if detail else ''}") from None
