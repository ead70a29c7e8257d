"""Command line (SPEC section 4): ``ntkcheck CHECK [SCENARIO.yaml] [options]``, ``list``, ``explain``.

Errors a user can cause print one sentence and exit 2; a bug exits 4 with the
version and a request to report it (``--debug`` shows the traceback).
"""
from __future__ import annotations

import sys
import traceback

import click

from . import __version__
from .api import replay_trial, run_check
from .checks import REGISTRY, get_check
from .errors import ExitCode, UserError
from .report import (check_writable, make_console, render, render_replay, to_json, to_junit,
                     write_atomic)
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


def _check_command(name: str) -> click.Command:
    cls = REGISTRY[name]

    @click.command(name, help=f"{cls.title}.\n\n{cls.statement}\n\nSource: {cls.source}.")
    @click.argument("scenario", required=False, type=click.Path(dir_okay=False))
    @click.option("--m", "m", type=int, help="Width (network.m).")
    @click.option("--n", "n", type=int, help="Number of data points (data.n).")
    @click.option("--d", "d", type=int, help="Input dimension (data.d).")
    @click.option("--trials", type=TrialsType(), help="Number of trials, or 'auto' (the default).")
    @click.option("--seed", type=int, help="Root seed.")
    @click.option("--confidence", type=float, help="Family-wise confidence (default 0.95).")
    @click.option("--workers", type=click.IntRange(min=1), help="Worker processes (default: the available cores).")
    @click.option("--data", "data", type=click.Path(), help="Inputs from .npy, .npz or .csv (rows are samples).")
    @click.option("--labels", "labels", type=click.Path(),
                  help="Labels from .npy, .npz or .csv (one value per data row), for checks that train.")
    @click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override any scenario key.")
    @click.option("--json", "json_path", type=click.Path(), help="Write the result as JSON.")
    @click.option("--junit", "junit_path", type=click.Path(), help="Write JUnit XML (one testcase per claim).")
    @click.option("--replay", type=int, metavar="TRIAL", help="Re-run trial TRIAL alone and print all its quantities.")
    @click.option("--debug", is_flag=True, help="Show the traceback of an internal error.")
    def command(scenario, m, n, d, trials, seed, confidence, workers, data, labels, sets, json_path, junit_path,
                replay, debug):
        overrides = {k: v for k, v in dict(m=m, n=n, d=d, trials=trials, seed=seed, confidence=confidence,
                                           workers=workers).items() if v is not None}
        if data is not None:
            overrides["data"] = data
        if labels is not None:
            overrides["labels"] = labels
        if sets:
            overrides["sets"] = list(sets)
        if json_path:
            check_writable(json_path, "--json")
        if junit_path:
            check_writable(junit_path, "--junit")
        console = make_console()
        if replay is not None:
            rep = replay_trial(name, replay, scenario, **overrides)
            render_replay(rep, console)
            if json_path:
                write_atomic(json_path, to_json(rep.to_dict()))
            sys.exit(int(ExitCode.OK))
        result = run_check(name, scenario, **overrides)
        render(result, console)
        if json_path:
            write_atomic(json_path, to_json(result.to_dict()))
        if junit_path:
            write_atomic(junit_path, to_junit([result]))
        sys.exit(int(result.exit_code))

    return command


for _name in REGISTRY:
    cli.add_command(_check_command(_name))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
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
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("interrupted.", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
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
