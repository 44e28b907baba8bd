"""One service under every entry point: the CLI's eval and bench, robustmnist.evaluate and
robustmnist.bench, and any executor give the same results for the same request."""

from __future__ import annotations

import json

import numpy as np
import pytest

import robustmnist
from robustmnist.run.collect import evaluate_many
from robustmnist.run.local import LocalExecutor
from robustmnist.shifts.suite import load_suite

from .helpers import run_cli, untrained_checkpoint

VARYING = ("timings", "environment", "created", "execution")


def _stable(path) -> dict:
    """A results.json without what legitimately differs between two runs of the same request."""
    d = json.loads(path.read_text())
    for k in VARYING:
        d.pop(k)
    d["predictions"].pop("sha256")  # the npz's zip headers hold times; its arrays are compared apart
    for r in d["shifts"]:
        r.pop("cached")  # the second run finds the first one's sets in the cache
    return d


def _same_predictions(a, b) -> None:
    with np.load(a) as za, np.load(b) as zb:
        assert sorted(za.files) == sorted(zb.files)
        for k in za.files:
            assert np.array_equal(za[k], zb[k]), k


@pytest.fixture(autouse=True)
def _one_forward_path(monkeypatch):
    # The probe picks the fastest exact path by timing, and two exact paths differ in the last
    # float bits: pin the choice so two runs of one request compare byte for byte.
    from robustmnist.models import fastpath

    monkeypatch.setattr(fastpath, "decide", lambda times: "eager")


@pytest.fixture
def models(tmp_path):
    return [untrained_checkpoint(tmp_path / "a.pt", "lenet5"),
            untrained_checkpoint(tmp_path / "b.pt", "mlp-784-50-50-10")]


def test_cli_eval_and_api_evaluate_write_the_same_results(models, tiny_data_root, tmp_path, monkeypatch, capsys):
    common = ["--suite", "quick", "--shift", "rotate,fonts", "--severity", "1,3", "--n", "60", "--ood", "noise",
              "--data-root", str(tiny_data_root), "--force", "--device", "cpu"]
    code, _, err = run_cli(monkeypatch, capsys, "eval", str(models[0]), *common, "--out", str(tmp_path / "cli"))
    assert code == 0, err
    r = robustmnist.evaluate(models[0], suite="quick", shift="rotate,fonts", severity=[1, 3], n=60, ood="noise",
                             data_root=tiny_data_root, force=True, device="cpu", out=tmp_path / "api",
                             formats="json,html,md,csv", log=None, warn=None)
    assert set(r.written) == {"json", "html", "md", "csv"}
    assert _stable(tmp_path / "cli" / "results.json") == _stable(tmp_path / "api" / "results.json")
    _same_predictions(tmp_path / "cli" / "predictions.npz", tmp_path / "api" / "predictions.npz")
    # the object returned is what was written
    assert r.clean.accuracy == json.loads((tmp_path / "api" / "results.json").read_text())["clean"]["accuracy"]


def test_cli_bench_and_api_bench_rank_the_same(models, tiny_data_root, tmp_path, monkeypatch, capsys):
    common = ["--suite", "quick", "--shift", "rotate,gaussian_noise", "--severity", "2", "--n", "50",
              "--data-root", str(tiny_data_root), "--force", "--device", "cpu"]
    code, out, err = run_cli(monkeypatch, capsys, "bench", *map(str, models), *common, "--out", str(tmp_path / "cli"))
    assert code == 0, err
    assert "leaderboard" in out
    res = robustmnist.bench(models, suite="quick", shift=["rotate", "gaussian_noise"], severity=2, n=50,
                            data_root=tiny_data_root, force=True, device="cpu", out=tmp_path / "api",
                            log=None, warn=None)
    assert sorted(row.name for row in res.leaderboard) == ["a", "b"]
    assert [row.rank for row in res.leaderboard] == [1, 2]
    for name in ("a", "b"):
        assert _stable(tmp_path / "cli" / name / "results.json") == _stable(tmp_path / "api" / name / "results.json")
    assert (tmp_path / "cli" / "leaderboard.csv").read_bytes() == (tmp_path / "api" / "leaderboard.csv").read_bytes()
    assert "BenchResult" in repr(res) and res.n == 50


class _CountingExecutor(LocalExecutor):
    """An executor of one's own: the loop asks it for scores and knows nothing else about it."""

    def __init__(self):
        super().__init__()
        self.asked = []

    def score_sets(self, requests):
        self.asked.append([(r.shift.name, r.severity) for r in requests])
        yield from super().score_sets(requests)


def test_any_executor_behind_the_interface_gives_the_local_results(models, tiny_data_root):
    from robustmnist.models.load import load_model

    suite = load_suite("quick").restrict(["rotate", "fonts"], [2])
    loaded = [load_model(p) for p in models]
    mine = _CountingExecutor()
    a = evaluate_many(loaded, suite, executor=mine, n=40, data_root=tiny_data_root, names=["a", "b"])
    b = evaluate_many(loaded, suite, n=40, data_root=tiny_data_root, names=["a", "b"])
    assert mine.asked == [[("rotate", 2), ("fonts", 2)]]
    for x, y in zip(a, b, strict=True):
        assert [r.accuracy for r in x.result.shifts] == [r.accuracy for r in y.result.shifts]
        assert x.result.summary == y.result.summary
        assert all(np.array_equal(x.predictions[k], y.predictions[k]) for k in y.predictions)


def test_api_resume_needs_an_output_folder(models):
    with pytest.raises(robustmnist.UserError, match="resume=True needs out="):
        robustmnist.evaluate(models[0], resume=True, log=None, warn=None)
