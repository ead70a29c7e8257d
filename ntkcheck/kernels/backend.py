"""Where the count product Sᵀ S of :mod:`ntkcheck.kernels.gram` runs (scenario key
``compute.backend``):

* ``numpy``: a float32 BLAS product of the 0/1 matrices (exact: every count is an integer below
  2^24 per chunk), the default install;
* ``torch``: torch's int8 × int8 → int32 product (``torch._int_mm``), on a CUDA device when torch
  sees one, else on the CPU, where AMX instructions make it several times faster than a float32
  product, AVX-512 VNNI about as fast (0.2–1.2× at n = 200 and 1000 on an AVX-512 EPYC) and plain
  AVX2 far slower (60–100×): benchmarks/bench_counts.py. Installed by
  ``pip install 'ntkcheck[fast]'``;
* ``auto`` (the default): torch when it is installed, there is hardware for it (a CUDA device
  torch can use, or a CPU that reports AMX-INT8) and the product is large enough to pay for
  importing torch (about 2 s); numpy otherwise.

Counts are integers, so every backend gives the same numbers bit for bit: the choice changes
the speed, never a result (tests/test_backend.py compares them), which is also why a replay
command does not carry the key.
"""
from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import numpy as np

BACKENDS = ("auto", "numpy", "torch")

#: multiply-adds (rows · n²) of a count product from which ``auto`` takes torch where it may: from
#: n = 700 inputs over 4096 neurons (~15 ms in float32 on 2 cores), sizes at which a run spends
#: seconds on counts; below, a run would rarely win back the ~2 s that importing torch costs
AUTO_MIN_WORK = 2e9

#: the CPU flags (Linux /proc/cpuinfo) of int8 matrix instructions with which torch's CPU product
#: beats float32 by enough to pay for importing torch: AMX alone (AVX-512 VNNI: about even)
INT8_CPU_FLAGS = ("amx_int8",)

#: the device node an NVIDIA driver creates: without it no CUDA device can be there
NVIDIA_NODE = "/dev/nvidiactl"

_current = "auto"


class BackendError(ValueError):
    """A ``compute.backend`` setting that cannot run here (an unknown name, or torch not installed)."""


def torch_installed() -> bool:
    """Whether torch can be imported (looked up, not imported)."""
    return importlib.util.find_spec("torch") is not None


def cpu_flags() -> list[str]:
    """The CPU's feature flags as Linux lists them in /proc/cpuinfo (none where it cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
    except OSError:
        return []


@lru_cache(maxsize=1)
def int8_hardware() -> bool:
    """Whether torch has hardware for fast int8 products here: a CPU reporting one of
    :data:`INT8_CPU_FLAGS` (read from /proc), or a CUDA device torch can use (asked of torch only
    where an NVIDIA device node exists, and torch is installed: the question imports it)."""
    if any(flag in cpu_flags() for flag in INT8_CPU_FLAGS):
        return True
    if not (os.path.exists(NVIDIA_NODE) and torch_installed()):
        return False
    import torch

    return torch.cuda.is_available()  # (a CPU build of torch beside a GPU: its CPU product would be slow)


def resolve(name: str, work: float) -> str:
    """The backend (``numpy`` or ``torch``) that runs a count product of ``work`` multiply-adds
    under the setting ``name`` (one of :data:`BACKENDS`); BackendError for an unknown name, or for
    ``torch`` where torch is not installed."""
    if name == "numpy":
        return "numpy"
    if name == "torch":
        if not torch_installed():
            raise BackendError("compute.backend 'torch' needs PyTorch, which is not installed "
                             "(pip install 'ntkcheck[fast]')")
        return "torch"
    if name != "auto":
        raise BackendError(f"compute.backend must be one of {', '.join(BACKENDS)} (got {name!r})")
    return "torch" if work >= AUTO_MIN_WORK and torch_installed() and int8_hardware() else "numpy"


def current() -> str:
    """The setting in force in this process (:func:`using`; ``auto`` unless set)."""
    return _current


@contextmanager
def using(name: str) -> Iterator[None]:
    """Run count products under the setting ``name`` inside the block (checked first: see
    :func:`resolve`); the previous setting is restored after it."""
    global _current
    resolve(name, 0.0)
    before, _current = _current, name
    try:
        yield
    finally:
        _current = before


def torch_counts(S: np.ndarray) -> np.ndarray:
    """Sᵀ S for a 0/1 matrix S (rows × n, any real dtype) as int32, by torch's exact int8 product
    on a CUDA device if torch sees one, else on the CPU."""
    import torch

    n = S.shape[1]
    S8 = torch.from_numpy(np.ascontiguousarray(S, dtype=np.int8))
    if torch.cuda.is_available():
        S8 = cuda_shaped(S8).cuda()
    elif n == 1:
        # torch's CPU kernel returns uninitialised values for a 1 × 1 product on an AVX-512 CPU
        # (torch 2.13: 81 of 83 random cases, no other n from 1 to 39 wrong): a zero column
        # makes it 2 × 2 and counts nothing
        S8 = torch.nn.functional.pad(S8, (0, 1))
    C = torch._int_mm(S8.T.contiguous(), S8)
    return C[:n, :n].cpu().numpy()


def cuda_shaped(S8):
    """S8 (rows × n) padded with zero rows and columns to the shapes CUDA's int8 kernel takes:
    its first factor Sᵀ must have more than 16 rows, and the shared dimension (rows) and the
    columns must be multiples of 8. Zeros add nothing to any count."""
    import torch

    rows, n = S8.shape
    pr, pn = -(-rows // 8) * 8, max(24, -(-n // 8) * 8)
    if (pr, pn) == (rows, n):
        return S8
    return torch.nn.functional.pad(S8, (0, pn - n, 0, pr - rows))
