"""A check's statement, source, the notes' typos, its method and scenario keys, as text (for
``ntkcheck explain CHECK``) or as Markdown (``ntkcheck explain --all --format markdown``, which
is docs/checks.md)."""
from __future__ import annotations

from .scenario import describe_keys


def key_defaults(c) -> list[tuple[str, str, str]]:
    default = c.scenario_model().model_validate(c.default_scenario())
    out = []
    for key, desc, _ in describe_keys(c.scenario_model()):
        if key == "check":
            continue
        val = default
        for part in key.split("."):
            val = getattr(val, part)
        out.append((key, str(val), desc))
    return out


def explain_text(c) -> str:
    out = [f"{c.name}: {c.title}", "", "Statement (corrected):", f"  {c.statement}", "",
           f"Source: {c.source}", "", "Typos in the lecture notes:"]
    out += [f"  - {t}" for t in c.typos] or ["  (none)"]
    out += ["", "How a trial decides:", f"  {c.method}", "", "Scenario keys (default):"]
    out += [f"  {key:26s} {val:>12}  {desc}" for key, val, desc in key_defaults(c)]
    return "\n".join(out)


def explain_markdown(c) -> str:
    cell = lambda text: text.replace("|", "\\|")  # noqa: E731
    out = [f"## `{c.name}` — {c.title}", "", f"*{c.ref}*", "", "**Statement (corrected).** " + c.statement, "",
           f"**Source.** {c.source}", "", "**Typos in the lecture notes.**", ""]
    out += [f"- {t}" for t in c.typos] or ["- (none)"]
    out += ["", f"**How a trial decides.** {c.method}", "", "| scenario key | default | meaning |", "|---|---|---|"]
    out += [f"| `{key}` | `{cell(val)}` | {cell(desc)} |" for key, val, desc in key_defaults(c)]
    return "\n".join(out) + "\n"
