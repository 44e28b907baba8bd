"""Model and reproducibility: what was evaluated and how (file, hashes, environment), stage
timings, the conventions behind the numbers, and the sha256 of every generated set."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from ...results import Result
from .. import run_info
from ..format import secs
from ..view import Layout, Model


@dataclass
class KV:
    key: str
    values: list[str]
    mono: bool = False


@dataclass
class SetHash:
    set: str
    family: str
    severity: str
    version: str
    sha256: str
    params: str
    same: str


@dataclass
class Reproducibility:
    model_rows: list[KV]
    timing_rows: list[KV]
    conventions: list[tuple[str, str]]
    set_hashes: list[SetHash]


def build(models: Sequence[Model], layout: Layout) -> Reproducibility:
    return Reproducibility(model_rows(models), timing_rows(models), conventions(models),
                           set_hashes(models, layout))


def model_rows(models: Sequence[Model]) -> list[KV]:
    def row(key, fn, mono=False):
        return KV(key, [str(fn(m.result)) for m in models], mono)

    def params(r: Result) -> str:
        return "—" if r.model.n_params is None else f"{r.model.n_params:,}"

    def suite(r: Result) -> str:
        s = r.suite or {}
        parts = [str(s.get("name", "—"))]
        if s.get("source"):
            parts.append(f"from {s['source']}")
        if s.get("n"):
            parts.append(f"{s['n']:,} images per set")
        return ", ".join(parts)

    env = lambda attr: (lambda r: getattr(r.environment, attr) or "—")  # noqa: E731
    return [
        row("file", lambda r: r.model.path, True),
        row("file sha256", lambda r: r.model.sha256, True),
        row("format", lambda r: r.model.format),
        row("architecture", lambda r: r.model.arch or "—"),
        row("parameters", params),
        row("preprocess", lambda r: r.model.preprocess, True),
        row("suite", suite),
        row("images per set", run_info.images_per_set),
        row("forward path", run_info.forward_path),
        row("seed", lambda r: r.seed),
        row("created", lambda r: r.created or "—"),
        row("device", lambda r: " ".join(x for x in (r.environment.device,
                                                     r.environment.device_name) if x)),
        row("threads", lambda r: r.environment.threads or "—"),
        row("python", env("python")),
        row("torch", env("torch")),
        row("torchvision", env("torchvision")),
        row("robustmnist", env("robustmnist")),
        row("platform", env("platform")),
        row("predictions", lambda r: (r.predictions or {}).get("file", "—")),
        row("schema", lambda r: r.schema_version),
    ]


def timing_rows(models: Sequence[Model]) -> list[KV]:
    stages: list[str] = []
    for m in models:
        for k in m.result.timings:
            if k not in stages:
                stages.append(k)
    rows = [KV(k, [secs(m.result.timings.get(k)) for m in models]) for k in stages]
    if stages and "total" not in stages:
        rows.append(KV("total", [secs(sum(v for v in m.result.timings.values()
                                          if isinstance(v, int | float))) for m in models]))
    return rows


def conventions(models: Sequence[Model]) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for m in models:
        for k, v in (m.result.conventions or {}).items():
            seen.setdefault(str(k), str(v))
    return sorted(seen.items())


def set_hashes(models: Sequence[Model], layout: Layout) -> list[SetHash]:
    lead = models[0]
    out = []
    for fam, names in layout.families:
        for s in names:
            for sv in layout.severities:
                recs = [m.records.get((s, sv)) for m in models]
                r = next((x for x in recs if x is not None), None)
                if r is None:
                    continue
                same = "" if len(models) == 1 else (
                    "yes" if len({x.sha256 for x in recs if x is not None}) == 1 and
                    all(x is not None for x in recs) else "differs")
                out.append(SetHash(s, fam, str(sv), str(r.version), r.sha256 or "—",
                                   json.dumps(r.params, sort_keys=True) if r.params else "",
                                   same))
    for o in lead.result.ood:
        out.append(SetHash(o.name, "OOD", "", "", o.sha256 or "—", o.description, ""))
    return out
