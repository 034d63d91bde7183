"""Hugging Face causal LMs (optionally with a PEFT adapter) as generation targets.

Loading is safe by default: safetensors only and ``trust_remote_code=False``; pickle weights and
remote code need an explicit opt-in. Generation is greedy and batched (``models.generation``); in
float32 it gives the same tokens as one-at-a-time generation, only faster.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from finetune_safety.errors import ModelLoadError, one_line
from finetune_safety.models.gguf import file_fingerprint, find_gguf, gguf_load_name
from finetune_safety.models.precision import Precision, resolve_precision, torch_device_and_dtype
from finetune_safety.models.target import Decoding
from finetune_safety.models.templates import (
    Rendered,
    Template,
    encode_prompt,
    prefix_tokens,
    prompt_text,
)
from finetune_safety.models.weights import check_safetensors

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
#: More characters per token than any tokenizer averages: a prefix this long measures enough.
_CHARS_PER_TOKEN = 32
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "*.tiktoken"]


def files_fingerprint(*directories: Path) -> str:
    """Digest of each file's relative name, size and mtime: cheap, and any rewrite changes it."""
    h = hashlib.sha256()
    for directory in directories:
        h.update(f"dir:{directory.name}\n".encode())
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            stat = path.stat()
            rel = path.relative_to(directory).as_posix()
            h.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _refuse_pickle(directory: Path, stem: str, allow_pickle: bool) -> None:
    """Pickle files can run code on load: refuse a directory that has no safetensors."""
    if allow_pickle or any(directory.glob(f"{stem}*.safetensors")):
        return
    pickles = sorted(p.name for p in directory.iterdir() if p.suffix in _PICKLE_SUFFIXES)
    if pickles:
        raise ModelLoadError(
            f"holds only pickle weights ({', '.join(pickles)}), which can run arbitrary code "
            "when loaded; convert it to safetensors, or opt in with --allow-pickle "
            "(allow_pickle = true in [tool.finetune_safety])",
            directory,
        )
    raise ModelLoadError(f"no {stem}*.safetensors weights found", directory)


@contextmanager
def _without_adapter(model_dir: Path) -> Iterator[Path]:
    """``model_dir`` without its ``adapter_config.json``, as links: ``from_pretrained`` loads an
    adapter it finds beside a model's config.json on top of the model, and the spec named the
    full model (``ModelSpec.full_model``)."""
    with tempfile.TemporaryDirectory(prefix="finetune-safety-model-") as view:
        for entry in model_dir.iterdir():
            if entry.name != "adapter_config.json":
                (Path(view) / entry.name).symlink_to(entry.resolve())
        yield Path(view)


def device_and_dtype() -> tuple[str, Any]:
    """CUDA with bf16 when present (as the paper's GPUs), else CPU float32."""
    import torch

    if torch.cuda.is_available():
        return "cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return "cpu", torch.float32


def _tokenizer(directory: Path, kwargs: dict[str, Any]) -> Any:
    """The tokenizer in ``directory``; one that cannot load (its files missing or broken, as a
    save cut short leaves them) is a ModelLoadError naming the directory, in one line."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(directory, **kwargs)
    except (OSError, ValueError) as exc:
        why = one_line(str(exc))
        raise ModelLoadError(f"cannot load the tokenizer: {why}", directory) from None


class HFTarget:
    """A local or hub causal LM plus optional adapter; weights load on the first ``generate``."""

    def __init__(
        self,
        name: str,
        model: str,
        adapter: Path | None,
        template: Template,
        allow_pickle: bool = False,
        trust_remote_code: bool = False,
        float32_auto: bool = False,
        without_adapter: bool = False,
    ) -> None:
        self._name = name
        self._model = model
        self._adapter = adapter
        self._template = template
        self._allow_pickle = allow_pickle
        self._trust_remote_code = trust_remote_code
        self._model_dir: Path | None = Path(model) if Path(model).is_dir() else None
        self._gguf = find_gguf(Path(model)) if Path(model).exists() else None
        if self._gguf is not None:
            self._model_dir = self._gguf.parent
        self._fingerprint: str | None = None
        self._unreachable: str | None = None
        self._float32_auto = float32_auto
        #: The model directory also holds a PEFT adapter that is not to be loaded.
        self._without_adapter = without_adapter
        self._loaded: tuple[Any, Any] | None = None
        self._loaded_as: Precision | None = None
        self._vocabulary: list[str] | None = None
        self._prefix_tokenizer: Any = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def template(self) -> Template:
        return self._template

    @property
    def fingerprint(self) -> str:
        """Changes when the weights, tokenizer or adapter files change; loads nothing."""
        if self._fingerprint is None:
            dirs = [self.local_dir()] + ([self._adapter] if self._adapter else [])
            if self._gguf is None:
                self._fingerprint = "hf:" + files_fingerprint(*dirs)
            else:  # the file, not its neighbours in the directory
                adapter = files_fingerprint(*dirs[1:]) if self._adapter else ""
                self._fingerprint = "gguf:" + file_fingerprint(self._gguf) + adapter
        return self._fingerprint

    def precision(self, decoding: Decoding) -> Precision:
        """The dtype and device ``decoding`` runs in here; ``auto`` is float32 for the toy."""
        return resolve_precision(decoding.dtype, self._float32_auto)

    def local_dir(self) -> Path:
        """The model's directory; a hub id resolves to its local snapshot (fetched if needed)."""
        if self._unreachable is not None:  # one attempt per run, not one per test
            raise ModelLoadError(self._unreachable)
        if self._model_dir is None:
            from huggingface_hub import snapshot_download

            patterns = _HUB_PATTERNS + (["*.bin"] if self._allow_pickle else [])
            patterns += ["*.py"] if self._trust_remote_code else []
            try:
                self._model_dir = Path(snapshot_download(self._model, allow_patterns=patterns))
            except Exception as exc:
                self._unreachable = one_line(
                    f"model {self._model!r} is neither a local directory nor a reachable hub id: "
                    f"{exc}"
                )
                raise ModelLoadError(self._unreachable) from None
        return self._model_dir

    def load_tokenizer(self) -> Any:
        """The tokenizer alone, chat template included (``render``); loads no weights."""
        kwargs: dict[str, Any] = {"trust_remote_code": self._trust_remote_code}
        directory = self.local_dir()
        if self._adapter is not None and (self._adapter / "tokenizer_config.json").is_file():
            directory = self._adapter
        elif self._gguf is not None:
            kwargs["gguf_file"] = gguf_load_name(self._gguf)
        return _tokenizer(directory, kwargs)

    #: Prefixes are counted in this model's own tokenizer (``Prefillable``).
    prefix_unit = "tokens"

    def prefix(self, text: str, k: int) -> str:
        """The first ``k`` tokens of ``text`` in this model's tokenizer, as text; loads the
        tokenizer alone."""
        if self._prefix_tokenizer is None:
            self._prefix_tokenizer = self.load_tokenizer()
        return prefix_tokens(self._prefix_tokenizer, text, k)

    def prefill_refusal(self) -> str | None:
        """A local model can always be prefilled: its input is built here."""
        return None

    def load(self, precision: Precision | None = None) -> tuple[Any, Any]:
        """Model and tokenizer in ``precision`` (default: ``auto``), loaded once per precision."""
        precision = precision or self.precision(Decoding())
        if self._loaded is not None and self._loaded_as == precision:
            return self._loaded
        from transformers import AutoModelForCausalLM

        model_dir = self.local_dir()
        device, dtype = torch_device_and_dtype(precision)
        common: dict[str, Any] = {"trust_remote_code": self._trust_remote_code}
        if self._gguf is not None:
            common["gguf_file"] = gguf_load_name(self._gguf)
        else:
            _refuse_pickle(model_dir, "model", self._allow_pickle)
            check_safetensors(model_dir)
        view = _without_adapter(model_dir) if self._without_adapter else nullcontext(model_dir)
        with view as weights:
            model = AutoModelForCausalLM.from_pretrained(
                weights, dtype=dtype, use_safetensors=not self._allow_pickle or None, **common
            )
        tokenizer_dir = model_dir
        if self._adapter is not None:
            from peft import PeftModel

            _refuse_pickle(self._adapter, "adapter_model", self._allow_pickle)
            check_safetensors(self._adapter)
            with warnings.catch_warnings():  # peft calls an API transformers v5 deprecated
                warnings.filterwarnings("ignore", "`is_gradient_checkpointing`", FutureWarning)
                model = PeftModel.from_pretrained(model, self._adapter)
            if (self._adapter / "tokenizer_config.json").is_file():
                tokenizer_dir = self._adapter
                common.pop("gguf_file", None)
        tokenizer = _tokenizer(tokenizer_dir, common)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        model.to(device).eval()
        self._loaded, self._loaded_as = (model, tokenizer), precision
        return self._loaded

    def generate_batches(
        self, inputs: Sequence[Rendered], decoding: Decoding
    ) -> Iterator[list[tuple[int, str]]]:
        """Greedy completions as (input index, text), a list per batch of finished answers."""
        from transformers import GenerationConfig

        from finetune_safety.models import generation

        precision = self.precision(decoding)
        model, tokenizer = self.load(precision)
        ids = [encode_prompt(tokenizer, rendered) for rendered in inputs]
        if not ids:
            return
        eos = model.generation_config.eos_token_id or tokenizer.eos_token_id
        config = GenerationConfig(
            do_sample=False,
            max_new_tokens=decoding.max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=eos,
        )
        longest = max(len(x) for x in ids)
        size = generation.batch_size_for(
            model, decoding.batch_size, precision.device, longest, decoding.max_new_tokens
        )
        engine = generation.choose_engine(model, precision.device, precision.dtype)
        if engine == "continuous":
            yield from generation.continuous(model, tokenizer, ids, config, size, group=size)
        else:
            yield from generation.padded(model, tokenizer, ids, config, size, engine == "static")

    def vocabulary(self) -> list[str]:
        """Each token id's text, decoded alone: what ``next_token_probs`` gives probabilities
        of (a classifier judge reads its answer words there)."""
        if self._vocabulary is None:
            tokenizer = self.load()[1]
            self._vocabulary = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        return self._vocabulary

    def next_token_probs(
        self, inputs: Sequence[Rendered], skip_blank: int = 0
    ) -> Iterator[list[float]]:
        """Per input, the probability of each ``vocabulary`` token coming next, after greedily
        writing up to ``skip_blank`` blank tokens (Llama Guard writes "\n\n" before its answer)."""
        import torch

        model, tokenizer = self.load()
        vocabulary = self.vocabulary()
        for rendered in inputs:
            ids = encode_prompt(tokenizer, rendered)
            for step in range(skip_blank + 1):
                with torch.inference_mode():
                    logits = model(torch.tensor([ids], device=model.device)).logits[0, -1]
                probs = torch.softmax(logits.float(), dim=-1)[: len(vocabulary)]
                best = int(probs.argmax())
                if step == skip_blank or vocabulary[best].strip():
                    break
                ids.append(best)
            yield probs.tolist()

    @property
    def context_length(self) -> int | None:
        """Positions the model was built for, from its config.json (None if it does not say)."""
        try:
            config = json.loads((self.local_dir() / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            if isinstance(config.get(key), int) and config[key] > 0:
                return int(config[key])
        return None

    def prompt_tokens(self, inputs: Sequence[Rendered], limit: int) -> list[tuple[int, bool]]:
        """Each prompt's length in tokens as ``generate_batches`` would encode it, and whether
        that is the whole count: a text far longer than ``limit`` tokens is measured on a prefix
        (a lower bound over the limit), so a 10 MB prompt costs no gigabytes to refuse."""
        tokenizer = self.load()[1]
        counts: list[tuple[int, bool]] = []
        for rendered in inputs:
            text = prompt_text(tokenizer, rendered)
            special = isinstance(rendered, str)
            if len(text) > _CHARS_PER_TOKEN * limit:
                head = tokenizer(text[: _CHARS_PER_TOKEN * limit], add_special_tokens=special)
                if len(head["input_ids"]) > limit + 1:  # the cut may split one token
                    counts.append((len(head["input_ids"]) - 1, False))
                    continue
            counts.append((len(tokenizer(text, add_special_tokens=special)["input_ids"]), True))
        return counts
