"""results.schema.json: every results.json robustmnist writes validates against it, and a file
that does not is refused on load with one line naming the field (issue 25: a results.json without
`shifts` used to render "0 shifts x 0 severities" beside its stale "mean shifted" number)."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from jsonschema.validators import validator_for

import robustmnist
from robustmnist.errors import UserError
from robustmnist.results import (
    AdversarialRecord,
    AdversarialSection,
    Environment,
    ModelInfo,
    OODRecord,
    RealRecord,
    Result,
    SetMetrics,
    ShiftRecord,
)
from robustmnist.results_schema import field_path, problem, schema

from .helpers import run_cli, untrained_checkpoint

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, Path]:
    """results.json files from real runs: one with every section (a transformed and an edited-digit
    shift, OOD, a real folder, an attack), one clean-only (no suite)."""
    from .conftest import synthetic_digits, write_idx
    from .real_factory import printed_digits, write_folder

    tmp = tmp_path_factory.mktemp("schema")
    data = tmp / "data"
    for split, n in (("t10k", 200), ("train", 400)):
        write_idx(data, "MNIST", *synthetic_digits(n, 0), split)
    folder = write_folder(tmp / "printed", *printed_digits(2))
    model = untrained_checkpoint(tmp / "m.pt")
    common = dict(data_root=data, force=True, device="cpu", formats="json", log=None, warn=None)
    robustmnist.evaluate(model, shift="rotate,euro_one", severity=[1], n=60, ood="noise",
                         real=[f"folder:{folder}"], attack="fgsm", attack_n=10, attack_severity=[1],
                         out=tmp / "full", **common)
    robustmnist.evaluate(model, clean_only=True, out=tmp / "clean", **common)
    return {"full": tmp / "full" / "results.json", "clean": tmp / "clean" / "results.json"}


@pytest.fixture
def full(written) -> dict:
    return json.loads(written["full"].read_text())


def _save(d: dict, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "results.json"
    path.write_text(json.dumps(d))
    return path


# ---- the schema file -------------------------------------------------------------------------

def test_the_schema_is_valid_draft_2020_12_and_ships_in_the_package():
    s = schema()
    assert validator_for(s) is Draft202012Validator
    Draft202012Validator.check_schema(s)  # raises SchemaError, naming the keyword, if not
    assert s == json.loads((ROOT / "robustmnist" / "results.schema.json").read_text())
    # hatchling's wheel takes every file under packages = ["robustmnist"] that git does not ignore
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'packages = ["robustmnist"]' in pyproject and '"jsonschema>=4.18"' in pyproject


def test_fields_without_a_default_are_required():
    """Result.from_dict indexes these directly: the schema must refuse a file that lacks one."""
    defs = schema()["$defs"]

    def required(name: str) -> set[str]:
        d = defs[name]
        return set(d.get("required", [])).union(*(defs[p["$ref"].rsplit("/", 1)[1]].get("required", [])
                                                   for p in d.get("allOf", [])))

    pairs = [(ModelInfo, "model"), (Environment, "environment"), (SetMetrics, "set_metrics"),
             (ShiftRecord, "shift_record"), (OODRecord, "ood_record"), (RealRecord, "real_record"),
             (AdversarialSection, "adversarial"), (AdversarialRecord, "adversarial_record")]
    for cls, name in pairs:
        no_default = {f.name for f in dataclasses.fields(cls)
                      if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        assert no_default <= required(name), (cls.__name__, no_default - required(name))
    assert {"name", "family", "severity", "sha256"} <= required("shift_record")
    top = set(schema()["required"])
    # what the first schema_version 1 writer wrote; real, adversarial, execution, partial came later
    assert top == {"schema_version", "model", "environment", "clean", "suite", "seed", "shifts", "ood", "summary",
                   "timings", "predictions", "conventions", "created"}
    assert {f.name for f in dataclasses.fields(Result)} - top == {"real", "adversarial", "execution", "partial"}


# ---- what robustmnist writes validates -------------------------------------------------------

def test_every_results_json_a_run_writes_validates(written, full):
    shipped = Draft202012Validator(schema())  # the file as any other tool reads it
    for path in written.values():
        d = json.loads(path.read_text())
        errors = [f"{field_path(e.absolute_path)}: {e.message[:200]}" for e in shipped.iter_errors(d)]
        assert not errors, (path, errors)
        assert problem(d) is None
        Result.load(path)
    # the run filled every part, so each kind of record met the schema
    assert full["real"] and full["ood"] and full["adversarial"]["records"] and full["execution"]
    assert all(r["selective"] and r["conformal"] and r["detection"] for r in [full["clean"], *full["shifts"]])
    assert any(s["edited"] for s in full["shifts"]) and full["summary"]["deployment"]
    assert json.loads(written["clean"].read_text())["suite"]["name"] is None


def test_hand_made_and_synthetic_results_validate(tmp_path):
    """What the tests and benchmarks build from the dataclasses (report_factory, a summary-only
    Result with empty per-digit lists) is what users build too: it must still load."""
    from .report_factory import make_result

    for r in (make_result("lenet5", n_shifts=6),
              Result(ModelInfo("m.pt", "0" * 64, "checkpoint", "range=0-1"), Environment("3", "2", "cpu"),
                     SetMetrics(n=10, accuracy=0.9, accuracy_ci=[0.6, 0.98], error=0.1, per_class_accuracy=[],
                                per_class_n=[], confusion=[], ece=0.0, nll=0.1, brier=0.2, mean_confidence=0.9))):
        r.save(tmp_path / "r.json")
        assert Result.load(tmp_path / "r.json").clean.accuracy == r.clean.accuracy


def test_results_from_before_the_later_fields_still_load(full, tmp_path):
    """schema_version 1 files written before real, adversarial, execution, partial and the
    deployment records existed."""
    old = copy.deepcopy(full)
    for key in ("real", "adversarial", "execution", "partial"):
        del old[key]
    for rec in [old["clean"], *old["shifts"]]:
        for key in ("selective", "conformal", "detection", "edited", "seen", "chunks"):
            rec.pop(key, None)
    old["summary"].pop("deployment")
    r = Result.load(_save(old, tmp_path))
    assert r.real == [] and r.adversarial is None and not r.partial and r.clean.selective is None
    nulls = copy.deepcopy(full)
    nulls["clean"].update(selective=None, conformal=None, detection=None)
    assert Result.from_dict(nulls).clean.conformal is None


# ---- what is refused, and how ----------------------------------------------------------------

@pytest.mark.parametrize("field", ["shifts", "summary", "suite"])
def test_report_refuses_a_results_json_missing_a_field(field, full, tmp_path, monkeypatch, capsys):
    del full[field]
    path = _save(full, tmp_path / "in")
    code, out, err = run_cli(monkeypatch, capsys, "report", str(path), "--out", str(tmp_path / "rep"))
    assert code == 2
    assert err == f"robustmnist: error: {path} is not a robustmnist result: '{field}' is missing (field: {field})\n"
    assert out == "" and not (tmp_path / "rep").exists()


def test_gate_and_compare_refuse_it_too(full, tmp_path, monkeypatch, capsys):
    good = _save(full, tmp_path / "good")
    del full["shifts"]
    bad = _save(full, tmp_path / "bad")
    policy = tmp_path / "gate.toml"
    policy.write_text("min_clean_accuracy = 0.5\n")
    for args in (["gate", str(bad), "--policy", str(policy)], ["compare", str(good), str(bad)]):
        code, _, err = run_cli(monkeypatch, capsys, *args)
        assert code == 2 and err.count("\n") == 1 and "'shifts' is missing (field: shifts)" in err, (args, err)


def test_resume_refuses_it(full, tmp_path):
    from robustmnist.run.resume import load_partial

    full["partial"] = True
    del full["summary"]
    out = _save(full, tmp_path / "out").parent
    with pytest.raises(UserError, match=r"'summary' is missing \(field: summary\)"):
        load_partial(out)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["shifts"][0].update(accuracy=-0.2), "field shifts[0].accuracy: -0.2 is less than the minimum of 0"),
    (lambda d: d["shifts"][0].update(accuracy="0.9"), "field shifts[0].accuracy: '0.9' is not of type 'number'"),
    (lambda d: d["shifts"][0].pop("name"), "'name' is missing (field: shifts[0].name)"),
    (lambda d: d["clean"]["confusion"][2].__setitem__(4, 1.5), "field clean.confusion[2][4]: 1.5 is not of type"),
    (lambda d: d["clean"]["selective"].pop("coverage"), "'coverage' is missing (field: clean.selective.coverage)"),
    (lambda d: d["ood"][0]["scores"]["msp"].update(auroc=1.2),
     "field ood[0].scores.msp.auroc: 1.2 is greater than the maximum of 1"),
    (lambda d: d["adversarial"]["records"][0].update(eps=-1), "field adversarial.records[0].eps: -1 is less than"),
    (lambda d: d.update(seed="0"), "field seed: '0' is not of type 'integer'"),
])
def test_a_wrong_value_names_its_path(edit, message, full, tmp_path):
    edit(full)
    with pytest.raises(UserError) as exc:
        Result.load(_save(full, tmp_path))
    text = str(exc.value)
    assert text.startswith(f"{tmp_path / 'results.json'} is not a robustmnist result: {message}"), text


def test_a_whole_record_in_the_wrong_place_is_quoted_short(full):
    full["shifts"] = {"rotate": full["shifts"][0]}  # thumbnails and all: kilobytes of repr
    msg = problem(full)
    assert msg.startswith("field shifts: {'rotate': {") and msg.endswith("is not of type 'array'")
    assert len(msg) < 300 and "\n" not in msg


def test_a_newer_schema_version_says_so(full):
    full["schema_version"] = 2
    with pytest.raises(UserError, match="schema_version 2 is not supported"):
        Result.from_dict(full)


def test_the_loader_judges_exactly_as_the_shipped_schema(full):
    """The loader validates an inlined copy (no $ref lookups: faster); same verdict on every case."""
    shipped = Draft202012Validator(schema())
    cases = [full]
    for edit in (lambda d: d.pop("ood"), lambda d: d["shifts"][1].update(severity=-1),
                 lambda d: d["clean"].update(per_class_n=[1] * 3), lambda d: d.update(adversarial=[]),
                 lambda d: d["real"][0].update(per_class_change="x"), lambda d: d["summary"].update(mce=-1),
                 lambda d: d["clean"].update(selective=None), lambda d: d["timings"].update(total="1 s")):
        d = copy.deepcopy(full)
        edit(d)
        cases.append(d)
    verdicts = [(problem(d) is None, shipped.is_valid(d)) for d in cases]
    assert all(a == b for a, b in verdicts), verdicts
    assert [a for a, _ in verdicts].count(True) == 2  # the untouched file and selective=None


def test_a_folder_reads_its_results_json_and_an_empty_one_is_one_line(tmp_path):
    from robustmnist.results import Result

    with pytest.raises(UserError, match="folder without a results.json"):
        Result.load(tmp_path)
