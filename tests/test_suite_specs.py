"""Suite specs: the built-in suites assembled from shifts/parts/, level keys checked at load."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from robustmnist.errors import UserError
from robustmnist.shifts import registry
from robustmnist.shifts.suite import load_suite

# sha256 of each suite as loaded (shift order, every level's parameters, name, levels, the source
# basename results record). A retuned ladder changes its sets' bytes, so it is a deliberate change:
# re-pin here together with the mCE reference (CONTRIBUTING.md). Anything else changing these is
# a bug in how specs are read or assembled.
SUITE_DIGESTS = {
    "default": "80a6ac9f56831e2d723d8f28785c054ff9e3a1c0d821ec9d9e111ecfdc66a20c",
    "quick": "e9254ab62be53ba930c6e624a09c63523cb617a170ce0241ec9473cbf398e4ed",
    "mnist-c": "a463ea3b97ad2ff2ad47d16a0d0b40d64337b0dd1176e57e64f4d0dc759d8072",
}
# (name, family, version, kind) of every registered shift, sorted: bumped with a shift's version.
REGISTRY_DIGEST = "3b778212a102e225d1281f172b9e5a35e5d566ff191cb5ee905ea9bc220e3036"

ROOT = Path(__file__).resolve().parents[1]
LADDER = "[0.1, 0.2, 0.3, 0.4, 0.5]"


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()


@pytest.mark.parametrize("name", list(SUITE_DIGESTS))
def test_built_in_suites_are_pinned(name):
    s = load_suite(name)
    body = {"name": s.name, "description": s.description, "levels": s.levels, "severities": list(s.severities),
            "source": os.path.basename(s.source), "shifts": [[n, p] for n, p in s.shift_params.items()]}
    got = _digest(body)
    assert got == SUITE_DIGESTS[name], f"suite '{name}' differs from its pinned parameters: now {got}"


def test_registered_names_are_pinned():
    rows = sorted((n, s.family, s.version, s.kind) for n, s in registry.all_shifts().items())
    got = _digest(rows)
    assert got == REGISTRY_DIGEST, f"registered (name, family, version, kind) changed: now {got}"


def test_importing_the_registry_alone_sees_every_shift():
    # The package's __init__ (run before any submodule) hands the registry its loader.
    code = ("from robustmnist.shifts.registry import all_shifts, get_shift\n"
            "print(len(all_shifts()), get_shift('dot_matrix').family)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    assert out.split() == [str(len(registry.all_shifts())), "fonts"]


def test_a_misspelt_level_key_fails_at_load_naming_shift_key_and_file(tmp_path):
    spec = tmp_path / "typo.toml"
    spec.write_text('levels = 1\n[shifts.gaussian_noise]\nsigmaa = [0.1]\n')
    with pytest.raises(UserError, match=r"typo\.toml: shift 'gaussian_noise' has no parameter 'sigmaa'; "
                                        r"it takes: sigma$"):
        load_suite(str(spec))
    # the unknown key is reported before the ladder's length, which would mislead
    spec.write_text('[shifts.gaussian_noise]\nsigmaa = [0.1]\n')
    with pytest.raises(UserError, match="has no parameter 'sigmaa'"):
        load_suite(str(spec))
    spec.write_text(f'[shifts.speckle_noise]\nsigma = {LADDER}\n[shifts.speckle_noise.const]\ngrian = 1.0\n')
    with pytest.raises(UserError, match="shift 'speckle_noise' has no parameter 'grian'"):
        load_suite(str(spec))


def test_included_parts_come_first_in_order_and_errors_name_the_part(tmp_path):
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "a.toml").write_text(f"[shifts.rotate]\ndegrees = {LADDER}\n")
    (tmp_path / "parts" / "b.toml").write_text(f"[shifts.gaussian_noise]\nsigma = {LADDER}\n")
    spec = tmp_path / "mine.toml"
    spec.write_text(f'include = ["parts/b.toml", "parts/a.toml"]\n[shifts.contrast]\nfactor = {LADDER}\n')
    suite = load_suite(str(spec))
    assert suite.shift_names == ["gaussian_noise", "rotate", "contrast"] and suite.source == str(spec)
    assert suite.params("rotate", 2) == {"degrees": 0.2}

    (tmp_path / "parts" / "a.toml").write_text(f"[shifts.rotate]\ndegreez = {LADDER}\n")
    with pytest.raises(UserError, match=r"a\.toml: shift 'rotate' has no parameter 'degreez'"):
        load_suite(str(spec))
    (tmp_path / "parts" / "a.toml").write_text(f"[shifts.contrast]\nfactor = {LADDER}\n")
    with pytest.raises(UserError, match=r"mine\.toml: \[shifts\.contrast\] is already defined in .*a\.toml"):
        load_suite(str(spec))
    (tmp_path / "parts" / "a.toml").write_text("levels = 1\n[shifts.rotate]\ndegrees = [3]\n")
    with pytest.raises(UserError, match=r"a\.toml: levels = 1, but .*mine\.toml, which includes it, has 5"):
        load_suite(str(spec))
    spec.write_text('include = ["parts/c.toml"]\n')
    with pytest.raises(UserError, match="included file 'parts/c.toml' not found"):
        load_suite(str(spec))
    spec.write_text('include = "parts/a.toml"\n')
    with pytest.raises(UserError, match="include must be a list"):
        load_suite(str(spec))
