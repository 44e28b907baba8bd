"""Output folders checked before the model loads (run/outputs.py): a path that cannot be written,
and a folder holding another model's results, stop with one line and create nothing."""

from __future__ import annotations

import json
import os

import pytest

import robustmnist
from robustmnist.errors import UserError

from .helpers import run_cli, untrained_checkpoint

COMMON = ["--suite", "quick", "--shift", "rotate", "--severity", "1", "--n", "40", "--force", "--device", "cpu",
          "--format", "json"]


@pytest.fixture
def models(tmp_path):
    return [untrained_checkpoint(tmp_path / "a.pt", "lenet5"),
            untrained_checkpoint(tmp_path / "b.pt", "mlp-784-50-50-10")]


def _no_load(monkeypatch):
    """Loading the model fails the test: every check here must come first."""
    def boom(*a, **k):
        raise AssertionError("the model was loaded before the output check")
    monkeypatch.setattr(robustmnist.api, "load_model", boom)
    monkeypatch.setattr("robustmnist.models.load.load_model", boom)


def test_an_out_that_is_a_file_stops_before_the_model_loads(models, tmp_path, monkeypatch, capsys):
    taken = tmp_path / "notes.txt"
    taken.write_text("mine")
    _no_load(monkeypatch)
    code, _, err = run_cli(monkeypatch, capsys, "eval", str(models[0]), *COMMON, "--out", str(taken))
    assert code == 2
    assert "--out" in err and "is a file, not a folder" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert taken.read_text() == "mine"
    with pytest.raises(UserError, match=r"out=.*is a file"):
        robustmnist.evaluate(models[0], out=taken / "sub")
    with pytest.raises(UserError, match=r"out=.*is a file"):
        robustmnist.bench([str(m) for m in models], out=taken)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_out_in_a_read_only_folder_stops_before_the_model_loads(models, tmp_path, monkeypatch, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    _no_load(monkeypatch)
    try:
        code, _, err = run_cli(monkeypatch, capsys, "eval", str(models[0]), *COMMON, "--out", str(ro / "res"))
    finally:
        ro.chmod(0o755)
    assert code == 2 and "is not writable" in err and "Traceback" not in err
    assert not (ro / "res").exists()


def test_a_read_only_folder_is_refused(tmp_path, monkeypatch):
    # the same check without needing a non-root user: os.access says no
    from robustmnist.run import outputs

    monkeypatch.setattr(outputs.os, "access", lambda p, mode: False)
    with pytest.raises(UserError, match=r"out=.*res is not writable \(.* is not writable\)"):
        outputs.check_out(tmp_path / "res")
    assert not (tmp_path / "res").exists()


def test_another_models_results_are_kept_unless_overwrite(models, tiny_data_root, tmp_path, monkeypatch, capsys):
    out = tmp_path / "res"
    args = [*COMMON, "--data-root", str(tiny_data_root), "--out", str(out)]
    assert run_cli(monkeypatch, capsys, "eval", str(models[0]), *args)[0] == 0
    first = (out / "results.json").read_text()
    # the same model again replaces its own results without a word
    assert run_cli(monkeypatch, capsys, "eval", str(models[0]), *args)[0] == 0
    code, _, err = run_cli(monkeypatch, capsys, "eval", str(models[1]), *args)
    assert code == 2 and "holds the results of" in err and "--overwrite" in err
    assert json.loads((out / "results.json").read_text())["model"] == json.loads(first)["model"]
    with pytest.raises(UserError, match=r"overwrite=True"):
        robustmnist.evaluate(models[1], suite="quick", shift="rotate", severity=[1], n=40, force=True,
                             data_root=tiny_data_root, out=out, log=None, warn=None)
    assert run_cli(monkeypatch, capsys, "eval", str(models[1]), *args, "--overwrite")[0] == 0
    assert json.loads((out / "results.json").read_text())["model"]["path"] == str(models[1])


def test_bench_keeps_another_models_folder_unless_overwrite(models, tiny_data_root, tmp_path):
    from robustmnist.run.outputs import previous_model

    out = tmp_path / "b"
    kw = dict(suite="quick", shift="rotate", severity=[1], n=40, force=True, data_root=tiny_data_root,
              device="cpu", out=out, formats="json", log=None, warn=None)
    robustmnist.bench([str(models[0])], **kw)
    name = robustmnist.load_model(models[0]).name
    other = untrained_checkpoint(tmp_path / "other" / "a.pt", "lenet5")  # same name, other weights
    with pytest.raises(UserError, match="holds the results of"):
        robustmnist.bench([str(other)], **kw)
    assert previous_model(out / name)["path"] == str(models[0])
    robustmnist.bench([str(other)], **kw, overwrite=True)
    assert previous_model(out / name)["path"] == str(other)
