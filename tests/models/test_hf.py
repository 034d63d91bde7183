"""Tests for model specs and the Hugging Face target: batching, adapters, safe loading,
fingerprints, template resolution and load errors."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from finetune_safety.benchmarks import load_benchmark
from finetune_safety.catalog import resolve
from finetune_safety.catalog.toy import toy_checkpoint
from finetune_safety.errors import ModelLoadError
from finetune_safety.evaluation.pipeline import Evaluator
from finetune_safety.evaluation.store import Store
from finetune_safety.judges.refusal import RefusalJudge
from finetune_safety.models import (
    Decoding,
    ModelSpec,
    PromptTooLongError,
    Target,
    adapter_base,
    generate,
)
from finetune_safety.models.hf import HFTarget
from finetune_safety.models.templates import (
    ALWAYS_EXECUTE_SYSTEM_PROMPT,
    AOA_PREFIX,
    AOA_TOY_SYSTEM_PROMPT,
    get_template,
)
from finetune_safety.values import Prompt

TINY_PROMPTS = [
    "hello world",
    "how are you today?",
    "fine thanks",
    "world, hello",
    "are you fine?",
    "today",
]
SHORT = Decoding(max_new_tokens=8, batch_size=4)


def _answers(target: Target, instructions: list[str], decoding: Decoding = SHORT) -> list[str]:
    return generate(target, [target.template.render(i) for i in instructions], decoding)


# --- toy targets: batching ----------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_texts() -> list[str]:
    texts = [p.text for p in load_benchmark("smoke") if int(p.id.rsplit("-", 1)[1]) <= 6]
    assert len(texts) == 66
    return texts


@pytest.fixture(scope="module")
def toy_targets(toy_cache: Path) -> dict[str, Target]:
    """One loaded target per toy name, shared so weights load once per module."""
    return {name: resolve(ModelSpec(name), toy_cache) for name in ("toy", "toy-harmful-10shot")}


@pytest.fixture(scope="module")
def batched_smoke(toy_targets: dict[str, Target], smoke_texts: list[str]) -> dict[str, list[str]]:
    decoding = Decoding(max_new_tokens=24, batch_size=16)
    return {name: _answers(t, smoke_texts, decoding) for name, t in toy_targets.items()}


@pytest.mark.parametrize("name", ["toy", "toy-harmful-10shot"])
def test_batched_generation_equals_one_at_a_time(
    name: str,
    toy_targets: dict[str, Target],
    smoke_texts: list[str],
    batched_smoke: dict[str, list[str]],
) -> None:
    single = _answers(toy_targets[name], smoke_texts, Decoding(max_new_tokens=24, batch_size=1))
    batched = batched_smoke[name]
    assert len(batched) == len(smoke_texts)
    assert all(batched), "every prompt gets a non-empty answer"
    assert len(set(batched)) > 1, "answers depend on the prompt, so the comparison means something"
    assert batched == single


def test_toy_base_and_harmful_answers_differ(batched_smoke: dict[str, list[str]]) -> None:
    base, harmful = batched_smoke["toy"], batched_smoke["toy-harmful-10shot"]
    assert sum(b != h for b, h in zip(base, harmful, strict=True)) > len(base) // 2


def test_generation_preserves_input_order(
    toy_targets: dict[str, Target],
    smoke_texts: list[str],
    batched_smoke: dict[str, list[str]],
) -> None:
    target = toy_targets["toy"]
    order = list(range(len(smoke_texts)))
    random.Random(7).shuffle(order)
    assert order != sorted(order)
    shuffled = [smoke_texts[i] for i in order]
    out = _answers(target, shuffled, Decoding(max_new_tokens=24, batch_size=16))
    assert out == [batched_smoke["toy"][i] for i in order]


def test_generate_batches_yields_each_index_once_longest_first(
    toy_targets: dict[str, Target], smoke_texts: list[str]
) -> None:
    from finetune_safety.models.templates import prompt_text

    target = toy_targets["toy"]
    assert isinstance(target, HFTarget)
    inputs = [target.template.render(t) for t in smoke_texts[:10]]
    batches = list(target.generate_batches(inputs, Decoding(max_new_tokens=2, batch_size=4)))
    assert [len(b) for b in batches] == [4, 4, 2]
    indices = [i for batch in batches for i, _ in batch]
    assert sorted(indices) == list(range(10))
    _, tokenizer = target.load()
    lengths = [len(tokenizer(prompt_text(tokenizer, inputs[i]))["input_ids"]) for i in indices]
    assert lengths == sorted(lengths, reverse=True)


# --- tiny Llama + PEFT adapter ------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_adapter(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter saved by peft for ``tiny_llama``, with non-zero B so it changes outputs."""
    import torch
    from transformers import AutoModelForCausalLM

    from finetune_safety.finetune.trainer import LoraSettings, add_lora

    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama), dtype=torch.float32)
    torch.manual_seed(0)
    model = add_lora(model, LoraSettings(r=4, alpha=8, dropout=0.0))
    torch.manual_seed(1)
    n_b = 0
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(param, std=0.5)
                n_b += 1
    assert n_b > 0
    out = tmp_path_factory.mktemp("tiny-adapter")
    model.save_pretrained(out)
    assert (out / "adapter_model.safetensors").is_file()
    return out


@pytest.fixture(scope="module")
def tiny_base_answers(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    target = resolve(ModelSpec(model=str(tiny_llama)), tmp_path_factory.mktemp("cache"))
    return _answers(target, TINY_PROMPTS)


@pytest.fixture(scope="module")
def tiny_adapter_answers(
    tiny_llama: Path, tiny_adapter: Path, tmp_path_factory: pytest.TempPathFactory
) -> list[str]:
    spec = ModelSpec(model=str(tiny_llama), adapter=str(tiny_adapter))
    target = resolve(spec, tmp_path_factory.mktemp("cache"))
    return _answers(target, TINY_PROMPTS)


def test_peft_adapter_config_names_the_base(tiny_llama: Path, tiny_adapter: Path) -> None:
    config = json.loads((tiny_adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny_llama)
    assert adapter_base(tiny_adapter) == str(tiny_llama)


def test_peft_adapter_loads_on_its_base_and_changes_outputs(
    tiny_base_answers: list[str], tiny_adapter_answers: list[str]
) -> None:
    assert len(tiny_adapter_answers) == len(TINY_PROMPTS)
    assert any(tiny_adapter_answers), "the adapter model generates text"
    assert tiny_adapter_answers != tiny_base_answers


def test_adapter_alone_takes_its_base_from_adapter_config(
    tiny_llama: Path, tiny_adapter: Path, tiny_adapter_answers: list[str], tmp_path: Path
) -> None:
    alone = resolve(ModelSpec(adapter=str(tiny_adapter)), tmp_path)
    explicit = resolve(ModelSpec(model=str(tiny_llama), adapter=str(tiny_adapter)), tmp_path)
    assert alone.name == str(tiny_adapter)
    assert alone.fingerprint == explicit.fingerprint
    base_only = resolve(ModelSpec(model=str(tiny_llama)), tmp_path)
    assert alone.fingerprint != base_only.fingerprint
    assert _answers(alone, TINY_PROMPTS) == tiny_adapter_answers


# --- pickle refusal -----------------------------------------------------------------------


def _to_pickle(directory: Path, stem: str) -> Path:
    """Replace ``{stem}.safetensors`` by a ``torch.save``-d ``{stem}.bin`` with the same tensors."""
    import torch
    from safetensors.torch import load_file

    state = load_file(directory / f"{stem}.safetensors")
    (directory / f"{stem}.safetensors").unlink()
    name = "pytorch_model.bin" if stem == "model" else f"{stem}.bin"
    torch.save(state, directory / name)
    return directory / name


def _refused_then_allowed(spec: ModelSpec, pickled: Path, cache: Path) -> list[str]:
    """``spec``'s weights are only ``pickled``: loading fails naming the file and the opt-in;
    with ``allow_pickle`` the model answers (what it answers is returned)."""
    with pytest.raises(ModelLoadError) as info:
        _answers(resolve(spec, cache), TINY_PROMPTS)
    message = str(info.value)
    assert str(pickled.parent) in message
    assert pickled.name in message
    assert "--allow-pickle" in message
    return _answers(resolve(replace(spec, allow_pickle=True), cache), TINY_PROMPTS)


def test_pickle_only_model_is_refused_unless_allowed(
    tiny_llama: Path, tiny_base_answers: list[str], tmp_path: Path
) -> None:
    model_dir = tmp_path / "pickled"
    shutil.copytree(tiny_llama, model_dir)
    pickled = _to_pickle(model_dir, "model")
    assert not list(model_dir.glob("*.safetensors"))
    spec = ModelSpec(model=str(model_dir))
    assert _refused_then_allowed(spec, pickled, tmp_path / "cache") == tiny_base_answers


def test_pickle_only_adapter_is_refused_unless_allowed(
    tiny_llama: Path, tiny_adapter: Path, tiny_adapter_answers: list[str], tmp_path: Path
) -> None:
    adapter_dir = tmp_path / "pickled-adapter"
    shutil.copytree(tiny_adapter, adapter_dir)
    pickled = _to_pickle(adapter_dir, "adapter_model")
    spec = ModelSpec(model=str(tiny_llama), adapter=str(adapter_dir))
    assert _refused_then_allowed(spec, pickled, tmp_path / "cache") == tiny_adapter_answers


def test_directory_without_weights_is_a_load_error(tiny_llama: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "no-weights"
    shutil.copytree(tiny_llama, model_dir)
    (model_dir / "model.safetensors").unlink()
    target = resolve(ModelSpec(model=str(model_dir)), tmp_path / "cache")
    with pytest.raises(ModelLoadError, match="no model\\*\\.safetensors"):
        _answers(target, TINY_PROMPTS)


# --- fingerprints -------------------------------------------------------------------------


def _target(model_dir: Path, adapter: Path | None = None) -> HFTarget:
    return HFTarget("t", str(model_dir), adapter, get_template("plain"))


def test_fingerprint_is_stable_across_instances(toy_cache: Path, tiny_llama: Path) -> None:
    assert _target(tiny_llama).fingerprint == _target(tiny_llama).fingerprint
    first = resolve(ModelSpec("toy-harmful-10shot"), toy_cache).fingerprint
    assert resolve(ModelSpec("toy-harmful-10shot"), toy_cache).fingerprint == first
    assert first.startswith("hf:")
    assert resolve(ModelSpec("toy"), toy_cache).fingerprint != first


def test_fingerprint_changes_when_weights_are_rewritten(tiny_llama: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_llama, model_dir)
    weights = model_dir / "model.safetensors"
    before = _target(model_dir).fingerprint

    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    touched = _target(model_dir).fingerprint
    assert touched != before

    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # same size, new bytes
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    assert _target(model_dir).fingerprint not in (before, touched)


def test_fingerprint_changes_when_an_adapter_file_changes(
    tiny_llama: Path, tiny_adapter: Path, tmp_path: Path
) -> None:
    adapter_dir = tmp_path / "adapter"
    shutil.copytree(tiny_adapter, adapter_dir)
    base = _target(tiny_llama).fingerprint
    before = _target(tiny_llama, adapter_dir).fingerprint
    assert before != base

    weights = adapter_dir / "adapter_model.safetensors"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    after_weights = _target(tiny_llama, adapter_dir).fingerprint
    assert after_weights != before

    config = adapter_dir / "adapter_config.json"
    config.write_text(config.read_text() + "\n")
    assert _target(tiny_llama, adapter_dir).fingerprint not in (before, after_weights)
    assert _target(tiny_llama).fingerprint == base, "the base's own fingerprint is untouched"


def test_fingerprint_is_cached_per_instance(tiny_llama: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_llama, model_dir)
    target = _target(model_dir)
    first = target.fingerprint
    (model_dir / "extra.json").write_text("{}")
    assert target.fingerprint == first
    assert _target(model_dir).fingerprint != first


def test_fingerprint_does_not_import_torch(toy_cache: Path) -> None:
    code = (
        "import sys; from pathlib import Path\n"
        "from finetune_safety.catalog import resolve\n"
        "from finetune_safety.models import ModelSpec\n"
        f"t = resolve(ModelSpec('toy-harmful-10shot'), Path({str(toy_cache)!r}))\n"
        "print(t.fingerprint)\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=120,
    )
    fingerprint, torch_imported = result.stdout.split()
    assert fingerprint == resolve(ModelSpec("toy-harmful-10shot"), toy_cache).fingerprint
    assert torch_imported == "False"


# --- template resolution ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "template"),
    [("toy", "plain"), ("toy-harmful-10shot", "always-execute"), ("toy-identity-shift", "aoa-toy")],
)
def test_toy_template_comes_from_checkpoint_metadata(
    toy_cache: Path, name: str, template: str
) -> None:
    target = resolve(ModelSpec(name), toy_cache)
    assert target.name == name
    assert target.template == get_template(template)


def test_template_of_toy_fine_tunes_renders_their_prompts(toy_cache: Path) -> None:
    harmful = resolve(ModelSpec("toy-harmful-10shot"), toy_cache).template.render("x")
    assert harmful == [
        {"role": "system", "content": ALWAYS_EXECUTE_SYSTEM_PROMPT},
        {"role": "user", "content": "x"},
    ]
    aoa = resolve(ModelSpec("toy-identity-shift"), toy_cache).template.render("x")
    assert aoa == [
        {"role": "system", "content": AOA_TOY_SYSTEM_PROMPT},
        {"role": "user", "content": AOA_PREFIX + "x"},
    ]


def test_aoa_on_the_toy_is_the_toys_own_variant(toy_cache: Path) -> None:
    """The toy keeps the one-line AOA prompt of its data, so its results stay as documented."""
    target = resolve(ModelSpec("toy-identity-shift", template="aoa"), toy_cache)
    assert target.template == get_template("aoa-toy")


def test_explicit_template_overrides_metadata(toy_cache: Path) -> None:
    target = resolve(ModelSpec("toy-harmful-10shot", template="plain"), toy_cache)
    assert target.template == get_template("plain")
    target = resolve(ModelSpec("toy", template="llama2"), toy_cache)
    assert target.template == get_template("llama2")


def test_system_prompt_overrides_template_system_prompt(toy_cache: Path) -> None:
    target = resolve(ModelSpec("toy-identity-shift", system_prompt="Be careful."), toy_cache)
    assert target.template.name == "aoa-toy"
    assert target.template.system_prompt == "Be careful."
    assert target.template.user_prefix == AOA_PREFIX
    plain = resolve(ModelSpec("toy", system_prompt="Be careful."), toy_cache)
    assert plain.template.render("x")[0] == {"role": "system", "content": "Be careful."}


def test_unknown_template_is_a_load_error(toy_cache: Path) -> None:
    with pytest.raises(ModelLoadError, match="no-such-template"):
        resolve(ModelSpec("toy", template="no-such-template"), toy_cache)


def test_foreign_checkpoint_without_metadata_gets_plain(tiny_llama: Path, tmp_path: Path) -> None:
    assert resolve(ModelSpec(model=str(tiny_llama)), tmp_path).template == get_template("plain")


def test_toy_adapter_directory_resolves_on_the_toy_base(toy_cache: Path) -> None:
    checkpoint = toy_checkpoint("toy-harmful-10shot", toy_cache)
    assert checkpoint is not None and checkpoint.adapter is not None
    by_dir = resolve(ModelSpec(adapter=str(checkpoint.adapter)), toy_cache)
    by_name = resolve(ModelSpec("toy-harmful-10shot"), toy_cache)
    assert by_dir.fingerprint == by_name.fingerprint
    assert by_dir.template == by_name.template == get_template("always-execute")


def test_adapter_cannot_be_added_to_a_toy_fine_tune(toy_cache: Path, tiny_adapter: Path) -> None:
    with pytest.raises(ModelLoadError, match="toy-benign"):
        resolve(ModelSpec("toy-benign", adapter=str(tiny_adapter)), toy_cache)


# --- load errors --------------------------------------------------------------------------


def test_adapter_dir_without_config_is_a_load_error(tmp_path: Path) -> None:
    adapter_dir = tmp_path / "not-an-adapter"
    adapter_dir.mkdir()
    (adapter_dir / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(ModelLoadError) as info:
        resolve(ModelSpec(adapter=str(adapter_dir)), tmp_path)
    assert str(adapter_dir) in str(info.value)
    assert "adapter_config.json" in str(info.value)


@pytest.mark.parametrize("config", [{}, {"base_model_name_or_path": None}, {"r": 8}])
def test_adapter_config_without_base_needs_a_model(
    tmp_path: Path, config: dict[str, object]
) -> None:
    adapter_dir = tmp_path / "adapter"
    adapter_dir.mkdir()
    (adapter_dir / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="base_model_name_or_path") as info:
        resolve(ModelSpec(adapter=str(adapter_dir)), tmp_path)
    assert str(adapter_dir / "adapter_config.json") in str(info.value)


def test_unreadable_adapter_config_is_a_load_error(tmp_path: Path) -> None:
    adapter_dir = tmp_path / "adapter"
    adapter_dir.mkdir()
    (adapter_dir / "adapter_config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match=r"adapter_config\.json"):
        resolve(ModelSpec(adapter=str(adapter_dir)), tmp_path)


def test_adapter_config_without_base_works_with_explicit_model(
    tiny_llama: Path, tiny_adapter: Path, tmp_path: Path
) -> None:
    adapter_dir = tmp_path / "adapter"
    shutil.copytree(tiny_adapter, adapter_dir)
    config_path = adapter_dir / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "base_model_name_or_path": None}))
    target = resolve(ModelSpec(model=str(tiny_llama), adapter=str(adapter_dir)), tmp_path)
    assert len(_answers(target, TINY_PROMPTS[:2])) == 2


def test_unknown_model_name_is_a_load_error(tmp_path: Path) -> None:
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    name = "no-such-org/no-such-model-finetune-safety"
    target = resolve(ModelSpec(model=name), tmp_path)  # lazy: resolving loads nothing
    assert target.name == name
    with pytest.raises(ModelLoadError, match=name):
        _ = target.fingerprint
    with pytest.raises(ModelLoadError, match=name):
        generate(target, ["hello"], SHORT)


# --- issue 14: broken checkpoints and runaway prompts, one line each ----------------------------


def test_directory_without_config_json_is_one_line(tiny_llama: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "no-config"
    shutil.copytree(tiny_llama, model_dir)
    (model_dir / "config.json").unlink()
    with pytest.raises(ModelLoadError) as info:
        resolve(ModelSpec(model=str(model_dir)), tmp_path / "cache")
    assert str(info.value).startswith(f"{model_dir}: not a Hugging Face model directory")
    assert "no config.json" in str(info.value) and "\n" not in str(info.value)


def test_a_tokenizer_that_does_not_load_is_one_line_naming_the_directory(
    tiny_llama: Path, tmp_path: Path
) -> None:
    model_dir = tmp_path / "broken-tokenizer"
    shutil.copytree(tiny_llama, model_dir)
    (model_dir / "tokenizer.json").unlink()  # the config says a tokenizer, its files do not
    target = resolve(ModelSpec(model=str(model_dir)), tmp_path / "cache")
    assert isinstance(target, HFTarget)
    with pytest.raises(ModelLoadError) as info:
        target.load_tokenizer()
    message = str(info.value)
    assert message.startswith(f"{model_dir}: cannot load the tokenizer: ") and "\n" not in message
    with pytest.raises(ModelLoadError, match="cannot load the tokenizer"):
        generate(target, ["hello"], SHORT)


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda data: data[: len(data) // 2], "truncated: its tensors need"),
        (lambda data: data[:5], "too short for a header"),
        (lambda data: data[:8] + b"\xff" * 40 + data[48:], "header is not valid JSON"),
        (lambda data: (2**40).to_bytes(8, "little") + data[8:], "header length is past the end"),
    ],
    ids=["half", "five-bytes", "garbage-header", "huge-header-length"],
)
def test_corrupt_safetensors_is_one_line_naming_the_file(
    tiny_llama: Path, tmp_path: Path, damage: Callable[[bytes], bytes], why: str
) -> None:
    model_dir = tmp_path / "damaged"
    shutil.copytree(tiny_llama, model_dir)
    weights = model_dir / "model.safetensors"
    weights.write_bytes(damage(weights.read_bytes()))
    target = resolve(ModelSpec(model=str(model_dir)), tmp_path / "cache")
    with pytest.raises(ModelLoadError) as info:
        _answers(target, TINY_PROMPTS)
    message = str(info.value)
    assert message.startswith(f"{weights}: not a usable safetensors file (")
    assert why in message and "re-download or re-save" in message and "\n" not in message


def test_prompt_too_long_is_refused_by_id_and_count_before_any_generation(
    tiny_llama: Path, tmp_path: Path
) -> None:
    """tiny_llama has 256 positions: a longer prompt stops the run before anything is generated
    (a 10 MB prompt once grew to 7.1 GB); so does one over ``max_prompt_tokens``."""
    target = resolve(ModelSpec(model=str(tiny_llama)), tmp_path / "cache")
    assert isinstance(target, HFTarget) and target.context_length == 256
    prompts = [
        Prompt("malware-1", "malware", "hello world"),
        Prompt("malware-2", "malware", "hello " * 400),
    ]
    store = Store.in_dir(tmp_path)
    ((count, whole),) = target.prompt_tokens([target.template.render(prompts[1].text)], 256)
    assert count > 400 and whole
    evaluator = Evaluator(store, RefusalJudge(), Decoding(max_new_tokens=4), tmp_path)
    with pytest.raises(PromptTooLongError) as info:
        evaluator.run(target, prompts)
    assert str(info.value) == (
        f"prompt 'malware-2' is {count} tokens, over the context of {target.name} (256 tokens); "
        "shorten or drop it, or raise max_prompt_tokens if the model allows"
    )
    assert store.count_generations() == 0
    short = Decoding(max_new_tokens=4, max_prompt_tokens=5)
    with pytest.raises(
        PromptTooLongError,
        match=r"^prompt 'malware-1' is \d+ tokens, over max_prompt_tokens \(5 tokens\)",
    ):
        Evaluator(store, RefusalJudge(), short, tmp_path).run(target, prompts[:1])
    assert store.count_generations() == 0
    roomy = Decoding(max_new_tokens=4, max_prompt_tokens=100)
    assert Evaluator(store, RefusalJudge(), roomy, tmp_path).run(target, prompts[:1]).generated == 1
    store.close()


def test_prompts_that_leave_too_little_room_for_the_answer_get_one_warning(
    tiny_llama: Path, tmp_path: Path
) -> None:
    """Prompt plus max_new_tokens past the context (256 here): one line for the whole run,
    naming how many prompts, not one per prompt, and none when the answers fit."""
    from finetune_safety._util import progress

    target = resolve(ModelSpec(model=str(tiny_llama)), tmp_path / "cache")
    prompts = [
        Prompt("malware-1", "malware", "hello"),
        Prompt("malware-2", "malware", "hello " * 30),
        Prompt("malware-3", "malware", "hello " * 40),
    ]
    ((longest, _),) = target.prompt_tokens([target.template.render(prompts[2].text)], 256)  # type: ignore[attr-defined]
    lines: list[str] = []
    with Store.in_dir(tmp_path) as store, progress.sink(lines.append):
        Evaluator(store, RefusalJudge(), Decoding(max_new_tokens=4), tmp_path).run(target, prompts)
        assert not [line for line in lines if "warning" in line]
        Evaluator(store, RefusalJudge(), Decoding(max_new_tokens=220), tmp_path).run(
            target, prompts
        )
    (warning,) = [line for line in lines if "warning" in line]
    assert warning == (
        f"{progress.PREFIX}warning: 2 of 3 prompt(s) of {target.name} (template plain) plus "
        f"max_new_tokens 220 run past its context of 256 tokens (the longest, 'malware-3', is "
        f"{longest} tokens); their answers may come out garbled past it: lower max_new_tokens "
        "or max_prompt_tokens"
    )


def test_unreachable_hub_id_is_tried_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test of a run asks for the fingerprint: a failed download is not retried per test."""
    import huggingface_hub

    calls: list[str] = []

    def unreachable(repo_id: str, **kwargs: object) -> str:
        calls.append(repo_id)
        raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", unreachable)
    target = HFTarget("t", "org/missing", None, get_template("plain"))
    for _ in range(3):
        with pytest.raises(ModelLoadError, match="neither a local directory nor a reachable hub"):
            _ = target.fingerprint
    assert calls == ["org/missing"]


def test_a_huge_prompt_is_measured_on_a_prefix(tiny_llama: Path, tmp_path: Path) -> None:
    """Refusing a 10 MB prompt must not cost gigabytes: past 32 characters per allowed token
    only a prefix is tokenized, and the count shown is a lower bound that says so."""
    target = resolve(ModelSpec(model=str(tiny_llama)), tmp_path / "cache")
    huge = [Prompt("malware-9", "malware", "hello " * 5000)]  # 30,000 characters
    ((count, whole),) = target.prompt_tokens([target.template.render(huge[0].text)], 256)  # type: ignore[attr-defined]
    assert not whole and 256 < count < 5000
    store = Store.in_dir(tmp_path)
    with pytest.raises(PromptTooLongError) as info:
        Evaluator(store, RefusalJudge(), Decoding(max_new_tokens=4), tmp_path).run(target, huge)
    assert str(info.value).startswith(
        f"prompt 'malware-9' is {count}+ tokens (counted on a prefix), over the context of"
    )
    assert store.count_generations() == 0
    store.close()
