"""Refactoring leaves results alone: each check's default run gives the JSON recorded in
tests/golden/ (made with ``python -m ntkcheck CHECK --json tests/golden/CHECK.json`` before the
row types and entry points were reshaped), timing fields aside. Floats are compared to 1e-9
relative, because another CPU's BLAS may round a product differently; strings, integers,
verdicts and counts must be equal. When a change is meant to alter results, regenerate the
file in the same commit and say why in its message."""
import json
import math
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent / "golden"
TIMING = ("elapsed_seconds", "seconds_per_trial", "seconds_median")


def _same(a, b, path=""):
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{path}: keys {set(a) ^ set(b)}"
        for k in a:
            if k not in TIMING:
                _same(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{path}: lengths"
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float) and not (a == b):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-300), f"{path}: {a!r} != {b!r}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


@pytest.mark.parametrize("check", ["lemma21", "cor22", "lemma23", "thm41", "lemma43", "lemma44", "lemma45", "thm42",
                                   "thm46", "nnkernel", "nnrf",
                                   pytest.param("cor24", marks=pytest.mark.slow)])
def test_default_json_is_unchanged(check, default_run):
    want = json.loads((GOLDEN / f"{check}.json").read_text(encoding="utf-8"))
    got = default_run(check)
    _same(want, got)
