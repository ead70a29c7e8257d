"""The batch commands: ``run`` (scenario files and folders), ``plan`` (the trials a run needs)
and ``sweep`` (a grid of scenario values). cli.py registers them on the command group."""
from __future__ import annotations

import json
from pathlib import Path

import click
from rich.text import Text

from . import errors
from .api import build_scenario, run_check
from .checks import REGISTRY, get_check
from .cli_options import (check_outputs, color_option, combined_exit, complete_set, console_for, output_options,
                          overrides_from, scenario_options, write_outputs)
from .errors import ExitCode, UserError
from .progress import run_with_progress
from .report import is_plain, make_console, render, verdict_line, write_atomic


def collect_scenarios(paths) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(q for q in p.rglob("*.yaml") if q.is_file())
            if not found:
                raise UserError(f"folder '{p}' holds no *.yaml scenario files.")
            files += found
        elif p.is_file():
            files.append(p)
        elif p.exists():  # a FIFO or a device would block or never end
            raise UserError(f"scenario path '{p}' is not a regular file.")
        else:
            raise UserError(f"scenario path '{p}' does not exist.")
    return files


#: `run --lf`: the scenarios that failed last time, kept as pytest keeps its own (per folder)
CACHE = Path(".ntkcheck_cache")


def _last_failed() -> dict[str, str]:
    try:
        data = json.loads((CACHE / "lastfailed.json").read_text(encoding="utf-8"))
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _record_failed(results) -> None:
    """Scenarios run now leave the record unless they FAILed; the others keep theirs. Best
    effort: a folder that cannot be written keeps no record (the run itself is unaffected)."""
    failed = _last_failed()
    for r in results:
        key = str(Path(r.scenario_path).resolve())
        if r.verdict == "fail" and not r.interrupted:
            failed[key] = r.check
        elif not r.interrupted:
            failed.pop(key, None)
    try:
        CACHE.mkdir(exist_ok=True)
        if not (CACHE / ".gitignore").exists():
            (CACHE / ".gitignore").write_text("# created by ntkcheck run (for --lf)\n*\n", encoding="utf-8")
        write_atomic(CACHE / "lastfailed.json", json.dumps(failed, indent=1) + "\n")
    except (OSError, UserError):
        pass


def _failures(res) -> list[str]:
    """For -q: each failed primary row with its replay command, each inconclusive one with why."""
    from .stats import why_inconclusive

    out = []
    for r in res.rows:
        if r.primary and r.verdict == "fail":
            ce = r.counterexample
            out.append(f"  FAIL {r.name}" + (f"; replay: {ce['replay']}" if ce else ""))
        elif r.primary and r.verdict == "inconclusive":
            out.append(f"  INCONCLUSIVE {r.name}: {why_inconclusive(r)}")
    return out


@click.command("run")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--seed", type=int, help="Root seed of every scenario.")
@click.option("--confidence", type=float, help="Family-wise confidence of every scenario.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a key in every scenario.",
              shell_complete=complete_set)
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes (default: the available cores).")
@click.option("--scheduler", metavar="ADDRESS", help="Run the trials on this Dask scheduler (needs ntkcheck[dask]).")
@click.option("-x", "--exitfirst", is_flag=True, help="Stop after the first scenario that FAILs.")
@click.option("--maxfail", type=click.IntRange(min=1), metavar="N", help="Stop after N scenarios that FAIL.")
@click.option("--lf", "--last-failed", "last_failed", is_flag=True,
              help="Run only the scenarios that FAILed in the last run from this folder (all, when none did); "
                   "the record is .ntkcheck_cache/lastfailed.json.")
@output_options
@color_option
def run_cmd(paths, seed, confidence, sets, workers, scheduler, exitfirst, maxfail, last_failed, json_path,
            junit_path, report_path, quiet, verbose, debug):
    """Run scenario files and folders (recursively, *.yaml): one table each and a summary.

    Each file names its check with a top-level `check:` key. --seed, --confidence and --set
    apply to every scenario; -q prints one verdict line each, and the failed claims with their
    replay commands.
    """
    from .scenario import load_yaml

    check_outputs(json_path=json_path, junit_path=junit_path, report_path=report_path)
    files = collect_scenarios(paths)
    common = overrides_from(None, None, None, None, seed, confidence, workers, scheduler, None, None, sets)
    plan, invalid = [], []
    for f in files:  # every scenario is validated (with the overrides) before any runs; each invalid one is named
        try:
            doc = load_yaml(f)
            check = doc.get("check")
            if not isinstance(check, str):
                raise UserError(f"scenario file '{f}' has no 'check:' key naming its check "
                                f"({', '.join(REGISTRY)}).")
            build_scenario(get_check(check), f, dict(common))
            plan.append((f, check))
        except UserError as e:
            invalid.append(str(e) if str(f) in str(e) else f"{f}: {e}")
    if invalid:
        for msg in invalid:
            click.echo(f"error: {msg}", err=True)
        return int(ExitCode.USAGE)
    console = console_for(json_path, junit_path)
    if last_failed:
        before = _last_failed()
        again = [(f, c) for f, c in plan if str(Path(f).resolve()) in before]
        console.print(f"--lf: {len(again)} of {len(plan)} scenarios FAILed last time"
                      + ("; running those" if again else "; none did, so running all"), soft_wrap=True)
        plan = again or plan
    limit = 1 if exitfirst else maxfail
    results = []
    stopped = None  # the scenario being prepared when Ctrl-C (or SIGTERM/SIGHUP) came
    for f, check in plan:
        res = run_with_progress(check, f, dict(common), quiet)
        if res.interrupted and not res.rows:  # stopped while it prepared
            stopped = f
            console.print(f"== {f}: interrupted before its trials; the scenarios above are complete.",
                          soft_wrap=True, markup=False, highlight=False)
            break
        res.scenario_path = str(f)
        results.append(res)
        if quiet:
            console.print(Text(f"{f}: ") + verdict_line(res, is_plain(console)), soft_wrap=True)
            for line in _failures(res):
                console.print(line, soft_wrap=True, markup=False, highlight=False)
        else:
            console.print(Text(f"== {f}", style="bold"), soft_wrap=True)
            render(res, console, verbose=verbose)
        if res.interrupted:
            break
        if limit and sum(r.verdict == "fail" for r in results) >= limit:
            left = len(plan) - len(results)
            if left:
                console.print(f"stopped after {limit} failing scenario{'s' if limit > 1 else ''} "
                              f"({'-x' if exitfirst else f'--maxfail {limit}'}); {left} not run.")
            break
    code = combined_exit(results) if stopped is None else errors.interrupted_code()
    if not quiet:
        console.print("summary:")  # one line per scenario, the path last and whole
        for r in results:
            word = "INTERRUPTED" if r.interrupted else r.verdict.upper()
            console.print(f"  {word:<13} {r.check:<9} {r.trials:>6} trials {r.elapsed_seconds:>9.2f} s  "
                          f"{r.scenario_path}", soft_wrap=True, markup=False, highlight=False)
        if stopped is not None:
            console.print(f"  NOT RUN (interrupted)  {stopped}",
                          soft_wrap=True, markup=False, highlight=False)
        console.print(f"overall: exit {int(code)}")
    write_outputs(results, json_path, junit_path, many=True, report_path=report_path if results else None)
    _record_failed(results)
    return int(code)


@click.command("plan")
@click.argument("check")
@click.argument("scenario", required=False, type=click.Path(dir_okay=False))
@scenario_options
@click.option("--pilot", type=click.IntRange(min=1, max=50), default=2, show_default=True,
              help="Trials of the pilot run that times one trial.")
@click.option("--guess", type=click.FloatRange(0, 1), default=1.0, show_default=True,
              help="With --trials sequential: the guessed probability that a trial holds, for the expected "
                   "number of trials.")
@click.option("--debug", is_flag=True, help="Show the traceback of an internal error.")
def plan_cmd(check, scenario, m, n, d, trials, seed, confidence, workers, scheduler, data, labels, sets, pilot,
             guess, debug):
    """The trials a run needs for the requested confidence, and its expected time (from a pilot)."""
    import time as _time

    from .api import plan_trials

    overrides = overrides_from(m, n, d, trials, seed, confidence, workers, scheduler, data, labels, sets)
    info = plan_trials(check, scenario, **overrides)
    t0 = _time.perf_counter()
    pilot_overrides = {**overrides, "trials": min(pilot, info["trials"]), "workers": 1}
    if check == "lemma43":  # trials are per width there; one pilot trial per width
        pilot_overrides["trials"] = 1
    res = run_check(check, scenario, **pilot_overrides)
    per_trial = (_time.perf_counter() - t0) / max(res.trials, 1)
    w = info["workers"]
    count = info["rule"] if info.get("sequential") else f"{info['trials']} trials ({info['rule']})"
    click.echo(f"{check}: {count}, confidence {info['confidence']}")
    for line in info["rows"]:
        click.echo(f"  {line}")
    click.echo(f"pilot: {res.trials} trials in {per_trial * res.trials:.2f} s ({per_trial:.3f} s per trial, "
               "start-up included)")
    expected = info["trials"]
    if info.get("sequential"):
        from .sequential import expected_trials

        expected, decided = expected_trials(info["sequential"], guess)
        click.echo(f"sequential, if each trial holds with probability {guess:g}: about {expected:.0f} trials "
                   f"expected (Monte Carlo); every primary row decided within the budget in {decided:.0%} of runs")
    click.echo(f"expected: about {per_trial * expected / min(w, max(1, round(expected))):.1f} s with {w} worker(s)")


@click.command("sweep")
@click.argument("check")
@click.argument("scenario", required=False, type=click.Path(dir_okay=False))
@click.option("--over", "over", multiple=True, required=True, metavar="KEY=V1,V2,...",
              help="A scenario key and its values; repeat for a grid.")
@scenario_options
@click.option("--csv", "csv_path", type=click.Path(), help="Write one row per grid point and claim as CSV.")
@click.option("--plot", "plot_path", type=click.Path(), help="Draw the observed quantities against the bounds (PNG).")
@click.option("--report", "report_path", type=click.Path(),
              help="Write a self-contained HTML report of every grid point (with the plot when matplotlib is installed).")
@click.option("--quiet", "-q", is_flag=True, help="Print only the summary line.")
@click.option("--debug", is_flag=True, help="Show the traceback of an internal error.")
def sweep_cmd(check, scenario, over, m, n, d, trials, seed, confidence, workers, scheduler, data, labels, sets,
              csv_path, plot_path, report_path, quiet, debug):
    """Run CHECK over a grid of scenario values; verdicts and key figures per grid point."""
    from . import sweep as sw

    get_check(check)
    grid = sw.parse_grid(over)
    check_outputs(csv_path=csv_path, plot_path=plot_path, report_path=report_path)
    if plot_path:
        sw.require_matplotlib()
    overrides = overrides_from(m, n, d, trials, seed, confidence, workers, scheduler, data, labels, sets)
    console = make_console()
    total = 1
    for _, vals in grid:
        total *= len(vals)
    done = [0]

    def one(point):  # each grid point's run with its own progress bar, numbered (a terminal only)
        done[0] += 1
        return run_with_progress(check, scenario, point, quiet, label=f"sweep {check}: point {done[0]} of {total}")

    points = sw.run_grid(check, scenario, grid, overrides, one)
    if not quiet:
        sw.render_grid(points, grid, console)
    if csv_path:
        write_atomic(csv_path, sw.to_csv(points, grid))
    if plot_path:
        sw.plot(points, grid, check, plot_path)
    if report_path:
        _sweep_report(points, grid, check, plot_path, report_path)
    code = combined_exit([p["result"] for p in points])
    console.print(f"sweep: {len(points)} grid points, exit {int(code)}")
    return int(code)


def _sweep_report(points, grid, check, plot_path, report_path) -> None:
    """The sweep's HTML report: every grid point's result, and the plot (drawn for the report
    when --plot was not given and matplotlib is installed)."""
    import importlib.util
    import tempfile

    from . import sweep as sw
    from .report import to_html_report

    images = []
    if plot_path:
        images.append((f"{check} swept", Path(plot_path).read_bytes()))
    elif importlib.util.find_spec("matplotlib") is not None:
        with tempfile.TemporaryDirectory() as tmp:
            sw.plot(points, grid, check, str(Path(tmp) / "sweep.png"))
            images.append((f"{check} swept", (Path(tmp) / "sweep.png").read_bytes()))
    results = [p["result"] for p in points]
    for p, res in zip(points, results):
        res.scenario_path = ", ".join(f"{k}={v}" for k, v in p["values"].items())
    keys = ", ".join(k for k, _ in grid)
    write_atomic(report_path, to_html_report(results, f"ntkcheck sweep {check} over {keys}", images))


@click.command("scaling")
@click.argument("check")
@click.argument("scenario", required=False, type=click.Path(dir_okay=False))
@click.option("--over", "over", required=True, metavar="KEY=V1,V2,...",
              help="The scenario key the critical value is studied against, and its values (e.g. data.n=10,20,40).")
@click.option("--critical", "critical_key", metavar="KEY",
              help="The key whose critical value is searched (default: the check's; lemma23 claim.c, "
                   "cor22 and cor24 network.m).")
@click.option("--grid", "grid", metavar="V1,V2,...", help="The values of the grid search (default: the check's).")
@click.option("--row", "row", metavar="NAME|table",
              help="The row whose critical value is searched (default: the check's; cor24: thm32).")
@scenario_options
@click.option("--csv", "csv_path", type=click.Path(), help="Write one row per point as CSV.")
@click.option("--plot", "plot_path", type=click.Path(), help="Draw the critical value against the key (PNG).")
@click.option("--json", "json_path", type=click.Path(), help="Write the study as JSON ('-': standard output).")
@click.option("--quiet", "-q", is_flag=True, help="Print only the exponent line.")
@click.option("--debug", is_flag=True, help="Show the traceback of an internal error.")
def scaling_cmd(check, scenario, over, critical_key, grid, row, m, n, d, trials, seed, confidence, workers, scheduler,
                data, labels, sets, csv_path, plot_path, json_path, quiet, debug):
    """The critical value of CHECK (the width m* at which its claim starts to PASS, or Lemma 2.3's
    c*) at each value of --over, its fitted log-log exponent with a bootstrap interval, and the
    proof's exponent on the same points."""
    from . import scaling as scl
    from . import sweep as sw
    from .cli_options import write_text
    from .report import to_json

    get_check(check)
    grid_values = None
    if grid is not None:
        try:
            grid_values = [float(v) for v in grid.split(",")]
        except ValueError:
            raise UserError(f"--grid needs comma-separated numbers, got '{grid}'.") from None
        if any(not (g > 0) or g == float("inf") for g in grid_values):
            raise UserError(f"--grid values must be positive and finite, got '{grid}'.")
    check_outputs(csv_path=csv_path, plot_path=plot_path, json_path=json_path)
    if plot_path:
        sw.require_matplotlib()
    overrides = overrides_from(m, n, d, trials, seed, confidence, workers, scheduler, data, labels, sets)
    console = console_for(json_path)
    st = scl.run_study(check, scenario, overrides, over, critical_key, grid_values, row=row)
    if quiet:
        console.print(scl.exponent_line(st))
    else:
        scl.render(st, console)
    if csv_path:
        write_atomic(csv_path, scl.to_csv(st))
    if plot_path:
        scl.plot(st, plot_path)
    if json_path:
        write_text(json_path, to_json(st.to_dict()))
    return int(ExitCode.OK if st.complete else ExitCode.INCONCLUSIVE)
