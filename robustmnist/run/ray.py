"""The Ray executor: a run's (model × set) grid as Ray tasks, with the results of a local run.

The plan is the local run's: clean MNIST and every (shift, severity) set, each generated once,
each scored by every model. Here each set is one generation task and each (model, set) pair
one scoring task, both calling the functions the local executor calls (``shifts.sets.get_set``,
``run.scoring.score_set``), and the driver's collectors assemble the records in plan order
(run/collect.py), so results match a local run byte for byte apart from timings,
environment and the ``cached`` flags (which describe the workers' caches). The driver probes
each model's fastest exact forward path once, as local bench does (models/fastpath.py), and
the workers follow that choice: a path chosen per worker could differ from the driver's and
two exact paths differ in the last float bits. Real digit sets are read on the driver and
scored as tasks too; adversarial attacks, one gradient-based job per model, run on the driver.

What moves over the network: the clean MNIST digits (the whole test set when n is smaller:
nested sets are generated from it) and each model file, once into the object store (with up
to 1,024 clean digits that workers build and check the forward path on);
each generated set, from the node that made it to each node that scores it (Ray keeps one
copy per node); each real set once; back to the driver, per (model, set), the metrics record
with its gallery thumbnails and one int8 prediction per image (plus 10 logits per image of
clean, for OOD scoring, and of each real set). Workers generate sets into their own node's
set cache.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import tempfile
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..errors import UserError

try:
    import ray
except ImportError:  # the CLI's only way here is --ray: say what to install, not a traceback
    raise UserError("`ray=` needs Ray: pip install 'robustmnist[ray]'") from None

from ..data.datasets import DigitSet
from ..models.fastpath import EAGER, PROBE_IMAGES, PathChoice, accelerate, as_loaded, follow
from ..models.load import LoadedModel, load_model
from ..models.preprocess import Preprocess
from ..shifts.fingerprint import chunk_digests
from ..shifts.pipeline import SetRequest
from ..shifts.registry import get_shift
from ..shifts.sets import ShiftSet, get_set, set_sha256
from .collector import RunOutput
from .executor import RunContext, ScoredSet
from .scoring import SetScore, score, score_set

# Scoring an MNIST model leaves most of a GPU idle, so four tasks share one.
GPU_SHARE = 0.25
# Ray retries a task whose worker died (a killed process, a lost node) this many times.
MAX_RETRIES = 3
# Sets generated ahead of scoring: enough to keep every worker busy, few enough that the
# object store holds a handful of sets rather than the suite.
SETS_AHEAD_PER_CPU = 2
MODELS_PER_WORKER = 8  # loaded models a worker process keeps between tasks
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ModelSpec:
    """Enough to rebuild the driver's model on a worker: the file travels as an object ref."""

    key: str  # sha256 of the file, or a digest of the pickled module
    filename: str
    arch: str | None
    format: str
    preprocess: Preprocess
    robustmnist: str  # the driver's version: a worker with another would score differently
    forward_path: str = EAGER  # the driver's probe chose it; every worker runs the same


@dataclass
class Stats:
    """How the work split, for the benchmark and the progress status line."""

    tasks_generate: int = 0
    tasks_score: int = 0
    tasks_ood: int = 0
    tasks_real: int = 0
    bytes_to_object_store: int = 0  # clean digits + model files put by the driver
    bytes_sets: int = 0  # generated sets (each copied once to each node that scores it)
    bytes_returned: int = 0  # records, predictions and logits back to the driver
    nodes: int = 0
    cpus: float = 0.0
    gpus: float = 0.0
    device: str = "cpu"


# -- worker side ----------------------------------------------------------------------------------

_MODELS: OrderedDict[str, LoadedModel] = OrderedDict()


def _worker_device() -> torch.device:
    # Ray sets CUDA_VISIBLE_DEVICES to the task's share, so "cuda" is the GPU it was given
    return torch.device("cuda") if ray.get_gpu_ids() and torch.cuda.is_available() else torch.device("cpu")


def _check_version(spec_version: str) -> None:
    if spec_version != __version__:
        raise UserError(f"a Ray worker runs robustmnist {__version__} but the driver runs {spec_version}; "
                        "install the same version on every node")


def _worker_model(spec: ModelSpec, boxed: list) -> LoadedModel:
    """``boxed`` holds the refs of the payload and of the probe digits: Ray resolves only
    top-level refs, so a worker that has the model already never fetches (nor copies) them again."""
    _check_version(spec.robustmnist)
    device = _worker_device()
    key = f"{spec.key}:{spec.forward_path}"
    model = _MODELS.get(key)
    if model is None:
        payload = ray.get(boxed[0])
        if isinstance(payload, LoadedModel):
            model = payload
        else:
            with tempfile.TemporaryDirectory(prefix="robustmnist-model-") as tmp:
                path = Path(tmp) / spec.filename  # the name matters: ONNX is told by its suffix
                path.write_bytes(payload)
                model = load_model(path, arch=spec.arch, preprocess=spec.preprocess.to_string(),
                                   trust_pickle=spec.format == "pickle")  # the driver's user opted in
            # the spec string rounds norm:mean:std; the driver's own spec is exact
            model.preprocess = spec.preprocess
        if spec.forward_path != EAGER:  # the driver chose it for CPU workers only
            model = follow(model.to(device), spec.forward_path, ray.get(boxed[1]))
        _MODELS[key] = model
        while len(_MODELS) > MODELS_PER_WORKER:
            _MODELS.popitem(last=False)
    _MODELS.move_to_end(key)
    return model.to(device)


@ray.remote(max_retries=MAX_RETRIES)
def _generate(shift_name: str, severity: int, params: dict, source: ShiftSet, n: int, seed: int, use_cache: bool,
              version: str) -> tuple[ShiftSet, dict]:
    # The whole source and n, as local bench: nested sets read chunk k's digits by position.
    _check_version(version)
    shift = get_shift(shift_name)
    t = time.perf_counter()
    sset = get_set(shift, severity, params, source.images, source.labels, n, seed,
                   source_sha=source.sha256, use_cache=use_cache)
    info = {"sha256": sset.sha256, "cached": sset.cached, "seconds": time.perf_counter() - t,
            "chunks": chunk_digests(sset.images, sset.labels),
            "bytes": int(sset.images.nbytes + sset.labels.nbytes), "node": ray.get_runtime_context().get_node_id(),
            "labels": sset.labels.astype(np.int8) if shift.kind == "generative" else None}
    return sset, info


@ray.remote(max_retries=MAX_RETRIES)
def _score(spec: ModelSpec, payload: list, sset: ShiftSet, batch_size: int) -> SetScore:
    model = _worker_model(spec, payload)
    return score_set(model, sset.images, sset.labels, None, batch_size)


@ray.remote(max_retries=MAX_RETRIES)
def _logits(spec: ModelSpec, payload: list, images: np.ndarray, batch_size: int) -> np.ndarray:
    return score(_worker_model(spec, payload), images, batch_size)


@ray.remote(max_retries=MAX_RETRIES)
def _ood(spec: ModelSpec, payload: list, names: list[str], clean_logits: np.ndarray,
         data_root: str | None, seed: int, n: int | None, batch_size: int) -> tuple[list, float]:
    from .ood import evaluate_ood  # both executors score OOD sets the same way

    model = _worker_model(spec, payload)
    t = time.perf_counter()
    records = evaluate_ood(names, clean_logits, lambda imgs: score(model, imgs, batch_size),
                           data_root=data_root, seed=seed, n=n, output=model.preprocess.output)
    return records, time.perf_counter() - t


# -- driver side ----------------------------------------------------------------------------------

def _probe(address: str) -> None:
    """Fail in seconds on an address nobody answers: ray.init would retry for minutes."""
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except ValueError:
        raise UserError(f"`ray=` takes auto, local, HOST:PORT or ray://HOST:PORT, got '{address}'") from None
    except OSError as exc:
        raise UserError(f"cannot reach the Ray cluster at {hostport} ({exc.strerror or exc}); start it with "
                        "`ray start --head` on the head node, or check the address and firewall") from None


def _resolve_auto() -> str:
    """The cluster ``ray start`` left on this machine (or RAY_ADDRESS), as ``ray.init("auto")`` finds it."""
    try:
        from ray._private.services import canonicalize_bootstrap_address  # private: guarded below

        address = canonicalize_bootstrap_address("auto")
    except ImportError:
        return "auto"  # a Ray that moved it: let ray.init search, without our early check
    except (ConnectionError, ValueError):
        address = None
    if not address:
        raise UserError("no running Ray cluster found on this machine or in RAY_ADDRESS; start one with "
                        "`ray start --head`, pass `ray=\"HOST:PORT\"`, or use `ray=\"local\"` for a one-off local one")
    return address


def is_address(text: str) -> bool:
    """Whether ``text`` can be what ``--ray`` takes (a model path never is)."""
    if text in ("auto", "local"):
        return True
    hostport = text.split("://", 1)[1] if text.startswith("ray://") else text
    host, _, port = hostport.rpartition(":")
    return bool(host) and port.isdigit() and "/" not in host


@dataclass
class _Session:
    owned: bool  # we started or connected, so we disconnect afterwards


def connect(address: str = "auto") -> _Session:
    """Join the cluster at ``address`` ("auto", "local", HOST:PORT, ray://HOST:PORT)."""
    if ray.is_initialized():  # the caller set Ray up (ray.init in a notebook): use theirs
        return _Session(owned=False)
    if not is_address(address):
        raise UserError(f"`ray=` takes auto, local, HOST:PORT or ray://HOST:PORT, got '{address}'")
    quiet = dict(logging_level=logging.ERROR, log_to_driver=False, configure_logging=True)
    try:
        if address == "local":
            ray.init(include_dashboard=False, **quiet)
        else:
            target = _resolve_auto() if address == "auto" else address
            if target != "auto":
                _probe(target)
            ray.init(address=target, **quiet)
    except UserError:
        raise
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot connect to the Ray cluster at {address}: {first}") from None
    return _Session(owned=True)


def _ship(model: LoadedModel, probe_ref: Any) -> tuple[ModelSpec, Any, int]:
    """(what rebuilds the model on a worker, [its payload's ref, the probe digits' ref], bytes put).
    ``model`` runs its driver-chosen path; the eager module as loaded is what travels."""
    path_name = model.forward_path.name if model.forward_path is not None else EAGER
    model = as_loaded(model)
    path = Path(model.path)
    if model.sha256 and path.is_file():
        blob = path.read_bytes()
        from ..fileio import sha256_bytes

        if sha256_bytes(blob) == model.sha256:
            spec = ModelSpec(model.sha256, path.name, model.arch, model.format, model.preprocess, __version__,
                             path_name)
            return spec, [ray.put(blob), probe_ref], len(blob)
    # an in-memory model (Python API): the module itself travels, pickled by Ray
    cpu_model = dataclasses.replace(model, device=torch.device("cpu"))
    cpu_model.module = model.module.to("cpu") if isinstance(model.module, torch.nn.Module) else model.module
    try:
        ref = ray.put(cpu_model)
    except Exception as exc:  # noqa: BLE001 - TorchScript and ONNX sessions do not pickle
        raise UserError(f"model {model.name} has no file to send to the Ray workers and cannot be "
                        f"pickled ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                        "save it to a file first") from None
    key = f"mem-{id(model)}-{time.time_ns()}"
    spec = ModelSpec(key, path.name, model.arch, model.format, model.preprocess, __version__, path_name)
    return spec, [ref, probe_ref], 0


def _resources(device: str, stats: Stats) -> dict:
    res = ray.cluster_resources()
    stats.nodes = sum(1 for nd in ray.nodes() if nd.get("Alive"))
    stats.cpus, stats.gpus = float(res.get("CPU", 0)), float(res.get("GPU", 0))
    name = (device or "auto").lower()
    if name.startswith("cuda") and not stats.gpus:
        raise UserError(f"device '{device}' requested but the Ray cluster has no GPUs; use `device=\"cpu\"`")
    if name not in ("auto", "cpu") and not name.startswith("cuda"):
        raise UserError(f"device '{device}' is not available on Ray workers; use auto, cpu or cuda")
    if name != "cpu" and stats.gpus:
        stats.device = "cuda"
        return {"num_cpus": 1, "num_gpus": GPU_SHARE}
    return {"num_cpus": 1}


def _raise_task_error(exc: Exception) -> None:
    from ray import exceptions as rex

    cause = getattr(exc, "cause", None)
    if isinstance(cause, UserError):
        raise UserError(str(cause)) from None
    if isinstance(cause, ModuleNotFoundError):
        raise UserError(f"a Ray worker cannot import {cause.name}: install robustmnist (the same version, "
                        "with the extras your models need) on every node") from None
    if isinstance(exc, rex.WorkerCrashedError | rex.NodeDiedError | rex.ObjectLostError):
        raise UserError(f"Ray workers kept dying ({type(exc).__name__}, {MAX_RETRIES} retries); "
                        "check the nodes' memory and logs (ray status)") from None
    raise exc


class RayExecutor:
    """The executor on a Ray cluster: each set one generation task, each (model, set) pair one
    scoring task; the collector assembles the records in plan order, as it does locally.

    ``address``: "auto", "local", HOST:PORT or ray://HOST:PORT; ``device``: what the workers
    score on (auto, cpu, cuda); pass a ``Stats`` to learn how the work split."""

    name = "ray"

    def __init__(self, address: str = "auto", device: str = "auto", stats: Stats | None = None):
        self.address, self.device = address, device
        self.stats = stats if stats is not None else Stats()
        self.session: _Session | None = None
        self.pending: dict[Any, tuple] = {}  # object ref -> what it is
        self.ready: dict[tuple, Any] = {}  # what it is -> its value, once done

    # -- the run ------------------------------------------------------------------------------

    def open(self, models: list[LoadedModel], ctx: RunContext) -> list[LoadedModel]:
        self.ctx, st = ctx, self.stats
        self.session = connect(self.address)
        self.opts = _resources(self.device, st)
        models = _forward_paths(models, ctx.clean, ctx.batch_size, ctx.fast, st.device)
        clean, source = ctx.clean, ctx.source
        self.clean_set = ShiftSet("clean", 0, clean.images, clean.labels.astype(np.int64),
                                  set_sha256(clean.images, clean.labels), {})
        self.clean_ref = ray.put(self.clean_set)
        st.bytes_to_object_store += int(clean.images.nbytes + self.clean_set.labels.nbytes)
        self.source_ref = self.clean_ref
        if len(source.images) != len(clean.images):  # generation reads the whole source (nested sets)
            self.source_ref = ray.put(ShiftSet("source", 0, source.images, source.labels.astype(np.int64),
                                               set_sha256(source.images, source.labels), {}))
            st.bytes_to_object_store += int(source.images.nbytes + source.labels.nbytes)
        probe = np.ascontiguousarray(source.images[:PROBE_IMAGES])  # the digits the driver's probe ran on
        probe_ref = ray.put(probe)
        st.bytes_to_object_store += int(probe.nbytes)
        self.shipped = [_ship(m, probe_ref) for m in models]
        st.bytes_to_object_store += sum(size for _, _, size in self.shipped)
        for i, (spec, payload, _) in enumerate(self.shipped):
            self._submit(("clean", i), _score, spec, payload, self.clean_ref, ctx.batch_size)
            st.tasks_score += 1
        return models

    def score_clean(self) -> list[SetScore]:
        units = [self._wait(("clean", i)) for i in range(len(self.shipped))]
        for i, unit in enumerate(units):
            if self.ctx.progress:
                self.ctx.progress("score", len(self.ctx.clean.images), "")
            if self.ctx.ood:  # OOD sets are scored while the shifted sets run
                spec, payload, _ = self.shipped[i]
                root = str(self.ctx.data_root) if self.ctx.data_root is not None else None
                self._submit(("ood", i), _ood, spec, payload, list(self.ctx.ood), unit.logits, root, self.ctx.seed,
                             self.ctx.n, self.ctx.batch_size)
                self.stats.tasks_ood += 1
        return units

    def score_sets(self, requests: list[SetRequest]) -> Iterator[ScoredSet]:
        ahead = max(2, int(SETS_AHEAD_PER_CPU * max(self.stats.cpus, 1)))
        submitted = 0
        for k, req in enumerate(requests):
            while submitted < len(requests) and submitted < k + ahead:
                self._submit_set(submitted, requests[submitted])
                submitted += 1
            info = self._wait(("info", k))
            units = [self._wait(("shift", k, i)) for i in range(len(self.shipped))]
            for unit in units:
                if self.ctx.progress:
                    self.ctx.progress("score", len(unit.preds), "")
            labels = info["labels"] if info["labels"] is not None else self.ctx.clean.labels
            yield ScoredSet(req, info["sha256"], info["cached"], labels, info["chunks"], info["seconds"], units)

    def real_logits(self, images: list[np.ndarray]) -> list[list[np.ndarray]]:
        for j, imgs in enumerate(images):
            images_ref = ray.put(imgs)
            self.stats.bytes_to_object_store += int(imgs.nbytes)
            for i, (spec, payload, _) in enumerate(self.shipped):
                self._submit(("real", j, i), _logits, spec, payload, images_ref, self.ctx.batch_size)
                self.stats.tasks_real += 1
        out = []
        for j in range(len(images)):
            row = []
            for i in range(len(self.shipped)):
                value = self._wait(("real", j, i))
                self.stats.bytes_returned += int(value.nbytes)
                if self.ctx.progress:
                    self.ctx.progress("score", len(value), "")
                row.append(value)
            out.append(row)
        return out

    def ood_records(self, clean_logits: list[np.ndarray]) -> list[tuple[list, float]]:
        out = []
        for i in range(len(self.shipped)):
            records, seconds = self._wait(("ood", i))
            if self.ctx.progress:
                self.ctx.progress("score", sum(r.n for r in records), "")
            out.append((records, seconds))
        return out

    def annotate(self, output: RunOutput) -> None:
        st = self.stats
        output.result.environment = dataclasses.replace(
            output.result.environment, device=st.device,
            device_name=f"Ray: {st.nodes} node(s), {st.cpus:g} CPUs, {st.gpus:g} GPUs")
        output.result.execution["ray"] = {
            "nodes": st.nodes, "workers": st.device,
            "tasks": {"generate": st.tasks_generate, "score": st.tasks_score, "ood": st.tasks_ood,
                      "real": st.tasks_real},
            "on_driver": ["attacks"] if output.result.adversarial is not None else []}

    def close(self) -> None:
        for ref in self.pending:
            try:
                ray.cancel(ref)
            except Exception:  # noqa: BLE001 - best effort: the session is ending anyway
                pass
        self.pending.clear()
        if self.session is not None and self.session.owned:
            ray.shutdown()
        self.session = None

    # -- tasks --------------------------------------------------------------------------------

    def _submit(self, what: tuple, task, *args) -> None:
        self.pending[task.options(**self.opts).remote(*args)] = what

    def _submit_set(self, k: int, req: SetRequest) -> None:
        c = self.ctx
        set_ref, info_ref = _generate.options(num_cpus=1, num_returns=2).remote(
            req.shift.name, req.severity, req.params, self.source_ref, len(c.clean.images), c.seed, c.use_cache,
            __version__)
        self.stats.tasks_generate += 1
        self.pending[info_ref] = ("info", k)
        for i, (spec, payload, _) in enumerate(self.shipped):
            self._submit(("shift", k, i), _score, spec, payload, set_ref, c.batch_size)
            self.stats.tasks_score += 1

    def _wait(self, what: tuple):
        """The value of task ``what``, gathering whatever else finishes meanwhile."""
        from ray import exceptions as rex

        try:
            while what not in self.ready:
                done, _ = ray.wait(list(self.pending), num_returns=1, timeout=0.5)
                for ref in done:
                    key = self.pending.pop(ref)
                    value = ray.get(ref)
                    if key[0] == "info":
                        self.stats.bytes_sets += value["bytes"]
                    elif key[0] in ("clean", "shift"):
                        self.stats.bytes_returned += _nbytes(value)
                    self.ready[key] = value
        except rex.RayError as exc:
            self.close()
            _raise_task_error(exc)
        return self.ready.pop(what)


def _forward_paths(models: list[LoadedModel], clean: DigitSet, batch_size: int, fast: bool,
                   device: str) -> list[LoadedModel]:
    """The models on the path their workers will run: for CPU workers the fastest exact one,
    probed here once per model as a local run probes it (a model already probed keeps its
    choice); eager PyTorch for GPU workers, as a local run keeps on a GPU, and with fast=False."""
    if not fast:
        return [as_loaded(m) for m in models]
    if device == "cuda":  # nothing to probe here: the GPUs are on the workers
        return [dataclasses.replace(as_loaded(m), forward_path=PathChoice(EAGER, 0.0, device="cuda"))
                for m in models]
    return [accelerate(m, clean.images, batch_size) for m in models]


def _nbytes(unit: SetScore) -> int:
    size = unit.preds.nbytes + unit.logits.nbytes
    gal = unit.metrics.get("gallery", {})
    return int(size + len(gal.get("samples_png", "")) + sum(len(m["png"]) for m in gal.get("misclassified", [])))


def evaluate_many(models: list[LoadedModel], suite, *, address: str = "auto", device: str = "auto",
                  stats: Stats | None = None, **kwargs) -> list[RunOutput]:
    """``run.collect.evaluate_many`` on the Ray cluster at ``address``, workers scoring on ``device``."""
    from .collect import evaluate_many as run_many

    return run_many(models, suite, executor=RayExecutor(address, device, stats), **kwargs)
