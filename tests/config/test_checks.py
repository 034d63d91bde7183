"""The checks every surface shares: what each accepts, what it returns, how it names the fault."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune_safety.benchmarks import HEX_PHI_CATEGORY_MAP
from finetune_safety.config import checks as v


def test_category_map_reads_the_table_form_and_the_command_line_form(tmp_path: Path) -> None:
    table = v.category_map({"7": "adult_content", "8": "fraud_deception"}, "k", tmp_path)
    text = v.category_map("7=adult_content,8=fraud_deception", "--f", tmp_path)
    assert table == text == {**HEX_PHI_CATEGORY_MAP, 7: "adult_content", 8: "fraud_deception"}
    with pytest.raises(v.ConfigError, match=r'^k: expected \{"7" = "slug", \.\.\.\}$'):
        v.category_map(7, "k", tmp_path)
    with pytest.raises(v.ConfigError, match=r"^--f: bad category map entry 'x'"):
        v.category_map("x", "--f", tmp_path)


def test_paths_start_at_the_base_unless_absolute(tmp_path: Path) -> None:
    assert v.directory("store", "k", tmp_path) == tmp_path / "store"
    assert v.directory("/abs/store", "k", tmp_path) == Path("/abs/store")
    assert v.directory("~/store", "k", tmp_path) == Path.home() / "store"
    assert v.benchmark("jsonl:b.jsonl", "k", tmp_path) == f"jsonl:{tmp_path / 'b.jsonl'}"
    assert v.benchmark("smoke", "k", tmp_path) == "smoke"


@pytest.mark.parametrize(
    ("check", "good", "bad"),
    [
        (v.batch_size, ["auto", 1, 64], [0, "8", True, 2.0, "Auto"]),
        (v.positive_int, [1, 512], [0, -1, True, 1.0, "1"]),
        (v.retries, [0, 4], [-1, True, 1.5]),
        (v.seconds, [0.5, 60, 60.0], [0, -1.0, True, "60"]),
        (v.rate, [0, 0.5, 1], [-0.1, 1.01, True, "0.1"]),
        (v.share, [0.5, 1], [0, 1.5, False]),
        (v.alpha, [0.05], [0, 1.0, 1, True]),
        (v.mode, ["delta", "significant"], ["both", 1]),
        (v.switch, [True, False], [1, "yes"]),
        (v.text, ["x"], [1, None]),
    ],
)
def test_each_check_keeps_good_values_and_names_where_for_bad_ones(
    check: v.Check, good: list[object], bad: list[object], tmp_path: Path
) -> None:
    for value in good:
        assert check(value, "where", tmp_path) == value
    for value in bad:
        with pytest.raises(v.ConfigError, match=r"^where: "):
            check(value, "where", tmp_path)
