"""Helpers several test files share: the CLI in-process and in a fresh process, a saved untrained
checkpoint, one torch thread for files of many tiny forward passes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from robustmnist.run.budget import one_thread


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """``robustmnist ARGS`` through the console script's ``main`` in this process: (exit code, stdout,
    stderr). In-process saves a torch import per call; the error handling is the script's own."""
    from robustmnist.cli import main

    capsys.readouterr()  # what the test printed before is not this command's output
    monkeypatch.setattr(sys, "argv", ["robustmnist", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    got = capsys.readouterr()
    return exc.value.code or 0, got.out, got.err


def untrained_checkpoint(path: Path, arch: str = "lenet5") -> Path:
    """A zoo checkpoint with freshly initialised weights: for tests that fail before scoring."""
    from robustmnist.models.checkpoint import make_checkpoint, save_checkpoint
    from robustmnist.models.zoo import build

    save_checkpoint(path, make_checkpoint(arch, build(arch)))
    return path


# Oversubscribed CI boxes and shared dev machines: with two OpenMP threads per process, tiny
# forward and gradient steps spin-wait and run 30-40x slower. One thread keeps them fast.
single_thread = one_thread


def offline_clean_eval(tmp_path: Path, data_root: Path, *args: str) -> subprocess.CompletedProcess:
    """``robustmnist eval`` of an untrained lenet5 in a fresh process, offline on ``data_root``, writing
    to tmp_path/out: what a user sees when a data set is missing (a fresh process, so its stderr holds
    everything, import-time warnings included)."""
    model = untrained_checkpoint(tmp_path / "m.pt")
    env = {**os.environ, "ROBUSTMNIST_DATA": str(data_root), "ROBUSTMNIST_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "robustmnist", "eval", str(model), "--clean-only", "--force",
                           *args, "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env,
                          timeout=300)
