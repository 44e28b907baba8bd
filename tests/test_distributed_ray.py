"""bench on Ray: the same results as a local run, also when a worker dies mid-run.

One private local Ray instance (2 CPUs, no dashboard) for the module, shut down at its end;
a deadline per test turns a hang into a failure instead of a stuck CI job. Results are
compared whole, with default settings (each model on its fastest exact forward path), after
dropping only timings, environment and where the work ran.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import warnings
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from robustmnist.data.datasets import DigitSet
from robustmnist.errors import UserError
from robustmnist.models import fastpath
from robustmnist.models.checkpoint import make_checkpoint, save_checkpoint
from robustmnist.models.load import load_model
from robustmnist.models.zoo import build
from robustmnist.run.collect import evaluate_many
from robustmnist.run.scoring import score
from robustmnist.shifts.suite import load_suite

from .conftest import synthetic_digits
from .helpers import single_thread

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray


@contextmanager
def deadline(seconds: int):
    def fail(signum, frame):
        raise TimeoutError(f"the Ray run took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_ray_unreachable_address_is_a_one_line_error():
    from robustmnist.run.ray import connect

    if ray.is_initialized():
        pytest.skip("a Ray session is already open in this process")
    t = time.perf_counter()
    with pytest.raises(UserError, match="cannot reach the Ray cluster at 127.0.0.1:9"):
        connect("127.0.0.1:9")  # discard port: nothing listens
    assert time.perf_counter() - t < 30
    with pytest.raises(UserError, match="ray= takes auto, local"):
        connect("not an address")


@ray.remote(num_cpus=1)
def _warm_worker() -> None:
    import sklearn.metrics  # noqa: F401 - OOD scores

    import robustmnist.run.ray  # noqa: F401 - what every task unpickles first
    import robustmnist.shifts  # noqa: F401 - the shift registry generation tasks read


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    # Workers inherit the environment of the process that starts Ray: point their set cache
    # at the tests' cache (conftest's fixture patches it only per test, after this one).
    old = os.environ.get("ROBUSTMNIST_CACHE")
    os.environ["ROBUSTMNIST_CACHE"] = str(tmp_path_factory.getbasetemp() / "set-cache")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    # Both workers import what tasks need while the first test runs its local half: the
    # imports (torch, torchvision, scikit-learn) are most of a fresh worker's first task.
    _warming = [_warm_worker.remote() for _ in range(2)]  # held: results kept, never awaited
    try:
        yield
    finally:
        ray.shutdown()
        if old is None:
            os.environ.pop("ROBUSTMNIST_CACHE", None)
        else:
            os.environ["ROBUSTMNIST_CACHE"] = old


@pytest.fixture(scope="module")
def three_models(tmp_path_factory):
    """Three formats the workers must rebuild from the file: checkpoint, TorchScript, state_dict."""
    folder = tmp_path_factory.mktemp("ray-models")
    torch.manual_seed(0)  # untrained weights: the test compares predictions, not their quality
    save_checkpoint(folder / "lenet5.pt", make_checkpoint("lenet5", build("lenet5").eval()))
    mlp = build("mlp-784-50-50-10").eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, still shipped
        torch.jit.save(torch.jit.trace(mlp, torch.zeros(2, 1, 28, 28)), folder / "mlp.ts")
    torch.save(build("cnn-small").eval().state_dict(), folder / "cnn-small.pt")
    return [folder / "lenet5.pt", folder / "mlp.ts", folder / "cnn-small.pt"]


# One forward path per model, as bench's probe would choose one: every path a worker can be
# told to follow. Chosen once here, since a probe's pick depends on timings.
PATHS = (fastpath.ONNX, fastpath.FROZEN, fastpath.EAGER)


def _on_paths(paths, images) -> list:
    return [fastpath.follow(load_model(p), name, images) for p, name in zip(paths, PATHS, strict=True)]


def _comparable(run) -> dict:
    d = run.result.to_dict()
    for key in ("timings", "environment", "created"):
        d.pop(key)
    assert d["execution"].pop("ray", None) is None or run.result.environment.device_name.startswith("Ray: ")
    for rec in d["shifts"]:
        rec.pop("cached")  # whose cache had the set: the driver's or a worker's
    for rec in (d.get("adversarial") or {}).get("records", []):  # attack timings
        rec.pop("seconds")
        for per in rec["per_attack"].values():
            per.pop("seconds", None)
    return d


def _same(local_runs, ray_runs) -> None:
    assert len(local_runs) == len(ray_runs)
    for a, b in zip(local_runs, ray_runs, strict=True):
        assert _comparable(a) == _comparable(b)
        assert a.predictions.keys() == b.predictions.keys()
        for k in a.predictions:
            assert a.predictions[k].dtype == b.predictions[k].dtype
            np.testing.assert_array_equal(a.predictions[k], b.predictions[k])


# Ray starts its workers with OMP_NUM_THREADS=1, one thread per task. float32 sums in a
# convolution or a matrix product may round differently at another thread count (cnn-small's
# logits move by 4e-8 between 1 and 2 threads on an Intel Xeon, not on an AMD EPYC), so the
# local side of a comparison runs at the workers' thread count: the same work, the same bits.
_threads_of_a_ray_worker = single_thread


def _bench(models, suite, clean, ray=None, **kw):
    # default settings: fast=True, so each model runs the path it holds, locally and on Ray
    # (whatever the driver computes itself on a Ray run, too, at the workers' thread count)
    from robustmnist.run.ray import RayExecutor

    with _threads_of_a_ray_worker():
        return evaluate_many(models, suite, clean=clean, names=[m.name for m in models],
                             executor=RayExecutor(ray) if ray else None, **kw)


def test_ray_results_equal_local_bench(local_ray, three_models):
    from robustmnist.run.ray import Stats
    from robustmnist.run.ray import evaluate_many as evaluate_on_ray

    images, labels = synthetic_digits(120, seed=3)
    clean = DigitSet(images, labels, "t")
    models = _on_paths(three_models, images)
    # the comparison below can fail: a worker on eager PyTorch would give other calibration floats
    eager = load_model(three_models[0])
    assert not np.array_equal(score(models[0], images), score(eager, images))
    # transforms and a generated set (fonts: labels of its own), and an OOD set
    suite = load_suite("default").restrict(["gaussian_noise", "rotate", "fonts"], [2, 4])
    from robustmnist.data.real import real_from_arrays

    real = [real_from_arrays("blocks", *synthetic_digits(40, seed=9))]  # a real set from memory
    local = _bench(models, suite, clean, ood=["noise"], n=100, real_sets=real)
    seen = []
    with deadline(240):
        stats = Stats()
        with _threads_of_a_ray_worker():
            remote = evaluate_on_ray(models, suite, clean=clean, names=[m.name for m in models], ood=["noise"],
                                     n=100, real_sets=real, address="auto", stats=stats,
                                     progress=lambda kind, k, status: seen.append((kind, k)))
    _same(local, remote)
    assert [r.result.execution["forward_path"]["name"] for r in remote] == list(PATHS)
    assert remote[0].result.real[0].name == "blocks"
    assert [len(r.result.shifts) for r in remote] == [6, 6, 6]
    assert remote[0].result.ood[0].name == "noise" and remote[0].result.ood[0].n == 100
    assert remote[0].result.environment.device_name.startswith("Ray: 1 node")
    where = remote[0].result.execution["ray"]
    assert where["on_driver"] == [] and where["tasks"] == {"generate": 6, "score": 3 * 7, "ood": 3, "real": 3}
    assert (stats.tasks_generate, stats.tasks_score, stats.tasks_ood, stats.tasks_real) == (6, 21, 3, 3)
    # every image of every (model, set) pair reported once: 3 × (every clean digit + (6 sets + OOD) × 100
    # + 40 real); clean is scored whole, the sets pair with its first 100
    assert sum(k for kind, k in seen if kind == "score") == 3 * (len(clean.labels) + 7 * 100 + 40)
    assert sum(k for kind, k in seen if kind == "set") == 6


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="finds Ray's workers through /proc")
def test_ray_run_survives_a_killed_worker(local_ray, three_models):
    images, labels = synthetic_digits(300, seed=5)
    clean = DigitSet(images, labels, "t")
    suite = load_suite("default").restrict(["gaussian_noise", "contrast"], [1, 4])
    models = _on_paths(three_models, images)
    local = _bench(models, suite, clean)
    killed: list[tuple[int, str]] = []
    stop = threading.Event()

    def kill_one_busy_worker():
        # Only our own Ray's workers (descendants of this process: others may run Ray on the
        # same machine), and only one while it executes a scoring task (Ray names the process
        # after the task it runs).
        while not stop.is_set() and not killed:
            for pid in _descendants(os.getpid()):
                title = _cmdline(pid)
                if title.startswith("ray::_score"):
                    os.kill(pid, signal.SIGKILL)
                    killed.append((pid, title))
                    return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_one_busy_worker, daemon=True)
    killer.start()
    try:
        with deadline(300):
            remote = _bench(models, suite, clean, ray="auto")
    finally:
        stop.set()
        killer.join(timeout=5)
    assert killed, "no scoring task was seen running, so no worker was killed"
    _same(local, remote)


def test_cli_bench_on_ray_writes_the_local_leaderboard(local_ray, three_models, tiny_data_root, tmp_path,
                                                      monkeypatch):
    import json

    from typer.testing import CliRunner

    from robustmnist.cli import app

    # Each bench probes its models' paths afresh, and which exact path is fastest is a matter of
    # timing: let the probe try only onnxruntime and prefer it (when exact), so both runs choose
    # alike and the workers must follow a path other than eager.
    candidates = fastpath.candidates
    monkeypatch.setattr(fastpath, "candidates", lambda *a: {k: v for k, v in candidates(*a).items()
                                                            if k == fastpath.ONNX})
    monkeypatch.setattr(fastpath, "decide", lambda times: fastpath.ONNX if fastpath.ONNX in times
                        else fastpath.EAGER)
    monkeypatch.setattr(fastpath, "worth_timing", lambda name, module: True)  # the MLP too
    monkeypatch.setattr(fastpath, "PROBE_ROUNDS", 1)
    listing = tmp_path / "models.txt"
    listing.write_text("".join(f"{p}\n" for p in three_models))
    common = ["--n", "60", "--shift", "rotate", "--severity", "2", "--data-root", str(tiny_data_root),
              "--format", "json,md"]
    runner = CliRunner()
    local = runner.invoke(app, ["bench", f"@{listing}", "--out", str(tmp_path / "local"), *common])
    assert local.exit_code == 0, local.output
    with deadline(180):  # auto: the running cluster (this module's local one)
        remote = runner.invoke(app, ["bench", f"@{listing}", "--ray", "auto", "--out", str(tmp_path / "ray"),
                                     *common])
    assert remote.exit_code == 0, remote.output
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.html"):
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes()
    for p in three_models:
        a, b = (json.loads((tmp_path / side / p.stem / "results.json").read_text()) for side in ("local", "ray"))
        assert a["execution"]["forward_path"]["name"] == fastpath.ONNX
        assert b["execution"].pop("ray")["workers"] == "cpu"
        for d in (a, b):
            for key in ("timings", "environment", "created", "predictions"):  # npz bytes hold a timestamp
                d.pop(key)
            for key in ("images_per_s", "rates", "build_s", "probe_s"):  # the probe's timings
                d["execution"]["forward_path"].pop(key)
            for key in ("images_per_s", "estimated_s", "full_estimated_s", "machine_factor", "line"):
                d["execution"].pop(key)  # the plan's timings and estimates
            for rec in d["shifts"]:
                rec.pop("cached")
        assert a == b


def test_ray_in_memory_models_and_worker_errors(local_ray):
    # Python API models without a file travel pickled; a UserError raised on a worker reaches
    # the caller as the same one line (not a RayTaskError traceback).
    from robustmnist.models.load import LoadedModel
    from robustmnist.models.preprocess import Preprocess

    images, labels = synthetic_digits(50, seed=7)
    clean = DigitSet(images, labels, "t")
    suite = load_suite("default").restrict(["rotate"], [1])
    torch.manual_seed(1)

    def models():
        return [LoadedModel(build(a).eval(), Preprocess(layout=lay), a, "", "test")
                for a, lay in (("lenet5", "1x28x28"), ("mlp-784-50x3-10", "784"))]

    from robustmnist.attacks.evaluate import AttackPlan
    from robustmnist.run.ray import evaluate_many as evaluate_on_ray

    plan = AttackPlan(("fgsm",), "linf", ((1, 0.1),), n=20, n_available=50)  # runs on the driver
    with deadline(120):
        ms = [fastpath.follow(m, fastpath.FROZEN, images) for m in models()]
        with _threads_of_a_ray_worker():
            remote = evaluate_on_ray(ms, suite, clean=clean, attacks=plan, address="auto")
            local = evaluate_many(ms, suite, clean=clean, attacks=plan)
        _same(local, remote)
        assert remote[0].result.execution["ray"]["on_driver"] == ["attacks"]
        broken = models()[1]
        with torch.no_grad():
            broken.module[-1].weight.fill_(float("nan"))
        with pytest.raises(UserError, match="produced NaN or inf outputs") as info:
            evaluate_on_ray([broken], suite, clean=clean, address="auto", fast=False)
    assert "Traceback" not in str(info.value) and "\n" not in str(info.value)


def test_a_worker_follows_the_drivers_path_or_says_why():
    images, _ = synthetic_digits(60, seed=2)
    torch.manual_seed(0)
    from robustmnist.models.load import LoadedModel
    from robustmnist.models.preprocess import Preprocess

    model = LoadedModel(build("lenet5").eval(), Preprocess(), "lenet5", "", "test")
    a, b = (fastpath.follow(model, fastpath.ONNX, images) for _ in range(2))
    assert a.forward_path.name == fastpath.ONNX and fastpath.as_loaded(a).module is model.module
    np.testing.assert_array_equal(score(a, images), score(b, images))  # rebuilt, the same floats
    same = fastpath.follow(model, fastpath.EAGER, images)
    assert same.module is model.module and same.forward_path.name == fastpath.EAGER
    with pytest.raises(UserError, match="forward path 'tensorrt' chosen for lenet5 cannot run on cpu"):
        fastpath.follow(model, "tensorrt", images)
