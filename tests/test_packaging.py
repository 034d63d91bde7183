"""What the wheel must carry for users: the py.typed marker (PEP 561), so mypy checks their
conftest.py hooks and extensions against our types."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_package_is_marked_typed_and_shipped_whole() -> None:
    assert (REPO / "finetune_safety" / "py.typed").is_file()
    hatch = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["hatch"]
    wheel = hatch["build"]["targets"]["wheel"]
    # hatch ships every file under a listed package (py.typed too) unless excluded.
    assert wheel["packages"] == ["finetune_safety"]
    assert "exclude" not in wheel and "only-include" not in wheel
