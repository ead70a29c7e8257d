"""Command line: ``ntkcheck CHECK [SCENARIO.yaml] [options]``, ``list``, ``explain``.

Errors a user can cause print one sentence and exit 2; a bug exits 4 with the
version and a request to report it (``--debug`` shows the traceback).
"""
from __future__ import annotations

import os
import signal
import sys
import traceback
from pathlib import Path

import click
from rich import box
from rich.table import Table
from rich.text import Text

from . import __version__
from .api import build_scenario, replay_trial, run_check
from .checks import REGISTRY, get_check
from . import errors
from .errors import ExitCode, UserError
from .network import keep_freed_memory
from .report import (broken_pipe, check_writable, is_plain, make_console, render, render_replay, to_json,
                     to_junit, verdict_line, write_atomic)
from .scenario import describe_keys

ISSUES_URL = "the ntkcheck issue tracker"


class TrialsType(click.ParamType):
    name = "INT|auto"

    def convert(self, value, param, ctx):
        if isinstance(value, int) or value == "auto":
            return value
        try:
            n = int(str(value))
        except ValueError:
            self.fail(f"'{value}' is neither a positive integer nor 'auto'.", param, ctx)
        if n <= 0:
            self.fail(f"{n} is not a positive number of trials.", param, ctx)
        return n


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="ntkcheck", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="Show the traceback of an internal error.")
def cli(debug: bool) -> None:
    """Check NTK and random-feature theorems numerically, with Monte Carlo confidence.

    Run `ntkcheck list` for the checks and `ntkcheck explain CHECK` for a statement.
    """


@cli.command("list")
def list_cmd() -> None:
    """The checks, one line each."""
    for name, cls in REGISTRY.items():
        click.echo(f"{name:10s} {cls.title}  ({cls.ref})")


@cli.command("explain")
@click.argument("check")
def explain_cmd(check: str) -> None:
    """The statement of CHECK, its source, the notes' typos, and the scenario keys."""
    c = get_check(check)
    out = [f"{c.name}: {c.title}", "", "Statement (corrected):", f"  {c.statement}", "",
           f"Source: {c.source}", "", "Typos in the lecture notes:"]
    out += [f"  - {t}" for t in c.typos] or ["  (none)"]
    out += ["", "How a trial decides:", f"  {c.method}", "", "Scenario keys (default):"]
    default = c.scenario_model().model_validate(c.default_scenario())
    for key, desc, _ in describe_keys(c.scenario_model()):
        if key == "check":
            continue
        val = default
        for part in key.split("."):
            val = getattr(val, part)
        out.append(f"  {key:26s} {val!s:>12}  {desc}")
    click.echo("\n".join(out))


class Progress:
    """A rich progress bar on a terminal (stderr), shown once a run has lasted about a second;
    nothing at all in pipes, CI logs, or with --quiet."""

    def __init__(self, enabled: bool, label: str):
        import time as _time

        from rich.console import Console

        self.console = Console(stderr=True)
        self.enabled = enabled and self.console.is_terminal and "CI" not in os.environ
        self.label, self.total, self.done = label, None, 0
        self.t0 = _time.perf_counter()
        self._time = _time
        self.bar = None

    def plan(self, n: int) -> None:
        self.total = n
        if self.bar is not None:  # trials=auto may extend the run when hypotheses fail
            self.bar.update(self.task, total=n)

    def advance(self, _res=None) -> None:
        self.done += 1
        if not self.enabled:
            return
        if self.bar is None and self._time.perf_counter() - self.t0 > 1.0:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn,
                                       TimeRemainingColumn)
            self.bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                    TimeRemainingColumn(), console=self.console, transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=self.total, completed=self.done)
        if self.bar is not None:
            rate = self.done / max(self._time.perf_counter() - self.t0, 1e-9)
            self.bar.update(self.task, completed=self.done,
                            description=f"{self.label} ({rate:.1f} trials/s)")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def run_with_progress(name, scenario, overrides, quiet: bool):
    prog = Progress(not quiet, f"ntkcheck {name}")
    try:
        return run_check(name, scenario, on_trial=prog.advance, on_plan=prog.plan, **overrides)
    finally:
        prog.close()


def _overrides(m, n, d, trials, seed, confidence, workers, scheduler, data, labels, sets) -> dict:
    out = {k: v for k, v in dict(m=m, n=n, d=d, trials=trials, seed=seed, confidence=confidence,
                                 workers=workers, scheduler=scheduler).items() if v is not None}
    if data is not None:
        out["data"] = data
    if labels is not None:
        out["labels"] = labels
    if sets:
        out["sets"] = list(sets)
    return out


def scenario_options(f):
    """The overrides every check-running command takes."""
    for opt in reversed([
        click.option("--m", "m", type=int, help="Width (network.m)."),
        click.option("--n", "n", type=int, help="Number of data points (data.n)."),
        click.option("--d", "d", type=int, help="Input dimension (data.d)."),
        click.option("--trials", type=TrialsType(), help="Number of trials, or 'auto' (the default)."),
        click.option("--seed", type=int, help="Root seed."),
        click.option("--confidence", type=float, help="Family-wise confidence (default 0.95)."),
        click.option("--workers", type=click.IntRange(min=1), help="Worker processes (default: the available cores)."),
        click.option("--scheduler", metavar="ADDRESS",
                     help="Run the trials on this Dask scheduler (e.g. tcp://host:8786; needs ntkcheck[dask])."),
        click.option("--data", "data", type=click.Path(), help="Inputs from .npy, .npz or .csv (rows are samples)."),
        click.option("--labels", "labels", type=click.Path(),
                     help="Labels from .npy, .npz or .csv (one value per data row), for checks that train."),
        click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override any scenario key."),
    ]):
        f = opt(f)
    return f


def output_options(f):
    for opt in reversed([
        click.option("--json", "json_path", type=click.Path(), help="Write the result as JSON ('-': standard output, the table then goes to standard error)."),
        click.option("--junit", "junit_path", type=click.Path(), help="Write JUnit XML, one testcase per claim ('-': standard output)."),
        click.option("--quiet", "-q", is_flag=True, help="Print only the verdict line."),
        click.option("--debug", is_flag=True, help="Show the traceback of an internal error."),
    ]):
        f = opt(f)
    return f


def check_outputs(**paths) -> None:
    """Refuse, before any work, output paths that cannot be written or that name the same file
    (``--json X --junit X`` would overwrite one with the other)."""
    seen: dict[str, str] = {}
    for name, path in paths.items():
        if path is None:
            continue
        option = "--" + name.removesuffix("_path")
        if path == "-":  # standard output (the table then goes to standard error)
            target = "-"
            if target in seen:
                raise UserError(f"{seen[target]} and {option} cannot both write to standard output ('-').")
            seen[target] = option
            continue
        target = str(check_writable(path, option).resolve())
        if target in seen:
            raise UserError(f"{seen[target]} and {option} name the same file '{path}'.")
        seen[target] = option


def _console(json_path=None, junit_path=None):
    """The table's console: standard output, or standard error when '-' sends a file there."""
    return make_console(sys.stderr if "-" in (json_path, junit_path) else None)


def _write(path: str, text: str) -> None:
    if path == "-":
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
    else:
        write_atomic(path, text)


def _write_outputs(results, json_path, junit_path, many: bool) -> None:
    if json_path:
        obj = {"results": [r.to_dict() for r in results]} if many else results[0].to_dict()
        _write(json_path, to_json(obj))
    if junit_path:
        _write(junit_path, to_junit(results))


def parse_expect(items) -> dict[str, str]:
    """--expect CLAIM=OUTCOME pairs as a dict (one sentence and exit 2 when malformed)."""
    out = {}
    for item in items:
        claim, sep, outcome = item.partition("=")
        if not sep or not claim or not outcome:
            raise UserError(f"--expect takes CLAIM=OUTCOME (e.g. joint=violation), got '{item[:60]}'.")
        out[claim] = outcome
    return out


def _check_command(name: str) -> click.Command:
    cls = REGISTRY[name]

    @click.command(name, help=f"{cls.title}.\n\n{cls.statement}\n\nSource: {cls.source}.")
    @click.argument("scenario", required=False, type=click.Path(dir_okay=False))
    @scenario_options
    @output_options
    @click.option("--replay", type=int, metavar="TRIAL", help="Re-run trial TRIAL alone and print all its quantities.")
    @click.option("--expect", "expect", multiple=True, metavar="CLAIM=OUTCOME",
                  help="With --replay: the outcome the trial must reproduce (exit 1 if it does not).")
    def command(scenario, m, n, d, trials, seed, confidence, workers, scheduler, data, labels, sets, json_path,
                junit_path, quiet, debug, replay, expect):
        overrides = _overrides(m, n, d, trials, seed, confidence, workers, scheduler, data, labels, sets)
        check_outputs(json_path=json_path, junit_path=junit_path)
        console = _console(json_path, junit_path)
        if expect and replay is None:
            raise UserError("--expect goes with --replay TRIAL.")
        if replay is not None:
            wanted = parse_expect(expect)
            rep = replay_trial(name, replay, scenario, **overrides)
            render_replay(rep, console)
            if json_path:
                write_atomic(json_path, to_json(rep.to_dict()))
            missed = rep.did_not_reproduce(wanted)
            for claim, want, got in missed:
                click.echo(f"did not reproduce: claim '{claim}' is {got} in this replay, expected {want} "
                           f"(ntkcheck {__version__}; compare the version recorded with the counterexample).",
                           err=True)
            sys.exit(int(ExitCode.FAILED if missed else ExitCode.OK))
        result = run_with_progress(name, scenario, overrides, quiet)
        if quiet:
            console.print(verdict_line(result, is_plain(console)))
        else:
            render(result, console)
        _write_outputs([result], json_path, junit_path, many=False)
        _exit(int(result.exit_code))

    return command


def combined_exit(results) -> int:
    """Any interrupted → 130 (128 + the signal after SIGTERM/SIGHUP); else any fail → 1; else
    any inconclusive → 3; else 0."""
    if any(r.interrupted for r in results):
        return errors.interrupted_code()
    codes = {int(r.exit_code) for r in results}
    for c in (ExitCode.FAILED, ExitCode.INCONCLUSIVE):
        if c in codes:
            return c
    return ExitCode.OK


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


@cli.command("run")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes (default: the available cores).")
@click.option("--scheduler", metavar="ADDRESS", help="Run the trials on this Dask scheduler (needs ntkcheck[dask]).")
@output_options
def run_cmd(paths, workers, scheduler, json_path, junit_path, quiet, debug):
    """Run scenario files and folders (recursively, *.yaml): one table each and a summary.

    Each file names its check with a top-level `check:` key.
    """
    from .scenario import load_yaml

    check_outputs(json_path=json_path, junit_path=junit_path)
    files = collect_scenarios(paths)
    plan, invalid = [], []
    for f in files:  # every scenario is validated before any runs; each invalid one is named
        try:
            doc = load_yaml(f)
            check = doc.get("check")
            if not isinstance(check, str):
                raise UserError(f"scenario file '{f}' has no 'check:' key naming its check "
                                f"({', '.join(REGISTRY)}).")
            build_scenario(get_check(check), f, {})
            plan.append((f, check))
        except UserError as e:
            invalid.append(str(e) if str(f) in str(e) else f"{f}: {e}")
    if invalid:
        for msg in invalid:
            click.echo(f"error: {msg}", err=True)
        raise SystemExit(int(ExitCode.USAGE))
    console = _console(json_path, junit_path)
    results = []
    stopped = None  # the scenario being prepared when Ctrl-C (or SIGTERM/SIGHUP) came
    for f, check in plan:
        overrides = {k: v for k, v in (("workers", workers), ("scheduler", scheduler)) if v}
        try:
            res = run_with_progress(check, f, overrides, quiet)
        except KeyboardInterrupt:  # (during its trials the result itself says interrupted)
            stopped = f
            console.print(f"== {f}: interrupted before its trials; the scenarios above are complete.")
            break
        res.scenario_path = str(f)
        results.append(res)
        if quiet:
            console.print(Text(f"{f}: ") + verdict_line(res, is_plain(console)))
        else:
            console.print(Text(f"== {f}", style="bold"))
            render(res, console)
        if res.interrupted:
            break
    code = combined_exit(results) if stopped is None else errors.interrupted_code()
    if not quiet:
        table = Table(title="summary", box=box.ASCII if is_plain(console) else box.SIMPLE_HEAVY)
        for col in ("scenario", "check", "verdict", "trials", "seconds"):
            table.add_column(col)
        for r in results:
            table.add_row(r.scenario_path, r.check, r.verdict.upper() + (" (interrupted)" if r.interrupted else ""),
                          str(r.trials), f"{r.elapsed_seconds:.2f}")
        if stopped is not None:
            table.add_row(str(stopped), "", "NOT RUN (interrupted)", "0", "")
        console.print(table)
        console.print(f"overall: exit {int(code)}")
    _write_outputs(results, json_path, junit_path, many=True)
    _exit(int(code))


@cli.command("plan")
@click.argument("check")
@click.argument("scenario", required=False, type=click.Path(dir_okay=False))
@scenario_options
@click.option("--pilot", type=click.IntRange(min=1, max=50), default=2, show_default=True,
              help="Trials of the pilot run that times one trial.")
@click.option("--debug", is_flag=True, help="Show the traceback of an internal error.")
def plan_cmd(check, scenario, m, n, d, trials, seed, confidence, workers, scheduler, data, labels, sets, pilot,
             debug):
    """The trials a run needs for the requested confidence, and its expected time (from a pilot)."""
    import time as _time

    from .api import plan_trials

    overrides = _overrides(m, n, d, trials, seed, confidence, workers, scheduler, data, labels, sets)
    info = plan_trials(check, scenario, **overrides)
    t0 = _time.perf_counter()
    pilot_overrides = {**overrides, "trials": min(pilot, info["trials"]), "workers": 1}
    if check == "lemma43":  # trials are per width there; one pilot trial per width
        pilot_overrides["trials"] = 1
    res = run_check(check, scenario, **pilot_overrides)
    per_trial = (_time.perf_counter() - t0) / max(res.trials, 1)
    w = info["workers"]
    click.echo(f"{check}: {info['trials']} trials ({info['rule']}), confidence {info['confidence']}")
    for line in info["rows"]:
        click.echo(f"  {line}")
    click.echo(f"pilot: {res.trials} trials in {per_trial * res.trials:.2f} s ({per_trial:.3f} s per trial, "
               "start-up included)")
    click.echo(f"expected: about {per_trial * info['trials'] / min(w, info['trials']):.1f} s with {w} worker(s)")


@cli.command("sweep")
@click.argument("check")
@click.argument("scenario", required=False, type=click.Path(dir_okay=False))
@click.option("--over", "over", multiple=True, required=True, metavar="KEY=V1,V2,...",
              help="A scenario key and its values; repeat for a grid.")
@scenario_options
@click.option("--csv", "csv_path", type=click.Path(), help="Write one row per grid point and claim as CSV.")
@click.option("--plot", "plot_path", type=click.Path(), help="Draw the observed quantities against the bounds (PNG).")
@click.option("--quiet", "-q", is_flag=True, help="Print only the summary line.")
@click.option("--debug", is_flag=True, help="Show the traceback of an internal error.")
def sweep_cmd(check, scenario, over, m, n, d, trials, seed, confidence, workers, scheduler, data, labels, sets,
              csv_path, plot_path, quiet, debug):
    """Run CHECK over a grid of scenario values; verdicts and key figures per grid point."""
    from . import sweep as sw

    get_check(check)
    grid = sw.parse_grid(over)
    if csv_path:
        check_writable(csv_path, "--csv")
    if plot_path:
        check_writable(plot_path, "--plot")
        sw.require_matplotlib()
    overrides = _overrides(m, n, d, trials, seed, confidence, workers, scheduler, data, labels, sets)
    console = make_console()
    points = sw.run_grid(check, scenario, grid, overrides,
                         lambda point: run_with_progress(check, scenario, point, quiet=True))
    if not quiet:
        sw.render_grid(points, grid, console)
    if csv_path:
        write_atomic(csv_path, sw.to_csv(points, grid))
    if plot_path:
        sw.plot(points, grid, check, plot_path)
    code = combined_exit([p["result"] for p in points])
    console.print(f"sweep: {len(points)} grid points, exit {int(code)}")
    _exit(int(code))


for _name in REGISTRY:
    cli.add_command(_check_command(_name))


def _exit(code: int) -> None:
    """Exit with ``code``. After an interrupt that terminated worker processes mid-batch, the
    pool's queues may be left locked, and the interpreter's exit would wait for its manager
    thread for ever: the outputs are written by now, so end without that wait."""
    from . import trials

    if trials.POOL_ABANDONED:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    sys.exit(code)


def _stop_on_signals() -> dict:
    """SIGTERM and SIGHUP (a CI runner's timeout, a closed terminal) stop the run as Ctrl-C does:
    the partial table, the requested files, then exit 128 + the signal. (Worker processes die
    with the main process, see ``trials``.) Returns the handlers to put back afterwards."""
    errors.received_signal = None

    def handler(signum, frame):
        if errors.received_signal is None:
            errors.received_signal = signum
            raise KeyboardInterrupt
    before = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            before[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):  # not the main thread (an embedding application): leave them
            pass
    return before


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    keep_freed_memory()
    debug = "--debug" in args
    if not [a for a in args if a != "--debug"]:  # bare ntkcheck: the help, not an error
        click.echo(cli.get_help(click.Context(cli, info_name="ntkcheck")))
        sys.exit(int(ExitCode.USAGE))
    before = _stop_on_signals()
    try:
        _main(args, debug)
    finally:
        for sig, h in before.items():
            signal.signal(sig, h)


def _main(args: list[str], debug: bool) -> None:
    for stream in (sys.stdout, sys.stderr):  # a file name that is no UTF-8 prints as \xNN, not a crash
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):
            pass
    try:
        cli.main(args=args, prog_name="ntkcheck", standalone_mode=False)
    except UserError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(int(ExitCode.USAGE))
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        msg = e.format_message()
        if isinstance(e, click.UsageError) and e.ctx is not None:
            msg += f" (see 'ntkcheck {e.ctx.info_name} --help')" if e.ctx.info_name != "ntkcheck" \
                else " (see 'ntkcheck --help')"
        click.echo(f"error: {msg}", err=True)
        sys.exit(int(ExitCode.USAGE))
    except BrokenPipeError:  # the reader went away (| head), outside a rich console's own check
        broken_pipe()
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("interrupted.", err=True)
        sys.exit(errors.interrupted_code())
    except SystemExit:
        raise
    except Exception:  # a bug in ntkcheck, not bad input
        if debug:
            traceback.print_exc()
        else:
            exc = sys.exc_info()[1]
            click.echo(f"internal error in ntkcheck {__version__}: {type(exc).__name__}: {exc}", err=True)
            click.echo(f"This is a bug; please report it to {ISSUES_URL} with the command you ran "
                       "(run again with --debug for the traceback).", err=True)
        sys.exit(int(ExitCode.INTERNAL))


if __name__ == "__main__":
    main()
