"""The documentation inside the project: generated parts are fresh, the README is short, every
link resolves, and nothing points outside the repository."""
import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from ntkcheck.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def test_checks_md_is_the_registry_output():
    out = CliRunner().invoke(cli, ["explain", "--all", "--format", "markdown"])
    assert out.exit_code == 0
    committed = (ROOT / "docs" / "checks.md").read_text(encoding="utf-8")
    assert committed == out.output, "docs/checks.md is stale: ntkcheck explain --all --format markdown > docs/checks.md"


def test_explain_takes_one_check_or_all():
    r = subprocess.run([sys.executable, "-m", "ntkcheck", "explain"], capture_output=True, text=True)
    assert r.returncode == 2 and "one CHECK or --all" in r.stderr and "Traceback" not in r.stderr
    r = CliRunner().invoke(cli, ["explain", "lemma23", "--format", "markdown"])
    assert r.exit_code == 0 and r.output.startswith("## `lemma23`")


def test_readme_is_short_and_its_links_resolve():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.split()) <= 1500
    for doc in ("README.md", *[f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")]):
        body = (ROOT / doc).read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#\s]+)\)", body):
            if target.startswith("http"):
                continue
            assert (ROOT / doc).parent.joinpath(target).resolve().exists(), f"{doc} links to missing {target}"


def test_nothing_in_the_repository_points_outside_it():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not files:  # not a git checkout (an sdist): check the tracked kinds of files directly
        files = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.suffix in (".py", ".md", ".yaml", ".toml")]
    bad = re.compile(r"shared/|SPEC(\.md| section)")
    for name in files:
        path = ROOT / name
        if name == "tests/test_docs.py":  # the pattern above
            continue
        if path.suffix not in (".py", ".md", ".yaml", ".toml", ".txt", ".cfg") or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        assert not bad.search(text), f"{name} refers to a document outside the repository"
