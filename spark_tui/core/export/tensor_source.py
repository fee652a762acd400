"""Read a Hugging Face checkpoint's tensors one at a time, whatever its size.

Every deploy stage that touches weights (streaming merge, GGUF writer, tensor
verification, preflight) goes through this class so that each holds one
tensor in memory, never the model.  It follows `model.safetensors.index.json`
when present: a raw Hub snapshot can also carry `consolidated.safetensors`
(Mistral's own format, the same weights under other names), which must not be
read as extra tensors.  Torch `.bin` checkpoints are a fallback (mmap-loaded).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from spark_tui.core.export.common import ExportError

INDEX_NAME = "model.safetensors.index.json"
# Files that sit beside HF shards in some repos but are not part of the HF checkpoint.
NOT_HF_WEIGHTS = ("consolidated.safetensors",)


def safetensors_files(model_dir: str | Path) -> list[Path]:
    """The checkpoint's safetensors shards: those the index names, else every *.safetensors
    except non-HF copies (`consolidated*.safetensors`)."""
    model_dir = Path(model_dir)
    index = model_dir / INDEX_NAME
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (json.JSONDecodeError, KeyError) as exc:
            raise ExportError(f"{index} is not a valid safetensors index ({exc})") from exc
        files = sorted({model_dir / f for f in weight_map.values()})
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise ExportError(
                f"{index} names shard(s) that are missing: {', '.join(missing[:4])}; "
                "the download is incomplete - fetch the model again"
            )
        return files
    return [
        f for f in sorted(model_dir.glob("*.safetensors")) if not f.name.startswith("consolidated")
    ]


class TensorSource:
    """Lazy, per-tensor access to a checkpoint (safetensors shards or torch .bin files)."""

    def __init__(self, model_dir: str | Path):
        self.model_dir = Path(model_dir)
        self._where: dict[str, Path] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._dtypes: dict[str, str] = {}
        self._bin: dict[str, Any] | None = None
        self.files = safetensors_files(self.model_dir)
        if self.files:
            from safetensors import safe_open

            for f in self.files:
                with safe_open(str(f), framework="pt") as sf:
                    for key in sf.keys():  # noqa: SIM118 - safe_open has no __iter__
                        sl = sf.get_slice(key)
                        self._where[key] = f
                        self._shapes[key] = tuple(sl.get_shape())
                        self._dtypes[key] = str(sl.get_dtype())
            return
        bins = sorted(self.model_dir.glob("pytorch_model*.bin"))
        if not bins:
            raise ExportError(
                f"{self.model_dir}: no *.safetensors or pytorch_model*.bin weights found"
            )
        import torch

        self._bin = {}
        for f in bins:
            sd = torch.load(str(f), map_location="cpu", weights_only=True, mmap=True)
            self._bin.update(sd)
        self.files = bins
        self._shapes = {k: tuple(v.shape) for k, v in self._bin.items()}
        self._dtypes = {k: str(v.dtype).replace("torch.", "") for k, v in self._bin.items()}

    def names(self) -> list[str]:
        return list(self._shapes)

    def __contains__(self, name: str) -> bool:
        return name in self._shapes

    def shape(self, name: str) -> tuple[int, ...]:
        return self._shapes[name]

    def dtype(self, name: str) -> str:
        """The stored dtype as safetensors spells it (BF16, F16, F32) or torch's name."""
        return self._dtypes[name]

    def file_of(self, name: str) -> Path | None:
        return self._where.get(name)

    def load_torch(self, name: str) -> Any:
        """The tensor as stored (a torch tensor in its own dtype)."""
        if self._bin is not None:
            return self._bin[name]
        from safetensors import safe_open

        with safe_open(str(self._where[name]), framework="pt") as sf:
            return sf.get_tensor(name)

    def load(self, name: str) -> np.ndarray:
        """The tensor as float32 numpy (bf16/f16 widened exactly)."""
        import torch

        return self.load_torch(name).to(torch.float32).numpy()

    def shard_sizes(self) -> list[int]:
        return [f.stat().st_size for f in self.files]
