"""The committed shift catalogue (torch-free metadata) and the commands that start without torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from robustmnist.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def test_committed_catalogue_equals_the_live_registry():
    from robustmnist.shifts.catalog import CATALOG_FILE
    from robustmnist.shifts.make_catalog import live_catalog_text

    assert CATALOG_FILE.read_text(encoding="utf-8") == live_catalog_text(), (
        "robustmnist/shifts/catalog.json is stale: run python -m robustmnist.shifts.make_catalog")


def test_metadata_before_and_after_the_family_modules_load_agree():
    from robustmnist.shifts import registry
    from robustmnist.shifts.catalog import load_catalog

    registry.all_shifts()
    assert registry.shift_infos() == load_catalog()
    assert registry.resolve_names("blur,rotate") == [
        n for n, s in load_catalog().items() if s.family == "blur"] + ["rotate"]


def test_a_shift_registered_at_run_time_is_known_to_suites(tmp_path, monkeypatch):
    from robustmnist.shifts import registry
    from robustmnist.shifts.suite import load_suite

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_LOADED", False)  # as in a fresh process: only the catalogue

    @registry.register(family="photometric", description="darker")
    def my_dim(x, g, *, factor: float):
        return x * factor

    spec = tmp_path / "mine.toml"
    spec.write_text('name = "mine"\n[shifts.my_dim]\nfactor = [0.9, 0.8, 0.7, 0.6, 0.5]\n')
    assert load_suite(str(spec)).shift_names == ["my_dim"]
    spec.write_text('name = "mine"\n[shifts.my_dim]\nfactr = [0.9, 0.8, 0.7, 0.6, 0.5]\n')
    with pytest.raises(UserError, match="shift 'my_dim' has no parameter 'factr'; it takes: factor"):
        load_suite(str(spec))


def _tiny_results(folder: Path) -> Path:
    from robustmnist.results import Environment, ModelInfo, Result, SetMetrics

    labels = np.arange(100) % 10
    np.savez(folder / "predictions.npz", clean=labels, labels=labels)
    res = Result(model=ModelInfo(path="m.pt", sha256="0" * 64, format="checkpoint", preprocess="range=0-1",
                                 name="m"),
                 environment=Environment(python="3", torch="-", device="cpu"),
                 clean=SetMetrics(n=100, accuracy=1.0, accuracy_ci=[0.96, 1.0], error=0.0,
                                  per_class_accuracy=[1.0] * 10, per_class_n=[10] * 10,
                                  confusion=np.diag([10] * 10).tolist(), ece=0.0, nll=0.0, brier=0.0,
                                  mean_confidence=1.0),
                 predictions={"file": "predictions.npz"})
    path = folder / "results.json"
    res.save(path)
    return path


def test_light_commands_start_without_torch(tmp_path):
    """--help, shifts list, gate, compare and report, run in one fresh interpreter: none loads torch."""
    res = _tiny_results(tmp_path)
    (tmp_path / "gate.toml").write_text("min_clean_accuracy = 0.98\n")
    commands = [["--help"], ["shifts", "list"], ["shifts", "list", "--suite", "mnist-c"],
                ["gate", str(res), "--policy", str(tmp_path / "gate.toml")], ["compare", str(res), str(res)],
                ["report", str(res), "--format", "md,csv", "--out", str(tmp_path / "rep")]]
    code = ("import sys\nfrom robustmnist.cli import main\n"
            f"for args in {commands!r}:\n"
            "    sys.argv = ['robustmnist', *args]\n"
            "    try:\n        main()\n"
            "    except SystemExit as e:\n"
            "        print('rc', args[0], e.code, 'torch' in sys.modules, file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={"PYTHONPATH": str(ROOT), "PATH": "", "MPLBACKEND": "Agg", "COLUMNS": "200"})
    verdicts = [ln for ln in proc.stderr.splitlines() if ln.startswith("rc ")]
    assert verdicts == [f"rc {c[0]} 0 False" for c in commands], proc.stderr
    assert "gaussian_noise" in proc.stdout and "1 passed, 0 failed" in proc.stdout
    assert (tmp_path / "rep" / "report.md").is_file()


def test_a_catalogue_behind_the_code_costs_time_never_a_wrong_error(monkeypatch):
    from dataclasses import replace

    from robustmnist.shifts import registry
    from robustmnist.shifts.suite import load_suite

    live = dict(registry._REGISTRY) or registry.all_shifts()
    stale = dict(registry.load_catalog())
    stale["gaussian_noise"] = replace(stale["gaussian_noise"], params={})  # a parameter added since
    del stale["rotate"]  # a shift added since

    def load_families():  # what importing the family modules does in a fresh process
        monkeypatch.setattr(registry, "_REGISTRY", live)
        monkeypatch.setattr(registry, "_LOADED", True)

    monkeypatch.setattr(registry, "_REGISTRY", {})
    monkeypatch.setattr(registry, "_LOADED", False)
    monkeypatch.setattr(registry, "load_catalog", lambda: stale)
    monkeypatch.setattr(registry, "_register_builtins", load_families)
    assert registry.resolve_names("rotate") == ["rotate"] and registry._LOADED
    monkeypatch.setattr(registry, "_REGISTRY", {})
    monkeypatch.setattr(registry, "_LOADED", False)
    suite = load_suite("default")
    assert "gaussian_noise" in suite.shift_names and "rotate" in suite.shift_names and registry._LOADED
