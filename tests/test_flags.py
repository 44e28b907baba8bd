"""Messages name what the caller passed: the CLI's flags on the terminal, the API's keyword
arguments in Python (errors.py marks, cli/flags.py maps them)."""

from __future__ import annotations

import inspect
import re

import pytest
import torch

import robustmnist
from robustmnist import api
from robustmnist.cli.flags import NEGATED, SPECIAL, flag, to_flags
from robustmnist.errors import PARAM, UserError, plain

from .helpers import run_cli, untrained_checkpoint

# Keyword arguments with no command-line counterpart (callbacks, and what a front end passes itself)
NOT_FLAGS = {"progress", "log", "warn", "spent_s"}


@pytest.mark.parametrize("marked, cli, python", [
    ("`n=` must be at least 1, got 0", "--n must be at least 1, got 0", "n= must be at least 1, got 0"),
    ("`attack_n=` must be at least 1", "--attack-n must be at least 1", "attack_n= must be at least 1"),
    ('pass `preprocess="0-255,784"`', "pass --preprocess 0-255,784", 'pass preprocess="0-255,784"'),
    ("re-run with `trust_pickle=True`, or", "re-run with --trust-pickle, or", "re-run with trust_pickle=True, or"),
    ("(or `force=True` to evaluate as declared)", "(or --force to evaluate as declared)",
     "(or force=True to evaluate as declared)"),
    ("with `use_cache=False`", "with --no-cache", "with use_cache=False"),
    ("with `clean_only=True`", "with --clean-only", "with clean_only=True"),
    ('use `device="cpu"`', "use --device cpu", 'use device="cpu"'),
    ("`formats=` and `batch_size=`", "--format and --batch-size", "formats= and batch_size="),
    ("the same `seed=3`", "the same --seed 3", "the same seed=3"),
    ('`model_code="FILE.py:ClassName"`', "--model-code FILE.py:ClassName", 'model_code="FILE.py:ClassName"'),
    ("`eps=` must be positive", "--adversarial-eps must be positive", "eps= must be positive"),
    ("start one with `ray start --head`", "start one with `ray start --head`", "start one with `ray start --head`"),
])
def test_marks_read_as_flags_on_the_terminal_and_as_arguments_in_python(marked, cli, python):
    assert to_flags(marked) == cli
    assert plain(marked) == python
    assert str(UserError(marked)) == python and UserError(marked).raw == marked


def _commands() -> dict:
    import typer.main

    from robustmnist.cli import app

    group = typer.main.get_command(app)
    subs = {f"{name} {sub}": c for name, g in group.commands.items() for sub, c in getattr(g, "commands", {}).items()}
    return {**group.commands, **subs}


def _options(command: str) -> set[str]:
    return {o for p in _commands()[command].params for o in p.opts}


@pytest.mark.parametrize("function, command", [
    (api.evaluate, "eval"), (api.bench, "bench"), (api.diagnose, "doctor"), (api.load_model, "eval"),
])
def test_every_argument_maps_to_a_flag_its_command_has(function, command):
    params = [p for p in inspect.signature(function).parameters.values() if p.kind is p.KEYWORD_ONLY]
    opts = _options(command)
    missing = {p.name: flag(p.name) for p in params if p.name not in NOT_FLAGS and flag(p.name) not in opts}
    assert not missing, f"`name=` marks would name flags {command} does not have: {missing}"


def test_special_flags_exist():
    every = {o for c in _commands().values() for p in c.params for o in p.opts}
    assert {f for f in [*SPECIAL.values(), *NEGATED.values()] if f.startswith("--")} <= every


def test_cli_shows_the_flag_and_python_the_argument(tmp_path, monkeypatch, capsys):
    model = untrained_checkpoint(tmp_path / "m.pt")
    code, _, err = run_cli(monkeypatch, capsys, "eval", str(model), "--n", "0")
    assert code == 2 and err.strip() == "robustmnist: error: --n must be at least 1, got 0"
    with pytest.raises(UserError) as exc:
        robustmnist.evaluate(model, n=0)
    assert str(exc.value) == "n= must be at least 1, got 0"


# -- no message the Python API raises names a flag -----------------------------------------------

API_FLAGS = sorted({f for fn in (api.evaluate, api.bench, api.diagnose, api.load_model)
                    for name in inspect.signature(fn).parameters
                    for f in (flag(name), "--" + name.replace("_", "-")) if f.startswith("--")})


def _says_no_flag(call) -> str:
    with pytest.raises(UserError) as exc:
        call()
    msg = str(exc.value)
    named = [f for f in API_FLAGS if re.search(re.escape(f) + r"\b", msg)]
    assert not named, f"a Python caller reads flags {named}: {msg}"
    assert PARAM.search(msg) is None and "`" not in msg.replace("`ray start --head`", ""), msg
    return msg


@pytest.fixture
def files(tmp_path):
    from robustmnist.models.zoo import build

    untrained_checkpoint(tmp_path / "m.pt")
    torch.save(torch.nn.Linear(3, 4).state_dict(), tmp_path / "sd.pt")  # no zoo architecture matches
    torch.save(build("lenet5"), tmp_path / "whole.pt")
    (tmp_path / "empty").mkdir()
    (tmp_path / "net.py").write_text("")
    return tmp_path


@pytest.mark.parametrize("call, words", [
    (lambda d, r: api.evaluate(d / "m.pt", n=0), "n= must be at least 1"),
    (lambda d, r: api.evaluate(d / "m.pt", batch_size=0), "batch_size= must be at least 1"),
    (lambda d, r: api.evaluate(d / "m.pt", ood="nope"), "nope"),
    (lambda d, r: api.evaluate(d / "m.pt", device="tpu"), "tpu"),
    (lambda d, r: api.evaluate(d / "m.pt", budget="soon"), "budget= must be a duration"),
    (lambda d, r: api.evaluate(d / "m.pt", resume=True), "resume=True needs out="),
    (lambda d, r: api.evaluate(d / "m.pt", resume=True, out=d / "empty", data_root=r), "run without resume=True"),
    (lambda d, r: api.evaluate(d / "m.pt", data_root=d / "nowhere"), "data_root="),
    (lambda d, r: api.evaluate(d / "m.pt", clean_only=True, n=20, device="cpu", data_root=r, attack="pgd",
                               attack_n=0), "attack_n= must be at least 1"),
    (lambda d, r: api.evaluate(d / "m.pt", clean_only=True, n=20, device="cpu", data_root=r, attack="pgd",
                               restarts=0), "restarts= and PGD steps"),
    (lambda d, r: api.bench([d / "m.pt"], n=0), "n= must be at least 1"),
    (lambda d, r: api.bench([d / "m.pt"], ray="no where"), "ray="),
    (lambda d, r: api.load_model(d / "sd.pt"), "pass arch=NAME, or model_code="),
    (lambda d, r: api.load_model(d / "m.pt", arch="mlp-784-50-50-10"), "drop arch="),
    (lambda d, r: api.load_model(d / "whole.pt"), "trust_pickle=True"),
    (lambda d, r: api.load_model(d / "sd.pt", model_code=d / "nope.py"), "model_code=: "),
    (lambda d, r: api.load_model(d / "sd.pt", model_code=f"{d / 'net.py'}:X", model_kwargs="x"), "model_kwargs="),
    (lambda d, r: api.diagnose(d / "sd.pt"), "pass arch=NAME"),
])
def test_python_callers_read_their_own_arguments(files, tiny_data_root, call, words):
    assert words in _says_no_flag(lambda: call(files, tiny_data_root))
