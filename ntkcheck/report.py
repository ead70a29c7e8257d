"""Reports: a rich table on a terminal (plain text in pipes or with NO_COLOR), JSON, JUnit XML.

Files are written to a temporary file beside the target and renamed, so a
failed run never leaves a truncated file where a good one stood.
"""
from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .api import Replay, Result
from .errors import ExitCode, UserError
from .stats import FAIL, PASS, PROBABILISTIC, SCALING, UNIVERSAL

STYLE = {PASS: "bold green", FAIL: "bold red", "inconclusive": "bold yellow"}


def _columns() -> int:
    """The plain table's width: COLUMNS when it is a sensible number (a shell sets it), else 200."""
    raw = os.environ.get("COLUMNS", "")
    return int(raw) if raw.isdigit() and 20 <= int(raw) <= 10_000 else 200


def make_console(file=None) -> Console:
    """Colour and box drawing only on a terminal without NO_COLOR; plain text otherwise."""
    f = file or sys.stdout
    plain = not (hasattr(f, "isatty") and f.isatty()) or "NO_COLOR" in os.environ
    if plain:
        console = Console(file=f, no_color=True, force_terminal=False, highlight=False,
                          width=_columns(), emoji=False, soft_wrap=False)
    else:
        console = Console(file=f, highlight=False)
    console.on_broken_pipe = _stop_on_broken_pipe  # rich's own exits 1, the code of a failed claim
    return console


def broken_pipe() -> int:
    """The reader went away (``| head``): point stdout at /dev/null (so the interpreter's final
    flush cannot fail again) and return 128 + SIGPIPE, as the shell reports a writer killed by
    the signal, instead of an exit code that means a claim failed."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return int(ExitCode.BROKEN_PIPE)


def _stop_on_broken_pipe() -> None:
    """rich's hook, called deep inside a print: it must unwind, so it raises (the entry point
    turns the SystemExit into its return code)."""
    raise SystemExit(broken_pipe())


def is_plain(console: Console) -> bool:
    return console.no_color or not console.is_terminal


def fmt(x: Any) -> str:
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if x == 0:
            return "0"
        if abs(x) >= 1e4 or abs(x) < 1e-3:
            return f"{x:.3e}"
        return f"{x:.4g}"
    if isinstance(x, (list, tuple)):
        return "(" + ", ".join(fmt(v) for v in x) + ")"
    return str(x)


def _interval(row) -> str:
    lo, hi = row.ci_low, row.ci_high
    if lo is None or hi is None:
        return "—"
    what = {PROBABILISTIC: "P(holds)", UNIVERSAL: "P(viol.)", SCALING: "slope"}[row.kind]
    return f"{what} ∈ [{fmt(lo)}, {fmt(hi)}] at {100 * (1 - row.level):.4g}%"


def _bound(row) -> str:
    if row.kind == PROBABILISTIC:
        return f"P ≥ {fmt(row.target)}"
    if row.kind == SCALING:
        return f"slope ≤ {fmt(row.tolerance)}"
    return "every trial"


def _figures(row) -> str:
    return "\n".join(f"{k} = {fmt(v)}" for k, v in row.figures.items())


def _print_pairs(console: Console, pairs: dict[str, Any], width: int = 110) -> None:
    """key=value pairs, wrapped between pairs (never inside one)."""
    line = " "
    for k, v in pairs.items():
        if isinstance(v, list) and v and isinstance(v[0], dict):
            continue  # a table of its own
        item = f" {k}={fmt(v)}"
        if len(line) + len(item) > width and line.strip():
            console.print(line, markup=False, highlight=False)
            line = " "
        line += item
    if line.strip():
        console.print(line, markup=False, highlight=False)


def render(result: Result, console: Console) -> None:
    plain = is_plain(console)
    console.print(Text(f"ntkcheck {result.check}: {result.title}", style="bold"))
    console.print(f"  statement: {result.statement}")
    console.print(f"  source:    {result.source}")
    _print_pairs(console, result.quantities)
    for note in result.notes:
        console.print(f"  note: {note}")
    table = Table(box=box.ASCII if plain else box.SIMPLE_HEAVY, show_lines=True)
    table.add_column("claim", overflow="fold", ratio=3)
    table.add_column("trials\nholds/viol./undec.", overflow="fold")
    table.add_column("interval", overflow="fold", ratio=1)
    table.add_column("figures", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    for r in result.rows:
        name = r.label
        counts = (f"{r.trials}\nmeasured" if r.kind == SCALING else
                  f"{r.trials}\n{r.holds}/{r.violations}/{r.undecided}") + (f"\n{r.errors} errors" if r.errors else "") + (
            f"\n{r.diverged} diverged" if r.diverged else "") + (
            f"\n{r.vacuous} vacuous" if r.vacuous else "")
        verdict = Text(r.verdict.upper(), style=None if plain else STYLE[r.verdict])
        table.add_row(Text(f"{name}: {r.statement}\n({r.kind}: {_bound(r)})"), counts,
                      Text(_interval(r)), Text(_figures(r)), verdict)
    console.print(table)
    for key, val in result.quantities.items():
        if isinstance(val, list) and val and isinstance(val[0], dict):
            sub = Table(title=key.replace("_", " "), box=box.ASCII if plain else box.SIMPLE)
            for col in val[0]:
                sub.add_column(col, justify="right")
            for rec in val:
                sub.add_row(*[fmt(rec[c]) for c in val[0]])
            console.print(sub)
    for r in result.rows:
        if r.counterexample:
            ce = r.counterexample
            what = "diverged" if ce.get("diverged") else "violated"
            if r.role in ("control", "variant"):
                what += " (as expected)"
            console.print(f"  {r.name}: {what} in trial {ce['trial']} (seed {ce['seed']}, "
                          f"spawn key {tuple(ce['spawn_key'])}); replay it alone with:")
            console.print(f"    {ce['replay']}", soft_wrap=True, highlight=False, markup=False)
    for e in result.trial_errors[:5]:
        what = (f"was lost ({e['error'].removeprefix('lost: ')})" if e["error"].startswith("lost: ")
                else f"failed numerically ({e['error']})")
        console.print(f"  trial {e['trial']} {what}; replay: {e['replay']}", soft_wrap=True, markup=False)
    if len(result.trial_errors) > 5:
        console.print(f"  ... and {len(result.trial_errors) - 5} more trial errors (all in the JSON output).")
    for name in result.weak_variants:
        console.print(f"  warning: row '{name}' (expected to be false) did not FAIL: "
                      "the check lacks power in this scenario.")
    console.print(verdict_line(result, plain))


def verdict_line(result: Result, plain: bool = True) -> Text:
    done = (f"INTERRUPTED after {result.trials} of {result.planned_trials} trials; " if result.interrupted
            else "")
    return Text(f"verdict: {done}{result.verdict.upper()} ({result.trials} trials, "
                f"{result.elapsed_seconds:.2f} s, exit {int(result.exit_code)})",
                style=None if plain else STYLE[result.verdict])


def render_replay(rep: Replay, console: Console) -> None:
    console.print(Text(f"ntkcheck {rep.check}: replay of trial {rep.trial} "
                       f"(seed {rep.seed}, spawn key {tuple(rep.spawn_key)})", style="bold"))
    _print_pairs(console, rep.quantities)
    if rep.error:
        console.print(f"  numerical error: {rep.error}")
    for k, v in rep.values.items():
        console.print(f"  {k:28s} {fmt(v)}")
    for k, v in rep.outcomes.items():
        console.print(f"  claim {k:22s} {v}")


# ---------------------------------------------------------------------------------------- files
def check_writable(path: str | Path, option: str) -> Path:
    """Refuse an output path that cannot be written, before any work is done."""
    if not str(path):
        raise UserError(f"{option} needs a file name (got an empty one).")
    p = Path(path).expanduser()
    if p.is_dir():
        raise UserError(f"{option} path '{p}' is a directory.")
    if p.exists() and not p.resolve().is_file():  # a device, a FIFO, or a link to one: never replace it
        raise UserError(f"{option} path '{p}' is not a regular file.")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"{option} path '{p}': folder '{parent}' does not exist.")
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise UserError(f"{option} path '{p}' is not writable.")
    return p


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path``, with the
    permissions a shell redirect would give (0666 less the umask; mkstemp's own are 0600). A
    full disk or a too-large file is one sentence (UserError), never a traceback."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent if str(p.parent) else ".")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as e:
            raise UserError(f"could not write '{p}': {e.strerror or e}.") from None
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def to_json(obj: dict[str, Any]) -> str:
    """JSON text; a file name that is not UTF-8 (its bytes carried as lone surrogates) is
    written as the JSON escape \\udcXX instead of failing to encode."""
    text = json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


#: characters XML 1.0 cannot hold (control characters, lone surrogates): replaced by U+FFFD
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_safe(root: ET.Element) -> None:
    for el in root.iter():
        if el.text:
            el.text = _NOT_XML.sub("\ufffd", el.text)
        for k, v in el.attrib.items():
            el.attrib[k] = _NOT_XML.sub("\ufffd", v)


def to_junit(results: list[Result]) -> str:
    suites = ET.Element("testsuites")
    for res in results:
        suite = ET.SubElement(suites, "testsuite", {
            "name": f"ntkcheck.{res.check}",
            "tests": str(len(res.rows)),
            "failures": str(sum(r.verdict == FAIL and r.primary for r in res.rows)),
            "skipped": str(sum(r.verdict == "inconclusive" and r.primary for r in res.rows)),
            "time": f"{res.elapsed_seconds:.3f}",
        })
        props = ET.SubElement(suite, "properties")
        for k in ("seed", "verdict"):
            ET.SubElement(props, "property", {"name": k, "value": str(getattr(res, k))})
        for k, v in res.quantities.items():
            ET.SubElement(props, "property", {"name": k, "value": fmt(v)})
        for r in res.rows:
            case = ET.SubElement(suite, "testcase", {
                "classname": f"ntkcheck.{res.check}",
                "name": r.label})
            detail = (f"{r.statement}: {r.verdict}; holds/violations/undecided = "
                      f"{r.holds}/{r.violations}/{r.undecided} of {r.trials}; {_interval(r)}")
            if r.counterexample:
                detail += f"; replay: {r.counterexample['replay']}"
            if not r.primary:
                what = {"control": "control row (false by the argument in its row)",
                        "variant": "variant row (another reading, expected to fail)"}.get(
                            r.role, "secondary row (part of a primary claim)")
                ET.SubElement(case, "system-out").text = f"{what}: {detail}"
            elif r.verdict == FAIL:
                ET.SubElement(case, "failure", {"message": f"{r.name} failed"}).text = detail
            elif r.verdict == "inconclusive":
                ET.SubElement(case, "skipped", {"message": f"{r.name} inconclusive"}).text = detail
            else:
                ET.SubElement(case, "system-out").text = detail
    _xml_safe(suites)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
