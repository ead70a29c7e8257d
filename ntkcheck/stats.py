"""Per-trial outcomes → verdicts.

A claim row keeps its raw counts (``holds``, ``violations``, ``undecided``,
``trials``) and derives intervals and verdicts from them on request, in the
manner of ``scipy.stats.binomtest``; nothing here stores a verdict computed
elsewhere.

* Probabilistic claim "P(holds) ≥ p0": PASS when the one-sided Clopper–Pearson
  lower bound of P(holds) (undecided counted as failures) is ≥ p0; FAIL when the
  upper bound (undecided counted as holding) is < p0. By the duality of the
  Clopper–Pearson interval and the exact binomial test, this is the same as
  rejecting H0: p < p0 (resp. H0: p ≥ p0) with the p-values below, which is what
  lets rows share one Holm step-down procedure.
* Universal claim: one verified violation is a counterexample (FAIL, p-value 0);
  no violation and no undecided trial is PASS, reported with the upper
  confidence bound 1 − α^{1/N} on the violation probability.
* Scaling claim "slope ≤ tolerance": an exact permutation test of the slope of
  log(value) against log(width) (:class:`SlopeSample`): PASS when the upper
  confidence limit is below the tolerance, FAIL when the lower one is above, with
  the permutation p-values for Holm.

Holm's step-down procedure runs across the primary rows of one table so the
family-wise error of the decided verdicts is at most α = 1 − confidence.
Variant rows (known-false readings) are decided alone at level α and never
enter the exit code.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any


from .slopes import SlopeSample

try:  # the ufuncs behind scipy.stats.binom and .beta: importing scipy.stats itself is a large
    from scipy.special._ufuncs import _beta_ppf, _binom_cdf, _binom_sf  # part of a short run
except ImportError:  # pragma: no cover - a SciPy that moved them: the public (slower) route
    from scipy import stats as _sst

    _beta_ppf, _binom_sf, _binom_cdf = _sst.beta.ppf, _sst.binom.sf, _sst.binom.cdf

class Verdict(StrEnum):
    """A claim's (or a table's) verdict; the strings are the JSON's."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


class Kind(StrEnum):
    """How a claim is decided: a probability bound, a statement about every trial, or a slope."""

    PROBABILISTIC = "probabilistic"
    UNIVERSAL = "universal"
    SCALING = "scaling"


class Role(StrEnum):
    """primary: decides the exit code; secondary: a part of a primary claim, reported alone;
    control: false by an argument stated in the row, so it must FAIL; variant: another reading
    of the statement, expected to fail."""

    PRIMARY = "primary"
    SECONDARY = "secondary"
    CONTROL = "control"
    VARIANT = "variant"


PASS, FAIL, INCONCLUSIVE = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE
PROBABILISTIC, UNIVERSAL, SCALING = Kind.PROBABILISTIC, Kind.UNIVERSAL, Kind.SCALING


def cp_lower(k: int, n: int, alpha: float) -> float:
    """One-sided Clopper–Pearson lower confidence bound (level 1 − alpha)."""
    if n <= 0 or k <= 0:
        return 0.0
    return float(_beta_ppf(alpha, k, n - k + 1))


def cp_upper(k: int, n: int, alpha: float) -> float:
    """One-sided Clopper–Pearson upper confidence bound (level 1 − alpha)."""
    if n <= 0 or k >= n:
        return 1.0
    return float(_beta_ppf(1.0 - alpha, k + 1, n - k))


def p_value_above(k: int, n: int, p0: float) -> float:
    """Exact p-value of H0: p ≤ p0 against p > p0, having seen k successes of n."""
    if n <= 0 or k <= 0:
        return 1.0
    return float(_binom_sf(k - 1, n, p0))


def p_value_below(k: int, n: int, p0: float) -> float:
    """Exact p-value of H0: p ≥ p0 against p < p0, having seen k successes of n."""
    if n <= 0 or k >= n:
        return 1.0
    return float(_binom_cdf(k, n, p0))


@dataclass(frozen=True)
class RowDecision:
    """What :func:`decide` concluded for one row: its verdict, the level it was tested at, and
    the row's confidence interval at that level."""

    verdict: Verdict
    level: float
    ci_low: float | None
    ci_high: float | None
    short_of: float | None = None  # a universal row's violation bound that its trials did not reach


@dataclass
class ClaimRow:
    """One row of a verdict table: a claim and the outcomes of its trials.

    ``ClaimRow(name, kind, statement, ...)`` builds the row type of ``kind``
    (:class:`ProbabilisticRow`, :class:`UniversalRow`, :class:`ScalingRow`), each holding only
    its own counts or estimates. Its verdict is not stored by the row: ``decision`` is None
    until :meth:`Decision.apply` returns decided copies of the rows.
    """

    name: str
    kind: Kind
    statement: str
    primary: bool = True
    role: Role | str = ""
    holds: int = 0
    violations: int = 0
    undecided: int = 0
    errors: int = 0
    diverged: int = 0  # trials whose dynamics blew up: a finding, never a pass
    #: implications only: trials whose hypothesis failed. They are no evidence for or against the
    #: conclusion, so they are not among the row's trials (N) and no interval counts them
    vacuous: int = 0
    figures: dict[str, Any] = field(default_factory=dict)
    counterexample: dict[str, Any] | None = None
    decision: RowDecision | None = None
    #: a fact about fixed inputs (e.g. λ0 > 0 of one data file): the same in every trial, so it
    #: gets no Monte Carlo interval
    deterministic: bool = False
    #: what would decide this row's undecided trials (said when they alone leave it INCONCLUSIVE)
    narrow: str = ""

    def __new__(cls, *args, **kwargs):
        if cls is ClaimRow:
            kind = kwargs.get("kind", args[1] if len(args) > 1 else None)
            cls = _ROW_TYPES[Kind(kind)]
        return super().__new__(cls)

    def __post_init__(self) -> None:
        self.kind = Kind(self.kind)
        self.role = Role(self.role) if self.role else (Role.PRIMARY if self.primary else Role.CONTROL)
        if (self.role == Role.PRIMARY) != self.primary:
            raise ValueError(f"row {self.name}: role {self.role} with primary={self.primary}")

    @property
    def expected_fail(self) -> bool:
        """A control (false by the argument in the row) or a variant (another reading): it must FAIL."""
        return self.role in (Role.CONTROL, Role.VARIANT)

    @property
    def label(self) -> str:
        """The row's name as tables show it."""
        return self.name if self.primary else f"{self.name} ({self.role})"

    @property
    def trials(self) -> int:
        return self.holds + self.violations + self.undecided + self.errors + self.diverged

    # -- the decision, once there is one ------------------------------------------
    @property
    def verdict(self) -> Verdict:
        return self.decision.verdict if self.decision else Verdict.INCONCLUSIVE

    @property
    def level(self) -> float | None:
        return self.decision.level if self.decision else None

    @property
    def ci_low(self) -> float | None:
        return self.decision.ci_low if self.decision else None

    @property
    def ci_high(self) -> float | None:
        return self.decision.ci_high if self.decision else None

    # -- statistics -----------------------------------------------------------------
    def p_values(self) -> tuple[float, float]:
        """(p for deciding PASS, p for deciding FAIL)."""
        raise ValueError(f"no p-values for a {self.kind} claim")

    def interval(self, alpha: float) -> tuple[float | None, float | None]:
        """Confidence interval for the row's quantity at level 1 − alpha."""
        raise NotImplementedError

    def _kind_fields(self) -> dict[str, Any]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        d = {
            "name": self.name,
            "kind": str(self.kind),
            "primary": self.primary,
            "role": str(self.role),
            "statement": self.statement,
            "verdict": str(self.verdict),
            "trials": self.trials,
            "holds": self.holds,
            "violations": self.violations,
            "undecided": self.undecided,
            "errors": self.errors,
            "diverged": self.diverged,
            "vacuous": self.vacuous,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "confidence": 1.0 - (self.level if self.level is not None else 0.05),
        }
        if self.deterministic:
            d["deterministic"] = True  # (no interval: ci_low and ci_high are null)
        if self.expected_fail:
            d["expected"] = "fail"  # (shown as XFAIL when it does, XPASS "lacks power" when it passes)
        d.update(self._kind_fields())
        d.update(self.figures)
        if self.counterexample is not None:
            d["counterexample"] = self.counterexample
        return d


@dataclass
class ProbabilisticRow(ClaimRow):
    """"P(holds) ≥ target": Clopper–Pearson intervals and exact binomial p-values."""

    target: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.target is None or not 0.0 < self.target < 1.0:
            raise ValueError(f"row {self.name}: a probabilistic claim needs a target in (0, 1)")

    def p_values(self) -> tuple[float, float]:
        n = self.trials
        # errored trials count against PASS and are not evidence for FAIL
        p_pass = p_value_above(self.holds, n, self.target)
        p_fail = p_value_below(self.holds + self.undecided + self.errors + self.diverged, n, self.target)
        return p_pass, p_fail

    def interval(self, alpha: float) -> tuple[float | None, float | None]:
        n = self.trials
        return (cp_lower(self.holds, n, alpha),
                cp_upper(self.holds + self.undecided + self.errors + self.diverged, n, alpha))

    def _kind_fields(self) -> dict[str, Any]:
        return {"target_probability": self.target, "interval_of": "probability that the claim holds"}


@dataclass
class UniversalRow(ClaimRow):
    """A statement about every trial: one verified violation is a counterexample."""

    def interval(self, alpha: float) -> tuple[float | None, float | None]:
        n = self.trials  # bound on the probability of a violation
        if n == 0:
            return 0.0, 1.0
        lo = cp_lower(self.violations + self.diverged, n, alpha)
        hi = cp_upper(self.violations + self.diverged + self.undecided + self.errors, n, alpha)
        return lo, hi

    def _kind_fields(self) -> dict[str, Any]:
        return {"interval_of": "probability of a violation"}


@dataclass
class ScalingRow(ClaimRow):
    """"log-log slope ≤ tolerance", by the permutation test of :class:`SlopeSample`."""

    tolerance: float | None = None
    measured: int = 0  # trials that contributed a measurement
    estimate: float | None = None
    slopes: SlopeSample | None = None

    @property
    def trials(self) -> int:
        return super().trials + self.measured

    def p_values(self) -> tuple[float, float]:
        if self.slopes is None:
            return 1.0, 1.0
        return self.slopes.p_values(self.tolerance)

    def interval(self, alpha: float) -> tuple[float | None, float | None]:
        if self.slopes is None:
            return None, None
        return self.slopes.interval(alpha)

    def _kind_fields(self) -> dict[str, Any]:
        return {"slope": self.estimate, "tolerance": self.tolerance, "interval_of": "log-log slope"}


_ROW_TYPES = {Kind.PROBABILISTIC: ProbabilisticRow, Kind.UNIVERSAL: UniversalRow, Kind.SCALING: ScalingRow}


def _decide_universal(row: ClaimRow, alpha: float, bound: float | None = None) -> RowDecision:
    """Counterexample → FAIL; no violation and nothing undecided → PASS, unless ``bound`` is given
    and the upper bound on P(violation) does not reach it (then INCONCLUSIVE, ``short_of`` = bound)."""
    lo, hi = (None, None) if row.deterministic else row.interval(alpha)
    if row.violations > 0 or row.diverged > 0:
        v = FAIL
    elif row.undecided > 0 or row.errors > 0 or row.trials == 0:
        v = INCONCLUSIVE  # (trials == 0 with vacuous > 0: the hypothesis never held)
    elif bound is not None and hi is not None and hi > bound * (1 + 1e-9):  # (1e-9: the plan's rounding)
        return RowDecision(INCONCLUSIVE, alpha, lo, hi, short_of=bound)
    else:
        v = PASS
    return RowDecision(v, alpha, lo, hi)


def _decide_by_p(row: ClaimRow, alpha: float, rejected: bool) -> RowDecision:
    lo, hi = row.interval(alpha)
    if row.diverged > 0:  # a divergence is a finding: the claim's dynamics blew up
        v = FAIL
    elif not rejected:
        v = INCONCLUSIVE
    else:
        p_pass, p_fail = row.p_values()
        v = PASS if p_pass <= p_fail else FAIL
        if v == PASS and row.errors > 0:  # an errored trial can never pass a claim
            v = INCONCLUSIVE
    return RowDecision(v, alpha, lo, hi)


@dataclass(frozen=True)
class Decision:
    """The verdicts of one table, as :func:`decide` returns them: per row, and overall."""

    verdict: Verdict
    rows: dict[str, RowDecision]

    def apply(self, rows: list[ClaimRow]) -> list[ClaimRow]:
        """Copies of ``rows`` carrying their decisions (the rows themselves are left alone)."""
        return [replace(r, decision=self.rows[r.name]) for r in rows]


def decide(rows: list[ClaimRow], confidence: float, universal_bound: float | None = None) -> Decision:
    """The verdict, level and interval of every row, and the table's verdict; mutates nothing.

    Holm's step-down over the primary statistical rows (probabilistic and
    scaling). Universal rows are decided by counterexample (no error possible
    for FAIL); their PASS reports a bound at the Bonferroni level α/K, where K
    counts all primary rows, so the family-wise statement still holds. With
    ``universal_bound`` (trials=auto, which plans its trials for that bound) a primary
    universal row PASSes only if that bound on P(violation) is reached: an implication
    whose hypothesis held in too few trials is INCONCLUSIVE, not a PASS on next to no evidence.
    Non-primary rows are decided alone at level α.
    """
    if len({r.name for r in rows}) != len(rows):
        raise ValueError("decide: row names must be unique in a table")
    alpha = 1.0 - confidence
    primary = [r for r in rows if r.primary]
    k_all = max(1, len(primary))
    stat_rows = [r for r in primary if r.kind in (PROBABILISTIC, SCALING)]
    out: dict[str, RowDecision] = {}
    for r in primary:
        if r.kind == UNIVERSAL:
            out[r.name] = _decide_universal(r, alpha / k_all, universal_bound)
    # Holm step-down
    k = len(stat_rows)
    scored = sorted(stat_rows, key=lambda r: min(r.p_values()))
    stopped = False
    for j, r in enumerate(scored):
        level = alpha / (k - j)
        if not stopped and min(r.p_values()) <= level:
            out[r.name] = _decide_by_p(r, level, True)
        else:
            stopped = True
            out[r.name] = _decide_by_p(r, level, False)
    for r in rows:
        if r.primary:
            continue
        if r.kind == UNIVERSAL:
            out[r.name] = _decide_universal(r, alpha)
        else:
            out[r.name] = _decide_by_p(r, alpha, min(r.p_values()) <= alpha)
    verdicts = [out[r.name].verdict for r in primary]
    return Decision(_overall(verdicts), out)


def _overall(verdicts: list[Verdict]) -> Verdict:
    if FAIL in verdicts:
        return FAIL
    if INCONCLUSIVE in verdicts or not verdicts:
        return INCONCLUSIVE
    return PASS


def trials_to_pass(holds: int, n: int, target: float, alpha: float, limit: int = 1 << 22) -> int | None:
    """The fewest trials N ≥ n at which the observed rate, kept (⌊holds·N/n⌋ of N hold), would
    pass "P(holds) ≥ target" at level alpha; None when the rate is not above the target or N
    would exceed ``limit``. The p-value is not monotone in N (the floor), so every N up to the
    first passing power of two is scanned, vectorised."""
    if n <= 0 or holds / n <= target:
        return None
    import numpy as np

    def first(lo: int, hi: int) -> int | None:
        big = np.arange(lo, hi + 1)
        k = holds * big // n
        ok = (k > 0) & (_binom_sf(k - 1, big, target) <= alpha)
        return int(big[np.argmax(ok)]) if ok.any() else None

    lo = hi = n
    while lo <= limit:
        got = first(lo, min(hi, limit))
        if got is not None:
            return got
        lo, hi = hi + 1, 2 * hi
    return None


def why_inconclusive(row: ClaimRow) -> str | None:
    """One sentence saying why a decided row is INCONCLUSIVE and what would decide it: its
    hypothesis never held, errored trials, undecided trials that alone keep it from passing
    (more trials do not help then), a sequential budget spent, or too few trials (how many
    would do at the observed rate)."""
    if row.verdict != INCONCLUSIVE or row.decision is None:
        return None
    n, level = row.trials, row.level
    if n == 0:
        if row.vacuous:
            return (f"the hypothesis failed in all {row.vacuous} trials, so none is evidence for the "
                    "implication; change the scenario so that it holds (e.g. a larger width).")
        return "no trial measured this claim."
    if row.kind == SCALING:
        return ("the slope's interval still contains the tolerance: more trials per width, or widths "
                "further apart, narrow it.")
    if row.errors:
        return (f"{row.errors} of {n} trials failed numerically, and an errored trial never passes a "
                "claim; replay them (below) to see why.")
    if row.kind == UNIVERSAL and not row.undecided:  # too little evidence: auto's bound, or a sequential budget
        held = f"its hypothesis held in only {n} of {n + row.vacuous} trials" if row.vacuous else f"only {n} trials"
        more = "; a scenario where the hypothesis holds more often (e.g. a larger width) gives more evidence."
        if row.decision.short_of is not None:
            return (f"{held}: with no violation P(violation) ≤ {fmt_p(row.ci_high)}, short of the bound "
                    f"{fmt_p(row.decision.short_of)} that --trials auto plans for"
                    + (more if row.vacuous else "; a complete run reaches it."))
        if "e_value" in row.figures:
            return (f"{held}: with no violation its e-value {fmt_p(row.figures['e_value'] or 0.0)} did not "
                    f"reach {fmt_p(row.figures['e_value_needed'])} within the budget; a larger max_trials (or "
                    "max_seconds) gives it more looks" + (more if row.vacuous else "."))
    if row.kind == UNIVERSAL:  # (no violation, no error: undecided trials)
        return (f"{row.undecided} of {n} trials are undecided (within the error bound of the claim's "
                "bound) and they alone keep it from passing; more trials will not help"
                + (f": {row.narrow}." if row.narrow else ", a tighter bound will (a smaller tolerance, or a "
                   "scenario further from the boundary)."))
    target = row.target
    if row.undecided and p_value_above(row.holds + row.undecided, n, target) <= level:
        return (f"{row.undecided} of {n} trials are undecided (their certificate brackets the "
                "threshold) and they alone keep it from passing; more trials will be undecided as "
                "often, a narrower bracket helps instead" + (f": {row.narrow}." if row.narrow else "."))
    if "e_value" in row.figures and "e_value_needed" in row.figures:  # (decided by --trials sequential)
        return (f"its e-value {fmt_p(row.figures['e_value'] or 0.0)} did not reach "
                f"{fmt_p(row.figures['e_value_needed'])} within the budget; a larger max_trials (or "
                "max_seconds) gives it more looks.")
    need = trials_to_pass(row.holds, n, target, level)
    if need is None:
        return (f"the claim held in {row.holds} of {n} trials, a rate not above the target {fmt_p(target)}: "
                "more trials at this rate would not pass it, and too few show it below the target.")
    return (f"too few trials: at the observed rate ({row.holds}/{n}) about {need} would decide it "
            f"(--trials {need}, or --trials sequential).")


def fmt_p(x: float) -> str:
    return f"{x:.4g}"
