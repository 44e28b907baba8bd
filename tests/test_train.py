"""Training: checkpoints, determinism, sanity guards, augmentation, CIFAR folders, the CLI."""

from __future__ import annotations

import json
import sys
import warnings

import numpy as np
import pytest
import torch

from robustmnist.data.datasets import CIFAR10_CLASSES, TrainData
from robustmnist.errors import UserError
from robustmnist.models.checkpoint import model_from_checkpoint
from robustmnist.models.recipes import DEMO_SCHEDULES
from robustmnist.shifts import registry
from robustmnist.shifts.registry import Shift
from robustmnist.train.augment import Augmenter, plan_augmentation
from robustmnist.train.loop import train
from robustmnist.train.options import TrainCallbacks, TrainingWarning

QUICK = {"epochs": 1, "batch_size": 32, "device": "cpu"}


class Recorder(TrainCallbacks):
    """Collects what a caller would see, instead of raising Python warnings."""

    def __init__(self):
        self.warnings: list[str] = []
        self.epochs: list = []

    def on_warning(self, message: str) -> None:
        self.warnings.append(message)

    def on_epoch(self, stats) -> None:
        self.epochs.append(stats)


def test_checkpoint_round_trip(tiny_data_root, tmp_path):
    run = train("lenet5", data_root=tiny_data_root, epochs=2, batch_size=32, device="cpu")
    written = run.save(tmp_path / "m.pt", torchscript=True)
    assert [p.name for p in written] == ["m.pt", "m.curve.png", "m.ts.pt"]
    assert (tmp_path / "m.curve.png").read_bytes().startswith(b"\x89PNG")

    ckpt = torch.load(tmp_path / "m.pt", weights_only=True)  # no pickled classes inside
    rebuilt = model_from_checkpoint(ckpt)
    x = torch.rand(8, 1, 28, 28)
    assert torch.equal(rebuilt(x), run.model(x))

    training = ckpt["training"]
    assert ckpt["arch"] == "lenet5" and ckpt["preprocess"]["range"] == "0-1"
    assert training["config"]["epochs"] == 2 and training["epochs_run"] == 2
    assert [h["epoch"] for h in training["history"]] == [1, 2]
    assert training["data"]["n_train"] + training["data"]["n_val"] == 400
    assert training["test_accuracy"] == pytest.approx(run.test_accuracy)
    assert "torch" in ckpt["versions"]
    # The synthetic digits are trivially separable: a working loop learns them.
    assert run.test_accuracy > 0.5

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still works
        scripted = torch.jit.load(str(tmp_path / "m.ts.pt"))
    assert torch.allclose(scripted(x), run.model(x))
    assert scripted.robustmnist_preprocess.startswith("range=0-1")


def test_same_seed_gives_identical_weights(tiny_data_root):
    a = train("mlp-784-50-50-10", data_root=tiny_data_root, seed=3, **QUICK)
    b = train("mlp-784-50-50-10", data_root=tiny_data_root, seed=3, **QUICK)
    c = train("mlp-784-50-50-10", data_root=tiny_data_root, seed=4, **QUICK)
    sa, sb, sc = (r.model.state_dict() for r in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert a.history[0].train_loss == b.history[0].train_loss


def test_training_leaves_global_rng_alone(tiny_data_root):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train("mlp-784-50-50-10", data_root=tiny_data_root, **QUICK)
    assert torch.equal(torch.rand(3), expected)


def test_nan_loss_stops_training_with_a_clear_warning(tiny_data_root):
    rec = Recorder()
    run = train("mlp-784-50-50-10", data_root=tiny_data_root, epochs=3, lr=1e12,
                optimizer="sgd", batch_size=32, device="cpu", progress=rec)
    assert run.diverged
    assert len(run.history) < 3
    assert any("diverged" in w and "learning rate" in w for w in rec.warnings)
    assert run.checkpoint["training"]["diverged"] is True
    assert any("diverged" in w for w in run.checkpoint["training"]["warnings"])


def _tiny_data(images: torch.Tensor, n: int = 120) -> TrainData:
    labels = torch.arange(n) % 10
    return TrainData("custom", images[:n], labels, images[:40], labels[:40])


def test_model_that_cannot_learn_is_flagged_at_chance():
    # Identical images: whatever the model does, it can only ever be right for one class in ten.
    blank = torch.full((120, 1, 28, 28), 0.5)
    with pytest.warns(TrainingWarning, match="chance"):
        run = train("mlp-784-50-50-10", data=_tiny_data(blank), **QUICK)
    assert any("not learning" in w for w in run.checkpoint["training"]["warnings"])


def test_inputs_outside_declared_range_are_flagged():
    rec = Recorder()
    x = torch.rand(120, 1, 28, 28) * 255.0  # floats still in 0-255: a classic mistake
    run = train("mlp-784-50-50-10", data=_tiny_data(x), progress=rec, **QUICK)
    assert any("declares range 0-1" in w for w in run.warnings)


def test_inverted_digits_are_flagged():
    rec = Recorder()
    x = torch.ones(120, 1, 28, 28)
    x[:, :, 8:20, 10:18] = 0.0  # dark digit on white paper
    train("mlp-784-50-50-10", data=_tiny_data(x), progress=rec, **QUICK)
    assert any("white-on-black" in w for w in rec.warnings)


def test_clean_training_records_no_warnings(tiny_data_root):
    rec = Recorder()
    run = train("lenet5", data_root=tiny_data_root, epochs=2, batch_size=32, lr=3e-3,
                device="cpu", progress=rec)
    assert rec.warnings == [] and run.warnings == []
    assert len(rec.epochs) == 2 and rec.epochs[-1].val_accuracy is not None


def test_bad_arguments_fail_with_user_errors(tiny_data_root):
    with pytest.raises(UserError, match="unknown architecture 'resnet'"):
        train("resnet", data_root=tiny_data_root)
    with pytest.raises(UserError, match="unknown dataset"):
        train("lenet5", "svhn", data_root=tiny_data_root)
    with pytest.raises(UserError, match="validation split"):
        train("lenet5", val_split=1.0, data_root=tiny_data_root)


# -- augmentation -----------------------------------------------------------------------------


def _brighten(x, g, amount):
    return x + amount * torch.rand(len(x), 1, 1, 1, generator=g)


def _make_sevens(n, g, thickness):
    x = torch.zeros(n, 1, 28, 28)
    x[:, :, 6 : 6 + thickness, 6:22] = 1.0
    return x, torch.full((n,), 7, dtype=torch.long)


@pytest.fixture
def fake_shifts(monkeypatch, tmp_path):
    """A transform and a generative shift, plus a suite giving their five levels."""
    monkeypatch.setitem(registry._REGISTRY, "test_brighten",
                        Shift("test_brighten", "photometric", "test", 1, "transform", _brighten))
    monkeypatch.setitem(registry._REGISTRY, "test_sevens",
                        Shift("test_sevens", "fonts", "test", 1, "generative", _make_sevens))
    suite = tmp_path / "aug.toml"
    suite.write_text('name = "aug"\nlevels = 5\n'
                     "[shifts.test_brighten]\namount = [0.1, 0.2, 0.3, 0.4, 0.5]\n"
                     "[shifts.test_sevens]\nthickness = [1, 2, 3, 4, 5]\n")
    return str(suite)


def test_augmenter_shifts_picked_samples_and_mixes_in_generated_digits(fake_shifts):
    plan = plan_augmentation(["test_brighten", "test_sevens"], fake_shifts)
    assert plan.names == ["test_brighten", "test_sevens"] and plan.skipped == []
    aug = Augmenter(plan, seed=0, fraction=1.0, pool_per_level=16)
    x, y = torch.zeros(64, 1, 28, 28), torch.zeros(64, dtype=torch.long)
    ax, ay = aug(x, y)
    generated = ay == 7  # only the generative shift relabels
    assert 0 < generated.sum() < 64
    assert (ax[~generated].amax(dim=(1, 2, 3)) > 0).all()  # every other sample was brightened
    assert torch.equal(x, torch.zeros_like(x))  # the caller's batch is not modified
    again = Augmenter(plan, seed=0, fraction=1.0, pool_per_level=16)(x, y)
    assert torch.equal(again[0], ax) and torch.equal(again[1], ay)


def test_train_with_augment_records_the_shifts(tiny_data_root, fake_shifts):
    run = train("mlp-784-50-50-10", data_root=tiny_data_root, augment="test_brighten,test_sevens",
                augment_suite=fake_shifts, **QUICK)
    aug = run.checkpoint["training"]["augment"]
    assert aug["shifts"] == ["test_brighten", "test_sevens"]
    assert run.checkpoint["training"]["config"]["augment"] == aug["shifts"]


def test_generative_shifts_are_skipped_for_non_digit_data(fake_shifts):
    plan = plan_augmentation(["test_brighten", "test_sevens"], fake_shifts, digits=False)
    assert plan.names == ["test_brighten"]
    assert any(s.startswith("test_sevens:") for s in plan.skipped)


def test_augment_with_no_usable_shift_is_a_user_error(fake_shifts, tmp_path):
    empty = tmp_path / "empty.toml"
    empty.write_text('name = "empty"\nlevels = 5\n')
    with pytest.raises(UserError, match="none of these shifts can be used"):
        plan_augmentation(["test_brighten"], str(empty))


def test_catalog_shifts_train_when_present(tiny_data_root):
    try:
        plan = plan_augmentation("noise,blur,geometric")
    except UserError as exc:
        pytest.skip(f"shift catalog not assembled yet: {exc}")
    run = train("mlp-784-50-50-10", data_root=tiny_data_root, augment=plan.names,
                progress=Recorder(), **QUICK)
    assert run.checkpoint["training"]["augment"]["shifts"] == plan.names


def test_missing_suite_falls_back_to_the_spec_parts():
    try:
        plan = plan_augmentation("noise", suite="no-such-suite")
    except UserError as exc:
        pytest.skip(f"no shifts/parts/*.toml to fall back to: {exc}")
    assert plan.suite == "parts" and "gaussian_noise" in plan.names
    assert any("no-such-suite" in n for n in plan.notes)


# -- CIFAR-10 from an image folder ------------------------------------------------------------


def _cifar_folder(root, split: str, per_class: int = 4):
    from PIL import Image

    rng = np.random.default_rng(0 if split == "train" else 1)
    for k, cls in enumerate(CIFAR10_CLASSES):
        d = root / "CIFAR10" / split / cls
        d.mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8)
            img[:, :, k % 3] += np.uint8(20 * k)  # class-dependent colour: learnable
            Image.fromarray(img).save(d / f"{i:04d}.png")


def test_cifar10_gray_and_rgb_train_from_an_image_folder(tmp_path):
    _cifar_folder(tmp_path, "train")
    _cifar_folder(tmp_path, "test", per_class=2)
    quiet = Recorder()  # 40 random images in one epoch: the chance-level guard may fire
    gray = train("lenet5", "cifar10", data_root=tmp_path, val_split=0.25, progress=quiet, **QUICK)
    assert gray.checkpoint["training"]["data"]["input_shape"] == [1, 28, 28]
    assert gray.checkpoint["training"]["data"]["n_test"] == 20
    rgb = train("cnn-small", "cifar10-rgb", data_root=tmp_path, val_split=0.25, progress=quiet,
                **QUICK)
    ckpt = rgb.checkpoint
    assert ckpt["arch_kwargs"] == {"in_channels": 3, "image_size": 32}
    assert ckpt["training"]["data"]["classes"] == list(CIFAR10_CLASSES)
    assert model_from_checkpoint(ckpt)(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_cifar10_without_a_train_set_says_what_is_missing(tmp_path):
    _cifar_folder(tmp_path, "test", per_class=1)  # like the offline mirror
    for dataset in ("cifar10", "cifar10-rgb"):
        with pytest.raises(UserError, match="CIFAR-10 train set not found") as err:
            train("lenet5", dataset, data_root=tmp_path, **QUICK)
        assert "\n" not in str(err.value)


# -- the CLI ----------------------------------------------------------------------------------


def _cli(monkeypatch, *args: str) -> int:
    from robustmnist.cli import main

    monkeypatch.setattr(sys, "argv", ["robustmnist", *args])
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)
    return exc.value.code


def test_cli_train_writes_model_curve_and_torchscript(tiny_data_root, tmp_path, monkeypatch,
                                                       capsys):
    model = tmp_path / "out" / "model.pt"
    code = _cli(monkeypatch, "train", "--arch", "mlp-784-50-50-10", "--epochs", "1",
                "--data-root", str(tiny_data_root), "--device", "cpu", "--out", str(model),
                "--torchscript")
    assert code == 0
    stdout = capsys.readouterr().out
    assert "test accuracy" in stdout and "train loss" in stdout
    assert model.is_file() and (tmp_path / "out" / "model.curve.png").is_file()
    assert (tmp_path / "out" / "model.ts.pt").is_file()


@pytest.mark.parametrize(("args", "message"), [
    (["--arch", "resnet"], "unknown architecture 'resnet'"),
    (["--arch", "lenet5", "--dataset", "svhn"], "unknown dataset 'svhn'"),
    (["--arch", "lenet5", "--optimizer", "lion"], "unknown optimizer 'lion'"),
])
def test_cli_train_rejects_unknown_names_in_one_line(tiny_data_root, tmp_path, monkeypatch,
                                                     capsys, args, message):
    code = _cli(monkeypatch, "train", *args, "--data-root", str(tiny_data_root),
                "--out", str(tmp_path / "m.pt"))
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "m.pt").exists()


def test_cli_zoo_trains_selected_entries_and_merges_the_table(tiny_data_root, tmp_path,
                                                              monkeypatch, capsys):
    zoo = tmp_path / "zoo"
    common = ["--out", str(zoo), "--epochs-scale", "0.1", "--data-root", str(tiny_data_root),
              "--device", "cpu"]
    assert _cli(monkeypatch, "zoo", "--only", "mlp-784-50-50-10", *common) == 0
    assert _cli(monkeypatch, "zoo", "--only", "mlp-784-256-128-64-10", *common) == 0
    table = json.loads((zoo / "zoo.json").read_text())
    rows = {r["name"]: r for r in table["models"]}
    assert set(rows) == {"mlp-784-50-50-10", "mlp-784-256-128-64-10"}
    assert rows["mlp-784-50-50-10"]["epochs_run"] == 1  # 10 published epochs × 0.1
    assert rows["mlp-784-50-50-10"]["published_accuracy"] == 0.9724
    assert "not published" in rows["mlp-784-256-128-64-10"]["note"]
    assert (zoo / "mlp-784-50-50-10.pt").is_file()
    assert "zoo: MNIST test accuracy" in capsys.readouterr().out


def test_cli_zoo_rejects_unknown_entries(monkeypatch, capsys, tmp_path):
    assert _cli(monkeypatch, "zoo", "--only", "vgg", "--out", str(tmp_path)) == 2
    assert "unknown zoo entry vgg" in capsys.readouterr().err


def test_demo_schedules_are_valid_train_arguments():
    assert set(DEMO_SCHEDULES) == {"lenet5", "mlp-784-256-128-64-10"}
    for arch, schedule in DEMO_SCHEDULES.items():
        with pytest.raises(UserError, match="unknown dataset"):  # reaches dataset validation
            train(arch, "nope", **schedule)


def test_one_device_resolver_names_the_parameter():
    from robustmnist.models.device import resolve_device

    assert resolve_device("CPU") == torch.device("cpu")
    with pytest.raises(UserError, match="unknown device 'gpu'; use auto, cpu, cuda, cuda:N or mps"):
        resolve_device("gpu")
    with pytest.raises(UserError, match="unknown score_device 'tpu'"):
        resolve_device("tpu", param="score_device")
    if not torch.cuda.is_available():  # cuda:N is a known name; here it is only unavailable
        with pytest.raises(UserError, match="CUDA is not available; use device cpu"):
            train("lenet5", data=TrainData("t", torch.zeros(4, 1, 28, 28, dtype=torch.uint8),
                                           torch.zeros(4, dtype=torch.long),
                                           torch.zeros(2, 1, 28, 28, dtype=torch.uint8),
                                           torch.zeros(2, dtype=torch.long)), device="cuda:1")
