"""What every check provides, and the inputs shared by the NTK family.

A check reads like the statement it tests: ``statement`` quotes the corrected
claim, ``rows`` lists the claim rows (empty counts), ``run_trial`` returns plain
numbers and per-row outcomes for one trial, and ``summarize`` turns the trials'
numbers into the rows' figures. Everything statistical lives in ``stats`` and
everything visual in ``report``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

import numpy as np

from .. import data as data_mod
from ..errors import UserError
from ..kernels import Lambda0, lambda0
from ..scenario import BaseScenario, Strict, scenario_model
from ..stats import SCALING, ClaimRow, Verdict

class Outcome(StrEnum):
    """What one trial says of one claim row."""

    HOLDS = "holds"
    VIOLATION = "violation"
    UNDECIDED = "undecided"  # neither certified nor refuted within the numerical error
    ERROR = "error"  # the trial's numbers were not finite
    DIVERGED = "diverged"  # the dynamics blew up: a finding, never a pass
    #: an implication whose hypothesis failed in this trial: no evidence either way, never counted in N
    VACUOUS = "vacuous"


HOLDS, VIOLATION, UNDECIDED, ERROR, DIVERGED, VACUOUS = (Outcome.HOLDS, Outcome.VIOLATION, Outcome.UNDECIDED,
                                                         Outcome.ERROR, Outcome.DIVERGED, Outcome.VACUOUS)
#: the ClaimRow counter each per-trial outcome adds to
OUTCOME_FIELD = {HOLDS: "holds", VIOLATION: "violations", UNDECIDED: "undecided", ERROR: "errors",
                 VACUOUS: "vacuous", DIVERGED: "diverged"}


@dataclass
class TrialResult:
    index: int
    outcomes: dict[str, Outcome]  # row name → its outcome in this trial
    values: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    note: str | None = None  # a finding worth a sentence (e.g. a divergence)
    #: sampled curves for --plot (e.g. cor24's t and loss ratio), not part of the verdict
    series: dict[str, list[float]] = field(default_factory=dict)
    #: with Context.keep_points: the points of the trial's evidence (lemma23: the attack's W)
    points: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Context:
    """What a check prepares once per run (data, λ0, derived constants)."""

    quantities: dict[str, Any] = field(default_factory=dict)  # reported (JSON-able) figures
    notes: list[str] = field(default_factory=list)
    state: Any = None  # the check's own typed dataclass of what its trials need
    trial_bytes: float = 0.0  # memory one trial needs (the workers running side by side multiply it)
    keep_points: bool = False  # a replay asked for the trial's witness points (TrialResult.points)


class Check:
    name: ClassVar[str]
    title: ClassVar[str]
    ref: ClassVar[str]  # short reference for one-line listings
    source: ClassVar[str]
    statement: ClassVar[str]
    typos: ClassVar[list[str]] = []
    method: ClassVar[str] = ""
    #: scenario keys (or key prefixes ending in '.') this check ignores; a note says so when set
    unused_keys: ClassVar[tuple[str, ...]] = ("data.labels.",)
    claim_model: ClassVar[type[Strict]]
    default: ClassVar[dict[str, Any]]

    #: whether trials=sequential applies (False for checks whose primary rows are slopes across
    #: widths: their permutation test is a fixed-sample test, so they run trials=auto)
    sequential: ClassVar[bool] = True

    #: further scenario sections of this check, e.g. {"dynamics": DynamicsSpec}
    sections: ClassVar[dict[str, type[Strict]]] = {}

    @classmethod
    def scenario_model(cls) -> type[BaseScenario]:
        return scenario_model(cls.name, cls.claim_model, cls.sections)

    @classmethod
    def default_scenario(cls) -> dict[str, Any]:
        return {"check": cls.name, **cls.default}

    def prepare(self, sc: BaseScenario, explicit: set[str], rng: np.random.Generator) -> Context:
        raise NotImplementedError

    def rows(self, sc: BaseScenario, ctx: Context) -> list[ClaimRow]:
        raise NotImplementedError

    def fixed_trials(self, sc: BaseScenario, ctx: Context) -> int | None:
        """A trial count forced by the scenario (e.g. one fixed data set), or None."""
        return None

    def run_trial(self, sc: BaseScenario, ctx: Context, rng: np.random.Generator, index: int
                  ) -> TrialResult:
        raise NotImplementedError

    def summarize(self, sc: BaseScenario, ctx: Context, rows: list[ClaimRow],
                  trials: list[TrialResult]) -> None:
        """Fill the rows' figures and the run's quantities from the trials."""

    def verdict_notes(self, sc: BaseScenario, ctx: Context, rows: list[ClaimRow]) -> list[str]:
        """Sentences on what the decided ``rows`` do and do not show (e.g. a FAIL that only
        bounds an unspecified constant). Here: what a failing primary scaling row shows; a check
        with more to say extends this list."""
        failed = [r.name for r in rows if r.primary and r.kind == SCALING and r.verdict == Verdict.FAIL]
        if not failed:
            return []
        return [f"{', '.join(failed)}: a scaling claim FAILs when the slope fitted over this grid is above its "
                "tolerance. The statement's constant is unspecified and finitely many grid points cannot refute "
                "that one exists, so this FAIL is the rate measured on this range, not a counterexample; a grid "
                "reaching larger values tests the asymptotic rate."]


def at_most(value: float, bound: float, tol: float) -> str:
    """The outcome of "value ≤ bound" for a value known within ``tol``: holds below bound − tol,
    a violation above bound + tol, undecided between. (For "value ≥ bound", pass −value, −bound.)"""
    if value <= bound - tol:
        return HOLDS
    return VIOLATION if value > bound + tol else UNDECIDED


def decided(violated, certified) -> str:
    """The outcome from its two tests: a violation if ``violated``, else holds if ``certified``,
    else undecided."""
    return VIOLATION if violated else HOLDS if certified else UNDECIDED


def joint(*outcomes: str) -> str:
    """The outcome of "every conclusion holds" from each conclusion's outcome in the same trial:
    a violation of any breaks it; it holds only when all hold; else it is undecided."""
    if VIOLATION in outcomes:
        return VIOLATION
    return HOLDS if all(o == HOLDS for o in outcomes) else UNDECIDED


# ----------------------------------------------------------------------- NTK inputs
def load_inputs(sc: BaseScenario, explicit: set[str], rng: np.random.Generator) -> data_mod.Inputs:
    """Inputs of the scenario: sampled with the data stream, or read from data.path."""
    spec = sc.data
    if spec.source == "file":
        X = data_mod.validate_inputs(data_mod.load_array(spec.path), f"data file '{spec.path}'")
        for key, actual in (("data.n", X.shape[0]), ("data.d", X.shape[1])):
            given = getattr(spec, key.split(".")[1])
            if key in explicit and given != actual:
                raise UserError(f"scenario key '{key}' is {given} but data file '{spec.path}' "
                                f"has {actual} {'rows' if key == 'data.n' else 'columns'}.")
        return data_mod.normalize(X, f"'{spec.path}'")
    X = data_mod.sample(spec.source, spec.n, spec.d, rng)
    return data_mod.normalize(X, f"the {spec.source} distribution")


def require_lambda0(inputs: data_mod.Inputs) -> Lambda0:
    """λ0 for checks that need λ0 > 0, decided from λ0 itself (certified above its numerical
    error), not from the angles: anti-parallel rows, or rows nearly parallel to a cosine
    tolerance, can still give a certified λ0 > 0. Refuse data whose λ0 is not certified."""
    lam = lambda0(inputs.X)
    if not lam.certified_positive:
        i, j, cos = data_mod.most_parallel_pair(inputs.X)
        raise UserError(f"this check needs λ0 = λ_min(H∞) > 0, but λ0 = {lam.value:.3g} is not above its "
                        f"numerical error {lam.error:.1g} (most nearly parallel: rows {i} and {j}, "
                        f"{data_mod.describe_cos(inputs.X, i, j)}).")
    return lam


def ntk_quantities(inputs: data_mod.Inputs, lam: Lambda0, m: int) -> dict[str, Any]:
    i, j, cos = data_mod.most_parallel_pair(inputs.X)
    return {"n": inputs.n, "d": inputs.d, "m": m, "lambda0": lam.value,
            "lambda0_error": lam.error, "most_parallel_pair": [i, j], "most_parallel_abs_cos": cos,
            "most_parallel_1_minus_abs_cos": data_mod.parallel_gap(inputs.X, i, j)}


def finite(values: dict[str, float]) -> bool:
    return all(np.isfinite(v) for v in values.values() if isinstance(v, (float, int, np.floating)))
