"""Reports: the verdict blocks on a terminal or a pipe (coloured on a terminal), JSON, JUnit XML.

Files are written to a temporary file beside the target and renamed, so a
failed run never leaves a truncated file where a good one stood.
"""
from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .api import Replay, Result
from .errors import ExitCode, UserError
from .stats import FAIL, INCONCLUSIVE, PASS, PROBABILISTIC, SCALING, UNIVERSAL, why_inconclusive

STYLE = {PASS: "bold green", FAIL: "bold red", "inconclusive": "bold yellow", "xfail": "cyan", "xpass": "bold yellow"}
#: the verdict column of the row blocks: "INCONCLUSIVE" and "PASS (so far)" fit, then a space
VERDICT_WIDTH = 14


def console_width(f) -> int:
    """COLUMNS when it is a sensible number, else the terminal's width, else 80 (pytest's rule)."""
    raw = os.environ.get("COLUMNS", "")
    if raw.isdigit() and 20 <= int(raw) <= 10_000:
        return int(raw)
    if hasattr(f, "isatty") and f.isatty():
        try:
            return max(20, os.get_terminal_size(f.fileno()).columns)
        except (OSError, ValueError, AttributeError):
            pass
    return 80


def use_colour(f, color: str = "auto") -> bool:
    """--color always/never decide; auto: FORCE_COLOR (non-empty) colours, NO_COLOR (non-empty,
    as no-color.org says) does not, otherwise colour on a terminal."""
    if color in ("always", "never"):
        return color == "always"
    if os.environ.get("FORCE_COLOR"):
        return True
    if os.environ.get("NO_COLOR"):
        return False
    return bool(hasattr(f, "isatty") and f.isatty())


#: the --color choice of the command being run (auto, always, never)
COLOUR = "auto"


def make_console(file=None, color: str | None = None) -> Console:
    """A console as wide as :func:`console_width`, coloured as :func:`use_colour` says; colour
    is the only difference between a terminal and a pipe (the layout is the same)."""
    f = file or sys.stdout
    colour = use_colour(f, color or COLOUR)
    console = Console(file=f, width=console_width(f), highlight=False, emoji=False, soft_wrap=False,
                      force_terminal=colour, no_color=not colour, color_system="standard" if colour else None)
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
    """No colour (styles are then left out)."""
    return console.no_color or console.color_system is None


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
    if row.deterministic:
        return "deterministic: a fact about these inputs, no Monte Carlo interval"
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




def shown_verdict(row, interrupted: bool = False) -> tuple[str, str]:
    """(word, style key) of a row as pytest would say it: a control that FAILs as designed is
    XFAIL, one that PASSes is XPASS (it lacks power); a PASS of an interrupted run is only
    "PASS (so far)"."""
    v = row.verdict
    if row.expected_fail and v != INCONCLUSIVE:
        return ("XFAIL", "xfail") if v == FAIL else ("XPASS", "xpass")
    word = v.upper()
    if interrupted and v == PASS:
        word = "PASS (so far)"
    return word, str(v)


def _wrap(text: str, width: int) -> list[str]:
    """Lines of at most ``width`` characters, broken between words only (a word longer than
    the width stays whole on its own line)."""
    out = []
    for para in str(text).split("\n"):
        out.extend(textwrap.wrap(para, width=max(width, 10), break_long_words=False, break_on_hyphens=False)
                   or [""])
    return out


def _pairs_lines(items: list[str], width: int, sep: str = "  ") -> list[str]:
    """Items joined by ``sep``, wrapped between items (never inside one)."""
    lines, line = [], ""
    for item in items:
        if line and len(line) + len(sep) + len(item) > width:
            lines.append(line)
            line = item
        else:
            line = f"{line}{sep}{item}" if line else item
    if line:
        lines.append(line)
    return lines


def _print_lines(console: Console, lines: list[str], first: str = "", indent: str = "", style: str | None = None,
                 first_style: str | None = None) -> None:
    for i, line in enumerate(lines):
        head = first if i == 0 else indent
        t = Text()
        t.append(head, style=first_style if i == 0 else None)  # (only the head: a Text's own style spans it all)
        t.append(line, style=style)
        console.print(t, soft_wrap=True, markup=False, highlight=False)


def _is_table(value: Any) -> bool:
    """A quantity that is a list of records (printed as a table of its own)."""
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict)


def _print_pairs(console: Console, pairs: dict[str, Any]) -> None:
    """key=value pairs, wrapped between pairs (never inside one)."""
    items = [f"{k}={fmt(v)}" for k, v in pairs.items() if not _is_table(v)]  # (tables print on their own)
    _print_lines(console, _pairs_lines(items, console.width - 2, " "), "  ", "  ")


def command_lines(cmd: str, width: int) -> list[str]:
    """A shell command whole when it fits, else broken between arguments with a trailing
    backslash (it still pastes into a shell as one command)."""
    if len(cmd) <= width:
        return [cmd]
    lines = _pairs_lines(cmd.split(" "), width - 2, " ")
    return [line + " \\" for line in lines[:-1]] + lines[-1:]


def _counts(r) -> str:
    trials = f"{r.trials} trial{'' if r.trials == 1 else 's'}"
    if r.kind == SCALING:
        text = f"{trials} measured"
    else:
        text = f"{trials}: {r.holds} held, {r.violations} violated, {r.undecided} undecided"
    for n, what in ((r.errors, "errors"), (r.diverged, "diverged"), (r.vacuous, "vacuous (hypothesis failed)")):
        if n:
            text += f", {n} {what}"
    return text


def _summary(result: Result) -> str:
    """pytest's summary line: the rows counted by what they showed."""
    counts: dict[str, int] = {}
    for r in result.rows:
        word, _ = shown_verdict(r, result.interrupted)
        if r.expected_fail:
            key = {"XFAIL": "xfailed (controls failing as designed)", "XPASS": "xpassed (controls lacking power)"
                   }.get(word, "controls inconclusive (lacking power)")
        else:
            key = {PASS: "passed", FAIL: "failed", INCONCLUSIVE: "inconclusive"}[r.verdict]
            if result.interrupted and r.verdict == PASS:
                key = "passed so far"
            if not r.primary:
                key = "secondary " + key
        counts[key] = counts.get(key, 0) + 1
    return "rows: " + ", ".join(f"{n} {k}" for k, n in counts.items())


def render_trials(result: Result, console: Console) -> None:
    """-v: each trial's outcomes, then its figures, wrapped between items."""
    console.print("per trial:")
    for rec in result.trial_records:
        items = [f"{k.removeprefix('outcome.')}={v}" for k, v in rec.items() if k.startswith("outcome.")]
        items += [f"{k}={fmt(v)}" for k, v in rec.items() if k not in ("trial", "error") and not k.startswith("outcome.")]
        if rec.get("error"):
            items.insert(0, f"error: {rec['error']}")
        _print_lines(console, _pairs_lines(items, console.width - 12, " "), f"  {rec['trial']:>7}   ", " " * 12)


def _header(result: Result, console: Console, plain: bool) -> None:
    width = console.width
    _print_lines(console, _wrap(f"ntkcheck {result.check}: {result.title}", width), style=None if plain else "bold")
    _print_lines(console, _wrap(result.statement, width - 13), "  statement: ", " " * 13)
    _print_lines(console, _wrap(result.source, width - 13), "  source:    ", " " * 13)
    _print_pairs(console, result.quantities)
    for note in result.notes:
        _print_lines(console, _wrap(note, width - 8), "  note: ", " " * 8)


def _row_block(console: Console, r, interrupted: bool, alpha: float, plain: bool) -> bool:
    """One claim's block; returns whether its level is stricter than the run's (a footnote)."""
    body, pad = console.width - VERDICT_WIDTH, " " * VERDICT_WIDTH
    console.print()
    word, key = shown_verdict(r, interrupted)
    _print_lines(console, _wrap(f"{r.label} — {_counts(r)}", body), f"{word:<{VERDICT_WIDTH}}", pad,
                 first_style=None if plain else STYLE.get(key))
    lines = _wrap(r.statement, body)
    marked = r.level is not None and r.level < alpha * (1 - 1e-9) and not r.deterministic
    interval = _interval(r)
    lines += _wrap(interval if r.deterministic else f"{r.kind}, {_bound(r)}: {interval}{' *' if marked else ''}",
                   body)
    for item in _pairs_lines([f"{k} = {fmt(v)}" for k, v in r.figures.items()], body):
        lines += _wrap(item, body)  # (a long tuple breaks after its commas)
    why = why_inconclusive(r)
    if why:
        lines += _wrap(f"why inconclusive: {why}", body)
    if word == "XPASS" or (r.expected_fail and r.verdict == INCONCLUSIVE):
        lines += _wrap("lacks power: this row is false by the argument in its statement, so it should "
                       "FAIL; the check cannot tell a true claim from a false one here.", body)
    _print_lines(console, lines, pad, pad)
    return marked


def _replays(result: Result, console: Console) -> None:
    """The counterexamples' and errored trials' replay commands."""
    width = console.width
    for r in result.rows:
        if r.counterexample:
            ce = r.counterexample
            what = "diverged" if ce.get("diverged") else "violated"
            if r.expected_fail:
                what += " (as expected)"
            key = ",".join(map(str, ce["spawn_key"]))
            _print_lines(console, _wrap(f"{r.name}: {what} in trial {ce['trial']} (seed {ce['seed']}, "
                                        f"spawn key ({key})); replay it alone with:", width - 2), "  ", "  ")
            _print_lines(console, command_lines(ce["replay"], width - 4), "    ", "      ")
    for e in result.trial_errors[:5]:
        what = (f"was lost ({e['error'].removeprefix('lost: ')})" if e["error"].startswith("lost: ")
                else f"failed numerically ({e['error']})")
        _print_lines(console, _wrap(f"trial {e['trial']} {what}; replay it with:", width - 2), "  ", "  ")
        _print_lines(console, command_lines(e["replay"], width - 4), "    ", "      ")
    if len(result.trial_errors) > 5:
        console.print(f"  ... and {len(result.trial_errors) - 5} more trial errors (all in the JSON output).")


def render(result: Result, console: Console, verbose: bool = False) -> None:
    """The result as blocks, one per claim, that fit the console's width without splitting a word:
    the verdict word, then the claim's name, counts, statement, interval, figures, and why an
    INCONCLUSIVE is one. ``verbose``: each trial's outcomes and figures too."""
    plain = is_plain(console)
    _header(result, console, plain)
    alpha = 1.0 - float(result.scenario.get("confidence", 0.95))
    stricter = [_row_block(console, r, result.interrupted, alpha, plain) for r in result.rows]
    console.print()
    if any(stricter):
        _print_lines(console, _wrap(
            f"* a stricter level than {100 * (1 - alpha):.4g}%: the primary rows share one family-wise "
            f"{100 * (1 - alpha):.4g}% confidence, by Holm's step-down for the probability and slope rows and "
            f"by splitting α = {100 * alpha:.4g}% evenly among the primary rows (Bonferroni) for the rows about "
            "every trial.", console.width - 2), "  ", "  ")
    for key, val in result.quantities.items():
        if _is_table(val):
            sub = Table(title=key.replace("_", " "), box=box.SIMPLE)
            for col in val[0]:
                sub.add_column(col, justify="right")
            for rec in val:
                sub.add_row(*[fmt(rec[c]) for c in val[0]])
            console.print(sub)
    _replays(result, console)
    if verbose and result.trial_records:
        render_trials(result, console)
    _print_lines(console, _wrap(_summary(result), console.width - 2), "  ", "  ")
    console.print(verdict_line(result, plain))


def verdict_line(result: Result, plain: bool = True) -> Text:
    """The last line. An interrupted run has no verdict: it says so and what its trials showed."""
    if result.interrupted:
        text = (f"verdict: INTERRUPTED after {result.trials} of {result.planned_trials} trials, so none "
                f"(the trials so far: {result.verdict}; {result.elapsed_seconds:.2f} s, exit {int(result.exit_code)})")
        return Text(text, style=None if plain else "bold yellow")
    return Text(f"verdict: {result.verdict.upper()} ({result.trials} trials, "
                f"{result.elapsed_seconds:.2f} s, exit {int(result.exit_code)})",
                style=None if plain else STYLE[result.verdict])


_HTML_COLOUR = {"pass": "#1a7f37", "fail": "#cf222e", "inconclusive": "#9a6700", "xfail": "#0969da",
                "xpass": "#9a6700"}


def to_html_table(result: Result) -> str:
    """The verdict table as one HTML fragment (a notebook's ``_repr_html_``): escaped text only."""
    from html import escape

    head = (f"<p><b>ntkcheck {escape(result.check)}</b>: {escape(result.title)} — "
            f"<b>{escape(verdict_line(result).plain.removeprefix('verdict: '))}</b></p>")
    cells = []
    for r in result.rows:
        word, key = shown_verdict(r, result.interrupted)
        why = why_inconclusive(r)
        cells.append(
            f"<tr><td style='color:{_HTML_COLOUR.get(key, 'inherit')};font-weight:bold'>{escape(word)}</td>"
            f"<td><code>{escape(r.label)}</code></td><td style='text-align:left'>{escape(r.statement)}"
            + (f"<br><i>why inconclusive: {escape(why)}</i>" if why else "")
            + (f"<br><small>{escape('; '.join(f'{k} = {fmt(v)}' for k, v in r.figures.items()))}</small>"
               if r.figures else "")
            + f"</td><td>{escape(_counts(r))}</td><td>{escape(_interval(r))}</td></tr>")
    return (head + "<table><thead><tr><th>verdict</th><th>claim</th><th>statement</th><th>trials</th>"
            "<th>interval</th></tr></thead><tbody>" + "".join(cells) + "</tbody></table>")


_CSS = """body{font:15px/1.45 system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em;color:#1f2328}
h1{font-size:1.4em}h2{font-size:1.2em;border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #d0d7de;padding:.3em .6em;vertical-align:top;
text-align:left}th{background:#f6f8fa}pre{background:#f6f8fa;padding:.6em;overflow-x:auto;font-size:13px}
code{font-size:13px}img{max-width:100%;border:1px solid #d0d7de}.meta{color:#59636e;font-size:13px}"""


def versions() -> dict[str, str]:
    """The versions a report records (what produced its numbers)."""
    import platform

    import numpy
    import scipy

    from . import __version__ as ours
    return {"ntkcheck": ours, "python": platform.python_version(), "numpy": numpy.__version__,
            "scipy": scipy.__version__, "machine": f"{platform.system()} {platform.machine()}"}


def to_html_report(results: list[Result], title: str, images: list[tuple[str, bytes]] = ()) -> str:
    """One self-contained HTML file: per result its statement and source, the verdict table, the
    notes, the replay commands and the scenario as YAML; the images inline (PNG as data URIs);
    versions and timings. No script and nothing fetched from a network."""
    import base64
    import datetime
    from html import escape

    import yaml

    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{escape(title)}</h1>"]
    ver = versions()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts.append("<p class='meta'>" + escape(", ".join(f"{k} {v}" for k, v in ver.items()) + f"; written {stamp}")
                 + "</p>")
    for res in results:
        where = f" — {res.scenario_path}" if res.scenario_path else " — the built-in scenario"
        parts.append(f"<h2>{escape(res.check)}{escape(where)}</h2>")
        parts.append(f"<p><b>Statement.</b> {escape(res.statement)}</p><p><b>Source.</b> {escape(res.source)}</p>")
        parts.append(to_html_table(res))
        parts.append(f"<p class='meta'>{res.trials} trials of {res.planned_trials} planned, "
                     f"{res.elapsed_seconds:.2f} s, seed {res.seed}, exit {int(res.exit_code)}</p>")
        if res.notes:
            parts.append("<ul>" + "".join(f"<li>{escape(n)}</li>" for n in res.notes) + "</ul>")
        replays = [(r.name, r.counterexample["replay"]) for r in res.rows if r.counterexample]
        replays += [(f"trial {e['trial']} (error)", e["replay"]) for e in res.trial_errors[:5]]
        if replays:
            parts.append("<p><b>Replay commands</b> (each re-runs one trial alone):</p><pre>"
                         + escape("\n".join(f"# {name}\n{cmd}" for name, cmd in replays)) + "</pre>")
        parts.append("<details><summary>Scenario (YAML)</summary><pre>"
                     + escape(yaml.safe_dump({"check": res.check, **res.scenario}, sort_keys=False,
                                             allow_unicode=True)) + "</pre></details>")
    for caption, png in images:
        parts.append(f"<figure><img alt='{escape(caption)}' src='data:image/png;base64,"
                     f"{base64.b64encode(png).decode('ascii')}'><figcaption>{escape(caption)}</figcaption></figure>")
    parts.append("</body></html>\n")
    return "".join(parts)


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


def write_atomic(path: str | Path, text: str | bytes) -> None:
    """Write ``text`` (or bytes) to a temporary file beside ``path`` and rename it over ``path``, with the
    permissions a shell redirect would give (0666 less the umask; mkstemp's own are 0600). A
    full disk or a too-large file is one sentence (UserError), never a traceback."""
    p = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent if str(p.parent) else ".")
    except OSError as e:  # a folder that takes no new files (/proc, a read-only mount)
        raise UserError(f"could not write '{p}': {e.strerror or e}.") from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        try:
            with (os.fdopen(fd, "wb") if isinstance(text, bytes) else os.fdopen(fd, "w", encoding="utf-8")) as fh:
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
    """One testsuite per result (named by its check and scenario file), one testcase per claim:
    a FAILed primary row is a failure naming the claim, its counterexample and the replay
    command; an INCONCLUSIVE one, or any PASS of an interrupted run, is skipped with the reason;
    the other rows (controls as xfail/xpass) are in system-out."""
    suites = ET.Element("testsuites")
    for res in results:
        name = f"ntkcheck.{res.check}" + (f"[{res.scenario_path}]" if res.scenario_path else "")
        skipped = {r.name for r in res.rows
                   if r.primary and (r.verdict == INCONCLUSIVE or (res.interrupted and r.verdict == PASS))}
        suite = ET.SubElement(suites, "testsuite", {
            "name": name,
            "tests": str(len(res.rows)),
            "failures": str(sum(r.verdict == FAIL and r.primary for r in res.rows)),
            "skipped": str(len(skipped)),
            "time": f"{res.elapsed_seconds:.3f}",
        })
        props = ET.SubElement(suite, "properties")
        verdict = (f"interrupted after {res.trials} of {res.planned_trials} trials (the trials so far: {res.verdict})"
                   if res.interrupted else str(res.verdict))
        for k, v in (("seed", res.seed), ("verdict", verdict), ("scenario_path", res.scenario_path or "(built-in)")):
            ET.SubElement(props, "property", {"name": k, "value": str(v)})
        for k, v in res.quantities.items():
            ET.SubElement(props, "property", {"name": k, "value": fmt(v)})
        for r in res.rows:
            case = ET.SubElement(suite, "testcase", {"classname": name, "name": r.label})
            shown = shown_verdict(r, res.interrupted)[0]
            detail = (f"{r.statement}: {shown}; holds/violations/undecided = "
                      f"{r.holds}/{r.violations}/{r.undecided} of {r.trials}; {_interval(r)}")
            ce = r.counterexample
            if ce:
                detail += f"; replay: {ce['replay']}"
            if not r.primary:
                what = {"control": "control row (false by the argument in its row, expected to fail)",
                        "variant": "variant row (another reading, expected to fail)"}.get(
                            r.role, "secondary row (part of a primary claim)")
                ET.SubElement(case, "system-out").text = f"{what}: {detail}"
            elif r.verdict == FAIL:
                msg = f"claim {r.name} failed"
                if ce:
                    msg += (f": {'diverged' if ce.get('diverged') else 'violated'} in trial {ce['trial']} "
                            f"(seed {ce['seed']}); replay: {ce['replay']}")
                ET.SubElement(case, "failure", {"message": msg}).text = detail
            elif r.name in skipped:
                why = (f"interrupted after {res.trials} of {res.planned_trials} trials" if res.interrupted and
                       r.verdict == PASS else f"inconclusive: {why_inconclusive(r) or 'undecided'}")
                ET.SubElement(case, "skipped", {"message": f"claim {r.name} {why}"}).text = detail
            else:
                ET.SubElement(case, "system-out").text = detail
    _xml_safe(suites)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
