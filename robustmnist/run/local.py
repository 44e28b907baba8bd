"""The local executor: sets made ahead in forked worker processes (shifts/pipeline.py), scored
here one after another by every model."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from ..models.fastpath import accelerate
from ..models.load import LoadedModel
from ..results import OODRecord
from ..shifts.fingerprint import chunk_digests
from ..shifts.pipeline import SetPipeline, SetRequest
from ..shifts.sets import set_sha256
from .collector import RunOutput
from .executor import RunContext, ScoredSet
from .ood import evaluate_ood
from .scoring import SetScore, sample_indices, score, score_set, set_id


class LocalExecutor:
    name = "local"

    def __init__(self) -> None:
        self.models: list[LoadedModel] = []
        self.ctx: RunContext | None = None

    def open(self, models: list[LoadedModel], ctx: RunContext) -> list[LoadedModel]:
        self.ctx = ctx
        self.models = [accelerate(m, ctx.clean.images, ctx.batch_size) for m in models] if ctx.fast \
            else list(models)
        self.indices = sample_indices(ctx.clean.labels)
        return self.models

    def score_clean(self) -> list[SetScore]:
        c = self.ctx
        return [score_set(m, c.clean.images, c.clean.labels, self.indices, c.batch_size, c.progress,
                          key="clean") for m in self.models]

    def score_sets(self, requests: list[SetRequest]) -> Iterator[ScoredSet]:
        c = self.ctx
        source_sha = set_sha256(c.source.images, c.source.labels)
        # the next sets are generated in worker processes while this one is scored (pipeline.py)
        with SetPipeline(requests, c.source.images, c.source.labels, len(c.clean.images), c.seed,
                         source_sha=source_sha, use_cache=c.use_cache) as sets_ahead:
            for i, req in enumerate(requests):
                if c.progress:
                    c.progress("set", 0, f"{req.shift.name} s{req.severity}")
                t = time.perf_counter()
                sset = sets_ahead.get(i)
                gen_s = time.perf_counter() - t
                paired = req.shift.kind != "generative"
                chunks = sset.chunks or chunk_digests(sset.images, sset.labels)
                idx = self.indices if paired else sample_indices(sset.labels)
                units = [score_set(m, sset.images, sset.labels, idx, c.batch_size, c.progress,
                                   key=set_id(req.shift.name, req.severity)) for m in self.models]
                yield ScoredSet(req, sset.sha256, sset.cached, sset.labels, chunks, gen_s, units)

    def real_logits(self, images: list[np.ndarray]) -> list[list[np.ndarray]]:
        c = self.ctx
        return [[score(m, imgs, c.batch_size, c.progress) for m in self.models] for imgs in images]

    def ood_records(self, clean_logits: list[np.ndarray]) -> list[tuple[list[OODRecord], float]]:
        c = self.ctx
        out = []
        for m, logits in zip(self.models, clean_logits, strict=True):
            t = time.perf_counter()
            records = evaluate_ood(list(c.ood), logits, lambda imgs, m=m: score(m, imgs, c.batch_size, c.progress),
                                   data_root=c.data_root, seed=c.seed, n=c.n, output=m.preprocess.output)
            out.append((records, time.perf_counter() - t))
        return out

    def annotate(self, output: RunOutput) -> None:
        pass

    def close(self) -> None:
        pass
