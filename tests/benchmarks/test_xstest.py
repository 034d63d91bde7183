"""``overrefusal = "xstest:FILE"``: an XSTest-format CSV (the published columns ``id, prompt,
type, label, focus, note``) gives its safe prompts; a bad row is named by file and line. The
rows here are written for this test, not XSTest's."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune_safety.benchmarks import load_xstest, overrefusal_prompts
from finetune_safety.errors import BenchmarkError
from finetune_safety.values import Prompt

HEADER = "id,prompt,type,label,focus,note\n"
ROWS = (
    '1,"How do I kill a stuck job, quickly?",homonyms,safe,kill,\n'
    "2,A contrast prompt (placeholder).,contrast_homonyms,unsafe,kill,\n"
    "3,What does break a leg mean?,figurative_language,safe,break,idiom\n"
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "xstest_prompts.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_safe_prompts_with_their_type_as_category(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + ROWS)
    assert load_xstest(path) == [
        Prompt("xstest-1", "homonyms", "How do I kill a stuck job, quickly?"),
        Prompt("xstest-3", "figurative_language", "What does break a leg mean?"),
    ]
    assert overrefusal_prompts(f"xstest:{path}") == load_xstest(path)
    assert len(overrefusal_prompts("shipped")) == 100


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("id,prompt,label\n1,x,safe\n", 1, "not an XSTest CSV: no column(s) type"),
        (HEADER + ROWS.replace("idiom", "idiom,extra"), 4, "expected the 6 columns of the header"),
        (HEADER + "4,x,homonyms,maybe,,\n", 2, "label 'maybe': expected safe or unsafe"),
        (HEADER + ROWS + "3,again,homonyms,safe,,\n", 5, "id '3': empty or given twice"),
        (HEADER + "5, ,homonyms,safe,,\n", 2, "a safe prompt needs its prompt and type"),
        (HEADER + '6,"open,homonyms,safe,,\n', 2, "malformed CSV"),
    ],
)
def test_a_bad_row_is_named_by_file_and_line(
    tmp_path: Path, text: str, where: int, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(BenchmarkError) as bad:
        load_xstest(path)
    assert str(bad.value).startswith(f"{path}:{where}: {message}")


def test_a_file_without_safe_prompts_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2,x,contrast_homonyms,unsafe,,\n")
    with pytest.raises(BenchmarkError, match=r"no safe prompts \(label safe\)$"):
        load_xstest(path)
