"""Write as you go: a killed run leaves valid partial results; --resume finishes them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from torch import nn

from robustmnist.errors import UserError
from robustmnist.models.load import LoadedModel
from robustmnist.models.preprocess import Preprocess
from robustmnist.models.zoo import build
from robustmnist.results import Result
from robustmnist.run.collect import evaluate
from robustmnist.shifts.registry import resolve_names
from robustmnist.shifts.suite import load_suite

from .helpers import run_cli


class Stop(Exception):
    pass


def _model() -> LoadedModel:
    torch.manual_seed(0)
    return LoadedModel(build("lenet5").eval(), Preprocess(), "m.pt", "abc", "test")


def test_resuming_an_interrupted_run_gives_the_uninterrupted_result(tiny_data_root):
    suite = load_suite("default").restrict(["gaussian_noise", "rotate", "fonts"], [1, 3])
    seen = []

    def stop_after_three(snapshot):
        outputs = snapshot()  # built on demand: a saver builds them only when it writes
        seen.append(outputs[0])
        assert all(o.result.partial for o in outputs)
        if len(outputs[0].result.shifts) >= 3:
            raise Stop

    kw = dict(n=120, data_root=tiny_data_root, use_cache=False)
    with pytest.raises(Stop):
        evaluate(_model(), suite, on_update=stop_after_three, **kw)
    # clean first, then each set with its deployment records: a snapshot never holds a set
    # without them, and never loses one it held
    counts = [len(o.result.shifts) for o in seen]
    assert counts[0] == 0 and counts == sorted(counts) and counts[-1] >= 3
    assert all(r.selective is not None and r.detection is not None for o in seen for r in o.result.shifts)
    prior = seen[-1]
    held = len(prior.result.shifts)
    assert {k.removesuffix(":labels") for k in prior.predictions} - {"clean", "labels"} == \
        {f"{r.name}@{r.severity}" for r in prior.result.shifts}
    scored = []
    resumed = evaluate(_model(), suite, resume=[prior], progress=lambda k, a, s: scored.append(a) if k == "score"
                       else None, **kw)
    straight = evaluate(_model(), suite, **kw)
    assert not resumed.result.partial and resumed.result.execution["resumed_sets"] == held
    # clean again (every digit: the first 120, then the other 80), then only the missing sets
    assert sum(scored) == 200 + 120 * (6 - held)
    assert [(r.name, r.severity) for r in resumed.result.shifts] == \
        [(r.name, r.severity) for r in straight.result.shifts]
    for a, b in zip(resumed.result.shifts, straight.result.shifts, strict=True):
        assert (a.selective, a.conformal, a.detection) == (b.selective, b.conformal, b.detection)
    for a, b in zip(resumed.result.shifts, straight.result.shifts, strict=True):
        assert (a.accuracy, a.sha256, a.flip_rate) == (b.accuracy, b.sha256, b.flip_rate)
    assert resumed.predictions.keys() == straight.predictions.keys()
    for k in straight.predictions:
        assert (resumed.predictions[k] == straight.predictions[k]).all()


def test_a_record_from_other_level_parameters_is_scored_again(tiny_data_root):
    suite = load_suite("quick").restrict(["gaussian_noise"], [3])
    first = evaluate(_model(), suite, n=60, data_root=tiny_data_root, use_cache=False)
    first.result.shifts[0].params = {"sigma": 0.5}  # as if the suite had changed since
    again = evaluate(_model(), suite, n=60, data_root=tiny_data_root, use_cache=False, resume=[first])
    assert "resumed_sets" not in again.result.execution


def _slow_torchscript(path):
    # wide enough that each set takes a visible moment on a CPU, so the kill lands mid-run
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 2048), nn.ReLU(), nn.Linear(2048, 2048), nn.ReLU(),
                        nn.Linear(2048, 10)).eval()
    torch.jit.save(torch.jit.trace(net, torch.zeros(2, 1, 28, 28)), str(path))


@pytest.mark.slow
def test_a_killed_eval_leaves_partial_results_that_report_renders_and_resume_finishes(tmp_path, tiny_data_root,
                                                                                      monkeypatch, capsys):
    model = tmp_path / "wide.ts.pt"
    _slow_torchscript(model)
    out = tmp_path / "run"
    env = {"ROBUSTMNIST_DATA": str(tiny_data_root), "ROBUSTMNIST_OFFLINE": "1", "ROBUSTMNIST_SAVE_EVERY_S": "0",
           "MPLBACKEND": "Agg"}
    args = ["eval", str(model), "--shift", "noise", "--severity", "1,3,5", "--n", "200", "--format",
            "json", "--force", "--out", str(out)]
    n_sets = 3 * len(resolve_names("noise"))
    # Only the run to kill needs a process of its own; report and resume run in-process below.
    proc = subprocess.Popen([sys.executable, "-m", "robustmnist", *args], env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    results = out / "results.json"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if results.is_file() and len(json.loads(results.read_text())["shifts"]) >= 2:
                proc.send_signal(signal.SIGKILL)  # no handler, no clean-up: the hardest stop
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    partial = Result.load(results)
    assert partial.partial and 2 <= len(partial.shifts) < n_sets
    assert not list(out.glob(".*.tmp"))  # atomic rewrites: no half-written files

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    code, _, err = run_cli(monkeypatch, capsys, "report", str(results), "--format", "html,md")
    assert code == 0, err
    assert "Partial results" in (out / "report.html").read_text()
    assert "Partial results" in (out / "report.md").read_text()

    code, _, err = run_cli(monkeypatch, capsys, *args, "--resume")
    assert code == 0, err
    done = Result.load(results)
    assert not done.partial and len(done.shifts) == n_sets
    assert done.execution["resumed_sets"] >= len(partial.shifts) - 1
    with np.load(out / "predictions.npz") as z:
        assert len(z.files) == 2 + n_sets and all(len(z[k]) == 200 for k in z.files)
    before = {(s.name, s.severity): s.accuracy for s in partial.shifts}
    after = {(s.name, s.severity): s.accuracy for s in done.shifts}
    assert all(after[k] == v for k, v in before.items())

    code, _, err = run_cli(monkeypatch, capsys, *args, "--resume")  # nothing left to do: a clear one-line error
    assert code == 2 and "already complete" in err and "Traceback" not in err
    code, _, err = run_cli(monkeypatch, capsys, *[a if a != "200" else "100" for a in args], "--resume")
    assert code == 2 and "Traceback" not in err


def test_a_failing_run_leaves_nothing_behind(tmp_path, tiny_data_root, monkeypatch):
    from robustmnist.api import evaluate
    from robustmnist.models.checkpoint import make_checkpoint, save_checkpoint
    from robustmnist.run import local as engine

    model = tmp_path / "m.pt"
    save_checkpoint(model, make_checkpoint("lenet5", build("lenet5")))
    real_get = engine.SetPipeline.get
    calls = []

    def breaks_on_the_second_set(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise UserError("simulated failure")
        return real_get(*a, **k)

    monkeypatch.setenv("ROBUSTMNIST_SAVE_EVERY_S", "0")
    monkeypatch.setattr(engine.SetPipeline, "get", breaks_on_the_second_set)
    out = tmp_path / "out"
    suite = load_suite("quick").restrict(["gaussian_noise", "rotate"], [3])
    with pytest.raises(UserError, match="simulated"):
        evaluate(model, out=out, suite=suite, n=50, data_root=tiny_data_root, force=True, log=None, warn=None)
    assert not out.exists()


def test_gate_refuses_partial_results(tmp_path):
    from typer.testing import CliRunner

    from robustmnist.cli import app

    from .test_bench import POLICY, make_result

    pol = tmp_path / "gate.toml"
    pol.write_text(POLICY)
    res = make_result("good", 0.97, {("rotate", 1): 0.9, ("gaussian_noise", 1): 0.8}, ood_auroc=0.95)
    res.partial = True
    res.save(tmp_path / "partial.json")
    r = CliRunner().invoke(app, ["gate", str(tmp_path / "partial.json"), "--policy", str(pol)])
    assert isinstance(r.exception, UserError) and "--resume" in str(r.exception)


def test_the_saver_builds_a_snapshot_only_when_it_writes():
    """Building the outputs summarises every record so far; doing it after every set made the
    partial saves O(sets^2). The saver calls the snapshot only when a save is due."""
    from robustmnist.run.resume import PartialSaver

    built, saved = [], []

    def snapshot():
        built.append(1)
        return []

    saver = PartialSaver(saved.append, every=3600)
    for _ in range(50):
        saver(snapshot)
    assert len(built) == 1 and saver.saves == 1  # the first update is always saved, then throttled
    PartialSaver(saved.append, every=0)(snapshot)
    assert len(built) == 2
