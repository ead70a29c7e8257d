"""The Python API: ``run_check(name, scenario=None, **overrides)``.

The result object carries the same fields as the ``--json`` output
(the command-line JSON); ``result.to_dict()`` is exactly that JSON object.
"""
from __future__ import annotations

import math
import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml
from threadpoolctl import threadpool_limits

from . import __version__
from .checks import get_check
from .checks.base import (DIVERGED, ERROR, HOLDS, OUTCOME_FIELD, VACUOUS, VIOLATION, Check, Context,
                          TrialResult)
from . import errors
from .errors import ExitCode, UserError
from .scenario import BaseScenario, get_path, resolve, short
from .planning import trials_needed
from .stats import FAIL, INCONCLUSIVE, PASS, SCALING, UNIVERSAL, ClaimRow, Decision, RowDecision, Verdict, decide
from .memory import workers_that_fit
from .trials import Interrupted, available_cores, data_rng, run_one, run_trials, trial_seed_sequence

#: named overrides and the scenario keys they set
OPTION_KEYS = {"m": "network.m", "n": "data.n", "d": "data.d", "trials": "trials",
               "seed": "seed", "confidence": "confidence", "workers": "compute.workers",
               "scheduler": "compute.scheduler", "max_trials": "max_trials", "max_seconds": "max_seconds"}
from .scenario import MAX_TRIALS  # noqa: E402  (one limit, stated with the scenario keys)
#: trials=auto runs at most this many times the planned trials while hypotheses keep failing
AUTO_VACUOUS_FACTOR = 10


@dataclass
class Result:
    """A finished run: verdicts per claim and the figures behind them."""

    check: str
    title: str
    statement: str
    source: str
    verdict: Verdict
    seed: int
    scenario: dict[str, Any]
    quantities: dict[str, Any]
    rows: list[ClaimRow]
    notes: list[str] = field(default_factory=list)
    trials: int = 0
    trial_errors: list[dict[str, Any]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False
    planned_trials: int = 0
    scenario_path: str | None = None
    elapsed_seconds: float = 0.0
    ntkcheck_version: str = __version__
    #: one record per trial run, in trial order: {"trial", "error", each row's outcome as
    #: "outcome.ROW", each value the trial computed} (not in the JSON; ``trials`` is their count)
    trial_records: list[dict[str, Any]] = field(default_factory=list, repr=False)
    #: trial → its sampled curves (cor24: "t" and "loss_ratio"), for the run's picture
    trial_series: dict[int, dict[str, list[float]]] = field(default_factory=dict, repr=False)

    def to_frame(self):
        """The per-trial records as a pandas DataFrame (pandas is not a dependency)."""
        try:
            import pandas as pd
        except ImportError:
            raise UserError("Result.to_frame needs pandas (pip install pandas); Result.trial_records "
                            "holds the same records as dicts.") from None
        return pd.DataFrame.from_records(self.trial_records)

    @property
    def claims(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.rows]

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return errors.interrupted_code()
        return {PASS: ExitCode.OK, FAIL: ExitCode.FAILED, INCONCLUSIVE: ExitCode.INCONCLUSIVE}[self.verdict]

    @property
    def weak_variants(self) -> list[str]:
        """Control rows (false by the argument in the row) and variant rows (other readings) that
        did not FAIL: the check lacks power there."""
        return [r.name for r in self.rows if r.expected_fail and r.verdict != FAIL]

    def _repr_html_(self) -> str:
        """The verdict table in a notebook."""
        from .report import to_html_table

        return to_html_table(self)

    def to_dict(self) -> dict[str, Any]:
        return _clean({
            "ntkcheck_version": self.ntkcheck_version,
            "check": self.check,
            "statement": self.statement,
            "source": self.source,
            "verdict": self.verdict,
            "exit_code": int(self.exit_code),
            "seed": self.seed,
            "trials": self.trials,
            "planned_trials": self.planned_trials,
            "interrupted": self.interrupted,
            "scenario_path": self.scenario_path,
            "scenario": self.scenario,
            "quantities": self.quantities,
            "claims": self.claims,
            "variants_lacking_power": self.weak_variants,
            "trial_errors": self.trial_errors,
            "findings": self.findings,
            "notes": self.notes,
            "elapsed_seconds": self.elapsed_seconds,
        })


@dataclass
class Replay:
    """One trial re-run alone, with every quantity it computed."""

    check: str
    seed: int
    trial: int
    spawn_key: list[int]
    outcomes: dict[str, str]
    values: dict[str, float]
    error: str | None
    quantities: dict[str, Any]
    #: replay_trial(..., points=True): the trial's witness points (lemma23: "attack_norm" and
    #: "attack_lambda_min", the W of the ball reaching each attack value); not in the JSON
    points: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def did_not_reproduce(self, expected: dict[str, str]) -> list[tuple[str, str, str]]:
        """(claim, expected, got) for every expected outcome this replay does not show (as
        Hypothesis's reproduce_failure raises DidNotReproduce)."""
        unknown = sorted(set(expected) - set(self.outcomes))
        if unknown:
            raise UserError(f"--expect names claim '{unknown[0]}', which {self.check} does not have; "
                            f"its claims: {', '.join(self.outcomes)}.")
        return [(k, v, self.outcomes[k]) for k, v in expected.items() if self.outcomes[k] != v]

    def to_dict(self) -> dict[str, Any]:
        return _clean({**{k: v for k, v in self.__dict__.items() if k != "points"}, "ntkcheck_version": __version__})


def _clean(obj: Any) -> Any:
    """JSON-safe: numpy scalars to Python, tuples to lists; NaN/inf never leave as numbers."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if np.isfinite(f) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


# ---------------------------------------------------------------------------------
def array_file(values, what: str) -> str:
    """An array given to the API (data=X, labels=y) as a .npy file named by its contents, in
    the temporary folder: the trials (in other processes too) and the replay commands read it
    as they read any data file, and the same array is the same file."""
    import hashlib
    import tempfile

    arr = np.asarray(values)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise UserError(f"{what} must be a numeric array (got dtype {arr.dtype}).")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    digest = hashlib.sha256(arr.tobytes() + str(arr.shape).encode()).hexdigest()[:20]
    folder = Path(tempfile.gettempdir()) / "ntkcheck-arrays"
    folder.mkdir(exist_ok=True)
    path = folder / f"{what}-{digest}.npy"
    if not path.exists():
        import io

        from .report import write_atomic

        buf = io.BytesIO()
        np.save(buf, arr)
        write_atomic(path, buf.getvalue())
    return str(path)


def build_scenario(check: Check, scenario: str | Path | dict | None, overrides: dict[str, Any]
                   ) -> tuple[BaseScenario, set[str]]:
    opts: dict[str, Any] = {}
    sets = overrides.pop("sets", None) or []
    if isinstance(sets, dict):  # {"dynamics.T": 2}: dotted keys and values
        opts.update(sets)
        sets = []
    if not isinstance(sets, (list, tuple)) or not all(isinstance(x, str) for x in sets):
        raise UserError(f"sets must be a list of 'KEY=VALUE' strings or a dict of dotted keys (got {short(sets)}).")
    sets = list(sets)
    data = overrides.pop("data", None)
    labels = overrides.pop("labels", None)
    for k, v in overrides.items():
        if "." in k:  # run_check(..., **{"claim.c": 100}): a dotted scenario key
            opts[k] = v
        elif k in OPTION_KEYS:
            opts[OPTION_KEYS[k]] = v
        else:
            raise UserError(f"unknown override '{k}'; use {', '.join(OPTION_KEYS)}, data, labels, sets "
                            "or a dotted scenario key.")
    if data is not None and not isinstance(data, (str, os.PathLike)):
        data = array_file(data, "data")
    if labels is not None and not isinstance(labels, (str, os.PathLike)):
        labels = array_file(labels, "labels")
    if data is not None:
        opts["data.source"] = "file"
        opts["data.path"] = str(Path(data).expanduser())
    if labels is not None:
        opts["data.labels.source"] = "file"
        opts["data.labels.path"] = str(Path(labels).expanduser())
    from .scenario import deep_merge, project_defaults

    model = check.scenario_model()
    default = deep_merge(check.default_scenario(), project_defaults())  # [tool.ntkcheck] under everything else
    if "compute.scheduler" not in opts and os.environ.get("NTKCHECK_SCHEDULER"):
        opts["compute.scheduler"] = os.environ["NTKCHECK_SCHEDULER"]
    if isinstance(scenario, dict):
        from .scenario import SCHEDULER_REFUSED, leaf_keys  # a dict behaves like a scenario file
        if "compute.scheduler" in leaf_keys(scenario):
            raise UserError(SCHEDULER_REFUSED.format(where="the scenario"))
        sc, explicit = resolve(model, deep_merge(default, scenario), None, opts, sets)
        return sc, explicit | leaf_keys(scenario)
    return resolve(model, default, scenario, opts, sets)


def replay_command(check: Check, sc: BaseScenario, trial: int, expect: tuple[str, str] | None = None) -> str:
    """A pasteable command that re-runs trial ``trial`` of this scenario alone: it carries every
    scenario key that differs from the check's default (so no scenario file is needed) and,
    with ``expect`` = (claim, outcome), the outcome the replay must show."""
    default = check.scenario_model().model_validate(check.default_scenario()).model_dump()
    parts = ["ntkcheck", check.name, "--seed", str(sc.seed)]
    now = sc.model_dump()
    if sc.data.source == "file":
        parts += ["--data", str(Path(sc.data.path).resolve())]
    if sc.data.labels.source == "file":
        parts += ["--labels", str(Path(sc.data.labels.path).resolve())]
    for key, value in _flat_diff(default, now):
        # (trials stays: lemma43 maps a trial index to a width through the trials per width)
        # (compute.backend changes no number: every backend gives the same counts)
        if key in ("seed", "confidence", "data.path", "data.labels.path", "compute.workers",
                   "compute.scheduler", "compute.backend"):
            continue
        if (key == "data.source" and value == "file") or (key == "data.labels.source" and value == "file"):
            continue  # --data / --labels say so
        if sc.data.source == "file" and key in ("data.n", "data.d"):
            continue
        flag = {v: k for k, v in OPTION_KEYS.items()}.get(key)
        text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
        parts += [f"--{flag}", text] if flag else ["--set", f"{key}={text}"]
    parts += ["--replay", str(trial)]
    if expect is not None:
        parts += ["--expect", f"{expect[0]}={expect[1]}"]
    return " ".join(shlex.quote(p) for p in parts)


def _flat_diff(a: dict, b: dict, prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for k, v in b.items():
        if isinstance(v, dict):
            out += _flat_diff(a.get(k, {}) or {}, v, f"{prefix}{k}.")
        elif a.get(k) != v:
            out.append((f"{prefix}{k}", v))
    return out


def prepare(name: str, scenario, overrides) -> tuple[Check, BaseScenario, Context]:
    check = get_check(name)
    sc, explicit = build_scenario(check, scenario, dict(overrides))
    fallback = sc.trials == "sequential" and not check.sequential
    if fallback:
        sc = sc.model_copy(update={"trials": "auto"})
    from .kernels import backend
    try:  # (torch asked for and not installed: said before any work, by using's own check)
        with backend.using(sc.compute.backend):
            ctx = check.prepare(sc, explicit, data_rng(sc.seed))
    except backend.BackendError as e:
        raise UserError(f"{e}.") from None
    if fallback:
        ctx.notes.append(f"trials=sequential does not apply to {check.name}: its primary rows are slopes across "
                         "widths, decided by a permutation test of a fixed sample; trials=auto is used.")
    dumped, default = sc.model_dump(), check.default_scenario()
    for key in check.unused_keys:
        # (a key set to its default, e.g. by a scenario file written out from it, changes nothing to warn of)
        given = sorted(k for k in explicit if (k == key or (key.endswith(".") and k.startswith(key)))
                       and get_path(dumped, k) != get_path(default, k))
        if given:
            ctx.notes.append(f"{check.name} does not use {', '.join(given)}; the value given has no effect.")
    return check, sc, ctx


def trial_count(check: Check, sc: BaseScenario, ctx: Context, rows: list[ClaimRow]) -> tuple[int, str]:
    """How many trials the run makes, and the rule that fixed the number."""
    fixed = check.fixed_trials(sc, ctx)
    if fixed is not None:
        return fixed, "fixed by the scenario"
    if sc.trials == "sequential":
        from .sequential import BATCH
        return min(BATCH, sc.max_trials), (f"sequential: batches of {BATCH} until every primary row is decided, "
                                           f"at most {sc.max_trials}")
    if sc.trials != "auto":
        return sc.trials, "set by trials"
    try:
        n = trials_needed(rows, sc.confidence, universal_bound=sc.violation_bound, cap=MAX_TRIALS)
    except ValueError as e:
        raise UserError(f"trials=auto would need {e.args[0]} trials at confidence "
                        f"{sc.confidence}; lower the confidence or set --trials.") from None
    return n, "auto: the fewest for which all-holding trials PASS every primary row"


def plan_trials(name: str, scenario=None, **overrides: Any) -> dict[str, Any]:
    """The trial count a run would use and, per primary row, what that number buys."""
    check, sc, ctx = prepare(name, scenario, overrides)
    rows = check.rows(sc, ctx)
    n, rule = trial_count(check, sc, ctx, rows)
    alpha = 1.0 - sc.confidence
    k = max(1, sum(r.primary for r in rows))
    lines = []
    for r in rows:
        if not r.primary:
            continue
        if r.kind == "probabilistic":
            need = trials_needed([r], 1 - alpha / k)
            lines.append(f"{r.name}: P(holds) ≥ {r.target:g} needs ≥ {need} trials, all holding, at level "
                         f"α/{k} (Holm's first step); each failing trial raises the count")
        elif r.kind == "universal":
            lines.append(f"{r.name}: no violation in {n} trials bounds P(violation) by "
                         f"{1 - (alpha / k) ** (1 / max(n, 1)):.3g}")
        else:
            lines.append(f"{r.name}: slope from the trials at each width, exact permutation test")
    workers = available_cores() if sc.compute.workers == "auto" else sc.compute.workers
    out = {"trials": n, "rule": rule, "confidence": sc.confidence, "rows": lines, "workers": workers}
    if sc.trials == "sequential" and check.fixed_trials(sc, ctx) is None:
        # per primary row: (its target, the level it is tested at); universal rows as P(clean) ≥ 1 − bound
        out["sequential"] = {"rows": [(r.target if r.kind == "probabilistic" else 1.0 - sc.violation_bound, alpha / k)
                                      for r in rows if r.primary and r.kind != "scaling"],
                             "max_trials": sc.max_trials}
    return out


def trial_records(results: list[TrialResult]) -> list[dict[str, Any]]:
    """The trials as flat records, in trial order (see :attr:`Result.trial_records`)."""
    out = []
    for t in sorted(results, key=lambda t: t.index):
        rec: dict[str, Any] = {"trial": t.index, "error": t.error}
        rec.update({f"outcome.{k}": str(v) for k, v in t.outcomes.items()})
        rec.update(t.values)
        out.append(rec)
    return out


def _interrupted_before_trials(name: str, scenario, overrides: dict[str, Any], elapsed: float) -> Result:
    """The Result of a run stopped (Ctrl-C, SIGTERM, SIGHUP) while it prepared — its data, λ0,
    constants — before any trial: no rows, marked interrupted, so the outputs still say what
    was asked and that nothing was decided."""
    check = get_check(name)
    sc, _ = build_scenario(check, scenario, dict(overrides))
    return Result(check=check.name, title=check.title, statement=check.statement, source=check.source,
                  verdict=INCONCLUSIVE, seed=sc.seed, scenario=sc.model_dump(), quantities={}, rows=[],
                  notes=["interrupted while the run was prepared (data, λ0, constants): no trial ran."],
                  interrupted=True, elapsed_seconds=elapsed)


def run_check(name: str, scenario: str | Path | dict | None = None, *,
              on_trial: Callable[[TrialResult], None] | None = None,
              on_plan: Callable[[int], None] | None = None, **overrides: Any) -> Result:
    """Run check ``name`` and return its :class:`Result`.

    ``scenario`` is a YAML path, a dict of scenario keys, or None for the
    built-in default. ``overrides``: ``m, n, d, trials, seed, confidence``,
    ``data`` (a file path) and ``sets`` (a list of ``"dotted.key=value"``).
    """
    t0 = time.perf_counter()
    try:
        check, sc, ctx = prepare(name, scenario, overrides)
    except KeyboardInterrupt:  # Ctrl-C (or SIGTERM/SIGHUP) before any trial: said, as during the trials
        return _interrupted_before_trials(name, scenario, overrides, time.perf_counter() - t0)
    rows = check.rows(sc, ctx)
    n_trials, _ = trial_count(check, sc, ctx, rows)
    if on_plan is not None:
        on_plan(n_trials)
    workers = available_cores() if sc.compute.workers == "auto" else sc.compute.workers
    if not sc.compute.scheduler:  # local worker processes share this machine's memory
        workers, note = workers_that_fit(ctx.trial_bytes, min(workers, n_trials), sc.compute.workers != "auto",
                                         f"{check.name} with these sizes")
        if note:
            ctx.notes.append(note)
    interrupted = False
    results: list[TrialResult] = []
    planned = n_trials
    if sc.trials == "sequential" and check.fixed_trials(sc, ctx) is None:
        return _run_sequential(check, sc, ctx, rows, on_trial, on_plan, workers, t0)
    auto = sc.trials == "auto" and check.fixed_trials(sc, ctx) is None
    try:
        results = run_trials(check, sc, ctx, range(n_trials), on_trial, workers=workers,
                             scheduler=sc.compute.scheduler)
        # trials=auto: an implication's evidence is the trials in which its hypothesis held, so
        # more trials run (up to AUTO_VACUOUS_FACTOR × the plan) until each primary implication
        # has the planned number. The stopping rule reads only whether hypotheses held, which
        # is independent of the conclusions given that they held: the count stays valid. Where
        # the cap leaves too few, the row does not PASS (decide's universal_bound, below)
        cap = min(MAX_TRIALS, AUTO_VACUOUS_FACTOR * n_trials)
        while auto and len(results) < cap:
            short = _evidence_shortfall(rows, results, n_trials)
            if short is None:
                break
            missing, rate = short
            more = min(cap - len(results), max(n_trials // 4, math.ceil(missing / max(rate, 0.05))))
            start = len(results)
            planned = start + more
            if on_plan is not None:
                on_plan(planned)
            results += run_trials(check, sc, ctx, range(start, start + more), on_trial,
                                  workers=min(workers, more), scheduler=sc.compute.scheduler)
    except Interrupted as e:
        results, interrupted = results + e.done, True
        ctx.notes.append(f"interrupted: {len(results)} of {planned} trials were done; the verdicts below "
                         "are those of the trials done.")
    errors, findings = _tally(check, sc, rows, results)
    check.summarize(sc, ctx, rows, [t for t in results if t.error is None])
    # (auto planned its trials for violation_bound: a universal row PASSes only if it is reached)
    decision = decide(rows, sc.confidence, universal_bound=sc.violation_bound if auto else None)
    rows = decision.apply(rows)
    verdict = decision.verdict
    for r in rows:
        if r.diverged and r.primary:
            first = next((f["finding"] for f in findings), "")
            ctx.notes.append(f"{r.name}: the dynamics diverged in {r.diverged} of {r.trials} trials ({first}); "
                             "a divergence is a finding, never a pass.")
    return _finished(check, sc, ctx, rows, verdict, results, errors, findings, interrupted, planned, t0)


def _finished(check: Check, sc: BaseScenario, ctx: Context, rows: list[ClaimRow], verdict: Verdict,
              results: list[TrialResult], errors: list, findings: list, interrupted: bool, planned: int,
              t0: float) -> Result:
    """The Result of a run whose rows are decided (fixed or sequential): the check's notes on the
    verdicts, and the per-trial records and curves."""
    ctx.notes.extend(check.verdict_notes(sc, ctx, rows))
    return Result(check=check.name, title=check.title, statement=check.statement, source=check.source,
                  verdict=verdict, seed=sc.seed, scenario=sc.model_dump(), quantities=ctx.quantities,
                  rows=rows, notes=ctx.notes, trials=len(results), trial_errors=errors, findings=findings,
                  interrupted=interrupted, planned_trials=planned,
                  elapsed_seconds=time.perf_counter() - t0, trial_records=trial_records(results),
                  trial_series={t.index: t.series for t in results if t.series})


def _run_sequential(check: Check, sc: BaseScenario, ctx: Context, rows: list[ClaimRow], on_trial, on_plan,
                    workers: int, t0: float) -> Result:
    """trials=sequential (:mod:`ntkcheck.sequential`): batches of BATCH trials by index; after each
    batch every row not yet decided is tested; stop when every primary row is decided or the
    budget (max_trials, max_seconds) is spent. Each row is reported at its own stopping trial."""
    from . import sequential as seq

    alpha = 1.0 - sc.confidence
    k_primary = max(1, sum(r.primary for r in rows))
    level = {r.name: alpha / k_primary if r.primary else alpha for r in rows}
    stop: dict[str, tuple[int, str]] = {}  # row → (trials it was decided on, "pass" | "fail")
    results: list[TrialResult] = []
    interrupted, budget = False, None
    counts = {r.name: dict.fromkeys(OUTCOME_FIELD, 0) for r in rows}
    try:
        plan = trials_needed(rows, sc.confidence, universal_bound=sc.violation_bound, cap=MAX_TRIALS)
    except ValueError:
        plan = sc.max_trials
    while True:
        start = len(results)
        size = min(seq.BATCH, sc.max_trials - start)
        if on_plan is not None:
            on_plan(start + size)
        try:
            batch = run_trials(check, sc, ctx, range(start, start + size), on_trial, workers=min(workers, size),
                               scheduler=sc.compute.scheduler)
        except Interrupted as e:
            results += e.done
            interrupted = True
            break
        results += batch
        for t in batch:
            for name, out in t.outcomes.items():
                counts[name][out] += 1
        n_done = len(results)
        for r in rows:
            if r.name in stop or r.kind == SCALING:
                continue
            c = counts[r.name]
            n = n_done - c[VACUOUS]  # an implication's evidence: the trials whose hypothesis held
            if c[DIVERGED] or (r.kind == UNIVERSAL and c[VIOLATION]):
                v = "fail"  # a counterexample, or a divergence (a finding): no error possible
            elif c[ERROR]:
                v = None  # an errored trial can never pass a claim
            elif r.kind == UNIVERSAL:  # P(violation or undecided) ≤ violation_bound
                v = seq.decision(c[HOLDS], n, n, 1.0 - sc.violation_bound, level[r.name])
            else:
                v = seq.decision(c[HOLDS], n - c[VIOLATION], n, r.target, level[r.name])
            if v is not None:
                stop[r.name] = (n_done, v)
        if all(r.name in stop for r in rows if r.primary and r.kind != SCALING):
            break
        if n_done >= sc.max_trials:
            budget = f"max_trials = {sc.max_trials}"
            break
        # as trials=auto: rows whose hypothesis never held in AUTO_VACUOUS_FACTOR × the fixed plan
        # have no evidence to wait for (the rule reads only the hypotheses; any stopping time is
        # valid for the e-processes)
        barren = [r.name for r in rows if r.primary and r.name not in stop and counts[r.name][VACUOUS] == n_done]
        if barren and n_done >= AUTO_VACUOUS_FACTOR * plan:
            budget = (f"; in {n_done} trials ({AUTO_VACUOUS_FACTOR} × the fixed plan) the hypothesis of "
                      f"{', '.join(barren)} never held: no evidence for "
                      f"{'it' if len(barren) == 1 else 'them'}, so the run stopped")
            break
        if sc.max_seconds is not None and time.perf_counter() - t0 >= sc.max_seconds:
            budget = f"max_seconds = {sc.max_seconds:g}"
            break
    errors_, findings = _tally(check, sc, rows, results)
    check.summarize(sc, ctx, rows, [t for t in results if t.error is None])
    by_index = sorted(results, key=lambda t: t.index)
    decisions = {}
    for r in rows:
        n_r, v = stop.get(r.name, (len(results), None))
        if r.kind == UNIVERSAL and (counts[r.name][VIOLATION] or counts[r.name][DIVERGED]):
            n_r, v = len(results), "fail"  # a counterexample in any trial run refutes it
        _recount(r, by_index[:n_r])
        if r.counterexample is not None and r.counterexample["trial"] >= n_r:
            r.counterexample = None
        c_n = r.trials
        if r.kind == UNIVERSAL:  # the interval of P(violation): below 1 − (lower bound of P(clean))
            lo_clean, _ = seq.interval(r.holds, c_n, c_n, level[r.name])
            ci = (0.0, 1.0 - lo_clean)
        else:
            ci = seq.interval(r.holds, r.holds + r.undecided + r.errors + r.diverged, c_n, level[r.name])
        verdict = {"pass": PASS, "fail": FAIL}.get(v, INCONCLUSIVE)
        if r.kind == UNIVERSAL and r.trials == 0:
            verdict = INCONCLUSIVE
        if r.kind == UNIVERSAL:
            e_up, e_down = float(seq.log_e_pass(r.holds, c_n, 1.0 - sc.violation_bound)), -math.inf
        else:
            s_r = r.holds + r.undecided + r.errors + r.diverged
            e_up, e_down = float(seq.log_e_pass(r.holds, c_n, r.target)), float(seq.log_e_fail(s_r, c_n, r.target))
        log_e = e_down if v == "fail" and r.kind != UNIVERSAL else e_up if v == "pass" else max(e_up, e_down)
        r.figures.update({"stopped_after": n_r if v else None, "method": seq.METHOD,
                          "e_value": None if v == "fail" and r.kind == UNIVERSAL else math.exp(min(log_e, 700.0)),
                          "e_value_needed": 1.0 / level[r.name]})
        decisions[r.name] = RowDecision(verdict, level[r.name], *ci)
    primary = [decisions[r.name].verdict for r in rows if r.primary]
    verdict = FAIL if FAIL in primary else PASS if primary and all(v == PASS for v in primary) else INCONCLUSIVE
    ctx.notes.append(f"stopped after {len(results)} trials (sequential, looks every {seq.BATCH} trials)"
                     + ((budget if budget.startswith(";") else f"; the budget {budget} was reached with rows "
                         "undecided: " + ", ".join(r.name for r in rows if r.primary and r.name not in stop))
                        if budget else ""))
    if interrupted:
        ctx.notes.append(f"interrupted: {len(results)} trials were done; the verdicts below are those of the looks "
                         "made.")
    rows = Decision(verdict, decisions).apply(rows)
    return _finished(check, sc, ctx, rows, verdict, results, errors_, findings, interrupted, len(results), t0)


def _count(row: ClaimRow, outcome: str) -> None:
    field_ = OUTCOME_FIELD[outcome]
    setattr(row, field_, getattr(row, field_) + 1)


def _recount(row: ClaimRow, trials: list[TrialResult]) -> None:
    """The row's counts over these trials (its own stopping point)."""
    for f in OUTCOME_FIELD.values():
        setattr(row, f, 0)
    for t in trials:
        if row.name in t.outcomes:
            _count(row, t.outcomes[row.name])


def _tally(check: Check, sc: BaseScenario, rows: list[ClaimRow], results: list[TrialResult]
           ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Count every trial's outcomes into the rows; return (trial errors, findings)."""
    by_name = {r.name: r for r in rows}
    errors: list[dict[str, Any]] = []
    findings: list[dict[str, Any]] = []
    for t in results:
        for rname, outcome in t.outcomes.items():
            row = by_name[rname]
            _count(row, outcome)
            if outcome in (VIOLATION, DIVERGED) and row.counterexample is None:
                row.counterexample = _counterexample(check, sc, t, rname, outcome)
                if outcome == DIVERGED:
                    row.counterexample["diverged"] = True
        if t.note:
            findings.append({"trial": t.index, "finding": t.note})
        if t.error is not None:
            errors.append({"trial": t.index, "error": t.error,
                           "replay": replay_command(check, sc, t.index)})
    for r in rows:
        if r.vacuous and r.trials == 0:
            r.figures["hypothesis"] = f"failed in all {r.vacuous} trials: vacuous, no evidence"
        elif r.vacuous:
            r.figures["hypothesis_failed_trials"] = r.vacuous
    return errors, findings


def _counterexample(check: Check, sc: BaseScenario, t: TrialResult, row: str, outcome: str) -> dict[str, Any]:
    """What replays a violating trial: its seed, spawn key, the command and what it must show."""
    return {"trial": t.index, "seed": sc.seed, "ntkcheck_version": __version__,
            "spawn_key": list(trial_seed_sequence(sc.seed, t.index).spawn_key),
            "replay": replay_command(check, sc, t.index, expect=(row, outcome))}


def _evidence_shortfall(rows: list[ClaimRow], results: list[TrialResult], wanted: int
                        ) -> tuple[int, float] | None:
    """For trials=auto: (evidence still missing, fraction of trials that give evidence) over the
    primary rows that lack evidence because hypotheses failed; None when none does."""
    worst = None
    for r in rows:
        if not r.primary:
            continue
        outs = [t.outcomes.get(r.name) for t in results]
        vac = sum(o == VACUOUS for o in outs)
        have = len(outs) - vac
        if vac and have < wanted:
            short = (wanted - have, have / max(1, len(outs)))
            worst = short if worst is None or short[0] > worst[0] else worst
    return worst


def replay_trial(name: str, trial: int, scenario: str | Path | dict | None = None, *, points: bool = False,
                 **overrides: Any) -> Replay:
    """Re-run trial ``trial`` alone (same seed → the same draws as in the full run). ``points``:
    also return the trial's witness points (:attr:`Replay.points`; lemma23: the attack's W)."""
    if trial < 0:
        raise UserError(f"--replay needs a trial number ≥ 0, got {trial}.")
    check, sc, ctx = prepare(name, scenario, overrides)
    ctx.keep_points = points
    with threadpool_limits(1):  # as every trial of a run: one BLAS thread (small products oversubscribe cores)
        res = run_one(check, sc, ctx, trial)
    return Replay(check=check.name, seed=sc.seed, trial=trial,
                  spawn_key=list(trial_seed_sequence(sc.seed, trial).spawn_key),
                  outcomes=res.outcomes, values=res.values, error=res.error, quantities=ctx.quantities,
                  points=res.points)
