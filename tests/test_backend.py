"""compute.backend: torch's int8 count product against an integer reference, bit for bit; how
``auto`` chooses; and the refusals. The torch tests run where torch is installed (the CPU path
here; a CUDA device where the machine has one) and are skipped elsewhere."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import ntkcheck
from ntkcheck.kernels import backend
from ntkcheck.kernels.gram import activation_counts, gram_matrix

needs_torch = pytest.mark.skipif(not backend.torch_installed(), reason="torch is not installed")


def reference_counts(S: np.ndarray) -> np.ndarray:
    """Sᵀ S in int64, entry by entry: #{rows with a 1 in both columns}."""
    S = S.astype(np.int64)
    n = S.shape[1]
    return np.array([[int((S[:, i] * S[:, j]).sum()) for j in range(n)] for i in range(n)])


zero_one = st.tuples(st.integers(1, 40), st.integers(1, 23)).flatmap(
    lambda shape: arrays(np.float32, shape, elements=st.sampled_from([0.0, 1.0])))


@needs_torch
@given(zero_one)
def test_torch_counts_are_the_integer_counts(S):
    got = backend.torch_counts(S)
    assert got.dtype == np.int32
    assert np.array_equal(got, reference_counts(S))


@needs_torch
@pytest.mark.parametrize("rows", [1, 14, 300])
def test_torch_counts_of_a_single_input_are_its_row_count_every_time(rows):
    """One input (n = 1): torch's CPU int8 kernel gave uninitialised values for a 1 × 1 product
    on an AVX-512 CPU, differing from call to call, hence many calls."""
    rng = np.random.default_rng(rows)
    for _ in range(50):
        S = (rng.random((rows, 1)) < rng.random()).astype(np.float32)
        assert np.array_equal(backend.torch_counts(S), reference_counts(S))


@needs_torch
@given(zero_one)
def test_the_cuda_shapes_pad_with_zeros_that_count_nothing(S):
    import torch

    n = S.shape[1]
    P = backend.cuda_shaped(torch.from_numpy(S.astype(np.int8)))
    assert P.shape[0] % 8 == 0 and P.shape[1] % 8 == 0 and P.shape[1] > 16  # (checked on the CPU)
    assert np.array_equal(torch._int_mm(P.T.contiguous(), P)[:n, :n].numpy(), reference_counts(S))


@needs_torch
@given(st.integers(1, 30), st.integers(1, 8), st.integers(1, 300), st.integers(0, 2**32 - 1),
       st.sampled_from([1e-3, 256.0]))
def test_gram_matrix_and_counts_are_the_same_under_either_backend(n, d, m, seed, memory):
    rng = np.random.default_rng(seed)
    X, W = rng.standard_normal((n, d)), rng.standard_normal((m, d))
    with backend.using("numpy"):
        H, C = gram_matrix(X, W, memory), activation_counts(X, W, memory)  # (1e-3 MiB: many chunks)
    with backend.using("torch"):
        H2, C2 = gram_matrix(X, W, memory), activation_counts(X, W, memory)
    assert np.array_equal(H, H2) and np.array_equal(C, C2)


@needs_torch
def test_a_run_gives_the_same_json_under_either_backend():
    runs = []
    for name in ("numpy", "torch"):
        d = ntkcheck.run_check("lemma23", n=9, m=200, trials=3, workers=1, sets=[f"compute.backend={name}"]).to_dict()
        d.pop("elapsed_seconds")
        d["scenario"]["compute"].pop("backend")
        for c in d["claims"]:
            c.pop("seconds_per_trial", None)
        runs.append(d)
    assert runs[0] == runs[1]


def test_auto_takes_torch_only_with_torch_hardware_and_a_large_product(monkeypatch):
    monkeypatch.setattr(backend, "torch_installed", lambda: True)
    for hardware in (False, True):
        monkeypatch.setattr(backend, "int8_hardware", lambda hardware=hardware: hardware)
        assert backend.resolve("auto", backend.AUTO_MIN_WORK / 2) == "numpy"
        assert backend.resolve("auto", backend.AUTO_MIN_WORK) == ("torch" if hardware else "numpy")
        assert backend.resolve("numpy", 1e30) == "numpy" and backend.resolve("torch", 0.0) == "torch"
    monkeypatch.setattr(backend, "torch_installed", lambda: False)
    assert backend.resolve("auto", 1e30) == "numpy"
    with pytest.raises(ValueError, match=r"needs PyTorch.*pip install 'ntkcheck\[fast\]'"):
        backend.resolve("torch", 0.0)
    with pytest.raises(ValueError, match="must be one of auto, numpy, torch"):
        backend.resolve("gpu", 0.0)


@pytest.mark.parametrize("flags, node, cuda, want", [
    (["avx2", "amx_int8"], False, False, True), (["avx2", "avx512_vnni"], False, False, False),
    (["avx2", "avx_vnni"], False, False, False), (["avx2"], True, True, True),
    (["avx2"], True, False, False), (["avx2"], False, True, False)])
def test_int8_hardware_is_the_cpu_flags_or_a_cuda_device_torch_can_use(monkeypatch, tmp_path, flags, node, cuda,
                                                                       want):
    import sys
    import types

    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(is_available=lambda: cuda))
    monkeypatch.setitem(sys.modules, "torch", fake)  # (asked only with a device node and torch installed)
    monkeypatch.setattr(backend, "cpu_flags", lambda: flags)
    monkeypatch.setattr(backend, "torch_installed", lambda: True)
    (tmp_path / "nvidiactl").touch()
    monkeypatch.setattr(backend, "NVIDIA_NODE", str(tmp_path / ("nvidiactl" if node else "absent")))
    backend.int8_hardware.cache_clear()
    try:
        assert backend.int8_hardware() is want
    finally:
        backend.int8_hardware.cache_clear()


def test_using_sets_the_backend_for_the_block_and_restores_it(monkeypatch):
    monkeypatch.setattr(backend, "torch_installed", lambda: True)
    assert backend.current() == "auto"
    with pytest.raises(RuntimeError):
        with backend.using("torch"):
            assert backend.current() == "torch"
            raise RuntimeError
    assert backend.current() == "auto"
    with pytest.raises(ValueError):
        with backend.using("gpu"):
            pass
    assert backend.current() == "auto"


def test_torch_without_torch_is_one_sentence_and_exit_2(ntk, monkeypatch):
    monkeypatch.setattr(backend, "torch_installed", lambda: False)
    r = ntk("lemma23", "--set", "compute.backend=torch")
    assert r.code == 2 and r.err.startswith("error: compute.backend 'torch' needs PyTorch")
    assert r.err.count("\n") == 1 and "Traceback" not in r.err
    r = ntk("lemma23", "--set", "compute.backend=gpu")
    assert r.code == 2 and "'auto', 'numpy' or 'torch'" in r.err


def test_a_replay_command_does_not_carry_the_backend():
    from ntkcheck.api import build_scenario, replay_command
    from ntkcheck.checks import get_check

    check = get_check("lemma23")
    sc, _ = build_scenario(check, None, {"sets": ["compute.backend=numpy", "network.m=100"]})
    cmd = replay_command(check, sc, 0)
    assert "--m 100" in cmd and "backend" not in cmd  # (a key that differs is carried; this one is not)
