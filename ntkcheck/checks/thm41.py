"""Theorem 4.1 of the notes ([EMW]): random features approximate f* at rate 1/m.

Corrected statement: for ε ∈ (0, 1), with probability at least
1 − ε over B = (b_1, …, b_m) ~ π0 (uniform on S^{d−1}), there is a* ∈ ℝ^m with

    R(a*, B) ≤ γ²/m · (1 + √(2 log(1/ε)))²   and   ‖a*‖₂ ≤ γ/√m,

where R(a, B) = E_ρ(Σ_k a_k σ(b_k·x) − f*(x))², f* = E_b[a*(b) σ(b·x)] and
γ = max(1, sup|a*|). A trial draws B and tries two witnesses: the proof's
a_k = a*(b_k)/m, and the minimiser of R over the ball ‖a‖₂ ≤ γ/√m (exact trust
region). It *holds* when a witness meets both inequalities with the risk's numerical
error counted against it, is a *violation* when the trust region's certified lower
bound exceeds the bound, and is *undecided* otherwise.

Variant row (must FAIL at large m): the notes' reading ‖a*‖₁ ≤ γ/√m. Any a with
‖a‖₁ ≤ r has |f(x)| ≤ r·max‖x‖, so R ≥ (‖f*‖_ρ − r·max‖x‖)₊², which exceeds the
bound once m is large.
"""
from __future__ import annotations

from dataclasses import dataclass

import math
from typing import Literal, Union

import numpy as np
from pydantic import Field

from ..errors import UserError
from ..memory import require_memory
from ..rf import QUAD_BLOCK, kernel_entry_error, kernel_matrix, krylov_lower_bound, quad_form, trust_region
from ..scenario import FailureProbability, Strict
from ..stats import PROBABILISTIC, ClaimRow
from ..targets import Target, build_target
from .base import HOLDS, UNDECIDED, VIOLATION, Check, Context, TrialResult

_EPS = np.finfo(float).eps


class TermSpec(Strict):
    family: Literal["linear", "cos", "gegenbauer", "sign"] = Field(description="zonal profile g of a*(b) = w·g(b·v)")
    weight: float = Field(1.0, ge=-1e6, le=1e6, description="w")
    direction: Union[int, list[float]] = Field(0, description="v: a coordinate axis (0 … d−1) or a vector")
    omega: float = Field(1.0, ge=-1e4, le=1e4, description="cos family: ω in cos(ω t)")
    degree: int = Field(2, ge=0, le=200, description="gegenbauer family: degree")


class TargetSpec(Strict):
    terms: list[TermSpec] = Field(
        default_factory=lambda: [TermSpec(family="cos", weight=1.0, direction=0, omega=1.0),
                                 TermSpec(family="sign", weight=0.5, direction=1)],
        min_length=1, max_length=8, description="zonal terms of a*")
    quadrature_nodes: int = Field(48, ge=8, le=4000, description="Gauss–Jacobi nodes per half-interval of the "
                                  "coefficient integrals (at least degree/2 + 32 are used)")
    degree: int = Field(256, ge=8, le=4096, description="highest spherical-harmonic degree kept in f*, r and "
                        "‖f*‖²; the rest is bounded by Parseval")


#: the default target of the random-feature checks (thm41, lemma43 and the family of checks/emw.py):
#: a cosine ridge and half a sign ridge, sup|f*| ≤ 0.27
DEFAULT_TARGET = {"terms": [{"family": "cos", "weight": 1.0, "direction": 0, "omega": 1.0},
                            {"family": "sign", "weight": 0.5, "direction": 1}],
                  "quadrature_nodes": 48}


class Thm41Claim(Strict):
    epsilon: FailureProbability = Field(0.1, description="failure probability ε")
    exact_witness_max_m: int = Field(2048, ge=0, le=20000,
                                     description="largest m for the exact trust-region witness (uniform ρ)")
    control_shrink: float = Field(30.0, gt=1.0, le=1e6,
                                  description="control row: the ℓ2 radius γ/√m divided by this")
    control_rate: float = Field(3.0, gt=1.0, le=10.0,
                                description="control row: the bound's rate 1/m replaced by 1/m^p")
    krylov_max_m: int = Field(8192, ge=0, le=32768,
                              description="largest m for the fast-rate control's dual bound (a dense m × m kernel)")



@dataclass
class Thm41State:
    """The target f*, d, the theorem's bound and γ; for a data file also the points and f* there."""

    target: Target
    d: int
    bound: float
    gamma: float
    X: np.ndarray | None = None
    fX: np.ndarray | None = None
    fX_err: np.ndarray | None = None


@dataclass
class _Witness:
    value: float  # R at the trust region's minimiser, never below its certified lower bound or 0
    lower: float  # certified lower bound on min R over the ball (≥ 0)
    error: float  # bound on the numerical error of both


class _Risk:
    """R(a, B) = aᵀKa − 2aᵀr + c for one draw of B, with the errors of r and c (from the target, or
    exact for a data set), and the kernel matrix K̂ formed at most once per trial."""

    def __init__(self, B, d, r, c, r_err, r_err_norm, c_err, dual_available, Phi=None, fX=None,
                 fX_err=None):
        # r_err: per-entry bounds (uniform ρ; None for a data set, whose risk is exact in Φ)
        self.B, self.d, self.r, self.c, self.r_err, self.c_err = B, d, r, c, r_err, c_err
        self.r_err_norm = r_err_norm
        self.dual_available = dual_available
        self.Phi, self.fX, self.fX_err = Phi, fX, fX_err
        self._K = None
        self._dual: dict[float, tuple[float, object]] = {}  # radius → (the stop it ran to, its bound)

    @classmethod
    def uniform(cls, st, B, dual_available: bool) -> "_Risk":
        r, r_err = st.target.r(B)
        n2, n2_err = st.target.norm2
        return cls(B, st.d, r, n2, r_err, float(np.linalg.norm(r_err)), n2_err, dual_available)

    @classmethod
    def empirical(cls, st, B) -> "_Risk":
        """ρ the data set's empirical measure: K = ΦᵀΦ/n, r = ΦᵀfX/n, c = ‖fX‖²/n (Φ ≥ 0 entrywise)."""
        X, fX, fX_err = st.X, st.fX, st.fX_err
        n = X.shape[0]
        Phi = np.maximum(X @ B.T, 0.0)
        r = Phi.T @ fX / n
        c0 = float(fX @ fX) / n
        c_err = (2 * float(np.abs(fX) @ fX_err) + float(fX_err @ fX_err)) / n + 16 * _EPS * c0
        r_err_norm = float(np.linalg.norm(Phi.T @ fX_err)) / n + 16 * _EPS * float(np.linalg.norm(r))
        return cls(B, st.d, r, c0, None, r_err_norm, c_err, False, Phi=Phi, fX=fX, fX_err=fX_err)

    def kernel(self) -> np.ndarray:
        if self._K is None:
            self._K = kernel_matrix(self.B, self.d)
        return self._K

    def of(self, a: np.ndarray) -> tuple[float, float]:
        """R(a, B) and a bound on its error."""
        if self.Phi is not None:
            n = self.Phi.shape[0]
            res = self.Phi @ a - self.fX
            R = float(res @ res) / n
            return R, 2 * float(np.abs(res) @ self.fX_err) / n + float(self.fX_err @ self.fX_err) / n + 64 * _EPS * (1 + R)
        quad = float(a @ (self.kernel() @ a)) if self.dual_available else quad_form(self.B, a, self.d)
        R = quad - 2 * float(a @ self.r) + self.c
        return R, self._error(a)

    def _error(self, a: np.ndarray) -> float:
        m = self.B.shape[0]
        return 2 * float(np.abs(a) @ self.r_err) + self.c_err + 64 * m * _EPS * (abs(self.c) + 1e-3)

    def trust_region(self, radius: float) -> _Witness:
        """The exact minimiser over ‖a‖₂ ≤ radius (in the eigenbasis of K or of ΦᵀΦ/n)."""
        if self.Phi is not None:
            n = self.Phi.shape[0]
            _, s, Vt = np.linalg.svd(self.Phi, full_matrices=False)
            tr = trust_region(s * s / n, Vt.T, self.r, self.c, radius * (1 - 1e-12))
            err = self.of(tr.a)[1]
        else:
            lam, V = np.linalg.eigh(self.kernel())
            tr = trust_region(lam, V, self.r, self.c, radius * (1 - 1e-12))
            err = self._error(tr.a)
        lower = max(tr.lower, 0.0)
        return _Witness(max(tr.value, lower), lower, err)

    def linear_lower(self, radius: float) -> tuple[float, float]:
        """K ⪰ 0: over ‖a‖₂ ≤ radius, R ≥ c − 2·radius·‖r‖; the bound and its error."""
        return self.c - 2 * radius * float(np.linalg.norm(self.r)), self.c_err + 2 * radius * self.r_err_norm

    def dual_bound(self, radius: float, stop_above: float):
        """The certified Lanczos bound on min R over the ball; a run that went on to a higher stop
        (the theorem's bound) already answers a lower one (the fast-rate control's)."""
        got = self._dual.get(radius)
        if got is None or (got[0] < stop_above and got[1].lower <= stop_above):
            db = krylov_lower_bound(self.kernel(), self.r, self.c, radius, entry_error=kernel_entry_error(self.d),
                                    r_error_norm=self.r_err_norm, c_error=self.c_err, stop_above=stop_above)
            self._dual[radius] = got = (stop_above, db)
        return got[1]


class Thm41(Check):
    name = "thm41"
    ref = "[EMW] Thm (notes 4.1)"
    title = "random features reach risk γ²/m·(1+√(2 log 1/ε))² with ‖a*‖₂ ≤ γ/√m"
    source = ("[EMW] E, Ma, Wu, A comparative analysis of the optimization and generalization property of "
              "two-layer neural network and random feature models under gradient descent dynamics, 2019 "
              "(notes: Theorem 4.1)")
    statement = ("For ε ∈ (0,1), with probability ≥ 1−ε over b_1, …, b_m ~ π0 there is a* ∈ ℝ^m with "
                 "R(a*, B) ≤ γ²/m·(1 + √(2 log(1/ε)))² and ‖a*‖₂ ≤ γ/√m, γ = max(1, sup|a*(b)|).")
    typos = [
        "the notes bound ‖a*‖₁ ≤ γ/√m; it is the ℓ2 norm. The ℓ1 reading is false: any a with ‖a‖₁ ≤ r "
        "gives |f(x)| ≤ r·max‖x‖, so R ≥ (‖f*‖ − r·max‖x‖)₊², and with r = γ/√m that lower bound "
        "exceeds γ²/m·(1+√(2 log(1/ε)))² once m is large (the variant row shows it).",
        "the notes write 'for b_k ∈ B_0'; the b_k are drawn i.i.d. from π0, uniform on the sphere.",
    ]
    method = ("Per trial: B uniform on S^{d−1}; R(a, B) = aᵀKa − 2aᵀr + ‖f*‖² exactly (K_kl = κ1(b_k·b_l)/d in "
              "closed form, accumulated block by block; r and ‖f*‖² by Gauss–Jacobi quadrature, with the "
              "half-node difference as error); witnesses a*(b_k)/m and the exact trust-region minimiser "
              "over ‖a‖₂ ≤ γ/√m with its dual lower bound. With --data, ρ is the empirical measure and R "
              "is exact. Variant (ℓ1): certified lower bound (‖f*‖ − γ/√m·max‖x‖)₊².")
    claim_model = Thm41Claim
    sections = {"target": TargetSpec}
    unused_keys = ("data.labels.", "data.n")
    default = {
        "seed": 0,
        "trials": "auto",
        "confidence": 0.95,
        "data": {"source": "sphere", "d": 5},
        "network": {"m": 2048},
        "target": DEFAULT_TARGET,
        "claim": {"epsilon": 0.1, "exact_witness_max_m": 2048},
    }

    def prepare(self, sc, explicit, rng) -> Context:
        src = sc.data.source
        if src == "gaussian":
            raise UserError("thm41 takes the uniform measure on the sphere (data.source=sphere) or a data "
                            "file (--data); gaussian inputs are not a measure it handles.")
        m = sc.network.m
        X = fX = fX_err = None
        if src == "file":
            from .base import load_inputs
            inputs = load_inputs(sc, explicit, rng)
            d = inputs.d
            target = build_target(sc.target, d)
            fX = target(inputs.X)
            fX_err = target.error_pointwise(inputs.X)
            norm_f = float(np.sqrt(np.mean(fX * fX)))
            norm_err = float(np.sqrt(np.mean(fX_err**2))) + 4 * _EPS
            X = inputs.X
            # every unit b: ‖σ(Xb)‖_n ≤ ‖Xb‖/√n ≤ ‖X‖₂/√n (σ is 1-Lipschitz with σ(0) = 0)
            feature_norm = min(1.0, float(np.linalg.norm(inputs.X, 2)) / math.sqrt(inputs.n))
            notes = list(inputs.notes)
            measure = f"empirical ({inputs.n} points)"
            trial_bytes = require_memory(8.0 * m * (d + 3 * inputs.n) + 3 * sc.compute.working_memory_mb * 2**20,
                           f"thm41 with m = {m}, n = {inputs.n}")
        else:
            d = sc.data.d
            target = build_target(sc.target, d)
            n2, n2_err = target.norm2
            norm_f = math.sqrt(max(n2, 0.0))
            norm_err = math.sqrt(n2_err) + 4 * _EPS
            notes = []
            measure = "uniform on the sphere"
            feature_norm = 1.0 / math.sqrt(2 * d)  # ‖σ(b·x)‖_ρ² = κ1(1)/d = 1/(2d) for unit b
            exact_mem = 8.0 * m * m * 3 if m <= sc.claim.exact_witness_max_m else 0.0
            if m <= sc.claim.krylov_max_m:  # K̂, a temporary of its size, and the Lanczos basis
                exact_mem = max(exact_mem, 8.0 * m * m * 2 + 16.0 * m * 200)
            trial_bytes = require_memory(8.0 * m * (d + 8) + exact_mem + 3 * 8.0 * QUAD_BLOCK ** 2,
                           f"thm41 with m = {m}, d = {d}")
        gamma = target.gamma
        eps = sc.claim.epsilon
        bound = gamma**2 / m * (1 + math.sqrt(2 * math.log(1 / eps))) ** 2
        l1_radius = gamma / math.sqrt(m)
        # for ‖a‖₁ ≤ r: ‖f(·; a, B)‖_ρ ≤ Σ|a_k| ‖σ(b_k·x)‖_ρ ≤ r·feature_norm, so
        # R ≥ (‖f*‖_ρ − r·feature_norm)₊² whatever B is
        l1_lower = max(norm_f - norm_err - l1_radius * feature_norm, 0.0) ** 2
        q = {"d": d, "m": m, "measure": measure, "epsilon": eps, "gamma": gamma, "norm_f_star": norm_f,
             "norm_f_star_error": norm_err, "bound": bound, "bound_times_m": bound * m,
             "l2_radius": gamma / math.sqrt(m), "l1_lower_bound": l1_lower, "feature_norm_bound": feature_norm,
             # a = 0 meets both ℓ1 and ℓ2 constraints: where ‖f*‖² is below the bound, each reading holds
             "zero_witness_holds": (norm_f + norm_err) ** 2 <= bound}
        q["control_radius"] = gamma / math.sqrt(m) / sc.claim.control_shrink
        p = sc.claim.control_rate
        q["control_rate_bound"] = gamma**2 / m**p * (1 + math.sqrt(2 * math.log(1 / eps))) ** 2
        q["dual_bound_available"] = src != "file" and m <= sc.claim.krylov_max_m
        return Context(quantities=q, trial_bytes=trial_bytes, notes=notes, state=Thm41State(target, d, bound, gamma, X, fX, fX_err))

    def rows(self, sc, ctx) -> list[ClaimRow]:
        t = 1.0 - sc.claim.epsilon
        k = sc.claim.control_shrink
        return [
            ClaimRow("theorem", PROBABILISTIC,
                     "∃a: R(a, B) ≤ γ²/m·(1+√(2 log 1/ε))² and ‖a‖₂ ≤ γ/√m", target=t),
            ClaimRow("control_small_ball", PROBABILISTIC,
                     (f"the same with ‖a‖₂ ≤ γ/({k:g}√m), true at this m: a = 0 already meets the bound"
                      if ctx.quantities["zero_witness_holds"] else
                      f"control (false by a certified bound in each trial): the same with ‖a‖₂ ≤ ρ = γ/({k:g}√m); "
                      "R(a, B) = aᵀKa − 2aᵀr + ‖f*‖² with K ⪰ 0, so over that ball R ≥ ‖f*‖² − 2ρ‖r‖, "
                      "which exceeds the bound wherever ‖f*‖² does by more than 2ρ‖r‖"),
                     target=t, primary=False,
                     role="secondary" if ctx.quantities["zero_witness_holds"] else "control"),
            ClaimRow("control_fast_rate", PROBABILISTIC,
                     f"control (false by a certified bound in each trial): the same with the rate 1/m replaced "
                     f"by 1/m^{sc.claim.control_rate:g}, R ≤ γ²/m^{sc.claim.control_rate:g}·(1+√(2 log 1/ε))²; "
                     "Lagrangian duality gives min over ‖a‖₂ ≤ γ/√m of R ≥ c − rᵀ(K+μI)⁻¹r − μγ²/m for every "
                     "μ > 0, bounded rigorously from a Lanczos vector (K ⪰ 0), which exceeds that bound"
                     + ("" if ctx.quantities["dual_bound_available"] else
                        f" — not evaluated here ({'a data file' if sc.data.source == 'file' else 'm above claim.krylov_max_m'}): "
                        "every trial is undecided"),
                     target=t, primary=False, role="control"),
            ClaimRow("variant_l1", PROBABILISTIC,
                     "the notes' reading: ∃a: R(a, B) ≤ the same bound and ‖a‖₁ ≤ γ/√m"
                     + (" (true at this m: a = 0 already meets the bound)" if ctx.quantities["zero_witness_holds"]
                        else "; false when (‖f*‖_ρ − (γ/√m)·sup_b ‖σ(b·x)‖_ρ)² exceeds the bound"),
                     target=t, primary=False,
                     role="secondary" if ctx.quantities["zero_witness_holds"] else "variant"),
        ]

    def run_trial(self, sc, ctx, rng, index) -> TrialResult:
        st, q, m = ctx.state, ctx.quantities, sc.network.m
        radius = st.gamma / math.sqrt(m)
        B = rng.standard_normal((m, st.d))
        B /= np.linalg.norm(B, axis=1, keepdims=True)
        a1 = st.target.a_star(B) / m
        risk = _Risk.empirical(st, B) if st.X is not None else _Risk.uniform(st, B, q["dual_bound_available"])
        R1, R1_err = risk.of(a1)
        values = {"risk_w1": R1, "risk_w1_error": R1_err, "risk_w1_times_m": R1 * m,
                  "norm2_w1": float(np.linalg.norm(a1)), "norm1_w1": float(np.abs(a1).sum())}
        w1_in_ball = values["norm2_w1"] <= radius * (1 + 1e-12)
        out = {}
        # the theorem: the proof's witness, else the exact trust region (certifies either way)
        tr = None
        if R1 + R1_err <= st.bound and w1_in_ball:
            out["theorem"], witness = HOLDS, 1
        else:
            out["theorem"], witness = UNDECIDED, 0
            tr = risk.trust_region(radius) if (st.X is not None or m <= sc.claim.exact_witness_max_m) else None
            if tr is not None:
                # a risk is ≥ 0 and ≥ its certified lower bound: the computed value can fall below
                # either by rounding and quadrature error (−2.9e-7 seen at d = 3, m = 256)
                values.update({"risk_w2": tr.value, "risk_w2_lower": tr.lower})
                if tr.value + tr.error <= st.bound:
                    out["theorem"], witness = HOLDS, 2
                elif tr.lower - tr.error > st.bound:
                    out["theorem"] = VIOLATION
        # K ⪰ 0: over ‖a‖₂ ≤ ρ, R ≥ c − 2ρ‖r‖ (valid at every m, no eigensolver): it can refute the
        # theorem where no trust region is solved, and it refutes the control's small ball
        low, low_err = risk.linear_lower(radius)
        values["linear_lower_theorem"] = low
        if out["theorem"] == UNDECIDED and low - low_err > st.bound:
            out["theorem"] = VIOLATION
        if out["theorem"] == UNDECIDED and risk.dual_available:  # beyond the exact trust region
            db = risk.dual_bound(radius, stop_above=st.bound * (1 + 1e-9))
            values["theorem_dual_lower_bound"] = max(float(db.lower), 0.0)
            if db.lower > st.bound:
                out["theorem"] = VIOLATION
        rho = q["control_radius"]
        low, low_err = risk.linear_lower(rho)
        values["linear_lower_control_small_ball"] = low
        if low - low_err > st.bound:
            out["control_small_ball"] = VIOLATION
        elif q["zero_witness_holds"] or (values["norm2_w1"] <= rho * (1 + 1e-12) and R1 + R1_err <= st.bound):
            out["control_small_ball"] = HOLDS
        else:
            out["control_small_ball"] = UNDECIDED
        out["control_fast_rate"] = self._fast_rate(sc, q["control_rate_bound"], risk, radius, R1 + R1_err,
                                                   w1_in_ball, tr, values)
        best = min(R1, tr.value) if tr is not None else R1
        values["witness"] = float(witness)
        values["best_risk"] = max(best, 0.0)
        values["slack"] = st.bound / best if best > 0 else 0.0
        # the ℓ1 reading: refuted by the certified lower bound, whatever B is
        if q["l1_lower_bound"] > st.bound * (1 + 1e-9):
            out["variant_l1"] = VIOLATION
        elif q["zero_witness_holds"] or (values["norm1_w1"] <= radius and R1 + R1_err <= st.bound):
            out["variant_l1"] = HOLDS
        else:
            out["variant_l1"] = UNDECIDED
        return TrialResult(index, out, values)

    @staticmethod
    def _fast_rate(sc, fast: float, risk: "_Risk", radius: float, R1_high: float, w1_in_ball: bool, tr,
                   values: dict) -> str:
        """The fast-rate control: refuted by the certified dual lower bound on min R over the ball;
        true in this trial where a witness meets it."""
        if (R1_high <= fast and w1_in_ball) or (tr is not None and tr.value + tr.error <= fast):
            return HOLDS
        if not risk.dual_available:
            return UNDECIDED
        db = risk.dual_bound(radius, stop_above=fast * (1 + 1e-9))
        values["dual_lower_bound"] = max(float(db.lower), 0.0)
        values["dual_steps"] = float(db.steps)
        if db.lower > fast:
            return VIOLATION
        if tr is None and sc.network.m <= sc.claim.exact_witness_max_m:
            # not refuted: maybe the faster bound is true at this m; the exact witness says
            tr = risk.trust_region(radius)
            if tr.value + tr.error <= fast:
                return HOLDS
        return UNDECIDED

    def summarize(self, sc, ctx, rows, trials) -> None:
        if not trials:
            return
        col = lambda k: np.array([t.values[k] for t in trials if k in t.values])  # noqa: E731
        rm = col("risk_w1_times_m")
        w = col("witness")
        sl = col("slack")
        rows[0].figures.update({
            "bound": ctx.state.bound,
            "R_times_m_median": float(np.median(rm)),
            "R_times_m_range": [float(rm.min()), float(rm.max())],
            "bound_times_m": ctx.quantities["bound_times_m"],
            "slack_median": float(np.median(sl)), "slack_min": float(sl.min()),
            "witness_proof": int((w == 1).sum()), "witness_trust_region": int((w == 2).sum()),
        })
        by_name = {row.name: row for row in rows}
        low = col("linear_lower_control_small_ball")
        by_name["control_small_ball"].figures.update({
            "radius": ctx.quantities["control_radius"], "bound": ctx.state.bound,
            "certified_lower_min": float(low.min()) if low.size else None})
        dual = col("dual_lower_bound")
        fast_row = by_name["control_fast_rate"]
        if fast_row.holds:  # a witness met the faster bound: it is true in those trials, not a control here
            fast_row.role = "secondary"
            fast_row.statement += (f" — but true in {fast_row.holds} of {fast_row.trials} trials at this m (a witness "
                                   "meets it): the faster bound falls below min R only at larger m")
        fast_row.figures.update({
            "bound": ctx.quantities["control_rate_bound"],
            "certified_lower_min": float(dual.min()) if dual.size else None,
            "lanczos_steps_median": float(np.median(col("dual_steps"))) if dual.size else None})
        by_name["variant_l1"].figures.update({
            "l1_radius": ctx.quantities["l2_radius"],
            "certified_lower_bound": ctx.quantities["l1_lower_bound"],
            "bound": ctx.state.bound,
        })
