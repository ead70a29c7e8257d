"""Refactoring leaves results alone: each check's default run gives the JSON recorded in
tests/golden/ (made with ``python -m ntkcheck CHECK --json tests/golden/CHECK.json`` before the
row types and entry points were reshaped), timing fields aside. Strings, integers, verdicts and
counts must be equal; floats are compared to 1e-9 relative.

The files were made with AVX2 arithmetic: OpenBLAS's Haswell kernels and NumPy's X86_V3 loops.
A CPU with AVX-512 takes other kernels, whose products and transcendental functions round
differently in the last bits. Most figures move by 1e-15 relative, but the ones that *are*
rounding residues do not: λ0's error bound (differences of nearly equal numbers) by 1e-4, the
λ_min of a matrix that is singular in exact arithmetic by its whole size (1e-15 against 3e-9:
arccos near 1 turns a last-bit change of a cosine into 1e-8). So each default run is made in a
subprocess with the AVX2 kernels pinned (NumPy's AVX-512 dispatch off, OPENBLAS_CORETYPE=Haswell),
which reproduces the files bit for bit on an AVX-512 machine; on an AVX2 machine the pins are
what it would pick anyway. A CPU without AVX2 cannot run those kernels: there the test skips."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent / "golden"
TIMING = ("elapsed_seconds", "seconds_per_trial", "seconds_median")
#: the arithmetic the golden files were made with (see the module docstring)
AVX2_ONLY = {"NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR", "OPENBLAS_CORETYPE": "Haswell"}


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


def _has_avx2() -> bool:
    from numpy._core._multiarray_umath import __cpu_features__

    return bool(__cpu_features__.get("AVX2")) and bool(__cpu_features__.get("FMA3"))


def _pinned_default_run(check: str, tmp_path: Path) -> dict:
    """The check's default run, as the golden files were made, with AVX2 arithmetic."""
    out = tmp_path / f"{check}.json"
    env = {**os.environ, **AVX2_ONLY}
    done = subprocess.run([sys.executable, "-m", "ntkcheck", check, "--quiet", "--json", str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert out.is_file(), f"{check} wrote no JSON (exit {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(out.read_text(encoding="utf-8"))


@pytest.mark.parametrize("check", ["lemma21", "cor22", "lemma23", "thm41", "lemma43", "lemma44", "lemma45", "thm42",
                                   "thm46", "nnkernel", "nnrf",
                                   pytest.param("cor24", marks=pytest.mark.slow)])
def test_default_json_is_unchanged(check, tmp_path):
    if not _has_avx2():
        pytest.skip("the golden files were made with AVX2 arithmetic, which this CPU cannot run")
    want = json.loads((GOLDEN / f"{check}.json").read_text(encoding="utf-8"))
    _same(want, _pinned_default_run(check, tmp_path))


def test_the_pins_reach_the_subprocess():
    """The pins take effect: a child started with them reports NumPy's AVX-512 loops off and
    OpenBLAS on its Haswell kernels (else the golden comparison would test nothing new on an
    AVX-512 machine, and fail there)."""
    if not _has_avx2():
        pytest.skip("this CPU has no AVX2 kernels to pin")
    code = ("import json, numpy\n"
            "from numpy._core._multiarray_umath import __cpu_features__ as f\n"
            "from threadpoolctl import threadpool_info\n"
            "print(json.dumps([f.get('X86_V4'), [i.get('architecture') for i in threadpool_info()"
            " if i.get('internal_api') == 'openblas']]))")
    got = subprocess.run([sys.executable, "-c", code], env={**os.environ, **AVX2_ONLY}, capture_output=True,
                         text=True, check=True, timeout=120)
    v4, archs = json.loads(got.stdout)
    assert not v4
    assert archs and all(a == "Haswell" for a in archs), archs
