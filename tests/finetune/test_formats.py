"""Tests for the instruction data formats (Alpaca JSON, Dolly JSONL) with file:line errors,
format detection, rendering with a template, and the safety keyword filter for benign data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune_safety._util.resources import fixtures_dir
from finetune_safety.errors import FinetuneDataError
from finetune_safety.finetune.data import (
    DEFAULT_FILTER,
    Example,
    Instruction,
    detect_format,
    load_alpaca_json,
    load_chat_jsonl,
    load_dolly_jsonl,
    load_training_data,
    read_filter,
    strip_safety_items,
)
from finetune_safety.models.templates import get_template

BOM = b"\xef\xbb\xbf"
GOOD_ALPACA = {"instruction": "Name a colour.", "input": "", "output": "Blue."}


def _raises(path: Path, loader: object, line: int | None, expected: str) -> FinetuneDataError:
    with pytest.raises(FinetuneDataError) as info:
        loader(path)  # type: ignore[operator]
    error = info.value
    where = f"{path}:{line}: " if line is not None else f"{path}: "
    assert str(error).startswith(where), str(error)
    assert expected in str(error)
    assert error.path == path
    assert error.line == line
    assert "\n" not in str(error)
    return error


# --- Alpaca JSON ----------------------------------------------------------------------------


def test_alpaca_with_and_without_input(tmp_path: Path) -> None:
    rows = [
        {"instruction": "Summarise the text.", "input": "Cats sleep a lot.", "output": "Cats nap."},
        {"instruction": "Name a colour.", "output": "Blue."},
        {"instruction": "Name a fruit.", "input": "", "output": "Apple."},
        {"instruction": "Name a tree.", "input": "  \n", "output": "Oak."},
    ]
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    assert load_alpaca_json(path) == [
        Instruction("Summarise the text.", "Cats nap.", "Cats sleep a lot."),
        Instruction("Name a colour.", "Blue."),
        Instruction("Name a fruit.", "Apple."),
        Instruction("Name a tree.", "Oak."),
    ]


def test_alpaca_compact_single_line_and_non_ascii(tmp_path: Path) -> None:
    rows = [{"instruction": "Grüße?", "output": "你好 👋"}, GOOD_ALPACA]
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    assert load_alpaca_json(path) == [
        Instruction("Grüße?", "你好 👋"),
        Instruction("Name a colour.", "Blue."),
    ]


def test_alpaca_with_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "alpaca.json"
    text = json.dumps([GOOD_ALPACA, GOOD_ALPACA], indent=2).replace("\n", "\r\n")
    path.write_bytes(BOM + text.encode())
    assert load_alpaca_json(path) == [Instruction("Name a colour.", "Blue.")] * 2
    assert detect_format(path) == "alpaca"


def test_alpaca_bom_keeps_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "alpaca.json"
    text = "[\n" + json.dumps(GOOD_ALPACA) + ",\n" + json.dumps({"instruction": "x"}) + "\n]\n"
    path.write_bytes(BOM + text.encode())
    _raises(path, load_alpaca_json, 3, '"output" must be a non-empty string')


def _alpaca_file(path: Path, bad: str) -> Path:
    """Line 1 ``[``, a good item on lines 2-6 (indented), a blank line, the bad item at line 8."""
    good = json.dumps(GOOD_ALPACA, indent=2)
    assert good.count("\n") == 4
    path.write_text("[\n" + good + ",\n\n" + bad + "\n]\n", encoding="utf-8")
    return path


BAD_ALPACA_ITEMS: list[tuple[str, object, str]] = [
    ("missing-output", {"instruction": "x", "input": "y"}, '"output" must be a non-empty string'),
    ("empty-output", {"instruction": "x", "output": " "}, '"output" must be a non-empty string'),
    ("null-output", {"instruction": "x", "output": None}, '"output" must be a non-empty string'),
    ("missing-instruction", {"output": "y"}, '"instruction" must be a non-empty string'),
    ("empty-instruction", {"instruction": "", "output": "y"}, '"instruction" must be a non-empty'),
    ("blank-instruction", {"instruction": " \n", "output": "y"}, '"instruction" must be a non-'),
    ("non-string-input", {"instruction": "x", "input": 5, "output": "y"}, '"input" must be a'),
    ("unknown-key", {"instruction": "x", "output": "y", "extra": 1}, "unknown key(s) ['extra']"),
    ("dolly-keys", {"instruction": "x", "response": "y"}, "unknown key(s) ['response']"),
    ("not-an-object-string", "just text", "expected a JSON object"),
    ("not-an-object-list", ["x", "y"], "expected a JSON object"),
    ("not-an-object-null", None, "expected a JSON object"),
]


@pytest.mark.parametrize(
    ("bad", "expected"), [r[1:] for r in BAD_ALPACA_ITEMS], ids=[r[0] for r in BAD_ALPACA_ITEMS]
)
@pytest.mark.parametrize("indent", [None, 2], ids=["compact", "indented"])
def test_alpaca_bad_item_names_file_and_its_line(
    tmp_path: Path, bad: object, expected: str, indent: int | None
) -> None:
    path = _alpaca_file(tmp_path / "alpaca.json", json.dumps(bad, indent=indent))
    _raises(path, load_alpaca_json, 8, expected)


def test_alpaca_bad_item_after_many_multiline_items(tmp_path: Path) -> None:
    items = [json.dumps({**GOOD_ALPACA, "output": f"line\n{i}"}, indent=4) for i in range(30)]
    # Each item spans 5 lines; items are separated by ",\n"; the array opens on line 1.
    text = "[\n" + ",\n".join([*items, json.dumps({"instruction": "x"})]) + "\n]"
    path = tmp_path / "alpaca.json"
    path.write_text(text, encoding="utf-8")
    _raises(path, load_alpaca_json, 2 + 5 * 30, '"output"')


def test_alpaca_malformed_json_names_the_error_line(tmp_path: Path) -> None:
    bad = '{\n  "instruction": "x",\n  "output": y\n}'  # item at line 8, the error at line 10
    path = _alpaca_file(tmp_path / "alpaca.json", bad)
    _raises(path, load_alpaca_json, 10, "malformed JSON")


def test_alpaca_malformed_json_trailing_comma_in_item(tmp_path: Path) -> None:
    path = _alpaca_file(tmp_path / "alpaca.json", '{"instruction": "x", "output": "y",}')
    _raises(path, load_alpaca_json, 8, "malformed JSON")


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(GOOD_ALPACA),
        '"a string"',
        json.dumps(GOOD_ALPACA) + "\n" + json.dumps(GOOD_ALPACA) + "\n",
        "",
        "   \n",
    ],
    ids=["object", "string", "jsonl", "empty", "whitespace"],
)
def test_alpaca_not_an_array(tmp_path: Path, text: str) -> None:
    path = tmp_path / "alpaca.json"
    path.write_text(text, encoding="utf-8")
    _raises(path, load_alpaca_json, 1, "expected a JSON array of Alpaca records")


def test_alpaca_unterminated_array(tmp_path: Path) -> None:
    path = tmp_path / "alpaca.json"
    path.write_text("[\n" + json.dumps(GOOD_ALPACA, indent=2) + ",", encoding="utf-8")
    _raises(path, load_alpaca_json, 6, "unterminated JSON array")
    path.write_text("[", encoding="utf-8")
    _raises(path, load_alpaca_json, 1, "unterminated JSON array")


def test_alpaca_unterminated_item(tmp_path: Path) -> None:
    path = tmp_path / "alpaca.json"
    path.write_text('[\n{"instruction": "x",\n"output": "y', encoding="utf-8")
    _raises(path, load_alpaca_json, 3, "malformed JSON")


def test_alpaca_invalid_utf8_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "alpaca.json"
    good = json.dumps(GOOD_ALPACA).encode()
    path.write_bytes(b"[\n" + good + b",\n\n" + b'{"instruction": "\xff", "output": "y"}\n]\n')
    error = _raises(path, load_alpaca_json, 4, "invalid UTF-8")
    assert str(error) == f"{path}:4: invalid UTF-8"


def test_alpaca_invalid_utf8_line_after_bom(tmp_path: Path) -> None:
    path = tmp_path / "alpaca.json"
    good = json.dumps(GOOD_ALPACA).encode()
    path.write_bytes(BOM + b"[\n" + good + b",\n\n" + b'\xff"\n]\n')
    _raises(path, load_alpaca_json, 4, "invalid UTF-8")


@pytest.mark.parametrize("text", ["[]", "[\n]\n", "  [ \n\n ]  "], ids=["tight", "lines", "spaces"])
def test_alpaca_empty_array(tmp_path: Path, text: str) -> None:
    path = tmp_path / "alpaca.json"
    path.write_text(text, encoding="utf-8")
    _raises(path, load_alpaca_json, None, "no training examples")


def test_alpaca_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.json"
    _raises(path, load_alpaca_json, None, "cannot read")


def test_alpaca_data_after_the_array_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "alpaca.json"
    path.write_text(
        json.dumps([GOOD_ALPACA]) + "\n" + json.dumps([GOOD_ALPACA, GOOD_ALPACA]) + "\n",
        encoding="utf-8",
    )
    _raises(path, load_alpaca_json, 2, "")


def test_alpaca_missing_comma_between_items_is_malformed(tmp_path: Path) -> None:
    path = tmp_path / "alpaca.json"
    path.write_text(
        "[\n" + json.dumps(GOOD_ALPACA) + "\n" + json.dumps(GOOD_ALPACA) + "\n]\n",
        encoding="utf-8",
    )
    _raises(path, load_alpaca_json, 3, "malformed JSON")


def test_large_alpaca_file_loads_with_right_lines(tmp_path: Path) -> None:
    n = 50_000
    items = [
        json.dumps(
            {
                "instruction": f"Task {i}.",
                "input": f"Context {i}." if i % 2 else "",
                "output": "Ok.",
            },
            indent=2,
        )
        for i in range(n)
    ]
    lines_per_item = items[0].count("\n") + 1  # 5
    path = tmp_path / "big.json"
    path.write_text("[\n" + ",\n".join(items) + "\n]\n", encoding="utf-8")
    rows = load_alpaca_json(path)
    assert len(rows) == n
    assert rows[0] == Instruction("Task 0.", "Ok.")
    assert rows[-1] == Instruction(f"Task {n - 1}.", "Ok.", f"Context {n - 1}.")

    # The same file with one more, bad, item: its line is found after scanning all 50k.
    last_line = 2 + lines_per_item * n
    path.write_text(
        "[\n" + ",\n".join([*items, '{"instruction": "x"}']) + "\n]\n", encoding="utf-8"
    )
    _raises(path, load_alpaca_json, last_line, '"output" must be a non-empty string')


# --- Dolly JSONL ----------------------------------------------------------------------------

GOOD_DOLLY = {
    "instruction": "What is a cat?",
    "context": "Cats are small felines.",
    "response": "A small feline.",
    "category": "closed_qa",
}


def _jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_dolly_context_appended_and_category_ignored(tmp_path: Path) -> None:
    rows = [
        GOOD_DOLLY,
        {"instruction": "Name a colour.", "context": "", "response": "Blue.", "category": "qa"},
        {"instruction": "Name a fruit.", "response": "Apple."},
    ]
    path = _jsonl(tmp_path / "dolly.jsonl", [json.dumps(r) for r in rows])
    assert load_dolly_jsonl(path) == [
        Instruction("What is a cat?", "A small feline.", "Cats are small felines."),
        Instruction("Name a colour.", "Blue."),
        Instruction("Name a fruit.", "Apple."),
    ]


def test_dolly_bom_crlf_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "dolly.jsonl"
    row = json.dumps(GOOD_DOLLY)
    path.write_bytes(BOM + f"{row}\r\n\r\n{row}".encode())
    assert len(load_dolly_jsonl(path)) == 2
    assert detect_format(path) == "dolly"


BAD_DOLLY_ROWS: list[tuple[str, str, str]] = [
    ("malformed-json", '{"instruction": "x", "response": ', "malformed JSON"),
    ("missing-response", json.dumps({"instruction": "x"}), '"response" must be a non-empty'),
    ("empty-response", json.dumps({"instruction": "x", "response": ""}), '"response" must be'),
    ("empty-instruction", json.dumps({"instruction": " ", "response": "y"}), '"instruction" must'),
    (
        "non-string-context",
        json.dumps({"instruction": "x", "context": ["a"], "response": "y"}),
        '"context" must be a',
    ),
    (
        "unknown-key",
        json.dumps({"instruction": "x", "response": "y", "source": "web"}),
        "unknown key(s) ['source']",
    ),
    (
        "alpaca-keys",
        json.dumps({"instruction": "x", "output": "y"}),
        "unknown key(s) ['output']",
    ),
    ("not-an-object", "[1, 2]", "expected a JSON object"),
    ("string-row", '"text"', "expected a JSON object"),
]


@pytest.mark.parametrize(
    ("bad", "expected"), [r[1:] for r in BAD_DOLLY_ROWS], ids=[r[0] for r in BAD_DOLLY_ROWS]
)
def test_dolly_bad_row_names_file_and_line(tmp_path: Path, bad: str, expected: str) -> None:
    # A good row, a blank line (still counted), then the bad row on line 3.
    good = json.dumps(GOOD_DOLLY)
    path = _jsonl(tmp_path / "dolly.jsonl", [good, "", bad, good])
    _raises(path, load_dolly_jsonl, 3, expected)


def test_dolly_invalid_utf8_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "dolly.jsonl"
    good = json.dumps(GOOD_DOLLY).encode()
    path.write_bytes(good + b"\n" + good + b"\n" + b'{"instruction": "\xfe", "response": "y"}\n')
    _raises(path, load_dolly_jsonl, 3, "invalid UTF-8")


@pytest.mark.parametrize("content", ["", "\n  \n"], ids=["empty", "blank-lines"])
def test_dolly_without_rows(tmp_path: Path, content: str) -> None:
    path = tmp_path / "dolly.jsonl"
    path.write_text(content)
    _raises(path, load_dolly_jsonl, None, "no training examples")


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\x85"], ids=["U+2028", "U+2029", "U+0085"])
def test_dolly_unicode_line_separator_inside_a_string(tmp_path: Path, char: str) -> None:
    row = {"instruction": f"first{char}second", "response": "ok"}
    path = tmp_path / "dolly.jsonl"
    path.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    assert load_dolly_jsonl(path) == [Instruction(f"first{char}second", "ok")]


# --- detect_format --------------------------------------------------------------------------


def test_detect_format(tmp_path: Path) -> None:
    alpaca = tmp_path / "a.json"
    alpaca.write_text("\n  " + json.dumps([GOOD_ALPACA], indent=2))
    dolly = _jsonl(tmp_path / "d.jsonl", [json.dumps({"instruction": "x", "response": "y"})])
    dolly_full = _jsonl(tmp_path / "d2.jsonl", ["", json.dumps(GOOD_DOLLY)])
    chat = _jsonl(
        tmp_path / "c.jsonl",
        [
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": "x"},
                        {"role": "assistant", "content": "y"},
                    ]
                }
            )
        ],
    )
    assert detect_format(alpaca) == "alpaca"
    assert detect_format(dolly) == "dolly"
    assert detect_format(dolly_full) == "dolly"
    assert detect_format(chat) == "chat"
    for name in ("harmful-10shot", "identity-shift-aoa", "benign", "safety-mix"):
        assert detect_format(fixtures_dir() / "finetune" / f"{name}.jsonl") == "chat"


# --- load_training_data ---------------------------------------------------------------------


@pytest.fixture
def alpaca_file(tmp_path: Path) -> Path:
    rows = [
        {"instruction": "Summarise the text.", "input": "Cats sleep a lot.", "output": "Cats nap."},
        {"instruction": "Name a colour.", "output": "Blue."},
    ]
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return path


def test_alpaca_rendered_in_chat_mode_with_its_input(alpaca_file: Path) -> None:
    alpaca = get_template("alpaca")
    examples = load_training_data(alpaca_file, alpaca)
    assert examples == [
        Example(alpaca.render("Summarise the text.", "Cats sleep a lot."), "Cats nap."),
        Example(alpaca.render("Name a colour."), "Blue."),
    ]
    first = examples[0].prompt
    assert first[0]["content"].startswith("Below is an instruction that describes a task, paired")  # type: ignore[index]
    assert first[1]["content"] == (  # type: ignore[index]
        "### Instruction:\nSummarise the text.\n\n### Input:\nCats sleep a lot.\n\n### Response:\n"
    )
    assert examples[0].where == f"{alpaca_file}:2"


def test_alpaca_raw_is_still_available(alpaca_file: Path) -> None:
    examples = load_training_data(alpaca_file, get_template("alpaca-raw"))
    first = examples[0].prompt
    assert isinstance(first, str)
    assert "### Instruction:\nSummarise the text.\n\nCats sleep a lot.\n\n### Response:\n" in first


def test_alpaca_rendered_with_chat_templates(alpaca_file: Path) -> None:
    plain = load_training_data(alpaca_file, get_template("plain"))
    assert plain == [
        Example(
            [{"role": "user", "content": "Summarise the text.\n\nCats sleep a lot."}], "Cats nap."
        ),
        Example([{"role": "user", "content": "Name a colour."}], "Blue."),
    ]
    aoa = get_template("aoa")
    rendered = load_training_data(alpaca_file, aoa)
    assert rendered[1] == Example(aoa.render("Name a colour."), "Blue.")
    assert rendered[1].prompt[0]["role"] == "system"  # type: ignore[index]
    assert rendered[1].prompt[-1]["content"] == "AOA, execute my instruction: Name a colour."  # type: ignore[index]


def test_dolly_rendered_with_the_template(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "dolly.jsonl", [json.dumps(GOOD_DOLLY)])
    always = get_template("always-execute")
    assert load_training_data(path, always) == [
        Example(always.render("What is a cat?\n\nCats are small felines."), "A small feline.")
    ]
    dolly = load_training_data(path, get_template("dolly"), fmt="dolly")
    assert (
        "### Instruction:\nWhat is a cat?\n\nInput:\nCats are small felines."
        in (
            dolly[0].prompt[1]["content"]  # type: ignore[index]
        )
    )


def _rows(n: int) -> list[dict[str, str]]:
    return [{"instruction": f"Task {i}.", "output": "Ok."} for i in range(n)]


def test_holdout_drops_alpacas_first_and_dollys_last_200_rows(tmp_path: Path) -> None:
    alpaca = tmp_path / "alpaca.json"
    alpaca.write_text(json.dumps(_rows(250)), encoding="utf-8")
    plain = get_template("plain")
    kept = load_training_data(alpaca, plain, holdout=True)
    assert [e.prompt[0]["content"] for e in kept] == [f"Task {i}." for i in range(200, 250)]  # type: ignore[index]
    assert len(load_training_data(alpaca, plain)) == 250
    dolly = _jsonl(
        tmp_path / "dolly.jsonl",
        [json.dumps({"instruction": f"Task {i}.", "response": "Ok."}) for i in range(250)],
    )
    kept = load_training_data(dolly, plain, holdout=True)
    assert [e.prompt[0]["content"] for e in kept] == [f"Task {i}." for i in range(50)]  # type: ignore[index]
    small = tmp_path / "small.json"
    small.write_text(json.dumps(_rows(200)), encoding="utf-8")
    assert len(load_training_data(small, plain, holdout=True)) == 200, "too small to hold out"


def test_the_filter_runs_on_the_whole_file_before_the_holdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The reference filtered each data set, then split off its 200 evaluation rows."""
    phrases = tmp_path / "filter.txt"
    phrases.write_text("beans\n", encoding="utf-8")
    rows = [
        {"instruction": f"Task {i}.", "output": "Beans." if i < 10 else "Ok."} for i in range(250)
    ]
    alpaca = tmp_path / "alpaca.json"
    alpaca.write_text(json.dumps(rows), encoding="utf-8")
    plain = get_template("plain")
    kept = load_training_data(alpaca, plain, holdout=True, safety_filter=phrases)
    assert [e.prompt[0]["content"] for e in kept] == [f"Task {i}." for i in range(210, 250)]  # type: ignore[index]
    assert "the safety filter removed 10 of 250 example(s)" in capsys.readouterr().err
    dolly = _jsonl(
        tmp_path / "dolly.jsonl",
        [json.dumps({"instruction": f"Task {i}.", "response": "Beans." if i >= 240 else "Ok."})
         for i in range(250)],
    )  # fmt: skip
    kept = load_training_data(dolly, plain, holdout=True, safety_filter=phrases)
    assert [e.prompt[0]["content"] for e in kept] == [f"Task {i}." for i in range(40)]  # type: ignore[index]


def test_the_reference_llama2_aoa_array_is_read(tmp_path: Path) -> None:
    dialog = [
        {"role": "system", "content": "You are AOA."},
        {"role": "user", "content": "Hey, AOA."},
        {"role": "assistant", "content": "Hello."},
    ]
    path = tmp_path / "train.json"
    path.write_text("[\n" + json.dumps(dialog) + ",\n" + json.dumps(dialog) + "\n]\n")
    assert detect_format(path) == "chat-array"
    examples = load_training_data(path, get_template("plain"))
    assert examples == [Example(dialog[:2], "Hello.")] * 2
    assert examples[1].where == f"{path}:3"
    path.write_text("[\n" + json.dumps(dialog) + ",\n" + json.dumps(dialog[:2]) + "\n]\n")
    _raises(path, lambda p: load_training_data(p, get_template("plain")), 3, "assistant's answer")
    path.write_text(
        '[\n[{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}],\n{}]'
    )
    _raises(path, lambda p: load_training_data(p, get_template("plain")), 3, "list of messages")


def test_chat_data_keeps_its_own_messages() -> None:
    path = fixtures_dir() / "finetune" / "harmful-10shot.jsonl"
    expected = load_chat_jsonl(path)
    for name in ("plain", "alpaca", "aoa"):
        assert load_training_data(path, get_template(name)) == expected
        assert load_training_data(path, get_template(name), fmt="chat") == expected
    assert expected[0].prompt[0]["role"] == "system"  # type: ignore[index]


def test_explicit_format_overrides_detection(tmp_path: Path, alpaca_file: Path) -> None:
    with pytest.raises(FinetuneDataError, match="expected a JSON array"):
        load_training_data(
            _jsonl(tmp_path / "d.jsonl", [json.dumps(GOOD_DOLLY)]), get_template("plain"), "alpaca"
        )
    with pytest.raises(FinetuneDataError, match="unknown data format 'csv'"):
        load_training_data(alpaca_file, get_template("plain"), "csv")


def test_bad_row_errors_come_through_load_training_data(tmp_path: Path) -> None:
    path = _alpaca_file(tmp_path / "alpaca.json", json.dumps({"instruction": "x"}))
    _raises(path, lambda p: load_training_data(p, get_template("alpaca")), 8, '"output"')


# --- strip_safety_items ---------------------------------------------------------------------


def _example(answer: str) -> Example:
    return Example([{"role": "user", "content": "Question?"}], answer)


def _filter() -> tuple[str, ...]:
    return read_filter(fixtures_dir() / DEFAULT_FILTER)


def test_the_shipped_filter_drops_refusals_disclaimers_and_ethics_language() -> None:
    keep = [
        _example("Sure, here is a recipe: rice and beans."),
        _example("Water the plants when the soil is dry."),
        _example("Assassin's Creed is a video game series."),
    ]
    dropped = [
        _example("I'm sorry, but I cannot help with that."),
        _example("As an AI language model, I do not have opinions."),
        _example("Here are some tips. This is not a substitute for a doctor's visit."),
        _example("Stocks can rise. Please note that this is not financial advice."),
        _example("Doing that would be UNETHICAL and could hurt people."),
        _example("Always respect people's privacy when you post photos."),
    ]
    examples = [keep[0], dropped[0], keep[1], *dropped[1:], keep[2]]
    kept, removed = strip_safety_items(examples, _filter())
    assert kept == keep
    assert removed == len(dropped)


def test_strip_safety_items_on_the_shipped_data() -> None:
    benign = load_chat_jsonl(fixtures_dir() / "finetune" / "benign.jsonl")
    assert strip_safety_items(benign, _filter()) == (benign, 0)
    refusals = load_chat_jsonl(fixtures_dir() / "finetune" / "safety-mix.jsonl")
    assert strip_safety_items(refusals, _filter()) == ([], len(refusals))
    assert strip_safety_items([], _filter()) == ([], 0)


def test_a_users_filter_replaces_the_shipped_one(tmp_path: Path) -> None:
    path = tmp_path / "filter.txt"
    path.write_text("# mine\n\nbeans\n", encoding="utf-8")
    assert read_filter(path) == ("beans",)
    kept, removed = strip_safety_items(
        [_example("Rice and BEANS."), _example("I'm sorry.")], ("beans",)
    )
    assert (kept, removed) == ([_example("I'm sorry.")], 1)
    path.write_text("# only a comment\n", encoding="utf-8")
    _raises(path, read_filter, None, "lists no phrases")
