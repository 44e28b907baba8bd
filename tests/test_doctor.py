"""robustmnist doctor: each classic MNIST mistake is named, with the fix; healthy models pass.

The "mistaken" models wrap one briefly trained MLP (session fixture, ~95% on MNIST) so that
each wrapper reproduces exactly one mistake: ``Raw255`` is a network that was trained on 0-255
pixels (it divides by 255 before the trained net), ``Inverted`` one trained on inverted digits,
and so on. The doctor must find the convention under which the wrapper undoes itself.
"""

from __future__ import annotations

import copy
import json
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustmnist.doctor import Diagnosis, diagnose, load_for_diagnosis, load_sample
from robustmnist.doctor.findings import permutation_cause
from robustmnist.doctor.measure import SAMPLE_SIZE, detect_output_kind, sample_indices
from robustmnist.errors import UserError
from robustmnist.models.load import LoadedModel
from robustmnist.models.preprocess import Preprocess

from .helpers import single_thread

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="session")
def trained_mlp(mirror_root) -> nn.Module:
    """mlp-784-50-50-10 after 400 Adam steps on MNIST train: ~95% test accuracy in ~4 s."""
    from robustmnist.data.datasets import load_mnist
    from robustmnist.models.zoo import build

    train = load_mnist("train", mirror_root)
    x = torch.from_numpy(train.images).float().div_(255).unsqueeze(1)
    y = torch.from_numpy(train.labels)
    torch.manual_seed(0)
    net = build("mlp-784-50-50-10")
    opt = torch.optim.Adam(net.parameters(), lr=4e-3)
    g = torch.Generator().manual_seed(0)
    with single_thread():  # session fixtures are set up before the autouse one above
        for _ in range(400):
            idx = torch.randint(0, len(x), (128,), generator=g)
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


@pytest.fixture(scope="session")
def sample(mirror_root):
    return load_sample(mirror_root)


# -- models with one mistake each (scriptable, so the CLI tests can save them) ----------------

class Raw255(nn.Module):
    """Trained on raw 0-255 pixels."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x / 255.0)


class Normalised(nn.Module):
    """Trained with Normalize((0.1307,), (0.3081,))."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x * 0.3081 + 0.1307)


class MinusOneOne(nn.Module):
    """Trained with Normalize((0.5,), (0.5,))."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net((x + 1.0) / 2.0)


class ScaledTwice(nn.Module):
    """Trained on pixels divided by 255 twice."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x * 255.0)


class Inverted(nn.Module):
    """Trained on black-on-white digits."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(1.0 - x)


class Raw255Inverted(nn.Module):
    """Two mistakes at once: raw 0-255 pixels of inverted digits."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(1.0 - x / 255.0)


class Transposed(nn.Module):
    """Trained on transposed images (EMNIST-style storage)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x.transpose(-1, -2))


class Post(nn.Module):
    """The trained net followed by an output transform."""

    def __init__(self, net: nn.Module, kind: str, perm: list[int] | None = None, bias: torch.Tensor | None = None):
        super().__init__()
        self.net, self.kind = net, kind
        self.register_buffer("perm", torch.tensor(perm or list(range(10))))
        self.register_buffer("bias", bias if bias is not None else torch.zeros(10))

    def forward(self, x):
        out = self.net(x)
        if self.kind == "softmax":
            return out.softmax(dim=1)
        if self.kind == "log_softmax":
            return out.log_softmax(dim=1)
        if self.kind == "permute":
            return out[:, self.perm]
        if self.kind == "overflow":  # finite weights, but exp overflows float32 in the forward pass
            return out * torch.exp(x.flatten(1).sum(dim=1, keepdim=True))
        return out + self.bias


class FunctionalMLP(nn.Module):
    """The same MLP written with F.relu (no nn.ReLU modules to hook)."""

    def __init__(self, seq: nn.Sequential):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = seq[1], seq[3], seq[5]

    def forward(self, x):
        x = x.flatten(1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def loaded(module: nn.Module, spec: str = "", name: str = "model") -> LoadedModel:
    return LoadedModel(module.eval(), Preprocess.parse(spec), path=f"{name}.pt", sha256="0" * 64,
                       format="pickle")


def run(module: nn.Module, sample, spec: str = "") -> Diagnosis:
    return diagnose(loaded(module, spec), sample=sample)


def _only_real(d: Diagnosis) -> list[str]:
    return [f.code for f in d.findings if f.severity != "info"]


# -- healthy ----------------------------------------------------------------------------------

@pytest.mark.mirror
def test_healthy_model_gets_a_clean_bill(trained_mlp, sample):
    d = run(trained_mlp, sample)
    assert d.healthy, [f.title for f in d.findings]
    assert d.findings == []
    assert d.fix_preprocess is None
    assert d.best.spec == d.declared.spec == Preprocess().to_string()
    assert d.declared.accuracy > 0.9
    assert d.output_kind == "logits"
    assert d.n_images == SAMPLE_SIZE
    # dead units were measured on the ReLU modules, and a trained MLP has few
    assert d.dead_units is not None and d.dead_units.dead < 0.2 * d.dead_units.total
    # the MLP flattens first: both layouts give identical outputs and are scored once
    assert any("identical outputs" in note for note in d.notes)
    json.dumps(d.to_dict())  # JSON-safe (no numpy scalars, no inf)


# -- input conventions ------------------------------------------------------------------------

@pytest.mark.mirror
@pytest.mark.parametrize(
    ("wrapper", "codes", "tokens"),
    [
        (Raw255, {"input-range"}, ["range=0-255"]),
        (Normalised, {"input-range"}, ["range=norm:0.1307:0.3081"]),
        (MinusOneOne, {"input-range"}, ["range=-1-1"]),
        (Inverted, {"polarity"}, ["polarity=inverted"]),
        (Transposed, {"transpose"}, ["transpose=true"]),
        (Raw255Inverted, {"input-range", "polarity"}, ["range=0-255", "polarity=inverted"]),
    ],
    ids=["0-255", "normalised", "minus1-1", "inverted", "transposed", "0-255+inverted"],
)
def test_input_convention_mistakes_are_named_with_the_fix(trained_mlp, sample, wrapper, codes, tokens):
    d = run(wrapper(trained_mlp), sample)
    assert not d.healthy
    assert set(_only_real(d)) == codes
    fix = d.fix_preprocess
    assert fix is not None and all(t in fix.split(",") for t in tokens)
    # the fix is a valid --preprocess value that recovers the model's real accuracy
    assert Preprocess.parse(fix).to_string() == fix
    assert d.best.accuracy > 0.9
    assert d.declared.accuracy < d.best.accuracy - 0.05
    for f in d.findings:
        assert f.fix == f"--preprocess {fix}"


@pytest.mark.mirror
def test_pixels_scaled_twice_show_in_the_confidences(trained_mlp, sample):
    # A ReLU net keeps its argmax when its input is 255× too large, so accuracy hides this
    # mistake; the NLL does not (the confidences are 255× too sharp).
    d = run(ScaledTwice(trained_mlp), sample)
    f = d.finding("input-range")
    assert f is not None and f.severity == "warning" and not d.healthy
    assert f.data["expected"] == "norm:0:255" and "twice" in f.title
    assert d.best.nll < d.declared.nll / 2
    assert "range=norm:0:255" in d.fix_preprocess.split(",")


@pytest.mark.mirror
def test_logits_declared_as_probabilities(trained_mlp, sample):
    # A model declared as producing probabilities that produces logits: the scorer would clip
    # its negative scores, so this is an error, and the fix goes back to output=logits.
    d = run(trained_mlp, sample, "output=probs")
    assert "output-kind" in _only_real(d)
    assert d.finding("output-kind").severity == "error"
    assert d.fix_preprocess == Preprocess().to_string()


@pytest.mark.mirror
def test_flattened_only_model_declared_1x28x28(trained_mlp, sample, tmp_path):
    flat_only = nn.Sequential(*list(trained_mlp)[1:])  # nn.Linear(784, …) first, no nn.Flatten
    path = tmp_path / "flat.ts.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still loadable
        torch.jit.save(torch.jit.script(flat_only), str(path))
    model, declared = load_for_diagnosis(path, preprocess="layout=1x28x28")
    assert declared.layout == "1x28x28" and model.preprocess.layout == "784"
    d = diagnose(model, declared=declared, sample=sample)
    layout = d.finding("layout")
    assert layout is not None and layout.severity == "error"
    assert d.declared.error and "rejects" in layout.title
    assert "layout=784" in d.fix_preprocess.split(",")
    assert d.best.accuracy > 0.9
    assert any("TorchScript" in note for note in d.notes)  # no hooks on scripted modules


# -- outputs ----------------------------------------------------------------------------------

@pytest.mark.mirror
def test_softmax_output(trained_mlp, sample):
    d = run(Post(trained_mlp, "softmax"), sample)
    f = d.finding("softmax-output")
    assert d.output_kind == "probs"
    assert f is not None and f.severity == "warning" and not d.healthy
    assert "CrossEntropyLoss" in f.detail
    assert d.fix_preprocess == "range=0-1,polarity=normal,layout=1x28x28,output=probs"
    assert d.best.accuracy == d.declared.accuracy  # softmax keeps the argmax
    # declared correctly it is fine for evaluation: a note, exit-code healthy
    ok = run(Post(trained_mlp, "softmax"), sample, "output=probs")
    assert ok.healthy and ok.finding("softmax-output").severity == "info" and ok.fix_preprocess is None


@pytest.mark.mirror
def test_log_softmax_output(trained_mlp, sample):
    d = run(Post(trained_mlp, "log_softmax"), sample)
    f = d.finding("log-softmax-output")
    assert d.output_kind == "log-probs"
    # scored identically to logits (softmax(log p) = p): named, but not a failure
    assert f is not None and f.severity == "info" and d.healthy
    assert "output=log-probs" in d.fix_preprocess
    # declared as probabilities, the negative values would be clipped: an error
    bad = run(Post(trained_mlp, "log_softmax"), sample, "output=probs")
    assert bad.finding("log-softmax-output").severity == "error" and not bad.healthy


@pytest.mark.mirror
def test_nan_weights_are_named(trained_mlp, sample):
    broken = copy.deepcopy(trained_mlp)
    with torch.no_grad():
        broken[1].weight[0, 0] = float("nan")
    d = run(broken, sample)
    f = d.finding("non-finite-outputs")
    assert f is not None and f.data["images"] == SAMPLE_SIZE
    assert "1.weight" in f.data["parameters"] and "1.weight" in f.detail
    assert _only_real(d) == ["non-finite-outputs"]  # no chance/one-class noise on top
    assert d.output_kind == "unknown"


@pytest.mark.mirror
def test_overflow_with_finite_weights(trained_mlp, sample):
    d = run(Post(trained_mlp, "overflow"), sample)
    f = d.finding("non-finite-outputs")
    assert f is not None and f.data["parameters"] == []
    assert "weights are finite" in f.detail


# -- what no convention fixes -----------------------------------------------------------------

@pytest.mark.mirror
def test_permuted_labels(trained_mlp, sample):
    perm = [3, 1, 4, 0, 5, 9, 2, 6, 8, 7]  # output j stands for digit perm[j]
    d = run(Post(trained_mlp, "permute", perm=perm), sample)
    f = d.finding("permuted-labels")
    assert f is not None and f.data["mapping"] == perm
    assert d.best.remapped_accuracy > 0.9 and d.declared.accuracy < 0.5
    assert d.fix_preprocess is None  # nothing about the input is wrong
    assert "input-range" not in d.codes() and "chance-level" not in d.codes()
    # the suggested reordering really undoes the permutation
    assert [perm[i] for i in f.data["reorder"]] == list(range(10))


@pytest.mark.mirror
def test_imagefolder_alphabetical_order_is_recognised(trained_mlp, sample):
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    perm = [words.index(w) for w in sorted(words)]
    d = run(Post(trained_mlp, "permute", perm=perm), sample)
    assert "ImageFolder" in d.finding("permuted-labels").detail


@pytest.mark.mirror
def test_untrained_model_is_chance_level(sample):
    from robustmnist.models.zoo import build

    torch.manual_seed(0)
    d = run(build("mlp-784-50-50-10"), sample)
    assert "chance-level" in d.codes()
    assert d.fix_preprocess is None  # no convention "fix" for a model that learned nothing
    assert not {"input-range", "polarity", "transpose", "permuted-labels"} & set(d.codes())


@pytest.mark.mirror
def test_collapsed_model_predicts_one_class(trained_mlp, sample):
    # The classic collapse after a too-high learning rate: every first-layer ReLU biased dead, so
    # the output is the same for every image and the model "sits at 10%".
    collapsed = copy.deepcopy(trained_mlp)
    with torch.no_grad():
        collapsed[1].bias.fill_(-1e6)
        constant = int(collapsed(torch.zeros(1, 1, 28, 28)).argmax())
    d = run(collapsed, sample)
    f = d.finding("one-class")
    assert f is not None and f.data["class"] == constant and f.data["share"] == 1.0
    assert f"'{constant}'" in f.title
    assert {"chance-level", "dead-relus"} <= set(d.codes())
    assert d.fix_preprocess is None


@pytest.mark.mirror
@pytest.mark.parametrize("functional", [False, True], ids=["nn.ReLU", "F.relu"])
def test_dead_relus(trained_mlp, sample, functional):
    damaged = copy.deepcopy(trained_mlp)
    with torch.no_grad():
        damaged[1].bias[:40] = -1e3  # 40 of the 50 first-layer units can never fire
    d = run(FunctionalMLP(damaged) if functional else damaged, sample)
    f = d.finding("dead-relus")
    assert f is not None and f.severity == "warning"
    first = d.dead_units.layers[0]
    assert first.units == 50 and first.dead >= 40
    assert "Linear 784->50" in first.name
    assert ("pre-activations" in d.dead_units.method) == functional


# -- the convention guard (the pre-check of eval, bench and the API) -----------------------------

@pytest.mark.mirror
def test_convention_guard(trained_mlp, mirror_root):
    from robustmnist.cli.flags import to_flags
    from robustmnist.doctor.guard import guard

    assert guard(loaded(trained_mlp), mirror_root).status == "ok"
    with pytest.raises(UserError) as exc:
        guard(loaded(Raw255(trained_mlp)), mirror_root)
    flags = to_flags(exc.value.raw)
    assert "pass --preprocess auto to apply it" in flags
    assert "spell it out: --preprocess range=0-255,polarity=normal,layout=1x28x28,output=logits" in flags
    assert "(or --force to evaluate as declared)" in to_flags(exc.value.raw)
    assert "(or force=True to evaluate as declared)" in str(exc.value)
    # the Python API names its own arguments: one message, spelt for each reader
    assert 'pass preprocess="auto"' in str(exc.value) and 'preprocess="range=0-255' in str(exc.value)
    # a model at chance under every convention is not stopped (the doctor explains it instead)
    torch.manual_seed(0)
    from robustmnist.models.zoo import build

    assert guard(loaded(build("mlp-784-50-50-10")), mirror_root).status != "stop"


# -- CLI: exit codes 0/1/2 and --json ----------------------------------------------------------

def _cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    from robustmnist.cli import main

    monkeypatch.setattr(sys, "argv", ["robustmnist", "doctor", *args])
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)  # main() returned normally
    out = capsys.readouterr()
    return exc.value.code or 0, out.out, out.err


@pytest.mark.mirror
def test_cli_exit_codes_and_json(trained_mlp, mirror_root, tmp_path, monkeypatch, capsys):
    from robustmnist.models.checkpoint import make_checkpoint, save_checkpoint

    good = tmp_path / "good.pt"
    save_checkpoint(good, make_checkpoint("mlp-784-50-50-10", trained_mlp))
    code, out, err = _cli(monkeypatch, capsys, str(good), "--data-root", str(mirror_root), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["healthy"] is True and report["fix_preprocess"] is None
    assert report["declared_source"] == "stored in the checkpoint"
    assert "healthy" in err  # with --json the readable diagnosis moves to stderr
    code, out, _ = _cli(monkeypatch, capsys, str(good), "--data-root", str(mirror_root))
    assert code == 0 and "healthy" in out  # without it, the diagnosis is the command's stdout

    # the same weights with a wrongly stored convention: exit 1, the fix on stderr and in JSON
    wrong = tmp_path / "wrong.pt"
    save_checkpoint(wrong, make_checkpoint("mlp-784-50-50-10", trained_mlp,
                                           preprocess=Preprocess(range="0-255", layout="784")))
    code, out, err = _cli(monkeypatch, capsys, str(wrong), "--data-root", str(mirror_root), "--json")
    assert code == 1
    report = json.loads(out)
    assert report["fix_preprocess"] == "range=0-1,polarity=normal,layout=784,output=logits"
    assert [f["code"] for f in report["findings"]] == ["input-range"]
    assert f"--preprocess {report['fix_preprocess']}" in err

    # --preprocess overrides what is stored, so declaring the right thing makes it healthy
    code, _, _ = _cli(monkeypatch, capsys, str(wrong), "--data-root", str(mirror_root),
                      "--preprocess", "range=0-1")
    assert code == 0


def test_cli_bad_input_exits_2(tmp_path, monkeypatch, capsys):
    code, out, err = _cli(monkeypatch, capsys, str(tmp_path / "missing.pt"))
    assert code == 2 and "does not exist" in err and out == ""
    from robustmnist.models.zoo import build

    model = tmp_path / "m.pt"
    torch.save(build("mlp-784-50-50-10").state_dict(), model)
    code, _, err = _cli(monkeypatch, capsys, str(model), "--preprocess", "range=0-999")
    assert code == 2 and "unknown input range" in err


# -- pieces that need no data -----------------------------------------------------------------

def test_sample_is_fixed_and_class_balanced():
    labels = np.random.default_rng(1).integers(0, 10, 10_000)
    a, b = sample_indices(labels), sample_indices(labels)
    assert np.array_equal(a, b) and len(a) == 1000 and len(set(a.tolist())) == 1000
    assert np.bincount(labels[a], minlength=10).tolist() == [100] * 10
    small = sample_indices(np.arange(200) % 10)  # fewer images than the sample size: all of them
    assert sorted(small.tolist()) == list(range(200))


def test_output_kind_detection():
    logits = np.random.default_rng(0).normal(0, 3, (100, 10)).astype(np.float32)
    probs = torch.softmax(torch.from_numpy(logits), 1).numpy()
    logp = torch.log_softmax(torch.from_numpy(logits), 1).numpy()
    assert detect_output_kind([logits]) == "logits"
    assert detect_output_kind([probs]) == "probs"
    assert detect_output_kind([logp]) == "log-probs"
    assert detect_output_kind([np.full((5, 10), np.nan, np.float32)]) == "unknown"


def test_permutation_causes():
    assert "off by 1" in permutation_cause([(o + 1) % 10 for o in range(10)])
    assert "reversed" in permutation_cause(list(range(9, -1, -1)))
    assert permutation_cause([1, 0, 2, 3, 4, 5, 6, 7, 8, 9]) == ""


def test_doctor_without_the_mirror(tiny_data_root):
    """On the tiny synthetic set (CI without the mirror) the doctor still finds a 0-255 model."""
    from .conftest import synthetic_digits

    images, labels = synthetic_digits(400, seed=0)
    x = torch.from_numpy(images).float().div(255).unsqueeze(1)
    y = torch.from_numpy(labels)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(60):
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    d = diagnose(loaded(Raw255(net)), data_root=tiny_data_root)
    assert d.n_images == 200
    assert _only_real(d) == ["input-range"] and "range=0-255" in d.fix_preprocess.split(",")
