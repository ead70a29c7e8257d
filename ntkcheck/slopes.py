"""The scaling claims' test: is the log-log slope of a quantity against the width at most a
tolerance? An exact permutation test over all trials' values (no bootstrap): with values
width^s·Z, Z i.i.d. of any law, the residuals at the boundary slope are exchangeable, so the
test's error at the tolerance is at most α (tests/test_stats.py simulates it)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SlopeSample:
    """The values of a scaling claim, log(value) against log(width), with fixed permutations.

    Model: value = width^s · Z, the Z i.i.d. over trials and widths (any law: heavy tails and
    maxima over t included). Under H0 "slope = s0" the residuals y − s0·x are then exchangeable,
    so the rank of T(s0) = Σ (x_i − x̄)(y_i − s0 x_i) among its values under the permutations is
    uniform: the permutation p-values below are exact at the boundary, whatever the law of Z
    (a percentile bootstrap of per-width maxima was not: 9% wrong FAILs at the boundary). A
    larger true slope makes T stochastically larger, so the composite hypotheses "slope ≥ s0"
    and "slope ≤ s0" are tested at level α too. T(s0) minus a permuted T(s0) is monotone in s0,
    so the confidence limits are exact order statistics of per-permutation crossing slopes.
    """

    x: np.ndarray  # log width of each value
    y: np.ndarray  # log value
    perms: np.ndarray  # (B, N) permutations of the N values

    @classmethod
    def from_groups(cls, widths: np.ndarray, values: np.ndarray, permutations: int,
                    rng: np.random.Generator) -> "SlopeSample":
        """``values`` (n_widths, n_trials), all positive; ``permutations`` random permutations."""
        widths = np.asarray(widths, dtype=float)
        values = np.asarray(values, dtype=float)
        if values.ndim != 2 or values.shape[0] != widths.size or widths.size < 2:
            raise ValueError("need values of shape (n_widths, n_trials) and two or more widths")
        if np.any(values <= 0) or not np.all(np.isfinite(values)):
            raise ValueError("a slope needs positive, finite values")
        x = np.repeat(np.log(widths), values.shape[1])
        perms = rng.permuted(np.broadcast_to(np.arange(x.size), (permutations, x.size)), axis=1)
        return cls(x, np.log(values).ravel(), perms)

    @property
    def estimate(self) -> float:
        """Least-squares slope of all log values on log width."""
        c = self.x - self.x.mean()
        return float(c @ self.y / (c @ c))

    def _crossings(self) -> tuple[np.ndarray, int, int]:
        """Per permutation π, the slope s_π at which T_π(s) = T(s): T_π ≤ T exactly for s ≤ s_π
        and T_π ≥ T for s ≥ s_π; plus the permutations with T_π − T constant (≤ 0, ≥ 0)."""
        c = self.x - self.x.mean()
        A, Bx = float(c @ self.y), float(c @ self.x)
        Ap, Bp = self.y[self.perms] @ c, self.x[self.perms] @ c
        delta = Bx - Bp  # ≥ 0 (rearrangement inequality); 0 when π keeps every width group
        flat = delta <= 1e-12 * abs(Bx)
        tie = 1e-12 * float(np.abs(c) @ np.abs(self.y))  # (such π only reorder a sum: T_π = T)
        s = (A - Ap[~flat]) / delta[~flat]
        return (np.sort(s), int(np.count_nonzero(flat & (Ap <= A + tie))),
                int(np.count_nonzero(flat & (Ap >= A - tie))))

    def p_values(self, s0: float) -> tuple[float, float]:
        """(p of H0 "slope ≥ s0", p of H0 "slope ≤ s0"): small first ⇒ slope < s0 (PASS)."""
        s, below, above = self._crossings()
        b = self.perms.shape[0]
        k_le = below + np.count_nonzero(s >= s0)  # permutations with T_π ≤ T at s0
        k_ge = above + np.count_nonzero(s <= s0)  # with T_π ≥ T at s0
        return (1 + k_le) / (b + 1), (1 + k_ge) / (b + 1)

    def interval(self, alpha: float) -> tuple[float, float]:
        """One-sided (1 − alpha) confidence limits (lower, upper): the slopes s0 at which
        "slope ≤ s0" resp. "slope ≥ s0" is no longer rejected at level alpha."""
        s, below, above = self._crossings()
        b = self.perms.shape[0]
        need = int(np.floor(alpha * (b + 1) - 1)) + 1  # (1 + k)/(b + 1) > alpha ⇔ k ≥ need
        ku, kl = need - below, need - above
        upper = np.inf if ku <= 0 else (s[-ku] if ku <= s.size else -np.inf)
        lower = -np.inf if kl <= 0 else (s[kl - 1] if kl <= s.size else np.inf)
        return float(lower), float(upper)
