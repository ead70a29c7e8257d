"""Single eigenpairs of symmetric matrices from LAPACK's syevr: the certificate and the attack
need only the extreme ones."""
from __future__ import annotations

import numpy as np


def eigenvalue_at(M: np.ndarray, index: int, vector: bool = False):
    """The eigenvalue of the symmetric M at ``index`` in increasing order (with its unit
    eigenvector if ``vector``), from LAPACK's syevr on that index alone: the tridiagonal
    reduction is shared, but only one eigenpair is found and back-transformed instead of n."""
    from scipy import linalg  # (here: importing scipy.linalg costs ~0.1 s at start-up)

    i = index % M.shape[0]
    if not vector:
        return float(linalg.eigh(M, eigvals_only=True, subset_by_index=[i, i], driver="evr")[0])
    w, V = linalg.eigh(M, subset_by_index=[i, i], driver="evr")
    return float(w[0]), V[:, 0]


def extreme_eigenvalues(M: np.ndarray, vector_at_top: bool | None = None):
    """(λ_min, λ_max) of the symmetric M and, if ``vector_at_top`` is not None, the unit
    eigenvector of λ_max (True) or of λ_min (False)."""
    if vector_at_top is None:
        return eigenvalue_at(M, 0), eigenvalue_at(M, -1), None
    if vector_at_top:
        hi, v = eigenvalue_at(M, -1, vector=True)
        return eigenvalue_at(M, 0), hi, v
    lo, v = eigenvalue_at(M, 0, vector=True)
    return lo, eigenvalue_at(M, -1), v
