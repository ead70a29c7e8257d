"""What the command-line commands share: the scenario and output options, turning them into
run overrides, refusing outputs that cannot be written, writing them, and the combined exit
code of several results."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from . import errors
from .errors import ExitCode, UserError
from .report import check_writable, make_console, to_json, to_junit, write_atomic


class TrialsType(click.ParamType):
    name = "INT|auto|sequential"

    def convert(self, value, param, ctx):
        if isinstance(value, int) or value in ("auto", "sequential"):
            return value
        try:
            n = int(str(value))
        except ValueError:
            self.fail(f"'{value}' is neither a positive integer nor 'auto' or 'sequential'.", param, ctx)
        if n <= 0:
            self.fail(f"{n} is not a positive number of trials.", param, ctx)
        return n


def overrides_from(m, n, d, trials, seed, confidence, workers, scheduler, data, labels, sets) -> dict:
    out = {k: v for k, v in dict(m=m, n=n, d=d, trials=trials, seed=seed, confidence=confidence,
                                 workers=workers, scheduler=scheduler).items() if v is not None}
    if data is not None:
        out["data"] = data
    if labels is not None:
        out["labels"] = labels
    if sets:
        out["sets"] = list(sets)
    return out


def _set_colour(ctx, param, value):
    from . import report
    report.COLOUR = value
    return value


#: --color auto|always|never, on every command that prints a table (stored for make_console)
color_option = click.option(
    "--color", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
    expose_value=False, is_eager=True, callback=_set_colour,
    help="Colour the output: auto (on a terminal, unless NO_COLOR is set; FORCE_COLOR forces it), always, never.")


def complete_set(ctx, param, incomplete):
    """Shell completion of --set: the dotted keys of the check being run (of every check for
    `run`), each followed by '='."""
    from click.shell_completion import CompletionItem

    from .checks import REGISTRY
    from .scenario import describe_keys

    name = ctx.params.get("check") or ctx.info_name
    checks = [REGISTRY[name]] if name in REGISTRY else list(REGISTRY.values())
    keys = sorted({k for c in checks for k, _, _ in describe_keys(c.scenario_model()) if k != "check"})
    return [CompletionItem(f"{k}=") for k in keys if k.startswith(incomplete)]


def scenario_options(f):
    """The overrides every check-running command takes (and --color)."""
    for opt in reversed([
        color_option,
        click.option("--m", "m", type=int, help="Width (network.m)."),
        click.option("--n", "n", type=int, help="Number of data points (data.n)."),
        click.option("--d", "d", type=int, help="Input dimension (data.d)."),
        click.option("--trials", type=TrialsType(),
                     help="Number of trials, 'auto' (the default: the fewest that could PASS) or 'sequential'."),
        click.option("--seed", type=int, help="Root seed."),
        click.option("--confidence", type=float, help="Family-wise confidence (default 0.95)."),
        click.option("--workers", type=click.IntRange(min=1), help="Worker processes (default: the available cores)."),
        click.option("--scheduler", metavar="ADDRESS",
                     help="Run the trials on this Dask scheduler (e.g. tcp://host:8786; needs ntkcheck[dask])."),
        click.option("--data", "data", type=click.Path(), help="Inputs from .npy, .npz or .csv (rows are samples)."),
        click.option("--labels", "labels", type=click.Path(),
                     help="Labels from .npy, .npz or .csv (one value per data row), for checks that train."),
        click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override any scenario key.",
                     shell_complete=complete_set),
    ]):
        f = opt(f)
    return f


def output_options(f):
    for opt in reversed([
        click.option("--json", "json_path", type=click.Path(), help="Write the result as JSON ('-': standard output, the table then goes to standard error)."),
        click.option("--junit", "junit_path", type=click.Path(), help="Write JUnit XML, one testcase per claim ('-': standard output)."),
        click.option("--report", "report_path", type=click.Path(),
                     help="Write a self-contained HTML report (statement, verdicts, replays, scenario, versions)."),
        click.option("--quiet", "-q", is_flag=True, help="Print only the verdict line."),
        click.option("--verbose", "-v", is_flag=True, help="Also print each trial's outcomes and figures."),
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
        if name == "plot_path" and Path(path).suffix.lower() != ".png":
            # (the picture is always PNG: a .pdf or .txt name would hold PNG bytes under a false name)
            raise UserError(f"--plot writes a PNG image: give a path ending in .png (got '{path}').")
        target = str(check_writable(path, option).resolve())
        if target in seen:
            raise UserError(f"{seen[target]} and {option} name the same file '{path}'.")
        seen[target] = option


def console_for(json_path=None, junit_path=None):
    """The table's console: standard output, or standard error when '-' sends a file there."""
    return make_console(sys.stderr if "-" in (json_path, junit_path) else None)


def write_text(path: str, text: str) -> None:
    if path == "-":
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
    else:
        write_atomic(path, text)


def write_outputs(results, json_path, junit_path, many: bool, report_path=None, images=()) -> None:
    if report_path:
        import importlib.util

        from .report import to_html_report

        if not images and importlib.util.find_spec("matplotlib") is not None:  # each run's picture
            from .plots import plot_result

            images = [(f"{r.check}" + (f" ({r.scenario_path})" if r.scenario_path else ""), plot_result(r))
                      for r in results if r.rows]

        title = f"ntkcheck {results[0].check}" if len(results) == 1 else f"ntkcheck run: {len(results)} scenarios"
        write_text(report_path, to_html_report(results, title, images))
    if json_path:
        obj = {"results": [r.to_dict() for r in results]} if many else results[0].to_dict()
        write_text(json_path, to_json(obj))
    if junit_path:
        write_text(junit_path, to_junit(results))


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
