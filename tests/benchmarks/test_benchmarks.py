"""Loaders for smoke, HEx-PHI, AdvBench and JSONL benchmarks, and every error they raise."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from finetune_safety.benchmarks import (
    ADVBENCH_CATEGORY,
    HEX_PHI_CATEGORY_MAP,
    first_per_category,
    load_benchmark,
    parse_category_map,
)
from finetune_safety.errors import BenchmarkError
from finetune_safety.values import CATEGORIES, Prompt


def at(path: Path, line: int | None, fragment: str) -> str:
    """A ``match=`` pattern: the message starts with ``path:line:`` and contains ``fragment``."""
    where = f"{path}:{line}: " if line is not None else f"{path}: "
    return "^" + re.escape(where) + ".*" + re.escape(fragment)


def hexphi_dir(tmp_path: Path, files: dict[int, str]) -> Path:
    root = tmp_path / "hexphi"
    root.mkdir()
    for number, body in files.items():
        (root / f"category_{number}.csv").write_text(body, encoding="utf-8", newline="")
    return root


def write_jsonl(path: Path, *records: object) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


# --- spec dispatch -------------------------------------------------------------------------------


def test_unknown_scheme_names_spec_and_valid_schemes() -> None:
    with pytest.raises(BenchmarkError) as info:
        load_benchmark("harmbench:x.csv")
    msg = str(info.value)
    assert "'harmbench:x.csv'" in msg
    assert "smoke, hexphi:PATH, advbench:PATH, jsonl:PATH" in msg


def test_smoke_cannot_be_overridden_by_path(tmp_path: Path) -> None:
    other = write_jsonl(tmp_path / "s.jsonl", {"category": "malware", "prompt": "x"})
    with pytest.raises(BenchmarkError, match="takes no path"):
        load_benchmark(f"smoke:{other}")


def test_scheme_without_path_is_an_error() -> None:
    with pytest.raises(BenchmarkError, match=re.escape("'jsonl:' needs a path")):
        load_benchmark("jsonl:")


def test_category_map_rejected_outside_hexphi() -> None:
    with pytest.raises(BenchmarkError, match="only to hexphi"):
        load_benchmark("smoke", category_map=HEX_PHI_CATEGORY_MAP)


# --- smoke ---------------------------------------------------------------------------------------


def test_smoke_covers_every_category_with_unique_ids() -> None:
    prompts = load_benchmark("smoke")
    per_category = Counter(p.category for p in prompts)
    assert set(per_category) == set(CATEGORIES)
    assert min(per_category.values()) >= 5
    assert len({p.id for p in prompts}) == len(prompts)
    assert list(dict.fromkeys(p.category for p in prompts)) == list(CATEGORIES)  # paper order
    assert all(p.text.isascii() and 8 <= len(p.text.split()) <= 20 for p in prompts)


def test_smoke_ids_are_stable() -> None:
    first, second = load_benchmark("smoke"), load_benchmark("smoke")
    assert first == second
    assert first[0] == Prompt("illegal_activity-1", "illegal_activity", first[0].text)
    assert [p.id for p in first if p.category == "malware"][:2] == ["malware-1", "malware-2"]


# --- HEx-PHI -------------------------------------------------------------------------------------


def test_hexphi_subset_order_and_ids(tmp_path: Path) -> None:
    root = hexphi_dir(tmp_path, {3: "hate one\nhate two\n", 1: "ill one\n", 11: "fin one"})
    (root / "README.md").write_text("not data")
    prompts = load_benchmark(f"hexphi:{root}")
    assert prompts == [
        Prompt("illegal_activity-1", "illegal_activity", "ill one"),
        Prompt("hate_harass_violence-1", "hate_harass_violence", "hate one"),
        Prompt("hate_harass_violence-2", "hate_harass_violence", "hate two"),
        Prompt("tailored_financial_advice-1", "tailored_financial_advice", "fin one"),
    ]


def test_hexphi_multiline_quoted_cell_and_line_numbers(tmp_path: Path) -> None:
    body = 'first\n"multi\r\nline, with comma"\n"say ""hi"""\n   \n'
    root = hexphi_dir(tmp_path, {4: body})
    with pytest.raises(BenchmarkError, match=at(root / "category_4.csv", 5, "empty prompt")):
        load_benchmark(f"hexphi:{root}")
    (root / "category_4.csv").write_text(body.replace("   \n", ""), newline="")
    texts = [p.text for p in load_benchmark(f"hexphi:{root}")]
    assert texts == ["first", "multi\r\nline, with comma", 'say "hi"']


def test_hexphi_swap_7_and_8_override(tmp_path: Path) -> None:
    root = hexphi_dir(tmp_path, {7: "seven\n", 8: "eight\n"})
    default = load_benchmark(f"hexphi:{root}")
    assert [(p.category, p.text) for p in default] == [
        ("fraud_deception", "seven"),
        ("adult_content", "eight"),
    ]
    swapped_map = parse_category_map("7=adult_content, 8=fraud_deception")
    swapped = load_benchmark(f"hexphi:{root}", category_map=swapped_map)
    assert [(p.id, p.text) for p in swapped] == [
        ("adult_content-1", "seven"),
        ("fraud_deception-1", "eight"),
    ]


def test_hexphi_row_with_two_prompts_names_file_and_line(tmp_path: Path) -> None:
    root = hexphi_dir(tmp_path, {5: 'ok\n"multi\nline"\na,b\n'})
    with pytest.raises(
        BenchmarkError,
        match=at(root / "category_5.csv", 4, "expected one prompt per row, found 2 cells"),
    ):
        load_benchmark(f"hexphi:{root}")


def test_hexphi_trailing_empty_cell_is_tolerated(tmp_path: Path) -> None:
    root = hexphi_dir(tmp_path, {5: "only prompt,\n"})
    assert [p.text for p in load_benchmark(f"hexphi:{root}")] == ["only prompt"]


def test_hexphi_blank_lines_carry_no_row(tmp_path: Path) -> None:
    root = hexphi_dir(tmp_path, {6: "a\n\nb\n\n"})
    assert [p.id for p in load_benchmark(f"hexphi:{root}")] == [
        "economic_harm-1",
        "economic_harm-2",
    ]


def test_hexphi_unterminated_quote_names_row_start(tmp_path: Path) -> None:
    root = hexphi_dir(tmp_path, {1: 'a\n"b\nc\n'})
    with pytest.raises(BenchmarkError, match=at(root / "category_1.csv", 2, "malformed CSV")):
        load_benchmark(f"hexphi:{root}")


@pytest.mark.parametrize("name", ["category_12.csv", "category_x.csv", "category_01.csv"])
def test_hexphi_bad_file_name_is_named(tmp_path: Path, name: str) -> None:
    root = hexphi_dir(tmp_path, {1: "a\n"})
    (root / name).write_text("b\n")
    with pytest.raises(
        BenchmarkError, match=at(root / name, None, "expected category_N.csv, N in 1..11")
    ):
        load_benchmark(f"hexphi:{root}")


def test_hexphi_no_matching_files(tmp_path: Path) -> None:
    root = hexphi_dir(tmp_path, {})
    (root / "notes.txt").write_text("x")
    with pytest.raises(BenchmarkError, match=at(root, None, "no category_N.csv files found")):
        load_benchmark(f"hexphi:{root}")


def test_hexphi_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match=at(tmp_path / "nope", None, "no such directory")):
        load_benchmark(f"hexphi:{tmp_path / 'nope'}")


def test_hexphi_empty_file(tmp_path: Path) -> None:
    root = hexphi_dir(tmp_path, {1: "a\n", 2: ""})
    with pytest.raises(BenchmarkError, match=at(root / "category_2.csv", None, "no prompts")):
        load_benchmark(f"hexphi:{root}")


def test_hexphi_invalid_utf8_names_line(tmp_path: Path) -> None:
    root = hexphi_dir(tmp_path, {9: ""})
    (root / "category_9.csv").write_bytes(b"fine\nalso fine\nbad \xff byte\n")
    with pytest.raises(BenchmarkError, match=at(root / "category_9.csv", 3, "invalid UTF-8")):
        load_benchmark(f"hexphi:{root}")


def test_hexphi_bom_is_not_part_of_the_prompt(tmp_path: Path) -> None:
    root = hexphi_dir(tmp_path, {1: ""})
    (root / "category_1.csv").write_bytes("\ufeffhello\n".encode())
    assert [p.text for p in load_benchmark(f"hexphi:{root}")] == ["hello"]


def test_hexphi_map_with_unknown_category(tmp_path: Path) -> None:
    root = hexphi_dir(tmp_path, {1: "a\n"})
    with pytest.raises(BenchmarkError, match="file 1 to unknown category 'crime'"):
        load_benchmark(f"hexphi:{root}", category_map={1: "crime"})


def test_hexphi_map_missing_entry_for_present_file(tmp_path: Path) -> None:
    root = hexphi_dir(tmp_path, {1: "a\n", 3: "b\n"})
    with pytest.raises(
        BenchmarkError, match=at(root / "category_3.csv", None, "no entry for file number 3")
    ):
        load_benchmark(f"hexphi:{root}", category_map={1: "illegal_activity"})


# --- parse_category_map --------------------------------------------------------------------------


def test_parse_category_map_overrides_default() -> None:
    parsed = parse_category_map("7=adult_content,8=fraud_deception")
    assert parsed[7] == "adult_content" and parsed[8] == "fraud_deception"
    assert parsed[1] == "illegal_activity" and len(parsed) == 11
    assert parse_category_map("") == dict(HEX_PHI_CATEGORY_MAP)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("7", "bad category map entry '7'"),
        ("seven=adult_content", "bad category map entry"),
        ("12=adult_content", "key 12 is not a HEx-PHI file number"),
        ("7=porn", "file 7 to unknown category 'porn'"),
        ("7=adult_content", "files 7 and 8 both to 'adult_content'"),
        ("7=adult_content,7=fraud_deception", "sets file 7 twice"),
    ],
)
def test_parse_category_map_errors(text: str, fragment: str) -> None:
    with pytest.raises(BenchmarkError, match=re.escape(fragment)):
        parse_category_map(text)


# --- AdvBench ------------------------------------------------------------------------------------


def test_advbench_with_header_uses_goal(tmp_path: Path) -> None:
    path = tmp_path / "harmful_behaviors.csv"
    path.write_text('goal,target\nDo bad thing,"Sure, here is"\nDo other,Sure\n', newline="")
    prompts = load_benchmark(f"advbench:{path}")
    assert prompts == [
        Prompt("advbench-1", ADVBENCH_CATEGORY, "Do bad thing"),
        Prompt("advbench-2", ADVBENCH_CATEGORY, "Do other"),
    ]
    assert load_benchmark(f"advbench:{tmp_path}") == prompts  # a directory holding the file


def test_advbench_headerless(tmp_path: Path) -> None:
    path = tmp_path / "goals.csv"
    path.write_text("one\ntwo\n")
    assert [(p.id, p.text) for p in load_benchmark(f"advbench:{path}")] == [
        ("advbench-1", "one"),
        ("advbench-2", "two"),
    ]


def test_advbench_row_with_wrong_cell_count(tmp_path: Path) -> None:
    path = tmp_path / "harmful_behaviors.csv"
    path.write_text("goal,target\na,b\nc\n")
    with pytest.raises(
        BenchmarkError, match=at(path, 3, "expected 2 cells (goal,target), found 1")
    ):
        load_benchmark(f"advbench:{path}")


def test_advbench_header_only_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "harmful_behaviors.csv"
    path.write_text("goal,target\n")
    with pytest.raises(BenchmarkError, match=at(path, None, "no prompts")):
        load_benchmark(f"advbench:{path}")


def test_advbench_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match=at(tmp_path / "x.csv", None, "no such file")):
        load_benchmark(f"advbench:{tmp_path / 'x.csv'}")


# --- JSONL ---------------------------------------------------------------------------------------


def test_jsonl_ids_given_and_generated(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "b.jsonl",
        {"category": "malware", "prompt": "m1"},
        {"id": "custom", "category": "malware", "prompt": "m2"},
        {"category": "fraud_deception", "prompt": "f1"},
        {"category": "malware", "prompt": "m3"},
    )
    path.write_text(path.read_text() + "\n  \n")  # trailing blank lines carry no prompt
    assert [p.id for p in load_benchmark(f"jsonl:{path}")] == [
        "malware-1",
        "custom",
        "fraud_deception-1",
        "malware-3",
    ]


def test_jsonl_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "b.jsonl",
        {"category": "malware", "prompt": "a"},
        {"id": "z", "category": "malware", "prompt": "b"},
        {"id": "malware-1", "category": "malware", "prompt": "c"},
    )
    with pytest.raises(
        BenchmarkError, match=at(path, 3, "duplicate id 'malware-1' (first on line 1)")
    ):
        load_benchmark(f"jsonl:{path}")


@pytest.mark.parametrize(
    ("line2", "fragment"),
    [
        ('{"category": "malware", "prompt": "x"', "malformed JSON"),
        ('["malware", "x"]', "expected a JSON object, got list"),
        ('{"category": "malware", "prompt": "x", "extra": 1}', "unknown key(s) 'extra'"),
        ('{"prompt": "x"}', "missing 'category'"),
        ('{"category": "malware"}', "missing 'prompt'"),
        ('{"category": "malware", "prompt": 3}', "'prompt' must be a string, got int"),
        ('{"id": 1, "category": "malware", "prompt": "x"}', "'id' must be a string, got int"),
        ('{"category": "weapons", "prompt": "x"}', "unknown category 'weapons'"),
        ('{"category": "advbench", "prompt": "x"}', "unknown category 'advbench'"),
        ('{"category": "malware", "prompt": "  "}', "empty prompt"),
        ('{"id": " ", "category": "malware", "prompt": "x"}', "empty id"),
    ],
)
def test_jsonl_errors_name_file_and_line(tmp_path: Path, line2: str, fragment: str) -> None:
    path = tmp_path / "b.jsonl"
    path.write_text('\n{"category": "malware", "prompt": "ok"}\n' + line2 + "\n")
    with pytest.raises(BenchmarkError, match=at(path, 3, fragment)):
        load_benchmark(f"jsonl:{path}")


def test_jsonl_invalid_utf8_names_line(tmp_path: Path) -> None:
    path = tmp_path / "b.jsonl"
    path.write_bytes(
        b'{"category": "malware", "prompt": "ok"}\n{"category": "malware", "prompt": "\xc3"}\n'
    )
    with pytest.raises(BenchmarkError, match=at(path, 2, "invalid UTF-8")):
        load_benchmark(f"jsonl:{path}")


def test_jsonl_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "b.jsonl"
    path.write_text("\n\n")
    with pytest.raises(BenchmarkError, match=at(path, None, "no prompts")):
        load_benchmark(f"jsonl:{path}")


def test_jsonl_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match=at(tmp_path / "none.jsonl", None, "no such file")):
        load_benchmark(f"jsonl:{tmp_path / 'none.jsonl'}")


# --- issue 14: NUL bytes, --limit ---------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["hexphi", "advbench", "jsonl"])
def test_nul_bytes_are_rejected_at_file_and_line(tmp_path: Path, scheme: str) -> None:
    if scheme == "hexphi":
        root = hexphi_dir(tmp_path, {1: "first prompt\nsecond\x00prompt\n"})
        path, spec = root / "category_1.csv", f"hexphi:{root}"
    else:
        path = tmp_path / ("bench.csv" if scheme == "advbench" else "bench.jsonl")
        good = (
            "one prompt\n" if scheme == "advbench" else '{"category": "malware", "prompt": "a"}\n'
        )
        path.write_bytes(good.encode() + b"x\x00y\n")
        spec = f"{scheme}:{path}"
    with pytest.raises(BenchmarkError, match=at(path, 2, "NUL byte")):
        load_benchmark(spec)


def test_first_per_category_keeps_benchmark_order() -> None:
    prompts = load_benchmark("smoke")
    first = first_per_category(prompts, 2)
    assert len(first) == 2 * len(CATEGORIES)
    assert [p.id for p in first[:2]] == ["illegal_activity-1", "illegal_activity-2"]
    assert first == [p for p in prompts if p in first]
    assert first_per_category(prompts, 10_000) == prompts
