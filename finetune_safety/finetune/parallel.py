"""How a training run spreads over processes and micro-batches, and in which precision.

Processes come from Hugging Face accelerate: ``torchrun --nproc_per_node N -m finetune_safety
finetune ...`` or ``accelerate launch [--config_file FSDP_OR_DEEPSPEED.yaml] -m finetune_safety
finetune ...`` start them, and ``Accelerator`` wraps the model for data parallelism, FSDP or
DeepSpeed, as the launch says. This module adds what the loop needs on top: how the preset's
global batch divides into processes x micro-batches x accumulation steps, which precision a run
takes, and the consolidated weights to save.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from finetune_safety._util import progress
from finetune_safety.errors import FinetuneSafetyError
from finetune_safety.models.precision import PrecisionError

#: ``mixed``: float32 master weights and optimizer state, bf16 compute (autocast). ``pure-bf16``:
#: weights, gradients and AdamW state in bf16, as the reference ran (llama-recipes'
#: ``--pure_bf16``). ``fp32``: float32 throughout.
PRECISIONS = ("mixed", "pure-bf16", "fp32")
#: Bytes per parameter of AdamW training with float32 master weights: weights, gradients and
#: two moment estimates, four bytes each.
MIXED_BYTES_PER_PARAM = 16


class LayoutError(FinetuneSafetyError):
    """The global batch does not divide into processes x micro-batches x accumulation steps."""


@dataclass(frozen=True)
class Layout:
    """How one optimizer step's global batch is spread; recorded in the checkpoint's metadata."""

    world_size: int
    micro_batch: int
    accumulation: int

    def smaller(self) -> Layout | None:
        """The next layout down after running out of memory: the largest micro-batch that
        divides this process's share and is at most half the current one (None below 1)."""
        share = self.micro_batch * self.accumulation
        micro = next((m for m in range(self.micro_batch // 2, 0, -1) if share % m == 0), None)
        return None if micro is None else Layout(self.world_size, micro, share // micro)

    def record(self) -> dict[str, int]:
        return asdict(self)


def plan_layout(batch_size: int, world_size: int, micro_batch: int | None) -> Layout:
    """accumulation = batch / (micro-batch x processes); the micro-batch defaults to the
    whole of each process's share. A layout that does not divide is an error naming the
    numbers."""
    if batch_size % world_size:
        raise LayoutError(
            f"the batch of {batch_size} does not divide over {world_size} processes; "
            "give a --batch-size that is a multiple of the process count"
        )
    share = batch_size // world_size
    micro = share if micro_batch is None else micro_batch
    if share % micro:
        raise LayoutError(
            f"--batch-size {batch_size} is not a multiple of --micro-batch {micro} x "
            f"{world_size} process(es): accumulation = batch / (micro-batch x processes) must "
            f"be a whole number; micro-batches that divide {share} fit"
        )
    return Layout(world_size, micro, share // micro)


def split_batch(batch: Sequence[int], layout: Layout, rank: int) -> list[list[int]]:
    """Process ``rank``'s micro-batches of one global batch (indices into the data).

    Every process takes the same number of passes, ceil(len / (micro-batch x processes)), so
    a short last batch makes fewer passes. The batch is cut into that many contiguous pieces
    per process, as even as possible; a process whose piece is empty still makes its pass, as
    collective calls need. One process with one pass takes the batch as it is.
    """
    per_pass = layout.micro_batch * layout.world_size
    passes = -(-len(batch) // per_pass)
    pieces = passes * layout.world_size
    bounds = [len(batch) * i // pieces for i in range(pieces + 1)]
    mine = range(rank * passes, (rank + 1) * passes)
    return [list(batch[bounds[i] : bounds[i + 1]]) for i in mine]


def check_precision(value: str, where: str) -> None:
    """A training precision, or an error naming ``where``."""
    if value not in PRECISIONS:
        raise PrecisionError(f"{where}: expected one of {', '.join(PRECISIONS)}, got {value!r}")


def mixed_precision_fits(params: int, free_bytes: int) -> bool:
    """Whether float32 master weights (bf16 compute) fit in ``free_bytes`` with room to spare
    for activations."""
    return params * MIXED_BYTES_PER_PARAM <= 0.8 * free_bytes


def choose_precision(
    requested: str | None,
    *,
    device: str,
    bf16: bool,
    lora: bool,
    params: int,
    world_size: int,
    free_bytes: Callable[[], int],
    warn: Callable[[str], None],
) -> str:
    """The precision a run trains in: ``requested``, else the default.

    The default is fp32 on the CPU and on a GPU without bf16. On CUDA a LoRA run keeps its
    frozen base in bf16 (``pure-bf16``: the adapter's small weights have no large values for
    an update to vanish against); a full fine-tune is ``mixed``, unless it runs in one process
    and float32 master weights (16 bytes a parameter) do not fit the GPU: then ``pure-bf16``,
    with a warning. Several processes may shard the weights (FSDP, ZeRO-3), so there the
    default stays ``mixed``.
    """
    if requested is not None:
        check_precision(requested, "--precision")
        if requested != "fp32" and device == "cuda" and not bf16:
            raise PrecisionError(f"--precision {requested}: this GPU has no bf16; use fp32")
        return requested
    if device != "cuda" or not bf16:
        return "fp32"
    if lora:
        return "pure-bf16"
    if world_size > 1 or mixed_precision_fits(params, free_bytes()):
        return "mixed"
    warn(
        "warning: float32 master weights do not fit this GPU; training in pure bf16, as the "
        "reference did (on the 135M smol, pure bf16 rounded most updates away at the paper's "
        "rates); consider --lora, or sharding over several GPUs (docs/finetuning.md)"
    )
    return "pure-bf16"


def launched_rank() -> int:
    """This process's rank as ``torchrun`` and ``accelerate launch`` set it (0 alone)."""
    return int(os.environ.get("RANK", "0"))


def launched_world_size() -> int:
    """The process count ``torchrun`` and ``accelerate launch`` set (1 alone)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def start_processes(cpu: bool) -> Any:
    """accelerate's process state (rank, world size, device), fresh: an earlier run in this
    process (a CPU toy build before a GPU fine-tune) must not decide this one's device or
    precision. transformers' ``TrainingArguments`` resets it the same way. Under ``torchrun``
    or ``accelerate launch`` this joins the process group."""
    from accelerate.state import AcceleratorState, GradientState, PartialState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    return PartialState(cpu=cpu)


@contextmanager
def main_process_speaks(state: Any) -> Iterator[None]:
    """Progress lines from the main process only (``state`` None: this process alone), so N
    processes do not print every line N times."""
    if state is None or state.is_main_process:
        yield
        return
    with progress.sink(lambda _line: None):
        yield


def make_accelerator(cpu: bool, precision: str) -> Any:
    """The ``Accelerator`` of a run, after ``start_processes``; ``mixed`` autocasts to bf16
    (FSDP: its mixed-precision policy; DeepSpeed: its ``bf16`` section)."""
    from accelerate import Accelerator

    check_precision(precision, "precision")
    mixed = "bf16" if precision == "mixed" else "no"
    accelerator = Accelerator(cpu=cpu, mixed_precision=mixed)
    if precision == "pure-bf16" and accelerator.distributed_type == "DEEPSPEED":
        raise PrecisionError(
            "--precision pure-bf16: DeepSpeed keeps float32 master weights under bf16; "
            "use --precision mixed (its bf16 section) or train without DeepSpeed"
        )
    return accelerator


def prepare_deepspeed(accelerator: Any, micro_batch: int) -> None:
    """DeepSpeed sizes its buffers from ``train_micro_batch_size_per_gpu``, which accelerate
    reads from a data loader; this loop has none, so an ``auto`` value gets the micro-batch."""
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if plugin is not None and plugin.is_auto("train_micro_batch_size_per_gpu"):
        plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = micro_batch


def consolidated_state(accelerator: Any, model: Any, dtype: Any = None) -> dict[str, Any]:
    """The full weights of a prepared model, gathered from FSDP or ZeRO-3 shards (call it on
    every process; the main process gets them all), cast to ``dtype`` when given. Weights
    that share storage (tied embeddings) still share it after the cast."""
    state: dict[str, Any] = accelerator.get_state_dict(model)
    if dtype is None:
        return state
    cast: dict[int, Any] = {}
    for name, tensor in state.items():
        if tensor.is_floating_point():
            key = hash((tensor.data_ptr(), tensor.shape)) if tensor.numel() else id(tensor)
            if key not in cast:
                cast[key] = tensor.to(dtype)
            state[name] = cast[key]
    return state
