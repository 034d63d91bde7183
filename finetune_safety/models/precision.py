"""Which precision and device a local model answers in: a setting, and part of the generation key.

bf16 answers depend on batch composition (another batch, another rounding, sometimes another
token), float32 answers do not; so the dtype and the device kind go into every generation key and
results never cross precisions. The device is probed without importing torch, so that a fully
cached run still imports nothing heavy; loading checks the probe against what torch sees.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from finetune_safety.errors import FinetuneSafetyError

DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("cpu", "cuda")
#: Overrides the device probe, e.g. ``cpu`` to keep a GPU machine's run on the CPU.
DEVICE_ENV = "FINETUNE_SAFETY_DEVICE"
#: CUDA's list of the GPUs a process sees (indices or UUIDs), read when CUDA starts.
VISIBLE_ENV = "CUDA_VISIBLE_DEVICES"


class PrecisionError(FinetuneSafetyError):
    """A dtype or device setting is unknown, or the device asked for is not there."""


@dataclass(frozen=True)
class Precision:
    """A resolved dtype name (never ``auto``) and device kind (``cpu`` or ``cuda``)."""

    dtype: str
    device: str

    def key(self) -> dict[str, str]:
        """The generation-key part: answers in another precision are other answers."""
        return {"dtype": self.dtype, "device": self.device}


def check_dtype(value: object, where: str) -> str:
    """``value`` if it is a dtype setting, else a PrecisionError naming ``where``."""
    if value not in DTYPES:
        raise PrecisionError(f"{where}: expected one of {', '.join(DTYPES)}, got {value!r}")
    return str(value)


def _gpu_build() -> bool:
    """Whether the installed torch is a CUDA or ROCm build, read from its ``version.py``."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return False
    version = Path(next(iter(spec.submodule_search_locations))) / "version.py"
    try:
        text = version.read_text(encoding="utf-8")
    except OSError:
        return False
    return re.search(r"^(cuda|hip)\b[^=\n]*=\s*['\"]", text, re.MULTILINE) is not None


def probe_device() -> str:
    """``cuda`` when torch would see a GPU, else ``cpu``; imports torch only if already imported."""
    forced = os.environ.get(DEVICE_ENV, "").strip()
    if forced:
        if forced not in DEVICES:
            raise PrecisionError(f"{DEVICE_ENV}: expected cpu or cuda, got {forced!r}")
        return forced
    if "torch" in sys.modules:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if os.environ.get("CUDA_VISIBLE_DEVICES", "0").strip() in ("", "-1"):
        return "cpu"
    nodes = ("/dev/kfd", "/dev/dxg")  # ROCm, and CUDA under WSL2
    has_device = any(Path("/dev").glob("nvidia[0-9]*")) or any(map(os.path.exists, nodes))
    return "cuda" if has_device and _gpu_build() else "cpu"


def resolve_precision(setting: str, float32_auto: bool = False) -> Precision:
    """``auto`` is bf16 on CUDA and float32 on the CPU; ``float32_auto`` (the embedded toy) makes
    ``auto`` float32 everywhere, so the toy answers bit-identically on every device."""
    device = probe_device()
    dtype = check_dtype(setting, "dtype")
    if dtype == "auto":
        dtype = "bfloat16" if device == "cuda" and not float32_auto else "float32"
    return Precision(dtype, device)


def torch_device_and_dtype(precision: Precision) -> tuple[str, object]:
    """The torch device and dtype for ``precision``, checked against the hardware torch sees."""
    import torch

    if precision.device == "cpu" and torch.cuda.is_available() and not os.environ.get(DEVICE_ENV):
        raise PrecisionError(
            f"torch sees a GPU that the device probe missed; set {DEVICE_ENV}=cuda to use it "
            "(or cpu to stay on the CPU)"
        )
    if precision.device == "cuda" and not torch.cuda.is_available():
        raise PrecisionError(
            f"a GPU was detected but torch cannot use it; set {DEVICE_ENV}=cpu to run on the CPU"
        )
    cuda_bf16 = precision.device == "cuda" and precision.dtype == "bfloat16"
    if cuda_bf16 and not torch.cuda.is_bf16_supported():
        raise PrecisionError(
            "this GPU has no bfloat16; set dtype = 'float16' or 'float32' "
            "(--safety-dtype, evaluate --dtype)"
        )
    dtype: object = getattr(torch, precision.dtype)
    return precision.device, dtype


def visible_gpus() -> list[str]:
    """The GPUs this process may use, found without starting CUDA: the entries of
    ``CUDA_VISIBLE_DEVICES`` when it is set (up to an invalid one, as CUDA reads it), else an
    index for each GPU ``nvidia-smi -L`` lists, else none."""
    listed = os.environ.get(VISIBLE_ENV)
    if listed is not None:
        entries: list[str] = []
        for entry in (part.strip() for part in listed.split(",")):
            if not entry or entry.startswith("-"):
                break
            entries.append(entry)
        return entries
    try:
        found = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i in range(sum(line.startswith("GPU ") for line in found.splitlines()))]


def worker_gpu(worker: str, gpus: Sequence[str]) -> str | None:
    """The GPU the xdist worker ``worker`` (``gw3``) takes: its index mod the GPU count. None
    with fewer than two GPUs (nothing to spread) or a name that is not ``gw<N>``."""
    match = re.fullmatch(r"gw(\d+)", worker)
    if match is None or len(gpus) < 2:
        return None
    return gpus[int(match.group(1)) % len(gpus)]


def pin_xdist_worker() -> str | None:
    """Under ``pytest -n N`` with several GPUs, gives this worker one of them (``worker_gpu``)
    through ``CUDA_VISIBLE_DEVICES``, so the workers' checkpoints spread over the cards. It must
    run before torch starts CUDA, which reads the variable once; it leaves a process whose CUDA
    already started, or one kept on the CPU (``FINETUNE_SAFETY_DEVICE=cpu``), as it is.
    Returns the GPU taken."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker or os.environ.get(DEVICE_ENV, "").strip() == "cpu":
        return None
    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
            return None
    gpu = worker_gpu(worker, visible_gpus())
    if gpu is not None:
        os.environ[VISIBLE_ENV] = gpu
    return gpu


def use_device(device: str, where: str) -> None:
    """``cpu``, ``cuda`` or ``cuda:N`` (the Nth GPU this process sees) for this process's local
    models, set before torch starts CUDA; an unknown device or GPU is an error naming ``where``."""
    match = re.fullmatch(r"(cpu|cuda)(?::(\d+))?", device)
    if match is None or (match.group(1) == "cpu" and match.group(2) is not None):
        raise PrecisionError(f"{where}: expected cpu, cuda or cuda:N, got {device!r}")
    if match.group(2) is not None:
        gpus, index = visible_gpus(), int(match.group(2))
        if index >= len(gpus):
            raise PrecisionError(f"{where} {device}: this process sees {len(gpus)} GPU(s)")
        os.environ[VISIBLE_ENV] = gpus[index]
    os.environ[DEVICE_ENV] = match.group(1)
