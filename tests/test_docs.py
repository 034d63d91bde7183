"""The README and docs/ as a reader meets them: every relative link resolves, and every command
the quick start names answers ``--help``."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    return {_slug(m) for m in re.findall(r"^#+ (.+)$", text, re.M)}


def _links(page: Path) -> list[str]:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    return [t for t in _LINK.findall(text) if not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in _links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        missing_anchor = anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved)
        if not resolved.exists() or missing_anchor:
            broken.append(target)
    assert not broken, f"{page.name}: broken links {broken}"


def test_the_docs_pages_are_linked_from_the_readme() -> None:
    linked = {(REPO / t.partition("#")[0]).resolve() for t in _links(REPO / "README.md")}
    assert set(PAGES[1:]) <= linked


def _quick_start_commands() -> list[list[str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    lines = [
        line.strip()
        for block in re.findall(r"```bash\n(.*?)```", section, re.S)
        for line in block.splitlines()
        if not line.strip().startswith("#")
    ]
    commands = []
    for line in lines:
        for part in line.split("&&"):
            words = shlex.split(part)
            command = words[:2] if words[:1] == ["finetune-safety"] else words[:1]
            if (
                command in (["pytest"], ["finetune-safety", *words[1:2]])
                and command not in commands
            ):
                commands.append(command)
    return commands


def test_the_quick_start_names_the_main_job_and_the_tests() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8").split("\n## ", 2)[1]
    assert "pytest safety_tests" in text and "pytest tests" in text


@pytest.mark.parametrize("command", _quick_start_commands(), ids=" ".join)
def test_every_quick_start_command_answers_help(command: list[str]) -> None:
    module = "pytest" if command[0] == "pytest" else "finetune_safety.cli"
    done = subprocess.run(
        [sys.executable, "-m", module, *command[1:], "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert "usage" in done.stdout.lower()
