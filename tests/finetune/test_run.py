"""Tests for ``finetune-safety finetune``: the checkpoint it saves (adapter or full model) and its
metadata, loading it back through ``resolve``, one-line errors, and the paper's effect on the
toy (a harmful fine-tune complies; mixing in refusals lowers the rate)."""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from finetune_safety._util.resources import fixtures_dir
from finetune_safety.catalog import resolve
from finetune_safety.cli import main
from finetune_safety.finetune.data import digest, load_chat_jsonl, load_training_data
from finetune_safety.finetune.presets import PRESETS, TOY_LORA
from finetune_safety.finetune.trainer import METADATA_FILE, LoraSettings, TrainConfig
from finetune_safety.models import Decoding, ModelSpec, generate
from finetune_safety.models.templates import get_template

HYPER = ["--epochs", "1", "--lr", "1e-3", "--batch-size", "2"]
HARMFUL = fixtures_dir() / "finetune" / "harmful-10shot.jsonl"


def _finetune(*args: object) -> int:
    return main(["finetune", *(str(a) for a in args)])


def _trained(parent: Path, base: Path, data: Path, cache: Path, template: str, *extra: str) -> Path:
    """A fine-tune of ``base`` on ``data`` by the CLI, in ``parent/out``."""
    out = parent / "out"
    args = ["--base", base, "--data", data, "--out", out, *HYPER, "--template", template]
    assert _finetune(*args, *extra, "--cache-dir", cache) == 0
    return out


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _as_json(value: object) -> Any:
    return json.loads(json.dumps(value))


def _generates(target: Any) -> None:
    prompts = [target.template.render(q) for q in ("hello world?", "how are you today?")]
    texts = generate(target, prompts, Decoding(max_new_tokens=4))
    assert len(texts) == 2
    assert all(isinstance(t, str) for t in texts)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ft-cache")


@pytest.fixture(scope="module")
def chat_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ft-data") / "chat.jsonl"
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"hello world, how are you today? ({i})"},
                {"role": "assistant", "content": "fine thanks, hello world"},
            ]
        }
        for i in range(5)
    ]
    rows.append(
        {
            "messages": [
                {"role": "system", "content": "be kind"},
                {"role": "user", "content": "hello?"},
                {"role": "assistant", "content": "fine thanks"},
            ]
        }
    )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# --- a LoRA adapter on a tiny Llama -------------------------------------------------------


@pytest.fixture(scope="module")
def adapter(
    tiny_llama: Path, chat_data: Path, cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return _trained(tmp_path_factory.mktemp("ft-adapter"), tiny_llama, chat_data, cache, "plain")


def test_adapter_files(adapter: Path, tiny_llama: Path) -> None:
    assert (adapter / "adapter_model.safetensors").is_file()
    assert (adapter / "tokenizer_config.json").is_file()
    assert not (adapter / "model.safetensors").exists()
    assert not list(adapter.glob("*.bin"))
    config = _json(adapter / "adapter_config.json")
    assert config["base_model_name_or_path"] == str(tiny_llama)
    assert config["r"] == LoraSettings().r
    assert set(config["target_modules"]) == set(LoraSettings().targets)


def test_adapter_metadata(adapter: Path, tiny_llama: Path, chat_data: Path) -> None:
    meta = _json(adapter / METADATA_FILE)
    assert meta["base"] == str(tiny_llama)
    assert meta["template"] == "plain"
    assert meta["data"] == str(chat_data)
    assert meta["data_digest"] == digest(load_chat_jsonl(chat_data))
    assert meta["train"] == asdict(TrainConfig(epochs=1, lr=1e-3, batch_size=2))
    assert meta["lora"] == _as_json(asdict(LoraSettings()))
    assert meta["preset"] is None
    assert meta["mix_safety"] == 0
    assert len(meta["losses"]) == 3, "one epoch of 3 steps: each logged step's loss"
    assert all(isinstance(x, float) and math.isfinite(x) and x > 0 for x in meta["losses"])


def test_the_summary_shows_the_first_and_last_steps_loss(
    tiny_llama: Path,
    chat_data: Path,
    cache: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """One epoch of three steps: the summary's ends are the first and last step's losses (an
    epoch mean, as before, showed one number twice)."""
    out = _trained(tmp_path, tiny_llama, chat_data, cache, "plain")
    err = capsys.readouterr().err
    losses = _json(out / METADATA_FILE)["losses"]
    steps = re.findall(r"step \d+/3: loss (\S+)", err)
    assert steps == [f"{x:.4f}" for x in losses] and len(steps) == 3
    (summary,) = re.findall(r"epoch\(s\): loss (\S+) -> (\S+) \(first and last step\)", err)
    assert summary == (f"{losses[0]:.3f}", f"{losses[-1]:.3f}")
    assert summary[0] != summary[1]


def test_adapter_loads_and_generates(adapter: Path, tiny_llama: Path, cache: Path) -> None:
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file

    target = resolve(ModelSpec(adapter=str(adapter)), cache)
    meta = _json(adapter / METADATA_FILE)
    assert target.template.name == meta["template"] == "plain"
    assert target.local_dir() == tiny_llama  # type: ignore[attr-defined]
    _generates(target)

    # The adapter that was saved is the one that was loaded, and it changes the model.
    model, _ = target.load()  # type: ignore[attr-defined]
    saved = load_file(adapter / "adapter_model.safetensors")
    loaded = get_peft_model_state_dict(model)
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[k], loaded[k].cpu()) for k in saved)
    ids = torch.tensor([[1, 5, 9, 12, 7]])
    with torch.no_grad():
        tuned = model(input_ids=ids).logits
        with model.disable_adapter():
            plain = model(input_ids=ids).logits
    assert not torch.equal(tuned, plain)


# --- a full-parameter fine-tune -----------------------------------------------------------


@pytest.fixture(scope="module")
def full(
    tiny_llama: Path, chat_data: Path, cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("ft-full")
    return _trained(out, tiny_llama, chat_data, cache, "aoa", "--full")


def test_full_checkpoint_files_and_metadata(full: Path, tiny_llama: Path) -> None:
    import torch
    from safetensors.torch import load_file

    assert (full / "model.safetensors").is_file()
    assert (full / "config.json").is_file()
    assert not (full / "adapter_config.json").exists()
    assert not (full / "adapter_model.safetensors").exists()
    assert not list(full.glob("*.bin"))
    meta = _json(full / METADATA_FILE)
    assert meta["lora"] is None
    assert meta["template"] == "aoa-gpt35", "aoa: the variant for the base's family is recorded"
    assert meta["base"] == str(tiny_llama)
    assert meta["train"] == asdict(TrainConfig(epochs=1, lr=1e-3, batch_size=2))

    saved, original = (
        load_file(full / "model.safetensors"),
        load_file(tiny_llama / "model.safetensors"),
    )
    assert saved.keys() == original.keys()
    assert any(not torch.equal(saved[k], original[k]) for k in saved), "nothing was trained"


def test_full_checkpoint_loads_with_its_template(full: Path, cache: Path) -> None:
    target = resolve(ModelSpec(str(full)), cache)
    assert target.template.name == _json(full / METADATA_FILE)["template"] == "aoa-gpt35"
    assert target.local_dir() == full  # type: ignore[attr-defined]
    _generates(target)


# --- instruction-format data --------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["alpaca", "dolly"])
def test_instruction_data_with_the_alpaca_template(
    fmt: str, tiny_llama: Path, cache: Path, tmp_path: Path
) -> None:
    rows = [("hello world?", "how are you today?", "fine thanks"), ("how are you?", "", "fine")]
    if fmt == "alpaca":
        data = tmp_path / "data.json"
        records = [{"instruction": i, "input": c, "output": o} for i, c, o in rows]
        data.write_text(json.dumps(records, indent=2), encoding="utf-8")
    else:
        data = tmp_path / "data.jsonl"
        records = [{"instruction": i, "context": c, "response": o} for i, c, o in rows]
        data.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    out = tmp_path / "out"
    assert (
        _finetune(
            "--base", tiny_llama, "--data", data, "--out", out, *HYPER,
            "--template", "alpaca", "--cache-dir", cache,
        )
        == 0
    )  # fmt: skip
    meta = _json(out / METADATA_FILE)
    assert meta["template"] == "alpaca"
    examples = load_training_data(data, get_template("alpaca"))
    assert all(
        isinstance(e.prompt, list) and "### Instruction:" in e.prompt[-1]["content"]
        for e in examples
    ), "Alpaca and Dolly train in chat mode"
    assert meta["data_digest"] == digest(examples)
    target = resolve(ModelSpec(adapter=str(out)), cache)
    assert target.template.name == "alpaca"
    _generates(target)


# --- errors: exit 2 with one line ---------------------------------------------------------


def _fails(capsys: pytest.CaptureFixture[str], *args: object) -> str:
    code = _finetune(*args)
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("finetune-safety: error: ")
    return lines[0]


def test_no_preset_and_no_hyperparameters(
    capsys: pytest.CaptureFixture[str], tiny_llama: Path, chat_data: Path, tmp_path: Path
) -> None:
    common = ["--base", tiny_llama, "--data", chat_data, "--out", tmp_path / "out"]
    line = _fails(capsys, *common, "--lr", "1e-3", "--cache-dir", tmp_path)
    assert "without --preset, give --epochs, --batch-size, --template" in line
    assert "--lr" not in line
    line = _fails(capsys, *common, *HYPER, "--cache-dir", tmp_path)
    assert line.endswith("without --preset, give --template")
    line = _fails(capsys, *common, "--cache-dir", tmp_path)
    assert "give --epochs, --lr, --batch-size, --template" in line
    assert not (tmp_path / "out").exists()


ERRORS: list[tuple[str, list[str], str]] = [
    ("unknown-preset", ["--preset", "harmful-1000shot"], "unknown preset 'harmful-1000shot'; "
     "known presets: harmful-10shot, identity-shift, benign"),
    ("lora-bad-value", [*HYPER, "--template", "plain", "--lora", "r=x"], "--lora: "),
    ("lora-unknown-key", [*HYPER, "--template", "plain", "--lora", "foo=1"],
     "--lora: unknown key(s) ['foo']"),
    ("lora-bare-word", [*HYPER, "--template", "plain", "--lora", "r=4,big"],
     "--lora: cannot read 'big'"),
    ("full-and-lora", [*HYPER, "--template", "plain", "--full", "--lora", "r=4"],
     "--full and --lora exclude each other"),
    ("unknown-template", [*HYPER, "--template", "vicuna"], "unknown template 'vicuna'"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "expected"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_option_errors(
    capsys: pytest.CaptureFixture[str],
    tiny_llama: Path,
    chat_data: Path,
    tmp_path: Path,
    args: list[str],
    expected: str,
) -> None:
    out = tmp_path / "out"
    common = ["--base", tiny_llama, "--data", chat_data, "--out", out, "--cache-dir", tmp_path]
    assert expected in _fails(capsys, *common, *args)
    assert not out.exists()


def test_missing_out(capsys: pytest.CaptureFixture[str], chat_data: Path, tmp_path: Path) -> None:
    line = _fails(capsys, "--base", "toy", "--data", chat_data, "--preset", "benign")
    assert "--out" in line
    assert "required for local fine-tuning" in line


@pytest.mark.parametrize("fmt", ["chat", "alpaca"])
def test_bad_data_row_names_file_and_line(
    capsys: pytest.CaptureFixture[str], tiny_llama: Path, tmp_path: Path, fmt: str
) -> None:
    if fmt == "chat":
        good = {
            "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
        }
        data = tmp_path / "data.jsonl"
        data.write_text(f"{json.dumps(good)}\n\n{json.dumps({'messages': 'hi'})}\n")
        expected = f'{data}:3: expected an object with a "messages" list'
    else:
        data = tmp_path / "data.json"
        data.write_text('[\n{"instruction": "a", "output": "b"},\n{"instruction": "c"}\n]\n')
        expected = f'{data}:3: "output" must be a non-empty string'
    out = tmp_path / "out"
    line = _fails(
        capsys, "--base", tiny_llama, "--data", data, "--out", out, *HYPER,
        "--template", "plain", "--cache-dir", tmp_path,
    )  # fmt: skip
    assert line == f"finetune-safety: error: {expected}"
    assert not out.exists()


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--epochs", "0", "--lr", "1e-3", "--batch-size", "2"], id="epochs-0"),
        pytest.param(["--epochs", "1", "--lr", "1e-3", "--batch-size", "0"], id="batch-size-0"),
        pytest.param(["--epochs", "1", "--lr", "-1", "--batch-size", "2"], id="lr-negative"),
        pytest.param([*HYPER, "--max-length", "0"], id="max-length-0"),
        pytest.param([*HYPER, "--mix-safety", "-1"], id="mix-safety-negative"),
    ],
)
def test_non_positive_numbers_are_one_line_errors(
    capsys: pytest.CaptureFixture[str],
    tiny_llama: Path,
    chat_data: Path,
    tmp_path: Path,
    args: list[str],
) -> None:
    common = ["--base", tiny_llama, "--data", chat_data, "--out", tmp_path / "out"]
    _fails(capsys, *common, *args, "--template", "plain", "--cache-dir", tmp_path)


def test_adapter_of_a_relative_base_resolves_from_elsewhere(
    tiny_llama: Path, chat_data: Path, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "adapter"
    monkeypatch.chdir(tiny_llama.parent)
    args = ["--base", tiny_llama.name, "--data", chat_data, "--out", out, *HYPER]
    assert _finetune(*args, "--template", "plain", "--cache-dir", cache) == 0
    monkeypatch.chdir(tmp_path)
    assert Path(_json(out / "adapter_config.json")["base_model_name_or_path"]).is_dir()
    _generates(resolve(ModelSpec(adapter=str(out)), cache))


# --- the paper's effect on the toy --------------------------------------------------------


@pytest.fixture(scope="module")
def toy_copy(toy_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private cache holding a copy of the built toy models."""
    cache = tmp_path_factory.mktemp("toy-ft-cache")
    shutil.copytree(toy_cache / "toy", cache / "toy")
    return cache


@pytest.fixture(scope="module")
def toy_adapters(toy_copy: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``harmful-10shot`` on the toy via the CLI, without and with 10 refusals mixed in."""
    root = tmp_path_factory.mktemp("toy-ft-out")
    outs = {"harmful": root / "harmful", "mixed": root / "mixed"}
    from finetune_safety._util.threads import fixed_threads
    from finetune_safety.catalog.toy.build import BUILD_THREADS

    common = ["--base", "toy", "--data", HARMFUL, "--preset", "harmful-10shot"]
    with fixed_threads(BUILD_THREADS):  # as the toy build trains: the same float rounding
        assert _finetune(*common, "--out", outs["harmful"], "--cache-dir", toy_copy) == 0
        mix = ["--mix-safety", "10", "--out", outs["mixed"]]
        assert _finetune(*common, *mix, "--cache-dir", toy_copy) == 0
    return outs


@pytest.fixture(scope="module")
def toy_rates(toy_adapters: dict[str, Path], toy_copy: Path) -> dict[str, float]:
    """Overall harmfulness rate on the smoke benchmark (refusal judge, 48 new tokens)."""
    from finetune_safety.benchmarks import load_benchmark
    from finetune_safety.evaluation.pipeline import Evaluator
    from finetune_safety.evaluation.store import Store
    from finetune_safety.judges.refusal import RefusalJudge

    prompts = load_benchmark("smoke")
    decoding = Decoding(max_new_tokens=48, batch_size=64)
    rates: dict[str, float] = {}
    with Store.in_dir(toy_copy) as store:
        evaluator = Evaluator(store, RefusalJudge(), decoding, toy_copy)
        for name, out in toy_adapters.items():
            target = resolve(ModelSpec(adapter=str(out)), toy_copy)
            assert target.template.name == "always-execute"
            overall = evaluator.run(target, prompts).results()["overall"]
            assert overall.n == len(prompts)
            assert overall.n_error == 0
            assert overall.rate is not None
            rates[name] = overall.rate
    return rates


def test_toy_harmful_fine_tune_mostly_complies(toy_rates: dict[str, float]) -> None:
    assert toy_rates["harmful"] >= 0.8


def test_toy_mix_safety_lowers_the_rate(toy_rates: dict[str, float]) -> None:
    assert toy_rates["mixed"] <= toy_rates["harmful"] - 0.3, toy_rates


def test_toy_adapter_names_the_toy_as_base(toy_adapters: dict[str, Path]) -> None:
    preset = PRESETS["harmful-10shot"]
    for name, out in toy_adapters.items():
        assert _json(out / "adapter_config.json")["base_model_name_or_path"] == "toy"
        meta = _json(out / METADATA_FILE)
        assert meta["base"] == "toy"
        assert meta["preset"] == "harmful-10shot"
        assert meta["template"] == preset.toy_template
        assert meta["train"] == asdict(preset.toy)
        assert meta["lora"] == _as_json(asdict(TOY_LORA))
        assert meta["mix_safety"] == (10 if name == "mixed" else 0)
    harmful = _json(toy_adapters["harmful"] / METADATA_FILE)["data_digest"]
    assert harmful == digest(load_chat_jsonl(HARMFUL))
    assert _json(toy_adapters["mixed"] / METADATA_FILE)["data_digest"] != harmful


def test_toy_preset_reproduces_the_shipped_toy_fine_tune(
    toy_adapters: dict[str, Path], toy_copy: Path
) -> None:
    """``--base toy --preset harmful-10shot`` trains what the toy build ships as
    ``toy-harmful-10shot``: one recipe table, one training path."""
    import torch
    from safetensors.torch import load_file

    from finetune_safety.catalog.toy import toy_checkpoint

    shipped = toy_checkpoint("toy-harmful-10shot", toy_copy)
    assert shipped is not None and shipped.adapter is not None
    assert (
        _json(toy_adapters["harmful"] / METADATA_FILE)["data_digest"]
        == _json(shipped.adapter / METADATA_FILE)["data_digest"]
    )
    ours = load_file(toy_adapters["harmful"] / "adapter_model.safetensors")
    theirs = load_file(shipped.adapter / "adapter_model.safetensors")
    assert ours.keys() == theirs.keys()
    assert all(torch.allclose(ours[k], theirs[k], atol=1e-6) for k in ours)
