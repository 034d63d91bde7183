"""How users get the project: the quick start and the example gate install what really exists."""

from __future__ import annotations

import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def pip_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("pip install")]


def test_quick_start_gives_cpu_users_the_cpu_wheel_index_as_ci_does() -> None:
    ci = pip_lines((REPO / ".github" / "workflows" / "ci.yml").read_text())
    readme = (REPO / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    ci_torch = next(line for line in ci if line.startswith("pip install torch"))
    assert CPU_INDEX in ci_torch
    assert ci_torch in pip_lines(quick_start)  # the same pinned torch from the same index
    assert pip_lines(quick_start).index(ci_torch) < next(
        i for i, line in enumerate(pip_lines(quick_start)) if " -e " in line
    )


def test_safety_gate_installs_from_the_git_repository() -> None:
    """The package is not on PyPI: a bare ``pip install finetune-safety`` would fail."""
    workflow = (REPO / ".github" / "workflows" / "safety-gate.yml").read_text()
    installs = [line for line in pip_lines(workflow) if "finetune-safety" in line]
    assert installs == ['pip install "finetune-safety[cpu] @ $FINETUNE_SAFETY_GIT"']
    assert re.search(r"FINETUNE_SAFETY_GIT: \$\{\{ vars\.FINETUNE_SAFETY_GIT \}\}", workflow)
    assert "git+https://" in workflow  # the documented form of the variable
    assert any(CPU_INDEX in line for line in pip_lines(workflow))


def test_the_workflows_pass_actionlint() -> None:
    """GitHub removes an action runtime from its runners on a set date (node20: 23 September
    2026); a workflow still pinned to an action on it stops working. actionlint knows each
    action's runtime, and checks the run: scripts with shellcheck as GitHub's runners have it."""
    scripts = sysconfig.get_path("scripts")
    actionlint = shutil.which("actionlint", path=scripts) or shutil.which("actionlint")
    if actionlint is None:
        pytest.skip("actionlint is not installed: pip install -e '.[dev]'")
    shellcheck = shutil.which("shellcheck", path=scripts) or shutil.which("shellcheck")
    workflows = sorted((REPO / ".github" / "workflows").glob("*.yml"))
    args = [actionlint, "-oneline", "-shellcheck", shellcheck or "", *map(str, workflows)]
    found = subprocess.run(args, capture_output=True, text=True, check=False)
    assert found.returncode == 0, found.stdout + found.stderr
