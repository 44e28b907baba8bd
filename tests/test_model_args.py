"""bench's model arguments: quoted globs and @list files, for sweeps of many checkpoints."""

from __future__ import annotations

import subprocess
import sys

import pytest

from robustmnist.errors import UserError
from robustmnist.run.model_args import expand_model_args


@pytest.fixture
def sweep(tmp_path):
    folder = tmp_path / "sweep"
    folder.mkdir()
    for name in ("lr-0.1.pt", "lr-0.01.pt", "lr-0.001.pt", "notes.txt"):
        (folder / name).write_bytes(b"x")
    return folder


def test_glob_expands_sorted_and_only_files(sweep):
    (sweep / "dir.pt").mkdir()
    got = expand_model_args([str(sweep / "*.pt")])
    assert [p.name for p in got] == ["lr-0.001.pt", "lr-0.01.pt", "lr-0.1.pt"]


def test_list_file_paths_and_globs_relative_to_the_list(sweep, tmp_path, monkeypatch):
    listing = sweep / "models.txt"
    listing.write_text("# the sweep\nlr-0.1.pt\n\n  lr-0.0*.pt  \n")
    monkeypatch.chdir(tmp_path)  # not the list's folder: names still resolve beside the list
    got = expand_model_args([f"@{listing}"])
    assert [p.name for p in got] == ["lr-0.1.pt", "lr-0.001.pt", "lr-0.01.pt"]
    assert all(p.is_file() for p in got)


def test_each_model_once_in_the_order_given(sweep):
    got = expand_model_args([str(sweep / "lr-0.1.pt"), str(sweep / "*.pt")])
    assert [p.name for p in got] == ["lr-0.1.pt", "lr-0.001.pt", "lr-0.01.pt"]


def test_plain_paths_pass_through_for_the_loader_to_judge(tmp_path):
    missing = tmp_path / "missing.pt"
    assert expand_model_args([missing]) == [missing]  # load_model says "does not exist"


@pytest.mark.parametrize("arg,message", [
    ("{d}/*.onnx", "no model files match"),
    ("@{d}/absent.txt", "model list .* does not exist"),
    ("@{d}/empty.txt", "names no model files"),
])
def test_errors_name_the_argument(sweep, arg, message):
    (sweep / "empty.txt").write_text("# nothing yet\n")
    with pytest.raises(UserError, match=message):
        expand_model_args([arg.format(d=sweep)])


def test_local_bench_never_imports_ray():
    code = ("import sys; import robustmnist.cli.bench_cmd, robustmnist.run.collect, robustmnist.run.model_args; "
            "from robustmnist.cli import app; assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bad_ray_address_fails_before_any_model_loads(sweep):
    from robustmnist.run.model_args import model_specs

    pytest.importorskip("ray")
    assert len(model_specs([sweep / "*.pt"], "10.0.0.1:6379")) > 1
    with pytest.raises(UserError, match="ray= takes auto, local, HOST:PORT"):
        model_specs([sweep / "lr-0.1.pt"], "nowhere")
