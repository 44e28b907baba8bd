"""bench on Ray: the same results as a local run, also when a worker dies mid-run.

One private local Ray instance (2 CPUs, no dashboard) for the module, shut down at its end;
a deadline per test turns a hang into a failure instead of a stuck CI job.
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

from robustmnist.data import DigitSet
from robustmnist.engine import evaluate_many
from robustmnist.errors import UserError
from robustmnist.models.checkpoint import make_checkpoint, save_checkpoint
from robustmnist.models.load import load_model
from robustmnist.models.zoo import build
from robustmnist.shifts.suite import load_suite

from .conftest import synthetic_digits

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
    from robustmnist.distributed.ray import connect

    if ray.is_initialized():
        pytest.skip("a Ray session is already open in this process")
    t = time.perf_counter()
    with pytest.raises(UserError, match="cannot reach the Ray cluster at 127.0.0.1:9"):
        connect("127.0.0.1:9")  # discard port: nothing listens
    assert time.perf_counter() - t < 30
    with pytest.raises(UserError, match="--ray takes auto, local"):
        connect("not an address")


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    # Workers inherit the environment of the process that starts Ray: point their set cache
    # at the tests' cache (conftest's fixture patches it only per test, after this one).
    old = os.environ.get("ROBUSTMNIST_CACHE")
    os.environ["ROBUSTMNIST_CACHE"] = str(tmp_path_factory.getbasetemp() / "set-cache")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
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


def _comparable(run) -> dict:
    d = run.result.to_dict()
    for key in ("timings", "environment", "created"):
        d.pop(key)
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


def _bench(paths, suite, clean, **kw):
    # Ray workers score on the model as loaded; the local side does the same here (fast=False).
    # Local bench's fast path (models/fastpath.py) gives the same predictions but calibration
    # floats that differ in the 6th decimal, so byte-identity holds eager to eager.
    if kw.get("ray") is None:
        kw.setdefault("fast", False)
    models = [load_model(p) for p in paths]
    return evaluate_many(models, suite, clean=clean, names=[p.stem for p in paths], **kw)


def test_ray_results_equal_local_bench(local_ray, three_models):
    images, labels = synthetic_digits(120, seed=3)
    clean = DigitSet(images, labels, "t")
    # transforms and a generated set (fonts: labels of its own), and an OOD set
    suite = load_suite("default").restrict(["gaussian_noise", "rotate", "fonts"], [2, 4])
    from robustmnist.real import real_from_arrays

    real = [real_from_arrays("blocks", *synthetic_digits(40, seed=9))]  # a real set from memory
    local = _bench(three_models, suite, clean, ood=["noise"], n=100, real_sets=real)
    seen = []
    with deadline(240):
        remote = _bench(three_models, suite, clean, ood=["noise"], n=100, real_sets=real, ray="auto",
                        progress=lambda kind, k, status: seen.append((kind, k)))
    _same(local, remote)
    assert remote[0].result.real[0].name == "blocks"
    assert [len(r.result.shifts) for r in remote] == [6, 6, 6]
    assert remote[0].result.ood[0].name == "noise" and remote[0].result.ood[0].n == 100
    assert remote[0].result.environment.device_name.startswith("Ray: 1 node")
    # every image of every (model, set) pair reported once: 3 × ((clean + 6 sets + OOD) × 100 + 40 real)
    assert sum(k for kind, k in seen if kind == "score") == 3 * (8 * 100 + 40)
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
    images, labels = synthetic_digits(500, seed=5)
    clean = DigitSet(images, labels, "t")
    suite = load_suite("default").restrict(["gaussian_noise", "rotate", "contrast"], [1, 4])
    local = _bench(three_models, suite, clean)
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
            remote = _bench(three_models, suite, clean, ray="auto")
    finally:
        stop.set()
        killer.join(timeout=5)
    assert killed, "no scoring task was seen running, so no worker was killed"
    _same(local, remote)


def test_cli_bench_on_ray_writes_the_local_leaderboard(local_ray, three_models, tiny_data_root, tmp_path):
    import json

    from typer.testing import CliRunner

    from robustmnist.cli import app

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
        for d in (a, b):
            for key in ("timings", "environment", "created", "predictions"):  # npz bytes hold a timestamp
                d.pop(key)
            # local bench runs the fastest exact forward path (execution says which), Ray workers
            # the model as loaded: same predictions, calibration floats equal to ~1e-6
            d.pop("execution", None)
            for rec in d["shifts"]:
                rec.pop("cached")
        assert _rounded(a) == _rounded(b)


def _rounded(x):
    if isinstance(x, float):
        return round(x, 5)
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_rounded(v) for v in x]
    return x


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

    plan = AttackPlan(("fgsm",), "linf", ((1, 0.1),), n=20, n_available=50)  # runs on the driver
    with deadline(120):
        ms = models()
        _same(evaluate_many(ms, suite, clean=clean, attacks=plan, fast=False),
              evaluate_many(ms, suite, clean=clean, attacks=plan, ray="auto"))
        broken = models()[1]
        with torch.no_grad():
            broken.module[-1].weight.fill_(float("nan"))
        with pytest.raises(UserError, match="produced NaN or inf outputs") as info:
            evaluate_many([broken], suite, clean=clean, ray="auto")
    assert "Traceback" not in str(info.value) and "\n" not in str(info.value)
