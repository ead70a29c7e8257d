"""A check's statement, source, the notes' typos, its method and scenario keys, as text (for
``ntkcheck explain CHECK``) or as Markdown (``ntkcheck explain --all --format markdown``, which
is docs/checks.md)."""
from __future__ import annotations

import yaml

from .scenario import describe_keys, get_path


def yaml_value(val) -> str:
    """A value as it would be written in a scenario file (YAML flow style: null, [..], {..})."""
    return yaml.safe_dump(val, default_flow_style=True, allow_unicode=True, width=10_000).strip().removesuffix("...").strip()


def used(c, key: str) -> bool:
    """Whether check ``c`` reads scenario key ``key`` (its ``unused_keys`` are accepted and ignored)."""
    return not any(key == u or (u.endswith(".") and key.startswith(u)) for u in c.unused_keys)


def key_defaults(c) -> list[tuple[str, str, str]]:
    """(key, default as YAML, meaning) for the keys the check uses."""
    default = c.scenario_model().model_validate(c.default_scenario()).model_dump(mode="json")
    out = []
    for key, desc, _ in describe_keys(c.scenario_model()):
        if key == "check" or not used(c, key):
            continue
        out.append((key, yaml_value(get_path(default, key)), desc))
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
