"""The flippable set of Lemma 2.3: A = [1{|w_k·x_i| ≤ R}] over neuron chunks, its pair counts
AᵀA and per-input counts c = Aᵀ1, kept sparse while A is."""
from __future__ import annotations

import numpy as np

from .gram import CountSum


def run_starts(k: np.ndarray) -> np.ndarray:
    """Where each run of equal values of the sorted non-negative array k starts (a mask)."""
    return np.diff(k, prepend=-1) != 0


def csr_rows(flat: np.ndarray, vals: np.ndarray, rows: int, n: int) -> "sparse.csr_matrix":
    """The rows × n CSR matrix with ``vals`` at the sorted flat indices k·n + i (built from
    row pointers: no sort)."""
    from scipy import sparse  # (here: importing scipy.sparse costs ~0.1 s at start-up)

    k = flat // n
    return sparse.csr_matrix((vals, flat - k * n, np.searchsorted(k, np.arange(rows + 1))), shape=(rows, n))


#: below this fraction of flippable entries, AᵀA is a sparse product (cost Σ_k r_k², r_k the
#: flippable entries of neuron k) rather than a dense one (cost m n²/2)
_SPARSE_FRACTION = 0.01


#: rows with at most this many entries have their pairs counted by offsets (see pair_counts)
PAIR_OFFSETS = 64


def pair_counts(k: np.ndarray, i: np.ndarray, rows: int, n: int) -> np.ndarray:
    """AᵀA (n × n, int64) for the 0/1 matrix A (rows × n) with ones at the entries (k, i),
    sorted by k then i: the number of rows holding both i and j.

    With few entries per row (a sparse flippable set), the pairs of a row are entries at
    offsets 1, 2, ... of each other in the sorted list, so one vectorised step per offset up to
    the longest row collects them all, and one bincount adds them up — no sparse matrix and no
    dense copy of its product. Longer rows (a neuron near every input) go to the sparse product,
    whose cost grows with the pairs, not with the square of the longest row."""
    if k.size == 0:
        return np.zeros((n, n), dtype=np.int64)
    starts = np.flatnonzero(run_starts(k))
    if np.diff(np.append(starts, k.size)).max() > PAIR_OFFSETS:
        A = csr_rows(k * n + i, np.ones(k.size, dtype=np.float32), rows, n)
        return (A.T @ A).toarray().astype(np.int64)  # float32 counts ≤ rows ≤ 2^24: exact
    keys = [i * (n + 1)]  # (i, i): every entry with itself
    for o in range(1, k.size):
        e = np.flatnonzero(k[o:] == k[:-o])  # entry e and entry e + o share a row
        if e.size == 0:
            break
        a, b = i[e], i[e + o]
        keys += [a * n + b, b * n + a]
    return np.bincount(np.concatenate(keys), minlength=n * n).reshape(n, n)


class Flippable:
    """A = [1{|w_k·x_i| ≤ R}] accumulated over neuron chunks: AᵀA, c = Aᵀ1, active neurons."""

    def __init__(self, n: int, m: int):
        self.n, self.m = n, m
        self.counts = np.zeros(n)
        self.active: list[np.ndarray] = []
        self.sparse_AA: np.ndarray | None = None
        self.dense: CountSum | None = None

    def add(self, start: int, rows: int, flat: np.ndarray) -> None:
        """Chunk of ``rows`` neurons from ``start``; ``flat`` the sorted flat indices of its
        flippable entries. Runs as one task beside the chunk's count product."""
        k, i = np.divmod(flat, self.n)
        self.counts += np.bincount(i, minlength=self.n)
        self.active.append(start + k[run_starts(k)])
        if flat.size > _SPARSE_FRACTION * rows * self.n:
            A = np.zeros((rows, self.n), dtype=np.float32)
            A.ravel()[flat] = 1.0
            if self.dense is None:
                self.dense = CountSum(self.n, self.m)
            self.dense.add(A)
        else:
            AA = pair_counts(k, i, rows, self.n)
            self.sparse_AA = AA if self.sparse_AA is None else self.sparse_AA + AA

    def gram(self) -> np.ndarray:
        if self.dense is None:
            return np.zeros((self.n, self.n)) if self.sparse_AA is None else self.sparse_AA
        AA = self.dense.total()
        return AA if self.sparse_AA is None else np.add(AA, self.sparse_AA, dtype=np.float64)
