"""Weight files checked before a load: a truncated or corrupt safetensors file is one line naming
the file, not a Rust traceback from deep inside ``from_pretrained``."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from finetune_safety.errors import ModelLoadError

#: safetensors caps its JSON header at 100 MB; anything larger is not a safetensors file.
_MAX_HEADER = 100_000_000


def _problem(path: Path) -> str | None:
    """What is wrong with a safetensors file (reading only its header), or None."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"{size} bytes, too short for a header"
        (length,) = struct.unpack("<Q", head)
        if length > min(_MAX_HEADER, size - 8):
            return "its header length is past the end of the file"
        try:
            header = json.loads(f.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return "its header is not valid JSON"
    if not isinstance(header, dict):
        return "its header is not a JSON object"
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2):
            return f"tensor {name!r} has no data offsets"
        end = max(end, int(offsets[1]))
    if 8 + length + end > size:
        return f"truncated: its tensors need {8 + length + end} bytes, the file has {size}"
    return None


def check_safetensors(directory: Path) -> None:
    """Every ``*.safetensors`` file in ``directory`` is whole; else a one-line ModelLoadError."""
    for path in sorted(directory.glob("*.safetensors")):
        problem = _problem(path)
        if problem is not None:
            raise ModelLoadError(
                f"not a usable safetensors file ({problem}); re-download or re-save the checkpoint",
                path,
            )
